//! Restores of an EFS recovery point into a new file system, for `efs.file-system` with
//! `restoreFrom`: `GetRecoveryPointRestoreMetadata`, `StartRestoreJob`, then
//! `DescribeRestoreJob` until the job ends.

use std::collections::HashMap;
use std::time::Duration;

use reconciler_engine::model::DesiredResource;
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::efs::{FileSystem, RestoreFrom};
use reconciler_render::naming::bounded;

use crate::error::classify;
use crate::pool::ClientPool;

/// Restores the recovery point `restore` into a new file system for the volume `desired` (with
/// `volume`, its properties) and returns its id, once the restore job has completed.
///
/// The restore metadata is the recovery point's own (`GetRecoveryPointRestoreMetadata`, which
/// names the source file system) with `newFileSystem=true`, encryption and performance mode as
/// the volume wants and the volume's name as `CreationToken`. The job's idempotency token is a
/// function of the volume and the recovery point, so a create retried after an interruption
/// (or after the wait ran out) follows the same job instead of starting a second restore.
pub(crate) async fn restore_file_system(
    pool: &ClientPool,
    desired: &DesiredResource,
    volume: &FileSystem,
    restore: &RestoreFrom,
    interval: Duration,
    limit: Duration,
) -> Result<String, ProviderError> {
    let arn = restore.recovery_point_arn.as_str();
    let vault = restore
        .backup_vault_name
        .get("restoreFrom.backupVaultName")?;
    let role = restore.iam_role_arn.get("restoreFrom.iamRoleArn")?;
    let backup = pool.backup(&desired.region);
    let what = format!("{}: restoring {arn}", desired.id);
    let source = backup
        .get_recovery_point_restore_metadata()
        .backup_vault_name(vault)
        .recovery_point_arn(arn)
        .send()
        .await
        .map_err(|e| {
            let mut err = classify(&format!("GetRecoveryPointRestoreMetadata {arn}"), e);
            if err.class == ErrorClass::NotFound {
                err.class = ErrorClass::Terminal;
                err.message = format!(
                    "{what}: no such recovery point in vault {vault} ({})",
                    err.message
                );
            }
            err
        })?;
    let mut metadata: HashMap<String, String> =
        source.restore_metadata().cloned().unwrap_or_default();
    metadata.insert("newFileSystem".into(), "true".into());
    metadata.insert("CreationToken".into(), desired.name.clone());
    metadata.insert("Encrypted".into(), volume.encrypted.to_string());
    metadata.insert("PerformanceMode".into(), volume.performance_mode.clone());
    let started = backup
        .start_restore_job()
        .recovery_point_arn(arn)
        .iam_role_arn(role)
        .resource_type("EFS")
        .idempotency_token(bounded(&format!("{}|{arn}", desired.name), 64))
        .set_metadata(Some(metadata))
        .send()
        .await
        .map_err(|e| classify(&format!("StartRestoreJob {arn}"), e))?;
    let job = started.restore_job_id().ok_or_else(|| {
        ProviderError::terminal(format!("{what}: StartRestoreJob returned no job id"))
    })?;
    wait_for_job(&backup, &what, job, interval, limit).await
}

/// Polls the restore job every `interval` until it completes (the new file system's id), fails
/// (a terminal error with its reason) or `limit` has passed (eventual consistency: the engine
/// retries, and the idempotency token leads back to the same job).
async fn wait_for_job(
    backup: &aws_sdk_backup::Client,
    what: &str,
    job: &str,
    interval: Duration,
    limit: Duration,
) -> Result<String, ProviderError> {
    let started_at = tokio::time::Instant::now();
    loop {
        let out = backup
            .describe_restore_job()
            .restore_job_id(job)
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeRestoreJob {job}"), e))?;
        let status = out
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        match status.as_str() {
            "COMPLETED" => {
                let created = out.created_resource_arn().unwrap_or_default();
                return file_system_id(created).ok_or_else(|| {
                    ProviderError::terminal(format!(
                        "{what}: restore job {job} completed without a file system (created \
                         `{created}`)"
                    ))
                });
            }
            "ABORTED" | "FAILED" => {
                return Err(ProviderError::terminal(format!(
                    "{what}: restore job {job} is {status}: {}",
                    out.status_message().unwrap_or("no reason given")
                )));
            }
            _ => {}
        }
        if started_at.elapsed() >= limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: restore job {job} still `{status}` after {}s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

/// The file system id at the end of a created resource's ARN.
fn file_system_id(created: &str) -> Option<String> {
    created
        .rsplit('/')
        .next()
        .filter(|id| id.starts_with("fs-"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restored_file_system_is_read_from_the_created_arn() {
        assert_eq!(
            file_system_id("arn:aws:elasticfilesystem:eu-west-1:1:file-system/fs-0abc"),
            Some("fs-0abc".to_string())
        );
        assert_eq!(file_system_id(""), None);
        assert_eq!(file_system_id("arn:aws:ec2:eu-west-1:1:volume/vol-1"), None);
    }
}
