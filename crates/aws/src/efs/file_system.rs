//! `efs.file-system` ([`reconciler_kinds::efs::FileSystem`]): `encrypted` and
//! `performanceMode` (immutable: a replacement would lose the data, which the engine refuses
//! for retained file systems), `throughputMode`, `fileSystemPolicy` (a JSON document, or null
//! for none), `adopt` and `restoreFrom` (read by the create only). Outputs `id`, `arn`.
//!
//! Found by creation token, or by `Name` tag once adopted or restored, in the region's shared
//! file system listing ([`super::list_file_systems`]); the policy costs one
//! `DescribeFileSystemPolicy` per file system whose policy is managed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_efs::types::{FileSystemDescription, PerformanceMode, ThroughputMode};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::efs::FileSystem;
use reconciler_render::naming::{TAG_BASE, TAG_SERVER};
use serde_json::{json, Value};

use super::{
    by_name, classify_efs, efs_tags, is_gone, list_file_systems, tag_map, wait_until, POLL_INTERVAL,
};
use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tags::{is_managed, tag_delta};
use crate::util::{self, read_all, touches, updated};

/// How long a file system may take to become available or to go away.
const FILE_SYSTEM_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long a restore from a recovery point may take before the create gives up (the engine
/// retries; the restore job's idempotency token makes the retry wait for the same job).
const RESTORE_WAIT: Duration = Duration::from_secs(60 * 60);

/// The client of file systems.
pub struct FileSystemClient {
    pool: Arc<ClientPool>,
}

impl FileSystemClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        FileSystemClient { pool }
    }
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

/// One file system as observed; `policy` only where it is managed.
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

/// Puts the policy on file system `id`, or deletes it for `null`.
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
impl KindClient<FileSystem> for FileSystemClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &FileSystem,
    ) -> Result<Observed, ProviderError> {
        if let Some(id) = &props.adopt {
            return self.adopt(desired, props, id, true).await;
        }
        if let Some(restore) = &props.restore_from {
            let id = crate::backup::restore_file_system(
                &self.pool,
                desired,
                props,
                restore,
                POLL_INTERVAL,
                RESTORE_WAIT,
            )
            .await?;
            // The new file system is ours whatever tags the backup carried over.
            return self.adopt(desired, props, &id, false).await;
        }
        let efs = self.pool.efs(&desired.region);
        let token = desired.name.as_str();
        let out = efs
            .create_file_system()
            .creation_token(token)
            .encrypted(props.encrypted)
            .performance_mode(PerformanceMode::from(props.performance_mode.as_str()))
            .throughput_mode(ThroughputMode::from(props.throughput_mode.as_str()))
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
        let policy = &props.file_system_policy;
        if !policy.is_null() {
            put_policy(&efs, desired, &id, policy).await?;
        }
        let properties = json!({
            "encrypted": out.encrypted().unwrap_or(false),
            "performanceMode": out.performance_mode().as_str(),
            "throughputMode": out.throughput_mode().map(|m| m.as_str()),
            "fileSystemPolicy": policy,
        });
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
        props: &FileSystem,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = util::output(desired, observed, "id")?;
        if touches(changes, "throughputMode") {
            efs.update_file_system()
                .file_system_id(&id)
                .throughput_mode(ThroughputMode::from(props.throughput_mode.as_str()))
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateFileSystem {id}"), e))?;
        }
        if touches(changes, "fileSystemPolicy") {
            put_policy(&efs, desired, &id, &props.file_system_policy).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let id = util::output(desired, observed, "id")?;
        tag_file_system(&self.pool.efs(&desired.region), &id, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = util::output(desired, observed, "id")?;
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

/// Sets `set` and removes `remove` on file system `id`; no call for an empty half.
async fn tag_file_system(
    efs: &aws_sdk_efs::Client,
    id: &str,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    if !set.is_empty() {
        efs.tag_resource()
            .resource_id(id)
            .set_tags(Some(efs_tags(set)?))
            .send()
            .await
            .map_err(|e| classify(&format!("TagResource {id}"), e))?;
    }
    if !remove.is_empty() {
        efs.untag_resource()
            .resource_id(id)
            .set_tag_keys(Some(remove.to_vec()))
            .send()
            .await
            .map_err(|e| classify(&format!("UntagResource {id}"), e))?;
    }
    Ok(())
}

impl FileSystemClient {
    /// Makes the existing file system `id` the desired one: checks that it is in the
    /// resource's region, usable (encryption and performance mode as desired, which cannot
    /// change later) and, with `check_owner`, not another volume's; then tags it as this volume
    /// and puts its policy. Nothing is created, so its data stays as it is.
    async fn adopt(
        &self,
        desired: &DesiredResource,
        props: &FileSystem,
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
        check_adoptable(&what, desired, props, &fs, &tags, check_owner)?;
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
        tag_file_system(&efs, id, &set, &[]).await?;
        let policy = &props.file_system_policy;
        if !policy.is_null() {
            put_policy(&efs, desired, id, policy).await?;
        }
        let mut merged = tags;
        merged.extend(desired.tags.clone());
        let mut observed = file_system_observed(desired, &fs, Some(policy.clone()));
        observed.tags = merged;
        Ok(observed)
    }
}

/// Refuses to adopt `fs` (tagged `tags`) as the volume `desired` when, with `check_owner`, it
/// is another volume's, or when it is not encrypted or has another performance mode than the
/// volume wants: neither can change after creation.
fn check_adoptable(
    what: &str,
    desired: &DesiredResource,
    props: &FileSystem,
    fs: &FileSystemDescription,
    tags: &IndexMap<String, String>,
    check_owner: bool,
) -> Result<(), ProviderError> {
    if check_owner {
        if let Some(owner) = other_owner(desired, tags) {
            return Err(ProviderError::terminal(format!(
                "{what}: it belongs to {owner}; a file system serves one volume, so remove \
                 `adopt` or free it in the other spec first"
            )));
        }
    }
    if props.encrypted && !fs.encrypted().unwrap_or(false) {
        return Err(ProviderError::terminal(format!(
            "{what}: it is not encrypted, and volumes must be (EFS cannot encrypt an existing \
             file system: copy the data into an encrypted one, e.g. with AWS DataSync, and \
             adopt that)"
        )));
    }
    let mode = props.performance_mode.as_str();
    if fs.performance_mode().as_str() != mode {
        return Err(ProviderError::terminal(format!(
            "{what}: its performance mode is `{}`, volumes use `{mode}` (fixed at creation)",
            fs.performance_mode().as_str()
        )));
    }
    Ok(())
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
