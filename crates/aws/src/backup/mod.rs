//! AWS Backup vaults, plans and selections, one file each, and the restore of an EFS recovery
//! point (for `efs.file-system` with `restoreFrom`).
//!
//! Observation cost, per region: one paginated `ListBackupVaults` and one paginated
//! `ListBackupPlans` find vaults and plans by name. A vault's or plan's tags come from the
//! region's tag index (see [`crate::tagging`]; `ListTags` only where it disagrees); AWS Backup
//! has no batch form for the rest: each plan costs a `GetBackupPlan` (its rules). Selections
//! live under a plan and their names are not unique across plans, so the selection client
//! lists the plans once (shared with the plan client, see [`list_plans`]), then calls
//! `ListBackupSelections` for each plan the reconciler named (`rc-` prefix) and
//! `GetBackupSelection` for each desired selection found.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_backup::types::{BackupPlansListMember, BackupSelectionsListMember};
use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::util;

mod plan;
mod restore;
mod selection;
mod vault;

pub use plan::PlanClient;
pub(crate) use restore::restore_file_system;
pub use selection::SelectionClient;
pub use vault::VaultClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(VaultClient::new(pool.clone()))),
        Arc::new(Managed::new(PlanClient::new(pool.clone()))),
        Arc::new(Managed::new(SelectionClient::new(pool.clone()))),
    ]
}

/// All tags of a vault or plan (the API pages even a map).
async fn read_tags(
    backup: aws_sdk_backup::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let pages = backup
        .list_tags()
        .resource_arn(&arn)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListTags {arn}"), e))?;
    // Sorted, for stable output: the API returns hash maps.
    let tags: BTreeMap<String, String> = pages
        .iter()
        .filter_map(|p| p.tags())
        .flat_map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    Ok(tags.into_iter().collect())
}

/// Sets `set` and removes `remove` on the observed vault or plan, by its ARN.
async fn write_tags(
    pool: &ClientPool,
    desired: &DesiredResource,
    observed: &Observed,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    let backup = pool.backup(&desired.region);
    let arn = util::output(desired, observed, "arn")?;
    if !set.is_empty() {
        backup
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(set.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
    }
    if !remove.is_empty() {
        backup
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_key_list(Some(remove.to_vec()))
            .send()
            .await
            .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
    }
    Ok(())
}

/// The desired tags as the creates take them (none: left out).
fn hash_map(tags: &IndexMap<String, String>) -> Option<HashMap<String, String>> {
    (!tags.is_empty()).then(|| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Every live backup plan of the region, listed once per observation for the plan and
/// selection clients alike.
async fn list_plans(
    pool: &ClientPool,
    region: &str,
) -> Result<Arc<Vec<BackupPlansListMember>>, ProviderError> {
    let backup = pool.backup(region);
    pool.shared_read(&format!("backup:ListBackupPlans:{region}"), || async move {
        let all: Vec<BackupPlansListMember> = backup
            .list_backup_plans()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("ListBackupPlans", e))?;
        Ok(all
            .into_iter()
            .filter(|p| p.deletion_date().is_none())
            .collect::<Vec<_>>())
    })
    .await
}

/// The selections of the plan `plan_id`.
async fn list_selections(
    backup: &aws_sdk_backup::Client,
    plan_id: &str,
) -> Result<Vec<BackupSelectionsListMember>, ProviderError> {
    backup
        .list_backup_selections()
        .backup_plan_id(plan_id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListBackupSelections {plan_id}"), e))
}

/// Deletes the selection `selection_id` of the plan `plan_id`.
async fn delete_selection(
    backup: &aws_sdk_backup::Client,
    plan_id: &str,
    selection_id: &str,
) -> Result<(), ProviderError> {
    backup
        .delete_backup_selection()
        .backup_plan_id(plan_id)
        .selection_id(selection_id)
        .send()
        .await
        .map_err(|e| {
            classify(
                &format!("DeleteBackupSelection {plan_id} {selection_id}"),
                e,
            )
        })?;
    Ok(())
}
