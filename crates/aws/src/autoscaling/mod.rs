//! Auto Scaling: the server's group of zero or one instance (`autoscaling.group`) and the
//! step-scaling policy its alarms trigger (`autoscaling.scaling-policy`), one file each.
//!
//! Observation cost, per region:
//! - groups: one `DescribeAutoScalingGroups` per 50 names (pages included) and one
//!   `DescribeNotificationConfigurations` per 50 groups found; tags come with the groups;
//! - scaling policies: one `DescribePolicies` per 50 names (pages included), whatever their
//!   groups.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;

mod group;
mod scaling_policy;

pub use group::GroupClient;
pub use scaling_policy::ScalingPolicyClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(GroupClient::new(pool.clone()))),
        Arc::new(Managed::new(ScalingPolicyClient::new(pool.clone()))),
    ]
}

/// Names per `DescribeAutoScalingGroups`, `DescribeNotificationConfigurations` and
/// `DescribePolicies` call.
const NAMES_PER_CALL: usize = 50;

/// How long to poll for an asynchronous state change, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Pause between two reads.
    pub interval: Duration,
    /// Give up (with a retryable error) after this long.
    pub limit: Duration,
}

impl Wait {
    /// A wait of `limit`, reading every `interval`.
    pub const fn new(interval: Duration, limit: Duration) -> Self {
        Wait { interval, limit }
    }
}

/// Polls `done` until it answers true. When `limit` elapses first the answer is an
/// eventual-consistency error, so the engine's retry policy decides whether to keep waiting:
/// a client call never blocks a run forever.
pub(crate) async fn poll_until<F, Fut>(
    wait: Wait,
    what: &str,
    mut done: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ProviderError>>,
{
    let start = Instant::now();
    loop {
        if done().await? {
            return Ok(());
        }
        if start.elapsed() >= wait.limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: still in progress after {}s",
                wait.limit.as_secs()
            )));
        }
        tokio::time::sleep(wait.interval).await;
    }
}

/// Auto Scaling answers "no such group" with a `ValidationError`; turn that into not-found so a
/// delete of a vanished group succeeds and an update re-observes.
fn asg_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = classify(what, err);
    if e.code.as_deref() == Some("ValidationError") && e.message.contains("not found") {
        e.class = ErrorClass::NotFound;
    }
    e
}

/// What `describe` (one call with its pagination, given up to 50 names) answers for every
/// name of `names`: the Auto Scaling describe calls take at most 50 names each.
async fn describe_named<T, E, F, Fut>(
    operation: &str,
    names: &[String],
    describe: F,
) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut found = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        found.extend(
            describe(chunk.to_vec())
                .await
                .map_err(|e| asg_error(operation, e))?,
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn polling_stops_when_done_and_gives_up_retryably() {
        let counter = AtomicU32::new(0);
        let calls = &counter;
        let wait = Wait::new(Duration::from_millis(1), Duration::from_secs(5));
        poll_until(wait, "x", || async move {
            Ok(calls.fetch_add(1, Ordering::SeqCst) >= 2)
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let wait = Wait::new(Duration::from_millis(1), Duration::from_millis(5));
        let err = poll_until(wait, "deleting y", || async { Ok(false) })
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("deleting y"));
    }
}
