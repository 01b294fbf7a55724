//! AWS Backup vaults, plans and selections.
//!
//! Observation cost, per region: one paginated `ListBackupVaults` and one paginated
//! `ListBackupPlans` find vaults and plans by name. A vault's tags come from the region's tag
//! index (see [`crate::tagging`]; `ListTags` only where it disagrees); AWS Backup has no batch
//! form for the rest: each plan costs a `GetBackupPlan` (its rules) and a `ListTags`. Selections live under a plan and their names are not unique across plans, so the
//! selection client lists the plans once, then calls `ListBackupSelections` for each plan the
//! reconciler named (`rc-` prefix) and `GetBackupSelection` for each desired selection found.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_backup::types::{
    BackupPlanInput, BackupPlansListMember, BackupRule, BackupRuleInput, BackupSelection,
    ConditionParameter, Conditions, Lifecycle,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use reconciler_render::naming::{bounded, PREFIX};
use serde_json::{json, Map, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::ensure_managed;
use crate::tags::tag_delta;
use crate::util;
use crate::util::{read_all, updated};
use crate::util::{touches, touches_tags};

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(VaultClient { pool: pool.clone() }),
        Arc::new(PlanClient { pool: pool.clone() }),
        Arc::new(SelectionClient { pool: pool.clone() }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.
// ---------------------------------------------------------------------------------------------

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

async fn write_tags(
    backup: &aws_sdk_backup::Client,
    arn: &str,
    desired: &IndexMap<String, String>,
    current: &IndexMap<String, String>,
) -> Result<(), ProviderError> {
    let (set, remove) = tag_delta(desired, current);
    if !set.is_empty() {
        backup
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(set.into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
    }
    if !remove.is_empty() {
        backup
            .untag_resource()
            .resource_arn(arn)
            .set_tag_key_list(Some(remove))
            .send()
            .await
            .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
    }
    Ok(())
}

fn output(
    desired: &DesiredResource,
    observed: &Observed,
    key: &str,
) -> Result<String, ProviderError> {
    observed
        .output(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::terminal(format!("{}: observed without output `{key}`", desired.id))
        })
}

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

// ---------------------------------------------------------------------------------------------
// backup.vault
// ---------------------------------------------------------------------------------------------

/// `backup.vault`: no properties beyond its name and tags. Outputs `arn`, `name`. Retained on
/// delete by default (recovery points are data); deleting one that still holds recovery points
/// fails with a message saying so.
pub struct VaultClient {
    pool: Arc<ClientPool>,
}

#[async_trait]
impl ResourceClient for VaultClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::BACKUP_VAULT)
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
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

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let backup = self.pool.backup(&desired.region);
        let name = desired.name.as_str();
        // The name is unique per region: a second create answers `AlreadyExistsException`,
        // which the engine turns into adoption.
        let out = backup
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

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        if touches_tags(changes) {
            let backup = self.pool.backup(&desired.region);
            let arn = output(desired, observed, "arn")?;
            write_tags(&backup, &arn, &desired.tags, &observed.tags).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let backup = self.pool.backup(&desired.region);
        let name = desired.name.as_str();
        backup
            .delete_backup_vault()
            .backup_vault_name(name)
            .send()
            .await
            .map_err(|e| {
                let mut err = classify(&format!("DeleteBackupVault {name}"), e);
                if err.code.as_deref() == Some("InvalidRequestException")
                    && err.message.to_ascii_lowercase().contains("recovery point")
                {
                    err.class = ErrorClass::Terminal;
                    err.message = format!(
                        "{}; the vault still holds recovery points (backups). Delete them first \
                         if they are really no longer needed, or keep the vault (vaults are \
                         retained on delete unless the spec opts out)",
                        err.message
                    );
                }
                err
            })?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// backup.plan
// ---------------------------------------------------------------------------------------------

/// `backup.plan`: `rules` [{`ruleName`, `targetBackupVaultName`, `scheduleExpression`,
/// `startWindowMinutes`, `completionWindowMinutes`, `lifecycle` {`deleteAfterDays`,
/// `moveToColdStorageAfterDays`}}] (a set; optional `scheduleExpressionTimezone`,
/// `enableContinuousBackup`, `recoveryPointTags`). Outputs `id`, `arn`.
///
/// Only the rule fields the desired rules name are compared, so defaults AWS fills in
/// (`scheduleExpressionTimezone` = `Etc/UTC`, rule ids) are no drift.
pub struct PlanClient {
    pool: Arc<ClientPool>,
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
fn rule_input(desired: &DesiredResource, rule: &Value) -> Result<BackupRuleInput, ProviderError> {
    let s = |k: &str| rule.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str| rule.get(k).and_then(Value::as_i64);
    let lifecycle = rule.get("lifecycle").filter(|l| l.is_object()).map(|l| {
        Lifecycle::builder()
            .set_delete_after_days(l.get("deleteAfterDays").and_then(Value::as_i64))
            .set_move_to_cold_storage_after_days(
                l.get("moveToColdStorageAfterDays").and_then(Value::as_i64),
            )
            .set_opt_in_to_archive_for_supported_resources(
                l.get("optInToArchiveForSupportedResources")
                    .and_then(Value::as_bool),
            )
            .build()
    });
    let recovery_point_tags = rule
        .get("recoveryPointTags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        });
    BackupRuleInput::builder()
        .set_rule_name(s("ruleName"))
        .set_target_backup_vault_name(s("targetBackupVaultName"))
        .set_schedule_expression(s("scheduleExpression"))
        .set_schedule_expression_timezone(s("scheduleExpressionTimezone"))
        .set_start_window_minutes(n("startWindowMinutes"))
        .set_completion_window_minutes(n("completionWindowMinutes"))
        .set_enable_continuous_backup(rule.get("enableContinuousBackup").and_then(Value::as_bool))
        .set_lifecycle(lifecycle)
        .set_recovery_point_tags(recovery_point_tags)
        .build()
        .map_err(|e| ProviderError::terminal(format!("{}: rule: {e}", desired.id)))
}

fn plan_input(desired: &DesiredResource) -> Result<BackupPlanInput, ProviderError> {
    let rules = desired
        .properties
        .get("rules")
        .and_then(Value::as_array)
        .ok_or_else(|| util::missing(desired, "rules"))?
        .iter()
        .map(|r| rule_input(desired, r))
        .collect::<Result<Vec<_>, _>>()?;
    BackupPlanInput::builder()
        .backup_plan_name(&desired.name)
        .set_rules(Some(rules))
        .build()
        .map_err(|e| ProviderError::terminal(format!("{}: plan: {e}", desired.id)))
}

/// Reads one plan's rules and tags. `None` when it went away since the listing.
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
impl ResourceClient for PlanClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::BACKUP_PLAN)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().unordered("/rules")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
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

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let backup = self.pool.backup(&desired.region);
        let name = desired.name.as_str();
        // Plan names are unique per region: a second create answers `AlreadyExistsException`.
        let out = backup
            .create_backup_plan()
            .backup_plan(plan_input(desired)?)
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
            json!({ "rules": desired.properties.get("rules").cloned().unwrap_or(Value::Null) }),
            [("id", json!(id)), ("arn", json!(arn))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let backup = self.pool.backup(&desired.region);
        if touches(changes, "rules") {
            let id = output(desired, observed, "id")?;
            backup
                .update_backup_plan()
                .backup_plan_id(&id)
                .backup_plan(plan_input(desired)?)
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateBackupPlan {id}"), e))?;
        }
        if touches_tags(changes) {
            let arn = output(desired, observed, "arn")?;
            write_tags(&backup, &arn, &desired.tags, &observed.tags).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let backup = self.pool.backup(&desired.region);
        let id = output(desired, observed, "id")?;
        // AWS refuses to delete a plan that still has selections. Those the graph holds are
        // deleted first by the engine; any left (the plan is ours) go here.
        let selections = backup
            .list_backup_selections()
            .backup_plan_id(&id)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListBackupSelections {id}"), e))?;
        for selection in selections.iter().filter_map(|s| s.selection_id()) {
            backup
                .delete_backup_selection()
                .backup_plan_id(&id)
                .selection_id(selection)
                .send()
                .await
                .map_err(|e| classify(&format!("DeleteBackupSelection {id} {selection}"), e))?;
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

// ---------------------------------------------------------------------------------------------
// backup.selection
// ---------------------------------------------------------------------------------------------

/// `backup.selection`: `backupPlanId`, `iamRoleArn`, `resources` (a set), `conditions`
/// {`stringEquals` | `stringNotEquals` | `stringLike` | `stringNotLike`: [{`conditionKey`,
/// `conditionValue`}]}. AWS cannot change a selection, so every field is immutable and a change
/// replaces it. Outputs `id`. Selections have no tags; they belong to their plan.
pub struct SelectionClient {
    pool: Arc<ClientPool>,
}

/// The condition operators, as (property key, reader).
type ConditionReader = fn(&Conditions) -> &[ConditionParameter];
const OPERATORS: [(&str, ConditionReader); 4] = [
    ("stringEquals", Conditions::string_equals),
    ("stringNotEquals", Conditions::string_not_equals),
    ("stringLike", Conditions::string_like),
    ("stringNotLike", Conditions::string_not_like),
];

fn conditions_json(conditions: Option<&Conditions>) -> Value {
    let mut out = Map::new();
    for (key, read) in OPERATORS {
        let list: Vec<Value> = conditions
            .map(read)
            .unwrap_or_default()
            .iter()
            .map(|c| json!({ "conditionKey": c.condition_key(), "conditionValue": c.condition_value() }))
            .collect();
        out.insert(key.into(), Value::Array(list));
    }
    Value::Object(out)
}

fn conditions_input(value: Option<&Value>) -> Option<Conditions> {
    let value = value?.as_object()?;
    let params = |key: &str| -> Option<Vec<ConditionParameter>> {
        let list = value.get(key)?.as_array()?;
        Some(
            list.iter()
                .map(|c| {
                    ConditionParameter::builder()
                        .set_condition_key(
                            c.get("conditionKey")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        )
                        .set_condition_value(
                            c.get("conditionValue")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        )
                        .build()
                })
                .collect(),
        )
    };
    Some(
        Conditions::builder()
            .set_string_equals(params("stringEquals"))
            .set_string_not_equals(params("stringNotEquals"))
            .set_string_like(params("stringLike"))
            .set_string_not_like(params("stringNotLike"))
            .build(),
    )
}

/// An idempotency token for one selection content: a retried create returns the selection the
/// lost answer was about instead of adding a second one with the same name, while a
/// replacement with different content is a different request.
fn creator_request_id(desired: &DesiredResource) -> String {
    let content = serde_json::to_string(&desired.properties).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for b in desired.name.bytes().chain(content.bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{}-{hash:08x}", bounded(&desired.name, 41))
}

/// Reads one selection. `None` when it went away since the listing.
async fn read_selection(
    backup: aws_sdk_backup::Client,
    desired: DesiredResource,
    plan_id: String,
    selection_id: String,
) -> Result<Option<Observed>, ProviderError> {
    let out = match backup
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&selection_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = classify(&format!("GetBackupSelection {plan_id} {selection_id}"), e);
            if err.class == ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let Some(selection) = out.backup_selection() else {
        return Ok(None);
    };
    Ok(Some(util::observed(
        &desired,
        json!({
            "backupPlanId": plan_id,
            "iamRoleArn": selection.iam_role_arn(),
            "resources": selection.resources(),
            "conditions": conditions_json(selection.conditions()),
        }),
        [("id", json!(selection_id))],
        IndexMap::new(),
    )))
}

#[async_trait]
impl ResourceClient for SelectionClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::BACKUP_SELECTION)
    }

    fn spec(&self) -> KindSpec {
        let mut spec = KindSpec::new()
            .immutable("/backupPlanId")
            .immutable("/iamRoleArn")
            .immutable("/resources")
            .immutable("/conditions")
            .unordered("/resources");
        for (key, _) in OPERATORS {
            spec = spec.unordered(format!("/conditions/{key}"));
        }
        spec
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let backup = self.pool.backup(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        // The plan id is a reference the engine resolves only later, so every plan the
        // reconciler named is searched (one listing per plan; AWS has no cross-plan listing).
        let mut plans: Vec<(String, String)> = list_plans(&self.pool, region)
            .await?
            .iter()
            .filter_map(|p| {
                Some((
                    p.backup_plan_name()?.to_string(),
                    p.backup_plan_id()?.to_string(),
                ))
            })
            .filter(|(name, _)| name.starts_with(&format!("{PREFIX}-")))
            .collect();
        plans.sort();
        let listed = read_all(
            plans
                .iter()
                .map(|(_, id)| {
                    let backup = backup.clone();
                    let id = id.clone();
                    async move {
                        backup
                            .list_backup_selections()
                            .backup_plan_id(&id)
                            .into_paginator()
                            .items()
                            .send()
                            .try_collect()
                            .await
                            .map_err(|e| classify(&format!("ListBackupSelections {id}"), e))
                    }
                })
                .collect(),
        )
        .await?;
        let mut seen = std::collections::HashSet::new();
        let mut reads = Vec::new();
        for ((plan_name, plan_id), selections) in plans.iter().zip(listed) {
            for s in selections {
                let (Some(name), Some(selection_id)) = (s.selection_name(), s.selection_id())
                else {
                    continue;
                };
                let Some(d) = by_name.get(name) else {
                    continue;
                };
                if !seen.insert(name.to_string()) {
                    tracing::warn!(
                        selection = name,
                        plan = plan_name.as_str(),
                        "a backup selection with this name exists under several plans; using the first"
                    );
                    continue;
                }
                reads.push(read_selection(
                    backup.clone(),
                    (*d).clone(),
                    plan_id.clone(),
                    selection_id.to_string(),
                ));
            }
        }
        Ok(read_all(reads).await?.into_iter().flatten().collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let backup = self.pool.backup(&desired.region);
        let name = desired.name.as_str();
        let plan_id = util::str_prop(desired, "backupPlanId")?;
        let selection = BackupSelection::builder()
            .selection_name(name)
            .iam_role_arn(util::str_prop(desired, "iamRoleArn")?)
            .set_resources(Some(util::str_list(desired, "resources")))
            .set_conditions(conditions_input(desired.properties.get("conditions")))
            .build()
            .map_err(|e| ProviderError::terminal(format!("{}: selection: {e}", desired.id)))?;
        // A role created moments ago may not be assumable by AWS Backup yet; that answer is
        // classified as eventual consistency and retried.
        let out = backup
            .create_backup_selection()
            .backup_plan_id(plan_id)
            .backup_selection(selection)
            .creator_request_id(creator_request_id(desired))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateBackupSelection {plan_id} {name}"), e))?;
        let id = out.selection_id().ok_or_else(|| {
            ProviderError::transient(format!("CreateBackupSelection {name}: no id in the answer"))
        })?;
        let mut properties = desired.properties.clone();
        if let Some(c) = properties.get_mut("conditions") {
            // The shape `observe` reports: every operator, empty when unused.
            *c = merge_conditions(c);
        }
        Ok(util::observed(
            desired,
            properties,
            [("id", json!(id))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        Err(ProviderError::terminal(format!(
            "{}: backup selections cannot be changed in place ({}); plan again to replace it",
            desired.id,
            paths.join(", ")
        )))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let backup = self.pool.backup(&desired.region);
        let id = output(desired, observed, "id")?;
        let plan_id = observed
            .properties
            .get("backupPlanId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::terminal(format!("{}: observed without a plan id", desired.id))
            })?;
        backup
            .delete_backup_selection()
            .backup_plan_id(plan_id)
            .selection_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteBackupSelection {plan_id} {id}"), e))?;
        Ok(())
    }
}

/// Desired conditions with every operator present.
fn merge_conditions(value: &Value) -> Value {
    let mut out = value.as_object().cloned().unwrap_or_default();
    for (key, _) in OPERATORS {
        out.entry(key.to_string()).or_insert_with(|| json!([]));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Restores (for `efs.file-system` with `restoreFrom`)
// ---------------------------------------------------------------------------------------------

/// Restores an EFS recovery point into a new file system and returns its id, once the restore
/// job has completed. `restore` is the file system's `restoreFrom` property:
/// `recoveryPointArn`, `backupVaultName` (where the recovery point lives) and `iamRoleArn`
/// (the role AWS Backup restores with).
///
/// The restore metadata is the recovery point's own (`GetRecoveryPointRestoreMetadata`, which
/// names the source file system) with `newFileSystem=true`, encryption and performance mode as
/// the volume wants and the volume's name as `CreationToken`. The job's idempotency token is a
/// function of the volume and the recovery point, so a create retried after an interruption
/// (or after the wait ran out) follows the same job instead of starting a second restore.
pub(crate) async fn restore_file_system(
    pool: &ClientPool,
    desired: &DesiredResource,
    restore: &Value,
    interval: std::time::Duration,
    limit: std::time::Duration,
) -> Result<String, ProviderError> {
    let field = |key: &str| {
        restore.get(key).and_then(Value::as_str).ok_or_else(|| {
            ProviderError::terminal(format!("{}: restoreFrom.{key} is missing", desired.id))
        })
    };
    let arn = field("recoveryPointArn")?;
    let vault = field("backupVaultName")?;
    let role = field("iamRoleArn")?;
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
    let encrypted = desired
        .properties
        .get("encrypted")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    metadata.insert("Encrypted".into(), encrypted.to_string());
    if let Some(mode) = util::opt_str(desired, "performanceMode") {
        metadata.insert("PerformanceMode".into(), mode.to_string());
    }
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
    let job = started
        .restore_job_id()
        .ok_or_else(|| {
            ProviderError::terminal(format!("{what}: StartRestoreJob returned no job id"))
        })?
        .to_string();
    let started_at = tokio::time::Instant::now();
    loop {
        let out = backup
            .describe_restore_job()
            .restore_job_id(&job)
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
                return created
                    .rsplit('/')
                    .next()
                    .filter(|id| id.starts_with("fs-"))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::terminal(format!(
                            "{what}: restore job {job} completed without a file system (created `{created}`)"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_follow_content_and_fit_the_limit() {
        let a = DesiredResource::new(kinds::BACKUP_SELECTION, "a", "eu-west-1", "x".repeat(80))
            .with_properties(json!({"resources": ["r1"]}));
        let b = a.clone().with_properties(json!({"resources": ["r2"]}));
        assert!(creator_request_id(&a).len() <= 50);
        assert_ne!(creator_request_id(&a), creator_request_id(&b));
        assert_eq!(creator_request_id(&a), creator_request_id(&a.clone()));
    }

    #[test]
    fn conditions_round_trip() {
        let want = json!({"stringEquals": [{"conditionKey": "k", "conditionValue": "v"}]});
        let input = conditions_input(Some(&want));
        let back = conditions_json(input.as_ref());
        assert_eq!(back["stringEquals"], want["stringEquals"]);
        assert_eq!(back["stringLike"], json!([]));
        assert_eq!(merge_conditions(&want), back);
    }
}
