//! Lambda: functions (packaged from the `reconciler-lambda` artifact) and permissions, one
//! file each; [`package`] builds the deployment zip.
//!
//! Observation cost, per region:
//! - functions: one paginated `ListFunctions` finds every desired function by name (the API has
//!   no name filter; the listing stops once every desired name was seen); tags from the
//!   region's tag index (see [`crate::tagging`]), `ListTags` per function only where the index
//!   disagrees with the desired tags, because Lambda has no batch tag read;
//! - permissions: one `GetPolicy` per distinct function, because a function's resource policy
//!   can only be read whole, one function at a time.
//!
//! **Code changes** are found without any state: the artifact is packaged deterministically
//! (see [`package`]), so its `CodeSha256` is known before anything is uploaded and is compared
//! with the one Lambda reports. The observed `artifact` is the desired artifact name when the
//! two match and `sha256:<deployed hash>` when they do not, which the diff shows as a change of
//! `/artifact`. Because observe packages the artifact, a plan fails at once with a clear error
//! when the binary is missing or built for the wrong architecture.
//!
//! **Life cycle**: a new function is `Pending` until Lambda has prepared it, and a function
//! accepts one update at a time (`LastUpdateStatus` `InProgress`). Updates, permissions and
//! invocations fail meanwhile, so create and update wait (bounded) until the function is
//! settled before returning. A just-created IAM role is often not yet assumable by Lambda
//! (`InvalidParameterValueException: The role defined for the function cannot be assumed by
//! Lambda`); [`crate::error`] classifies that as eventual consistency, so the create is retried.

pub mod package;

mod function;
mod permission;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{LastUpdateStatus, State};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use reconciler_engine::model::DesiredResource;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};
use reconciler_kinds::lambda::Function;
use reconciler_kinds::Properties;

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;

pub use function::FunctionClient;
pub use package::{Architecture, ArtifactLocator, Package};
pub use permission::PermissionClient;

/// Locates and packages every artifact the functions in `desired` need, so that plan and
/// apply stop before any AWS call when one is missing or wrong (a terminal error saying where
/// it was looked for and how to build it). The packages stay cached for observe and create.
pub async fn check_artifacts<'a>(
    locator: &ArtifactLocator,
    desired: impl IntoIterator<Item = &'a DesiredResource>,
) -> Result<(), ProviderError> {
    let mut seen = HashSet::new();
    for d in desired {
        if d.kind.as_str() != Function::KIND {
            continue;
        }
        let props = reconciler_kinds::read::<Function>(d)?;
        let arch = function::architecture(d, &props)?;
        if seen.insert((props.artifact.clone(), arch)) {
            locator.package_async(&props.artifact, arch).await?;
        }
    }
    Ok(())
}

/// The clients of this service. Functions find their artifact the default way (see
/// [`ArtifactLocator::from_process`]).
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(FunctionClient::new(pool.clone()))),
        Arc::new(Managed::new(PermissionClient::new(pool.clone()))),
    ]
}

/// Lambda's own reading of two codes the shared table leaves terminal:
/// `ResourceConflictException` means "already exists" (a function name, a permission's
/// statement id) except when Lambda is busy with the function ("The operation cannot be
/// performed at this time. An update is in progress for resource: ...", or the function is
/// still `Pending`), which passes by itself; `ResourceNotReadyException` (the function is not
/// active yet) passes too.
fn reclassify(mut err: ProviderError) -> ProviderError {
    match err.code.as_deref() {
        Some("ResourceConflictException") => {
            let m = err.message.to_ascii_lowercase();
            err.class = if m.contains("in progress")
                || m.contains("cannot be performed at this time")
                || m.contains("currently in the following state")
            {
                ErrorClass::EventualConsistency
            } else {
                ErrorClass::Conflict
            };
        }
        Some("ResourceNotReadyException") => err.class = ErrorClass::EventualConsistency,
        _ => {}
    }
    err
}

/// [`classify`] with Lambda's reading of its conflict codes.
fn classify_lambda<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    reclassify(classify(what, err))
}

/// Bounded polling with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Poll {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Give up once this much time has passed.
    pub limit: Duration,
}

/// Lambda usually settles within seconds; five minutes covers a slow region.
const SETTLE: Poll = Poll {
    first: Duration::from_secs(1),
    max: Duration::from_secs(5),
    limit: Duration::from_secs(300),
};

/// One look at something being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Settled.
    Done,
    /// Not yet; the text names the state, for the timeout message.
    Waiting(String),
}

/// Calls `check` until it reports [`Progress::Done`], pausing `first`, then twice as long each
/// time up to `max`. Errors from `check` end the wait; running past `limit` is an
/// eventual-consistency error, so the engine tries again later.
pub(crate) async fn poll_until<F, Fut>(
    what: &str,
    poll: Poll,
    mut check: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress, ProviderError>>,
{
    let start = Instant::now();
    let mut pause = poll.first;
    loop {
        let state = match check().await? {
            Progress::Done => return Ok(()),
            Progress::Waiting(state) => state,
        };
        if start.elapsed() + pause > poll.limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: still {state} after {}s",
                start.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll.max);
    }
}

/// Whether a function can take the next call, from its `State` and `LastUpdateStatus`.
fn readiness(
    name: &str,
    state: Option<&State>,
    state_reason: Option<&str>,
    update: Option<&LastUpdateStatus>,
    update_reason: Option<&str>,
) -> Result<Progress, ProviderError> {
    match state {
        Some(State::Pending | State::Deactivating | State::Deleting) => {
            return Ok(Progress::Waiting(
                state.map_or("", State::as_str).to_string(),
            ));
        }
        Some(State::Failed) => {
            return Err(ProviderError::terminal(format!(
                "Lambda function {name} failed to become active: {}",
                state_reason.unwrap_or("no reason given")
            )));
        }
        _ => {}
    }
    match update {
        Some(LastUpdateStatus::InProgress) => Ok(Progress::Waiting("updating".into())),
        Some(LastUpdateStatus::Failed) => Err(ProviderError::terminal(format!(
            "the last update of Lambda function {name} failed: {}",
            update_reason.unwrap_or("no reason given")
        ))),
        _ => Ok(Progress::Done),
    }
}

/// Waits until the function is active and no update is in progress.
async fn wait_settled(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    poll: Poll,
) -> Result<(), ProviderError> {
    poll_until(&format!("Lambda function {name}"), poll, || {
        let lambda = lambda.clone();
        let name = name.to_string();
        async move {
            let out = lambda
                .get_function_configuration()
                .function_name(&name)
                .send()
                .await
                .map_err(|e| classify_lambda(&format!("GetFunctionConfiguration {name}"), e))?;
            readiness(
                &name,
                out.state(),
                out.state_reason(),
                out.last_update_status(),
                out.last_update_status_reason(),
            )
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::classify_code;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    fn coded(code: &str, message: &str) -> ProviderError {
        ProviderError::new(classify_code(code, message), format!("Op x: {message}")).with_code(code)
    }

    #[test]
    fn lambda_errors_are_classified_for_retry() {
        // A just-created role is not yet assumable: retry, do not fail.
        let e = reclassify(coded(
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded(
            "InvalidParameterValueException",
            "Runtime python9 is not supported",
        ));
        assert_eq!(e.class, ErrorClass::Terminal);
        // Busy with an update or still pending: retry.
        let e = reclassify(coded(
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for \
             resource: arn:aws:lambda:us-east-1:123456789012:function:rc-x",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded(
            "ResourceConflictException",
            "The operation cannot be performed at this time. The function is currently in the \
             following state: Pending",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        // Already there: re-observe and adopt.
        let e = reclassify(coded(
            "ResourceConflictException",
            "Function already exist: rc-x",
        ));
        assert_eq!(e.class, ErrorClass::Conflict);
        let e = reclassify(coded(
            "ResourceConflictException",
            "The statement id (rc-x-invoke) provided already exists. Please provide a new \
             statement id, or remove the existing statement.",
        ));
        assert_eq!(e.class, ErrorClass::Conflict);
        let e = reclassify(coded("ResourceNotReadyException", "not active"));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded("ResourceNotFoundException", "Function not found"));
        assert_eq!(e.class, ErrorClass::NotFound);
    }

    const QUICK: Poll = Poll {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        limit: Duration::from_secs(5),
    };

    /// Polls over a scripted sequence of (State, LastUpdateStatus), counting the looks.
    async fn settle_over(
        states: Vec<(Option<State>, Option<LastUpdateStatus>)>,
        poll: Poll,
    ) -> (Result<(), ProviderError>, usize) {
        let script = Mutex::new(VecDeque::from(states));
        let looks = Mutex::new(0usize);
        let result = poll_until("Lambda function f", poll, || {
            *looks.lock().unwrap() += 1;
            let next = script.lock().unwrap().pop_front();
            async move {
                let (state, update) = next.expect("polled past the script");
                readiness(
                    "f",
                    state.as_ref(),
                    Some("why"),
                    update.as_ref(),
                    Some("why"),
                )
            }
        })
        .await;
        let n = *looks.lock().unwrap();
        (result, n)
    }

    #[tokio::test]
    async fn waits_from_pending_to_active() {
        let (result, looks) = settle_over(
            vec![
                (Some(State::Pending), None),
                (Some(State::Pending), Some(LastUpdateStatus::InProgress)),
                (Some(State::Active), Some(LastUpdateStatus::InProgress)),
                (Some(State::Active), Some(LastUpdateStatus::Successful)),
            ],
            QUICK,
        )
        .await;
        result.unwrap();
        assert_eq!(looks, 4);
        // Moto's answer: active at once, no update status.
        let (result, looks) = settle_over(vec![(Some(State::Active), None)], QUICK).await;
        result.unwrap();
        assert_eq!(looks, 1);
    }

    #[tokio::test]
    async fn failures_end_the_wait_and_timeouts_retry_later() {
        let (result, _) = settle_over(
            vec![(Some(State::Pending), None), (Some(State::Failed), None)],
            QUICK,
        )
        .await;
        assert_eq!(result.unwrap_err().class, ErrorClass::Terminal);
        let (result, _) = settle_over(
            vec![(Some(State::Active), Some(LastUpdateStatus::Failed))],
            QUICK,
        )
        .await;
        assert_eq!(result.unwrap_err().class, ErrorClass::Terminal);
        let never = Poll {
            first: Duration::from_millis(5),
            max: Duration::from_millis(5),
            limit: Duration::from_millis(12),
        };
        let (result, looks) = settle_over(vec![(Some(State::Pending), None); 10], never).await;
        let err = result.unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("Pending"), "{err}");
        assert!((2..10).contains(&looks), "{looks} looks");
    }
}
