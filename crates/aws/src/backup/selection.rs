//! `backup.selection` ([`reconciler_kinds::backup::Selection`]), by name in its plan: the
//! region's shared `ListBackupPlans`, one `ListBackupSelections` per plan the reconciler named
//! (the plan id is a reference observation cannot resolve, and AWS has no cross-plan listing)
//! and one `GetBackupSelection` per desired selection found. Untaggable (selections belong to
//! their plan). AWS cannot change a selection, so every field is immutable and a change
//! replaces it. Outputs `id`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupSelection, ConditionParameter, Conditions};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::backup::{Condition, Selection};
use reconciler_render::naming::{bounded, PREFIX};
use serde_json::{json, Map, Value};

use super::{delete_selection, list_plans, list_selections};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all};

/// The client of backup selections.
pub struct SelectionClient {
    pool: Arc<ClientPool>,
}

impl SelectionClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        SelectionClient { pool }
    }

    /// The plans the reconciler named (`rc-` prefix) as (name, id), in name order: where
    /// desired selections may live.
    async fn named_plans(&self, region: &str) -> Result<Vec<(String, String)>, ProviderError> {
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
        Ok(plans)
    }
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

fn conditions_input(conditions: &IndexMap<String, Vec<Condition>>) -> Conditions {
    let params = |key: &str| -> Option<Vec<ConditionParameter>> {
        let list = conditions.get(key)?;
        Some(
            list.iter()
                .map(|c| {
                    ConditionParameter::builder()
                        .condition_key(&c.condition_key)
                        .condition_value(&c.condition_value)
                        .build()
                })
                .collect(),
        )
    };
    Conditions::builder()
        .set_string_equals(params("stringEquals"))
        .set_string_not_equals(params("stringNotEquals"))
        .set_string_like(params("stringLike"))
        .set_string_not_like(params("stringNotLike"))
        .build()
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

/// The observation after a create: the desired properties, conditions in the shape `observe`
/// reports (every operator, empty when unused).
fn created_properties(props: &Selection) -> Value {
    let mut props = props.clone();
    for (key, _) in OPERATORS {
        props.conditions.entry(key.to_string()).or_default();
    }
    reconciler_kinds::to_value(&props)
}

#[async_trait]
impl KindClient<Selection> for SelectionClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let backup = self.pool.backup(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let plans = self.named_plans(region).await?;
        let listed = read_all(
            plans
                .iter()
                .map(|(_, id)| {
                    let (backup, id) = (backup.clone(), id.clone());
                    async move { list_selections(&backup, &id).await }
                })
                .collect(),
        )
        .await?;
        let mut seen = HashSet::new();
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Selection,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        let plan_id = props.backup_plan_id.get("backupPlanId")?;
        let selection = BackupSelection::builder()
            .selection_name(name)
            .iam_role_arn(props.iam_role_arn.get("iamRoleArn")?)
            .set_resources(Some(props.resources.clone()))
            .conditions(conditions_input(&props.conditions))
            .build()
            .map_err(|e| ProviderError::terminal(format!("{}: selection: {e}", desired.id)))?;
        // A role created moments ago may not be assumable by AWS Backup yet; that answer is
        // classified as eventual consistency and retried.
        let out = self
            .pool
            .backup(&desired.region)
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
        Ok(util::observed(
            desired,
            created_properties(props),
            [("id", json!(id))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _props: &Selection,
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
        let id = util::output(desired, observed, "id")?;
        let plan_id = observed
            .properties
            .get("backupPlanId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::terminal(format!("{}: observed without a plan id", desired.id))
            })?;
        delete_selection(&self.pool.backup(&desired.region), plan_id, &id).await
    }
}

#[cfg(test)]
mod tests {
    use reconciler_kinds::Properties;

    use super::*;

    #[test]
    fn request_ids_follow_content_and_fit_the_limit() {
        let a = DesiredResource::new(Selection::KIND, "a", "eu-west-1", "x".repeat(80))
            .with_properties(json!({"resources": ["r1"]}));
        let b = a.clone().with_properties(json!({"resources": ["r2"]}));
        assert!(creator_request_id(&a).len() <= 50);
        assert_ne!(creator_request_id(&a), creator_request_id(&b));
        assert_eq!(creator_request_id(&a), creator_request_id(&a.clone()));
    }

    #[test]
    fn conditions_round_trip() {
        let condition = Condition {
            condition_key: "k".into(),
            condition_value: "v".into(),
        };
        let props = Selection {
            backup_plan_id: "p".into(),
            iam_role_arn: "r".into(),
            resources: vec!["*".into()],
            conditions: [("stringEquals".to_string(), vec![condition])]
                .into_iter()
                .collect(),
        };
        let back = conditions_json(Some(&conditions_input(&props.conditions)));
        assert_eq!(
            back["stringEquals"],
            json!([{"conditionKey": "k", "conditionValue": "v"}])
        );
        assert_eq!(back["stringLike"], json!([]));
        assert_eq!(created_properties(&props)["conditions"], back);
    }
}
