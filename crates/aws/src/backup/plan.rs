//! `backup.plan` ([`reconciler_kinds::backup::Plan`]), by name: the region's shared
//! `ListBackupPlans` (see [`super::list_plans`]), one `GetBackupPlan` per plan found for its
//! rules, tags from the region's tag index. Outputs `id`, `arn`.
//!
//! Only the rule fields the desired rules name are compared, so defaults AWS fills in
//! (`scheduleExpressionTimezone` = `Etc/UTC`, rule ids) are no drift.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupPlanInput, BackupRule, BackupRuleInput, Lifecycle};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::backup::{Plan, Rule};
use serde_json::{json, Map, Value};

use super::{delete_selection, hash_map, list_plans, list_selections, read_tags};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, read_all, updated};

/// The client of backup plans.
pub struct PlanClient {
    pool: Arc<ClientPool>,
}

impl PlanClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        PlanClient { pool }
    }
}

/// A rule as the desired properties shape it.
fn rule_json(rule: &BackupRule) -> Value {
    let mut out = Map::new();
    out.insert("ruleName".into(), json!(rule.rule_name()));
    out.insert(
        "targetBackupVaultName".into(),
        json!(rule.target_backup_vault_name()),
    );
    out.insert(
        "scheduleExpression".into(),
        json!(rule.schedule_expression()),
    );
    out.insert(
        "scheduleExpressionTimezone".into(),
        json!(rule.schedule_expression_timezone()),
    );
    out.insert(
        "startWindowMinutes".into(),
        json!(rule.start_window_minutes()),
    );
    out.insert(
        "completionWindowMinutes".into(),
        json!(rule.completion_window_minutes()),
    );
    out.insert(
        "enableContinuousBackup".into(),
        json!(rule.enable_continuous_backup()),
    );
    if let Some(tags) = rule.recovery_point_tags() {
        let sorted: BTreeMap<&String, &String> = tags.iter().collect();
        out.insert("recoveryPointTags".into(), json!(sorted));
    }
    out.insert(
        "lifecycle".into(),
        rule.lifecycle().map_or(Value::Null, |l| {
            json!({
                "deleteAfterDays": l.delete_after_days(),
                "moveToColdStorageAfterDays": l.move_to_cold_storage_after_days(),
                "optInToArchiveForSupportedResources": l.opt_in_to_archive_for_supported_resources(),
            })
        }),
    );
    Value::Object(out)
}

/// The API's rule input from a desired rule.
fn rule_input(desired: &DesiredResource, rule: &Rule) -> Result<BackupRuleInput, ProviderError> {
    let lifecycle = rule.lifecycle.as_ref().map(|l| {
        Lifecycle::builder()
            .set_delete_after_days(l.delete_after_days)
            .set_move_to_cold_storage_after_days(l.move_to_cold_storage_after_days)
            .set_opt_in_to_archive_for_supported_resources(
                l.opt_in_to_archive_for_supported_resources,
            )
            .build()
    });
    let recovery_point_tags: Option<HashMap<String, String>> = rule
        .recovery_point_tags
        .as_ref()
        .map(|tags| tags.clone().into_iter().collect());
    BackupRuleInput::builder()
        .rule_name(&rule.rule_name)
        .target_backup_vault_name(rule.target_backup_vault_name.get("targetBackupVaultName")?)
        .schedule_expression(&rule.schedule_expression)
        .set_schedule_expression_timezone(rule.schedule_expression_timezone.clone())
        .set_start_window_minutes(rule.start_window_minutes)
        .set_completion_window_minutes(rule.completion_window_minutes)
        .set_enable_continuous_backup(rule.enable_continuous_backup)
        .set_lifecycle(lifecycle)
        .set_recovery_point_tags(recovery_point_tags)
        .build()
        .map_err(|e| ProviderError::terminal(format!("{}: rule: {e}", desired.id)))
}

fn plan_input(desired: &DesiredResource, props: &Plan) -> Result<BackupPlanInput, ProviderError> {
    let rules = props
        .rules
        .iter()
        .map(|r| rule_input(desired, r))
        .collect::<Result<Vec<_>, _>>()?;
    BackupPlanInput::builder()
        .backup_plan_name(&desired.name)
        .set_rules(Some(rules))
        .build()
        .map_err(|e| ProviderError::terminal(format!("{}: plan: {e}", desired.id)))
}

/// Reads one plan's rules. `None` when it went away since the listing.
async fn read_plan(
    backup: aws_sdk_backup::Client,
    desired: DesiredResource,
    id: String,
    arn: String,
) -> Result<Option<Observed>, ProviderError> {
    let plan = match backup.get_backup_plan().backup_plan_id(&id).send().await {
        Ok(out) if out.deletion_date().is_none() => out.backup_plan().cloned(),
        Ok(_) => None,
        Err(e) => {
            let err = classify(&format!("GetBackupPlan {id}"), e);
            if err.class == ErrorClass::NotFound {
                None
            } else {
                return Err(err);
            }
        }
    };
    let Some(plan) = plan else {
        return Ok(None);
    };
    let rules: Vec<Value> = plan.rules().iter().map(rule_json).collect();
    // Tags are the caller's to fill (from the tag index, see `tagging::fill_tags`).
    Ok(Some(util::observed(
        &desired,
        json!({ "rules": rules }),
        [("id", json!(id)), ("arn", json!(arn))],
        IndexMap::new(),
    )))
}

#[async_trait]
impl KindClient<Plan> for PlanClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let backup = self.pool.backup(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut reads = Vec::new();
        for plan in list_plans(&self.pool, region).await?.iter() {
            let (Some(name), Some(id), Some(arn)) = (
                plan.backup_plan_name(),
                plan.backup_plan_id(),
                plan.backup_plan_arn(),
            ) else {
                continue;
            };
            if let Some(d) = by_name.get(name) {
                reads.push(read_plan(
                    backup.clone(),
                    (*d).clone(),
                    id.to_string(),
                    arn.to_string(),
                ));
            }
        }
        let mut observed: Vec<Observed> = read_all(reads).await?.into_iter().flatten().collect();
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(backup.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Plan,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        // Plan names are unique per region: a second create answers `AlreadyExistsException`.
        let out = self
            .pool
            .backup(&desired.region)
            .create_backup_plan()
            .backup_plan(plan_input(desired, props)?)
            .set_backup_plan_tags(hash_map(&desired.tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateBackupPlan {name}"), e))?;
        let (Some(id), Some(arn)) = (out.backup_plan_id(), out.backup_plan_arn()) else {
            return Err(ProviderError::transient(format!(
                "CreateBackupPlan {name}: no id or ARN in the answer"
            )));
        };
        Ok(util::observed(
            desired,
            reconciler_kinds::to_value(props),
            [("id", json!(id)), ("arn", json!(arn))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Plan,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The rules are the only property.
        let id = util::output(desired, observed, "id")?;
        self.pool
            .backup(&desired.region)
            .update_backup_plan()
            .backup_plan_id(&id)
            .backup_plan(plan_input(desired, props)?)
            .send()
            .await
            .map_err(|e| classify(&format!("UpdateBackupPlan {id}"), e))?;
        Ok(updated(observed, desired))
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
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let backup = self.pool.backup(&desired.region);
        let id = util::output(desired, observed, "id")?;
        // AWS refuses to delete a plan that still has selections. Those the graph holds are
        // deleted first by the engine; any left (the plan is ours) go here.
        let selections = list_selections(&backup, &id).await?;
        for selection in selections.iter().filter_map(|s| s.selection_id()) {
            delete_selection(&backup, &id, selection).await?;
        }
        backup
            .delete_backup_plan()
            .backup_plan_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteBackupPlan {id}"), e))?;
        Ok(())
    }
}
