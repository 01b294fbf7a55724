//! EFS file systems and mount targets.
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
//! Observation cost, per region: one paginated `DescribeFileSystems` lists every file system
//! (tokens, settings and tags in one answer); EFS has no batch read of file system policies, so
//! each existing file system whose policy is managed costs one `DescribeFileSystemPolicy`.
//! Mount targets: `DescribeMountTargets` needs a file system (or mount target) id, so it is
//! called once per file system that has desired mount targets, after the same file system
//! listing, plus one `DescribeAvailabilityZones` and one
//! `DescribeMountTargetSecurityGroups` per existing mount target (no batch form either).
//!
//! AWS creates and deletes both kinds asynchronously (`creating` -> `available`, `deleting` ->
//! gone). Creates wait until the object is `available`, because mount targets need an
//! available file system and instances need available mount targets; deletes wait until the
//! object is gone, because a file system cannot be deleted while its mount targets exist and a
//! new mount target cannot take a zone whose old one is still deleting. The waits are bounded
//! ([`wait_until`]); the emulator makes everything `available` at once, so the waiting is
//! tested with a scripted state sequence below.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_efs::types::{
    FileSystemDescription, LifeCycleState, MountTargetDescription, PerformanceMode, Tag,
    ThroughputMode,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::pool::ClientPool;
use crate::tags::{ensure_managed, is_managed, tag_delta};
use crate::util;
use crate::util::{read_all, updated};
use crate::util::{touches, touches_tags};
use reconciler_render::naming::{TAG_BASE, TAG_SERVER};

/// How often a create or delete polls the object's state.
const POLL_INTERVAL: Duration = Duration::from_secs(3);
/// How long a file system may take to become available or to go away.
const FILE_SYSTEM_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long a mount target may take to become available or to go away (AWS documents about a
/// minute and a half for either).
const MOUNT_TARGET_WAIT: Duration = Duration::from_secs(8 * 60);
/// How long a restore from a recovery point may take before the create gives up (the engine
/// retries; the restore job's idempotency token makes the retry wait for the same job).
const RESTORE_WAIT: Duration = Duration::from_secs(60 * 60);

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(FileSystemClient { pool: pool.clone() }),
        Arc::new(MountTargetClient { pool: pool.clone() }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// efs.file-system
// ---------------------------------------------------------------------------------------------

/// `efs.file-system`: `encrypted` and `performanceMode` (immutable: a replacement would lose
/// the data, which the engine refuses for retained file systems), `throughputMode`,
/// `fileSystemPolicy` (a JSON document, or null for none). Outputs `id`, `arn`.
pub struct FileSystemClient {
    pool: Arc<ClientPool>,
}

/// The file system's state: `None` once it is gone.
async fn file_system_state(
    efs: &aws_sdk_efs::Client,
    id: &str,
) -> Result<Option<String>, ProviderError> {
    match efs.describe_file_systems().file_system_id(id).send().await {
        Ok(out) => Ok(out
            .file_systems()
            .first()
            .map(|fs| fs.life_cycle_state().as_str().to_string())
            .filter(|s| s != "deleted")),
        Err(e) => {
            let err = classify(&format!("DescribeFileSystems {id}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// The file system policy as JSON, `Null` when there is none.
async fn read_policy(
    efs: aws_sdk_efs::Client,
    id: String,
    want: Option<Value>,
) -> Result<Value, ProviderError> {
    match efs
        .describe_file_system_policy()
        .file_system_id(&id)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .policy()
            .map(|p| align_policy(util::parse_policy(p), want.as_ref()))
            .unwrap_or(Value::Null)),
        Err(e) => {
            let err = classify(&format!("DescribeFileSystemPolicy {id}"), e);
            if err.code.as_deref() == Some("PolicyNotFound") {
                Ok(Value::Null)
            } else {
                Err(err)
            }
        }
    }
}

fn file_system_observed(
    desired: &DesiredResource,
    fs: &FileSystemDescription,
    policy: Option<Value>,
) -> Observed {
    let mut properties = json!({
        "encrypted": fs.encrypted().unwrap_or(false),
        "performanceMode": fs.performance_mode().as_str(),
        "throughputMode": fs.throughput_mode().map(|m| m.as_str()),
    });
    if let Some(policy) = policy {
        properties["fileSystemPolicy"] = policy;
    }
    if desired.properties.get("adopt").is_some() {
        // Which file system the volume is: a different `adopt` is a different volume.
        properties["adopt"] = json!(fs.file_system_id());
    }
    util::observed(
        desired,
        properties,
        [
            ("id", json!(fs.file_system_id())),
            ("arn", json!(fs.file_system_arn())),
        ],
        tag_map(fs.tags()),
    )
}

fn file_system_id(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an id", desired.id)))
}

async fn put_policy(
    efs: &aws_sdk_efs::Client,
    desired: &DesiredResource,
    id: &str,
    policy: &Value,
) -> Result<(), ProviderError> {
    if policy.is_null() {
        efs.delete_file_system_policy()
            .file_system_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteFileSystemPolicy {id}"), e))?;
    } else {
        efs.put_file_system_policy()
            .file_system_id(id)
            .policy(document_text(desired, policy)?)
            .send()
            .await
            .map_err(|e| classify_efs(&format!("PutFileSystemPolicy {id}"), e))?;
    }
    Ok(())
}

#[async_trait]
impl ResourceClient for FileSystemClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::FILE_SYSTEM)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/encrypted")
            .immutable("/performanceMode")
            .immutable("/adopt")
            // Read only by the create that restores the volume.
            .runtime_owned("/restoreFrom")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let efs = self.pool.efs(region);
        let all = list_file_systems(&self.pool, region).await?;
        let named = by_name(&all, desired.iter().map(|d| d.name.as_str()));
        let found: Vec<(&DesiredResource, FileSystemDescription)> = desired
            .iter()
            .filter_map(|d| named.get(d.name.as_str()).map(|fs| (d, (*fs).clone())))
            .collect();
        // Policies only where they are managed; EFS has no batch read for them.
        let reads = found
            .iter()
            .map(|(d, fs)| {
                let want = d.properties.get("fileSystemPolicy").cloned();
                let efs = efs.clone();
                let id = fs.file_system_id().to_string();
                async move {
                    match want {
                        Some(w) => read_policy(efs, id, Some(w)).await.map(Some),
                        None => Ok(None),
                    }
                }
            })
            .collect();
        let policies = read_all(reads).await?;
        Ok(found
            .into_iter()
            .zip(policies)
            .map(|((d, fs), policy)| file_system_observed(d, &fs, policy))
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        if let Some(id) = util::opt_str(desired, "adopt") {
            return self.adopt(desired, id, true).await;
        }
        if desired.properties.get("restoreFrom").is_some() {
            let props = reconciler_kinds::read::<reconciler_kinds::efs::FileSystem>(desired)?;
            let Some(restore) = &props.restore_from else {
                return Err(util::missing(desired, "restoreFrom"));
            };
            let id = crate::backup::restore_file_system(
                &self.pool,
                desired,
                &props,
                restore,
                POLL_INTERVAL,
                RESTORE_WAIT,
            )
            .await?;
            // The new file system is ours whatever tags the backup carried over.
            return self.adopt(desired, &id, false).await;
        }
        let efs = self.pool.efs(&desired.region);
        let token = desired.name.as_str();
        let out = efs
            .create_file_system()
            .creation_token(token)
            .set_encrypted(desired.properties.get("encrypted").and_then(Value::as_bool))
            .set_performance_mode(
                util::opt_str(desired, "performanceMode").map(PerformanceMode::from),
            )
            .set_throughput_mode(util::opt_str(desired, "throughputMode").map(ThroughputMode::from))
            .set_tags(Some(efs_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateFileSystem {token}"), e))?;
        let id = out.file_system_id().to_string();
        wait_until(
            &format!("file system {id} ({token})"),
            POLL_INTERVAL,
            FILE_SYSTEM_WAIT,
            || file_system_state(&efs, &id),
            |s| s == Some("available"),
        )
        .await?;
        // A failure here (the instance role not yet visible to EFS) is retried; the retried
        // create meets `FileSystemAlreadyExists`, re-observes and puts the policy as an update.
        let policy = desired.properties.get("fileSystemPolicy").cloned();
        if let Some(policy) = policy.as_ref().filter(|p| !p.is_null()) {
            put_policy(&efs, desired, &id, policy).await?;
        }
        let mut properties = json!({
            "encrypted": out.encrypted().unwrap_or(false),
            "performanceMode": out.performance_mode().as_str(),
            "throughputMode": out.throughput_mode().map(|m| m.as_str()),
        });
        if let Some(policy) = policy {
            properties["fileSystemPolicy"] = policy;
        }
        Ok(util::observed(
            desired,
            properties,
            [("id", json!(id)), ("arn", json!(out.file_system_arn()))],
            tag_map(out.tags()),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let efs = self.pool.efs(&desired.region);
        let id = file_system_id(desired, observed)?;
        if touches(changes, "throughputMode") {
            if let Some(mode) = util::opt_str(desired, "throughputMode") {
                efs.update_file_system()
                    .file_system_id(&id)
                    .throughput_mode(ThroughputMode::from(mode))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UpdateFileSystem {id}"), e))?;
            }
        }
        if touches(changes, "fileSystemPolicy") {
            let policy = desired
                .properties
                .get("fileSystemPolicy")
                .cloned()
                .unwrap_or(Value::Null);
            put_policy(&efs, desired, &id, &policy).await?;
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                efs.tag_resource()
                    .resource_id(&id)
                    .set_tags(Some(efs_tags(&set)?))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagResource {id}"), e))?;
            }
            if !remove.is_empty() {
                efs.untag_resource()
                    .resource_id(&id)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagResource {id}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let efs = self.pool.efs(&desired.region);
        let id = file_system_id(desired, observed)?;
        // `FileSystemInUse` while mount targets remain (they may still be deleting) is eventual
        // consistency: the engine retries.
        efs.delete_file_system()
            .file_system_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteFileSystem {id}"), e))?;
        // Wait until gone, so a re-create with the same creation token does not collide.
        wait_until(
            &format!("file system {id} ({})", desired.name),
            POLL_INTERVAL,
            FILE_SYSTEM_WAIT,
            || file_system_state(&efs, &id),
            |s| s.is_none(),
        )
        .await
    }
}

impl FileSystemClient {
    /// Makes the existing file system `id` the desired one: checks that it is in the
    /// resource's region, usable (encryption and performance mode as desired, which cannot
    /// change later) and, with `check_owner`, not another volume's; then tags it as this volume
    /// and puts its policy. Nothing is created, so its data stays as it is.
    async fn adopt(
        &self,
        desired: &DesiredResource,
        id: &str,
        check_owner: bool,
    ) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let what = format!("{}: adopting file system {id}", desired.id);
        let found = match efs.describe_file_systems().file_system_id(id).send().await {
            Ok(out) => out.file_systems().first().cloned(),
            Err(e) => {
                let err = classify(&format!("DescribeFileSystems {id}"), e);
                if err.class != ErrorClass::NotFound {
                    return Err(err);
                }
                None
            }
        };
        let Some(fs) = found.filter(|fs| !is_gone(fs.life_cycle_state())) else {
            return Err(ProviderError::terminal(format!(
                "{what}: there is no file system {id} in {}; `adopt` names a file system of the \
                 Base's region",
                desired.region
            ))
            .with_code("FileSystemNotFound"));
        };
        let tags = tag_map(fs.tags());
        if check_owner {
            if let Some(owner) = other_owner(desired, &tags) {
                return Err(ProviderError::terminal(format!(
                    "{what}: it belongs to {owner}; a file system serves one volume, so remove \
                     `adopt` or free it in the other spec first"
                )));
            }
        }
        let want_encrypted = desired
            .properties
            .get("encrypted")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if want_encrypted && !fs.encrypted().unwrap_or(false) {
            return Err(ProviderError::terminal(format!(
                "{what}: it is not encrypted, and volumes must be (EFS cannot encrypt an \
                 existing file system: copy the data into an encrypted one, e.g. with AWS \
                 DataSync, and adopt that)"
            )));
        }
        if let Some(mode) = util::opt_str(desired, "performanceMode") {
            if fs.performance_mode().as_str() != mode {
                return Err(ProviderError::terminal(format!(
                    "{what}: its performance mode is `{}`, volumes use `{mode}` (fixed at \
                     creation)",
                    fs.performance_mode().as_str()
                )));
            }
        }
        wait_until(
            &format!("file system {id} ({})", desired.name),
            POLL_INTERVAL,
            FILE_SYSTEM_WAIT,
            || file_system_state(&efs, id),
            |s| s == Some("available"),
        )
        .await?;
        // Our tags, with `Name`: how later runs find it (its creation token is not ours).
        let (set, _) = tag_delta(&desired.tags, &tags);
        if !set.is_empty() {
            efs.tag_resource()
                .resource_id(id)
                .set_tags(Some(efs_tags(&set)?))
                .send()
                .await
                .map_err(|e| classify(&format!("TagResource {id}"), e))?;
        }
        let policy = desired.properties.get("fileSystemPolicy").cloned();
        if let Some(policy) = policy.as_ref().filter(|p| !p.is_null()) {
            put_policy(&efs, desired, id, policy).await?;
        }
        let mut merged = tags;
        merged.extend(desired.tags.clone());
        let mut observed = file_system_observed(desired, &fs, policy);
        observed.tags = merged;
        Ok(observed)
    }
}

/// Who else owns a file system, by its ownership tags: another server, Base or volume. `None`
/// when it carries no ownership tag or is already this volume's.
fn other_owner(desired: &DesiredResource, tags: &IndexMap<String, String>) -> Option<String> {
    if !is_managed(tags) {
        return None;
    }
    let get = |map: &IndexMap<String, String>, key: &str| map.get(key).cloned();
    let same = [TAG_BASE, TAG_SERVER]
        .iter()
        .all(|k| get(tags, k) == get(&desired.tags, k))
        && tags.get("Name").map(String::as_str) == Some(desired.name.as_str());
    if same {
        return None;
    }
    Some(match (get(tags, TAG_SERVER), get(tags, TAG_BASE)) {
        (Some(server), Some(base)) => format!(
            "server `{server}` of Base `{base}` (volume `{}`)",
            tags.get("Name").map(String::as_str).unwrap_or("?")
        ),
        (None, Some(base)) => format!("Base `{base}`"),
        _ => "another reconciler-managed object".to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// efs.mount-target
// ---------------------------------------------------------------------------------------------

/// `efs.mount-target`: `fileSystemId` and `subnetId` (immutable), `securityGroups` (a set).
/// Outputs `id` and `availabilityZone`.
///
/// Mount targets have no name or tags. Render names them `<creation token>-<zone index>`, so
/// `observe` finds the file system by the token and the mount target by the zone: the one in
/// the region's `<zone index>`-th zone in name order, the zone the desired subnet lies in.
pub struct MountTargetClient {
    pool: Arc<ClientPool>,
}

/// `rc-mc-data-1` -> (`rc-mc-data`, 1).
fn split_name(name: &str) -> Option<(&str, usize)> {
    let (token, index) = name.rsplit_once('-')?;
    Some((token, index.parse().ok()?))
}

/// A mount target's state: `None` once it is gone.
async fn mount_target_state(
    efs: &aws_sdk_efs::Client,
    id: &str,
) -> Result<Option<String>, ProviderError> {
    match efs
        .describe_mount_targets()
        .mount_target_id(id)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .mount_targets()
            .first()
            .map(|mt| mt.life_cycle_state().as_str().to_string())
            .filter(|s| s != "deleted")),
        Err(e) => {
            let err = classify(&format!("DescribeMountTargets {id}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// The live mount targets of one file system.
async fn list_mount_targets(
    efs: aws_sdk_efs::Client,
    fs_id: String,
) -> Result<Vec<MountTargetDescription>, ProviderError> {
    let all = efs
        .describe_mount_targets()
        .file_system_id(&fs_id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("DescribeMountTargets {fs_id}"), e))?;
    Ok(all
        .into_iter()
        .filter(|mt| !is_gone(mt.life_cycle_state()))
        .collect())
}

/// Network interfaces per `DescribeNetworkInterfaces` filter (the filter's value limit).
const INTERFACES_PER_CALL: usize = 200;

/// The security groups of mount targets, by mount target id, read from their network
/// interfaces (which carry the mount target's groups) in a few EC2 calls instead of one EFS
/// call per mount target. A mount target whose interface is not in the answer (or every one,
/// without `ec2:DescribeNetworkInterfaces`) is left out, for [`read_security_groups`] to read.
async fn groups_by_interface(
    ec2: &aws_sdk_ec2::Client,
    targets: &[&MountTargetDescription],
) -> Result<HashMap<String, Vec<String>>, ProviderError> {
    let by_interface: HashMap<&str, &str> = targets
        .iter()
        .filter_map(|mt| Some((mt.network_interface_id()?, mt.mount_target_id())))
        .collect();
    let ids: Vec<String> = by_interface.keys().map(|id| id.to_string()).collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(INTERFACES_PER_CALL) {
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("network-interface-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let interfaces: Result<Vec<aws_sdk_ec2::types::NetworkInterface>, _> = ec2
            .describe_network_interfaces()
            .filters(filter)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        let interfaces = match interfaces {
            Ok(interfaces) => interfaces,
            Err(e) => {
                let e = classify("DescribeNetworkInterfaces", e);
                // Not allowed here: EFS answers per mount target instead.
                if e.class == ErrorClass::Terminal {
                    tracing::debug!(error = %e, "reading mount targets' groups per mount target");
                    return Ok(out);
                }
                return Err(e);
            }
        };
        for eni in interfaces {
            let Some(mt) = eni
                .network_interface_id()
                .and_then(|id| by_interface.get(id))
            else {
                continue;
            };
            let groups = eni
                .groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect();
            out.insert(mt.to_string(), groups);
        }
    }
    Ok(out)
}

async fn read_security_groups(
    efs: aws_sdk_efs::Client,
    id: String,
) -> Result<Vec<String>, ProviderError> {
    let out = efs
        .describe_mount_target_security_groups()
        .mount_target_id(&id)
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeMountTargetSecurityGroups {id}"), e))?;
    Ok(out.security_groups().to_vec())
}

fn mount_target_id(
    desired: &DesiredResource,
    observed: &Observed,
) -> Result<String, ProviderError> {
    observed
        .output("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an id", desired.id)))
}

#[async_trait]
impl ResourceClient for MountTargetClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::MOUNT_TARGET)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/fileSystemId")
            .immutable("/subnetId")
            .unordered("/securityGroups")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let wanted: Vec<(&DesiredResource, &str, usize)> = desired
            .iter()
            .filter_map(|d| split_name(&d.name).map(|(token, index)| (d, token, index)))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let efs = self.pool.efs(region);
        let tokens: HashSet<&str> = wanted.iter().map(|(_, t, _)| *t).collect();
        let all = list_file_systems(&self.pool, region).await?;
        let file_systems: HashMap<String, String> = by_name(&all, tokens)
            .into_iter()
            .map(|(name, fs)| (name.to_string(), fs.file_system_id().to_string()))
            .collect();
        if file_systems.is_empty() {
            return Ok(Vec::new());
        }
        let zones = zone_names(&self.pool.ec2(region)).await?;
        // DescribeMountTargets takes one file system id: one call per file system.
        let fs_list: Vec<(String, String)> = file_systems.into_iter().collect();
        let listed = read_all(
            fs_list
                .iter()
                .map(|(_, id)| list_mount_targets(efs.clone(), id.clone()))
                .collect(),
        )
        .await?;
        let by_token: HashMap<&str, &Vec<MountTargetDescription>> = fs_list
            .iter()
            .map(|(token, _)| token.as_str())
            .zip(listed.iter())
            .collect();
        let mut found = Vec::new();
        for (d, token, index) in wanted {
            let (Some(mts), Some(zone)) = (by_token.get(token), zones.get(index)) else {
                continue;
            };
            if let Some(mt) = mts
                .iter()
                .find(|mt| mt.availability_zone_name() == Some(zone.as_str()))
            {
                found.push((d, mt.clone()));
            }
        }
        let managed: Vec<&MountTargetDescription> = found
            .iter()
            .filter(|(d, _)| d.properties.get("securityGroups").is_some())
            .map(|(_, mt)| mt)
            .collect();
        let by_interface = if managed.is_empty() {
            HashMap::new()
        } else {
            groups_by_interface(&self.pool.ec2(region), &managed).await?
        };
        let groups = read_all(
            found
                .iter()
                .map(|(d, mt)| {
                    let efs = efs.clone();
                    let id = mt.mount_target_id().to_string();
                    let managed = d.properties.get("securityGroups").is_some();
                    let known = by_interface.get(&id).cloned();
                    async move {
                        match (managed, known) {
                            (false, _) => Ok(None),
                            (true, Some(groups)) => Ok(Some(groups)),
                            (true, None) => read_security_groups(efs, id).await.map(Some),
                        }
                    }
                })
                .collect(),
        )
        .await?;
        Ok(found
            .into_iter()
            .zip(groups)
            .map(|((d, mt), groups)| {
                let mut properties = json!({
                    "fileSystemId": mt.file_system_id(),
                    "subnetId": mt.subnet_id(),
                });
                if let Some(groups) = groups {
                    properties["securityGroups"] = json!(groups);
                }
                util::observed(
                    d,
                    properties,
                    [
                        ("id", json!(mt.mount_target_id())),
                        ("availabilityZone", json!(mt.availability_zone_name())),
                    ],
                    IndexMap::new(),
                )
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let fs_id = util::str_prop(desired, "fileSystemId")?;
        let subnet = util::str_prop(desired, "subnetId")?;
        let groups = util::str_list(desired, "securityGroups");
        let what = format!("CreateMountTarget {fs_id} {subnet}");
        let out = match efs
            .create_mount_target()
            .file_system_id(fs_id)
            .subnet_id(subnet)
            .set_security_groups(Some(groups.clone()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let mut err = classify(&what, e);
                if err.code.as_deref() == Some("MountTargetConflict") {
                    err.class = self.conflict_class(&desired.region, fs_id, subnet).await?;
                }
                return Err(err);
            }
        };
        let id = out.mount_target_id().to_string();
        wait_until(
            &format!("mount target {id} ({})", desired.name),
            POLL_INTERVAL,
            MOUNT_TARGET_WAIT,
            || mount_target_state(&efs, &id),
            |s| s == Some("available"),
        )
        .await?;
        Ok(util::observed(
            desired,
            json!({ "fileSystemId": fs_id, "subnetId": subnet, "securityGroups": groups }),
            [
                ("id", json!(id)),
                ("availabilityZone", json!(out.availability_zone_name())),
            ],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = mount_target_id(desired, observed)?;
        if touches(changes, "securityGroups") {
            efs.modify_mount_target_security_groups()
                .mount_target_id(&id)
                .set_security_groups(Some(util::str_list(desired, "securityGroups")))
                .send()
                .await
                .map_err(|e| classify(&format!("ModifyMountTargetSecurityGroups {id}"), e))?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = mount_target_id(desired, observed)?;
        efs.delete_mount_target()
            .mount_target_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteMountTarget {id}"), e))?;
        // Wait until gone: the file system's delete (and a new mount target in the same zone)
        // must not start before.
        wait_until(
            &format!("mount target {id} ({})", desired.name),
            POLL_INTERVAL,
            MOUNT_TARGET_WAIT,
            || mount_target_state(&efs, &id),
            |s| s.is_none(),
        )
        .await
    }
}

impl MountTargetClient {
    /// What a `MountTargetConflict` means: a live mount target of the file system already
    /// serves the subnet's zone (ours from an interrupted run: re-observe and adopt it), or the
    /// zone's old one is still being deleted (wait).
    async fn conflict_class(
        &self,
        region: &str,
        fs_id: &str,
        subnet: &str,
    ) -> Result<ErrorClass, ProviderError> {
        let subnets = self
            .pool
            .ec2(region)
            .describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeSubnets {subnet}"), e))?;
        let zone = subnets
            .subnets()
            .first()
            .and_then(|s| s.availability_zone())
            .map(str::to_string);
        let live = list_mount_targets(self.pool.efs(region), fs_id.to_string()).await?;
        let taken = live
            .iter()
            .any(|mt| mt.subnet_id() == subnet || mt.availability_zone_name() == zone.as_deref());
        Ok(if taken {
            ErrorClass::Conflict
        } else {
            ErrorClass::EventualConsistency
        })
    }
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

    #[test]
    fn names_split_into_token_and_zone_index() {
        assert_eq!(split_name("rc-mc-data-0"), Some(("rc-mc-data", 0)));
        assert_eq!(split_name("rc-mc-data-1-12"), Some(("rc-mc-data-1", 12)));
        assert_eq!(split_name("rc-mc-data"), None);
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
