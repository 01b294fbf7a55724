//! `backup.vault` ([`reconciler_kinds::backup::Vault`]), by name: one paginated
//! `ListBackupVaults`, tags from the region's tag index.
//!
//! Retained on delete by default (recovery points are data); deleting one that still holds
//! recovery points fails with a message saying so.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::backup::Vault;
use serde_json::json;

use super::{hash_map, read_tags};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util;

/// The client of backup vaults.
pub struct VaultClient {
    pool: Arc<ClientPool>,
}

impl VaultClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        VaultClient { pool }
    }
}

/// A vault deleted while it holds recovery points: a terminal error that says so.
fn holds_recovery_points(mut err: ProviderError) -> ProviderError {
    if err.code.as_deref() == Some("InvalidRequestException")
        && err.message.to_ascii_lowercase().contains("recovery point")
    {
        err.class = ErrorClass::Terminal;
        err.message = format!(
            "{}; the vault still holds recovery points (backups). Delete them first if they \
             are really no longer needed, or keep the vault (vaults are retained on delete \
             unless the spec opts out)",
            err.message
        );
    }
    err
}

#[async_trait]
impl KindClient<Vault> for VaultClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let backup = self.pool.backup(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let vaults = backup
            .list_backup_vaults()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("ListBackupVaults", e))?;
        let found: Vec<(&DesiredResource, String)> = vaults
            .iter()
            .filter_map(|v| {
                let d = by_name.get(v.backup_vault_name()?)?;
                Some((*d, v.backup_vault_arn()?.to_string()))
            })
            .collect();
        let tags = tagging::tags_of(&self.pool, region, &found, |arn| {
            read_tags(backup.clone(), arn)
        })
        .await?;
        Ok(found
            .into_iter()
            .zip(tags)
            .map(|((d, arn), tags)| {
                util::observed(
                    d,
                    json!({}),
                    [("arn", json!(arn)), ("name", json!(d.name))],
                    tags,
                )
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        _props: &Vault,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        // The name is unique per region: a second create answers `AlreadyExistsException`,
        // which the engine turns into adoption.
        let out = self
            .pool
            .backup(&desired.region)
            .create_backup_vault()
            .backup_vault_name(name)
            .set_backup_vault_tags(hash_map(&desired.tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateBackupVault {name}"), e))?;
        let arn = out.backup_vault_arn().ok_or_else(|| {
            ProviderError::transient(format!("CreateBackupVault {name}: no ARN in the answer"))
        })?;
        Ok(util::observed(
            desired,
            json!({}),
            [("arn", json!(arn)), ("name", json!(name))],
            desired.tags.clone(),
        ))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        self.pool
            .backup(&desired.region)
            .delete_backup_vault()
            .backup_vault_name(name)
            .send()
            .await
            .map_err(|e| {
                holds_recovery_points(classify(&format!("DeleteBackupVault {name}"), e))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_with_recovery_points_says_why_it_stays() {
        let e = ProviderError::transient("DeleteBackupVault v: Backup vault cannot be deleted because it contains recovery points")
            .with_code("InvalidRequestException");
        let e = holds_recovery_points(e);
        assert_eq!(e.class, ErrorClass::Terminal);
        assert!(e.message.contains("still holds recovery points"), "{e}");
        let other = ProviderError::transient("DeleteBackupVault v: busy")
            .with_code("InvalidRequestException");
        assert_eq!(holds_recovery_points(other).class, ErrorClass::Transient);
    }
}
