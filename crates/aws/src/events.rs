//! EventBridge rules and their targets, on the default event bus.
//!
//! Observation cost, per region: one paginated `ListRules` with the longest prefix the desired
//! names share (it returns description, state and pattern), plus, per existing rule,
//! `ListTargetsByRule` (EventBridge has no batch form); tags come from the region's tag index
//! (see [`crate::tagging`]), with `ListTagsForResource` per rule only where it disagrees.
//!
//! A rule and its targets are one resource: targets are managed as a set keyed by their id
//! (`/targets` is unordered). `PutRule` is an upsert that replaces description, state and
//! pattern together, so an update resends all three; `PutTargets` and `RemoveTargets` change
//! only the targets that differ. AWS refuses to delete a rule that still has targets, so a
//! delete removes them first.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Map, Value};

use crate::documents::document_text;
use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, tag_delta};
use crate::util::{self, missing, touches, touches_tags};
use crate::util::{read_all, updated};

/// Targets per `PutTargets` call (the API's limit).
const TARGETS_PER_PUT: usize = 10;
/// Target ids per `RemoveTargets` call (the API's limit).
const IDS_PER_REMOVE: usize = 100;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(RuleClient { pool: pool.clone() })]
}

/// `events.rule`, by rule name: `description`, `state` (`ENABLED`/`DISABLED`), `eventPattern`
/// (a JSON object; AWS keeps it as text), `targets` [{`id`, `arn`, `input`}] (`input` is JSON
/// text). Outputs `arn`, `name`.
pub struct RuleClient {
    pool: Arc<ClientPool>,
}

/// A target as desired or found: what the kind manages of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleTarget {
    id: String,
    arn: String,
    input: Option<String>,
}

impl RuleTarget {
    fn value(&self) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("arn".into(), json!(self.arn));
        if let Some(input) = &self.input {
            out.insert("input".into(), json!(input));
        }
        Value::Object(out)
    }

    fn sdk(&self) -> Result<Target, ProviderError> {
        Target::builder()
            .id(&self.id)
            .arn(&self.arn)
            .set_input(self.input.clone())
            .build()
            .map_err(|e| ProviderError::terminal(format!("target `{}`: {e}", self.id)))
    }
}

/// The targets of a properties object (desired or observed).
fn targets_of(properties: &Value) -> Option<Vec<RuleTarget>> {
    properties
        .get("targets")?
        .as_array()?
        .iter()
        .map(|t| {
            Some(RuleTarget {
                id: t.get("id")?.as_str()?.to_string(),
                arn: t.get("arn")?.as_str()?.to_string(),
                input: t.get("input").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

fn desired_targets(desired: &DesiredResource) -> Result<Vec<RuleTarget>, ProviderError> {
    match desired.properties.get("targets") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => targets_of(&desired.properties).ok_or_else(|| missing(desired, "targets")),
    }
}

fn rule_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
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

/// The pattern as AWS keeps it (text), parsed back to JSON for the diff.
fn pattern_value(text: Option<&str>) -> Value {
    text.map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
        .unwrap_or(Value::Null)
}

fn rule_arn(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("arn")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an ARN", desired.id)))
}

/// Every target of a rule, sorted by id; `None` when the rule does not exist.
async fn list_targets(
    events: &aws_sdk_eventbridge::Client,
    rule: &str,
) -> Result<Option<Vec<RuleTarget>>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = match events
            .list_targets_by_rule()
            .rule(rule)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let err = classify(&format!("ListTargetsByRule {rule}"), e);
                if err.class == ErrorClass::NotFound {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        out.extend(page.targets().iter().map(|t| RuleTarget {
            id: t.id().to_string(),
            arn: t.arn().to_string(),
            input: t.input().map(str::to_string),
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Some(out))
}

async fn read_tags(
    events: aws_sdk_eventbridge::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = events
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| classify(&format!("ListTagsForResource {arn}"), e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// Reads a listed rule's targets (its tags come after, from the tag index); `None` when it went
/// away since the listing.
async fn read_rule(
    events: aws_sdk_eventbridge::Client,
    desired: DesiredResource,
    rule: aws_sdk_eventbridge::types::Rule,
) -> Result<Option<Observed>, ProviderError> {
    let Some(arn) = rule.arn().map(str::to_string) else {
        return Ok(None);
    };
    let Some(targets) = list_targets(&events, &desired.name).await? else {
        return Ok(None);
    };
    let properties = json!({
        "description": rule.description(),
        "state": rule.state().map(RuleState::as_str),
        "eventPattern": pattern_value(rule.event_pattern()),
        "targets": targets.iter().map(RuleTarget::value).collect::<Vec<_>>(),
    });
    Ok(Some(util::observed(
        &desired,
        properties,
        [("arn", json!(arn)), ("name", json!(desired.name))],
        IndexMap::new(),
    )))
}

/// Fails with every rejected entry when a batch target call reports failures.
fn check_failed<'a>(
    what: &str,
    count: i32,
    entries: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
) -> Result<(), ProviderError> {
    if count == 0 {
        return Ok(());
    }
    let details: Vec<String> = entries
        .map(|(id, code, message)| {
            format!(
                "`{}`: {} {}",
                id.unwrap_or("?"),
                code.unwrap_or_default(),
                message.unwrap_or_default()
            )
        })
        .collect();
    Err(ProviderError::terminal(format!(
        "{what}: {count} target(s) failed: {}",
        details.join("; ")
    )))
}

impl RuleClient {
    /// `PutRule` with description, state and pattern (all three: the call replaces them).
    /// Tags only on create: an update changes them with `TagResource`/`UntagResource`.
    async fn put_rule(
        &self,
        desired: &DesiredResource,
        create: bool,
    ) -> Result<String, ProviderError> {
        let events = self.pool.events(&desired.region);
        let name = desired.name.as_str();
        let pattern = desired
            .properties
            .get("eventPattern")
            .filter(|p| p.is_object())
            .ok_or_else(|| missing(desired, "eventPattern"))?;
        let mut call = events
            .put_rule()
            .name(name)
            .event_pattern(document_text(desired, pattern)?)
            .state(RuleState::from(
                util::opt_str(desired, "state").unwrap_or("ENABLED"),
            ))
            .set_description(util::opt_str(desired, "description").map(str::to_string));
        if create && !desired.tags.is_empty() {
            call = call.set_tags(Some(rule_tags(&desired.tags)?));
        }
        let out = call
            .send()
            .await
            .map_err(|e| classify(&format!("PutRule {name}"), e))?;
        out.rule_arn().map(str::to_string).ok_or_else(|| {
            ProviderError::transient(format!("PutRule {name}: no ARN in the answer"))
        })
    }

    async fn put_targets(
        &self,
        desired: &DesiredResource,
        targets: &[RuleTarget],
    ) -> Result<(), ProviderError> {
        let events = self.pool.events(&desired.region);
        let name = desired.name.as_str();
        for chunk in targets.chunks(TARGETS_PER_PUT) {
            let out = events
                .put_targets()
                .rule(name)
                .set_targets(Some(
                    chunk
                        .iter()
                        .map(RuleTarget::sdk)
                        .collect::<Result<_, _>>()?,
                ))
                .send()
                .await
                .map_err(|e| classify(&format!("PutTargets {name}"), e))?;
            check_failed(
                &format!("PutTargets {name}"),
                out.failed_entry_count(),
                out.failed_entries()
                    .iter()
                    .map(|f| (f.target_id(), f.error_code(), f.error_message())),
            )?;
        }
        Ok(())
    }

    async fn remove_targets(
        &self,
        desired: &DesiredResource,
        ids: &[String],
    ) -> Result<(), ProviderError> {
        let events = self.pool.events(&desired.region);
        let name = desired.name.as_str();
        for chunk in ids.chunks(IDS_PER_REMOVE) {
            let out = events
                .remove_targets()
                .rule(name)
                .set_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("RemoveTargets {name}"), e))?;
            check_failed(
                &format!("RemoveTargets {name}"),
                out.failed_entry_count(),
                out.failed_entries()
                    .iter()
                    .map(|f| (f.target_id(), f.error_code(), f.error_message())),
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl ResourceClient for RuleClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::EVENT_RULE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().unordered("/targets")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let events = self.pool.events(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let prefix = util::common_prefix(by_name.keys().copied());
        let mut reads = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = events
                .list_rules()
                .set_name_prefix((!prefix.is_empty()).then(|| prefix.clone()))
                .limit(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(&format!("ListRules {prefix}"), e))?;
            for rule in page.rules() {
                if let Some(d) = rule.name().and_then(|n| by_name.get(n)) {
                    reads.push(read_rule(events.clone(), (*d).clone(), rule.clone()));
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        // Targets: one call per rule, as EventBridge has no batch form.
        let mut observed: Vec<Observed> = read_all(reads).await?.into_iter().flatten().collect();
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(events.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        // `PutRule` is an upsert: the engine only creates what observation did not find.
        let arn = self.put_rule(desired, true).await?;
        let mut targets = desired_targets(desired)?;
        if !targets.is_empty() {
            self.put_targets(desired, &targets).await?;
        }
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        let mut properties = desired.properties.clone();
        if let Value::Object(map) = &mut properties {
            map.insert(
                "targets".into(),
                Value::Array(targets.iter().map(RuleTarget::value).collect()),
            );
        }
        Ok(util::observed(
            desired,
            properties,
            [("arn", json!(arn)), ("name", json!(desired.name))],
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
        if ["description", "state", "eventPattern"]
            .iter()
            .any(|k| touches(changes, k))
        {
            self.put_rule(desired, false).await?;
        }
        if touches(changes, "targets") {
            let want = desired_targets(desired)?;
            let have = targets_of(&observed.properties).unwrap_or_default();
            let put: Vec<RuleTarget> = want.iter().filter(|w| !have.contains(w)).cloned().collect();
            let remove: Vec<String> = have
                .iter()
                .filter(|h| !want.iter().any(|w| w.id == h.id))
                .map(|h| h.id.clone())
                .collect();
            if !remove.is_empty() {
                self.remove_targets(desired, &remove).await?;
            }
            if !put.is_empty() {
                self.put_targets(desired, &put).await?;
            }
        }
        if touches_tags(changes) {
            let events = self.pool.events(&desired.region);
            let arn = rule_arn(desired, observed)?;
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                events
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(rule_tags(&set)?))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
            }
            if !remove.is_empty() {
                events
                    .untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
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
        let events = self.pool.events(&desired.region);
        let name = desired.name.as_str();
        // Listed afresh rather than taken from the observation: a target added since would
        // make AWS refuse the delete.
        let Some(targets) = list_targets(&events, name).await? else {
            return Ok(());
        };
        if !targets.is_empty() {
            let ids: Vec<String> = targets.into_iter().map(|t| t.id).collect();
            self.remove_targets(desired, &ids).await?;
        }
        events
            .delete_rule()
            .name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteRule {name}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_input_only_when_there_is_one() {
        let props = json!({ "targets": [
            { "id": "a", "arn": "arn:a" },
            { "id": "b", "arn": "arn:b", "input": "\"hi\"" }
        ]});
        let targets = targets_of(&props).unwrap();
        assert_eq!(targets[0].input, None);
        let back: Vec<Value> = targets.iter().map(RuleTarget::value).collect();
        assert_eq!(Value::Array(back), props["targets"]);
    }

    #[test]
    fn failed_entries_are_listed() {
        let err = check_failed(
            "PutTargets r",
            1,
            [(Some("a"), Some("Bad"), Some("no such function"))].into_iter(),
        )
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Terminal);
        assert!(err.message.contains("`a`: Bad no such function"), "{err}");
        assert!(check_failed("x", 0, std::iter::empty()).is_ok());
    }

    #[test]
    fn patterns_parse_back_to_json() {
        assert_eq!(
            pattern_value(Some(r#"{"source":["aws.ecs"]}"#)),
            json!({ "source": ["aws.ecs"] })
        );
        assert_eq!(pattern_value(None), Value::Null);
    }
}
