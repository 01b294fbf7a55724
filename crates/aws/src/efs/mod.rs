//! EFS file systems and mount targets, one file each.
//!
//! File systems are found by their creation token, which is the desired name and EFS's own
//! idempotency key: a create interrupted after AWS accepted it answers
//! `FileSystemAlreadyExists` on the next run, which the engine turns into adoption.
//!
//! A volume can also start from an existing file system (`adopt`) or from an AWS Backup
//! recovery point (`restoreFrom`, see `backup::restore_file_system`). Then create makes
//! nothing: it checks the file system (region, encryption, no other owner) and tags it as the
//! volume's, `Name` included; since its creation token is not ours, observe finds it by that
//! tag from then on. Mount targets, policy and backups follow as for a created one.
//!
//! Observation cost, per region:
//!
//! | kind | found by | reads |
//! | --- | --- | --- |
//! | `efs.file-system` | creation token, or `Name` tag | one paginated `DescribeFileSystems` (tokens, settings and tags; shared, [`list_file_systems`]) + one `DescribeFileSystemPolicy` per existing file system whose policy is managed (EFS has no batch read of policies) |
//! | `efs.mount-target` | file system and zone | the same `DescribeFileSystems`, one `DescribeMountTargets` per file system with desired mount targets (it takes one id), one `DescribeAvailabilityZones`, and the security groups from one `DescribeNetworkInterfaces` per 200 mount targets (one `DescribeMountTargetSecurityGroups` per mount target where that is denied) |
//!
//! AWS creates and deletes both kinds asynchronously (`creating` -> `available`, `deleting` ->
//! gone). Creates wait until the object is `available`, because mount targets need an
//! available file system and instances need available mount targets; deletes wait until the
//! object is gone, because a file system cannot be deleted while its mount targets exist and a
//! new mount target cannot take a zone whose old one is still deleting. The waits are bounded
//! ([`wait_until`]); the emulator makes everything `available` at once, so the waiting is
//! tested with a scripted state sequence below.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_efs::types::{FileSystemDescription, LifeCycleState, Tag};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::tags::is_managed;

mod file_system;
mod mount_target;

pub use file_system::FileSystemClient;
pub use mount_target::MountTargetClient;

/// How often a create or delete polls the object's state.
const POLL_INTERVAL: Duration = Duration::from_secs(3);

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(FileSystemClient::new(pool.clone()))),
        Arc::new(Managed::new(MountTargetClient::new(pool.clone()))),
    ]
}

/// [`classify`] plus EFS's own "not yet": a file system policy naming an IAM role created
/// moments ago fails with `InvalidPolicyException` ("invalid principal") until IAM has
/// propagated the role, which is eventual consistency, not a bad policy.
fn classify_efs<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    principal_not_yet(classify(what, err))
}

/// An `InvalidPolicyException` about a principal is IAM propagation, not a bad policy.
fn principal_not_yet(mut e: ProviderError) -> ProviderError {
    if e.code.as_deref() == Some("InvalidPolicyException")
        && e.message.to_ascii_lowercase().contains("principal")
    {
        e.class = ErrorClass::EventualConsistency;
    }
    e
}

/// Gone for good or on its way out: such objects are treated as absent.
fn is_gone(state: &LifeCycleState) -> bool {
    matches!(state, LifeCycleState::Deleting | LifeCycleState::Deleted)
}

/// Polls `read` (the object's lifecycle state, `None` once it no longer exists) every
/// `interval` until `done` accepts the state, for at most `limit`. An `error` state fails at
/// once; running out of time is eventual consistency, so the engine re-observes and retries.
pub(crate) async fn wait_until<F, Fut>(
    what: &str,
    interval: Duration,
    limit: Duration,
    mut read: F,
    done: impl Fn(Option<&str>) -> bool,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>, ProviderError>>,
{
    let started = tokio::time::Instant::now();
    loop {
        let state = read().await?;
        if done(state.as_deref()) {
            return Ok(());
        }
        if state.as_deref() == Some("error") {
            return Err(ProviderError::terminal(format!(
                "{what}: AWS reports the lifecycle state `error`"
            )));
        }
        if started.elapsed() >= limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: still `{}` after {}s",
                state.as_deref().unwrap_or("gone"),
                limit.as_secs()
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

fn efs_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::terminal(format!("tag `{k}`: {e}")))
        })
        .collect()
}

fn tag_map(tags: &[Tag]) -> IndexMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// Every live file system of the region, listed once per observation for the file system and
/// mount target clients alike.
async fn list_file_systems(
    pool: &ClientPool,
    region: &str,
) -> Result<Arc<Vec<FileSystemDescription>>, ProviderError> {
    let efs = pool.efs(region);
    pool.shared_read(
        &format!("efs:DescribeFileSystems:{region}"),
        || async move {
            // AWS pages a hundred file systems by default; say so, as the emulator pages ten.
            let all: Vec<FileSystemDescription> = efs
                .describe_file_systems()
                .max_items(100)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeFileSystems", e))?;
            Ok(all
                .into_iter()
                .filter(|fs| !is_gone(fs.life_cycle_state()))
                .collect::<Vec<_>>())
        },
    )
    .await
}

/// Whether `fs` is the file system named `name` (a desired file system's name): created with
/// that creation token, or adopted or restored and then tagged as ours with that `Name`. An
/// adopted file system keeps the creation token it was made with, so the tag is how later runs
/// (and the mount targets) find it.
fn is_named(fs: &FileSystemDescription, name: &str) -> bool {
    if fs.creation_token() == name {
        return true;
    }
    let tags = tag_map(fs.tags());
    is_managed(&tags) && tags.get("Name").map(String::as_str) == Some(name)
}

/// The file systems of `all` by desired name (see [`is_named`]); a creation-token match wins
/// over a tag match.
fn by_name<'a>(
    all: &'a [FileSystemDescription],
    names: impl IntoIterator<Item = &'a str>,
) -> HashMap<&'a str, &'a FileSystemDescription> {
    let mut out = HashMap::new();
    for name in names {
        let found = all
            .iter()
            .find(|fs| fs.creation_token() == name)
            .or_else(|| all.iter().find(|fs| is_named(fs, name)));
        if let Some(fs) = found {
            out.insert(name, fs);
        }
    }
    out
}

/// The region's availability zones in name order: the order `availabilityZoneIndex` counts in,
/// the same rule as for subnets (zones proper only, not Local or Wavelength Zones).
async fn zone_names(ec2: &aws_sdk_ec2::Client) -> Result<Vec<String>, ProviderError> {
    let out = ec2
        .describe_availability_zones()
        .send()
        .await
        .map_err(|e| classify("DescribeAvailabilityZones", e))?;
    let mut zones: Vec<String> = out
        .availability_zones()
        .iter()
        .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    Ok(zones)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn an_unknown_principal_in_a_policy_is_waited_for() {
        let e = ProviderError::terminal(
            "PutFileSystemPolicy fs-1: Policy contains invalid Principal block",
        )
        .with_code("InvalidPolicyException");
        assert_eq!(principal_not_yet(e).class, ErrorClass::EventualConsistency);
        let e = ProviderError::terminal("PutFileSystemPolicy fs-1: malformed JSON")
            .with_code("InvalidPolicyException");
        assert_eq!(principal_not_yet(e).class, ErrorClass::Terminal);
    }

    /// A scripted sequence of states, as AWS would answer successive polls.
    fn script(
        states: &[Option<&str>],
    ) -> impl FnMut() -> std::future::Ready<Result<Option<String>, ProviderError>> {
        let states: Vec<Option<String>> = states.iter().map(|s| s.map(str::to_string)).collect();
        let next = Mutex::new(0usize);
        move || {
            let mut i = next.lock().unwrap();
            let s = states[(*i).min(states.len() - 1)].clone();
            *i += 1;
            std::future::ready(Ok(s))
        }
    }

    #[tokio::test]
    async fn waits_through_creating_until_available() {
        let polls = Arc::new(Mutex::new(0));
        let counted = polls.clone();
        let mut read = script(&[Some("creating"), Some("creating"), Some("available")]);
        wait_until(
            "fs",
            Duration::from_millis(1),
            Duration::from_secs(5),
            || {
                *counted.lock().unwrap() += 1;
                read()
            },
            |s| s == Some("available"),
        )
        .await
        .unwrap();
        assert_eq!(*polls.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn waits_through_deleting_until_gone() {
        wait_until(
            "mt",
            Duration::from_millis(1),
            Duration::from_secs(5),
            script(&[Some("deleting"), Some("deleting"), None]),
            |s| s.is_none(),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_wait_is_bounded_and_an_error_state_fails_at_once() {
        let err = wait_until(
            "fs",
            Duration::from_millis(1),
            Duration::from_millis(20),
            script(&[Some("creating")]),
            |s| s == Some("available"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("still `creating`"), "{}", err.message);
        let err = wait_until(
            "fs",
            Duration::from_millis(1),
            Duration::from_secs(5),
            script(&[Some("creating"), Some("error")]),
            |s| s == Some("available"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Terminal);
    }
}
