//! `events.rule` ([`reconciler_kinds::events::Rule`]), by rule name on the default bus, with
//! its targets. Outputs `arn`, `name`.
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
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::events::Rule;
use serde_json::{json, Map, Value};

use crate::documents::document_text;
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, missing, read_all, touches, updated};

/// Targets per `PutTargets` call (the API's limit).
const TARGETS_PER_PUT: usize = 10;
/// Target ids per `RemoveTargets` call (the API's limit).
const IDS_PER_REMOVE: usize = 100;

/// The client of rules.
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

/// The targets of an observation's properties.
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

/// The desired targets, their ARNs resolved.
fn desired_targets(props: &Rule) -> Result<Vec<RuleTarget>, ProviderError> {
    props
        .targets
        .iter()
        .map(|t| {
            Ok(RuleTarget {
                id: t.id.clone(),
                arn: t.arn.get("targets/arn")?.clone(),
                input: t.input.clone(),
            })
        })
        .collect()
}

/// The pattern as AWS keeps it (text), parsed back to JSON for the diff.
fn pattern_value(text: Option<&str>) -> Value {
    text.map(|t| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())))
        .unwrap_or(Value::Null)
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

/// Every rule of the region whose name starts with `prefix` (`ListRules`, page by page: the
/// SDK has no paginator for it).
async fn list_rules(
    events: &aws_sdk_eventbridge::Client,
    prefix: &str,
) -> Result<Vec<aws_sdk_eventbridge::types::Rule>, ProviderError> {
    let mut rules = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = events
            .list_rules()
            .set_name_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .limit(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&format!("ListRules {prefix}"), e))?;
        rules.extend(page.rules().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(rules),
        }
    }
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
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        RuleClient { pool }
    }

    /// `PutRule` with description, state and pattern (all three: the call replaces them).
    /// Tags only on create: an update changes them with `TagResource`/`UntagResource`.
    async fn put_rule(
        &self,
        desired: &DesiredResource,
        props: &Rule,
        create: bool,
    ) -> Result<String, ProviderError> {
        let events = self.pool.events(&desired.region);
        let name = desired.name.as_str();
        if !props.event_pattern.is_object() {
            return Err(missing(desired, "eventPattern"));
        }
        let mut call = events
            .put_rule()
            .name(name)
            .event_pattern(document_text(desired, &props.event_pattern)?)
            .state(RuleState::from(props.state.as_str()))
            .description(&props.description);
        if create && !desired.tags.is_empty() {
            call = call.set_tags(Some(sdk_tags(&desired.tags)?));
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

    /// Removes the observed targets no longer desired and puts the desired ones that differ.
    async fn sync_targets(
        &self,
        desired: &DesiredResource,
        props: &Rule,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let want = desired_targets(props)?;
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
        Ok(())
    }
}

/// The tags of one EventBridge object (`ListTagsForResource`).
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

/// Tags as the EventBridge SDK takes them.
fn sdk_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
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

#[async_trait]
impl KindClient<Rule> for RuleClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let events = self.pool.events(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let prefix = util::common_prefix(by_name.keys().copied());
        // Targets: one call per rule, as EventBridge has no batch form.
        let reads = list_rules(&events, &prefix)
            .await?
            .into_iter()
            .filter_map(|rule| {
                let d = *rule.name().and_then(|n| by_name.get(n))?;
                Some(read_rule(events.clone(), d.clone(), rule))
            })
            .collect();
        let mut observed: Vec<Observed> = read_all(reads).await?.into_iter().flatten().collect();
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(events.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Rule,
    ) -> Result<Observed, ProviderError> {
        // `PutRule` is an upsert: the engine only creates what observation did not find.
        let arn = self.put_rule(desired, props, true).await?;
        let mut targets = desired_targets(props)?;
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
        props: &Rule,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        if ["description", "state", "eventPattern"]
            .iter()
            .any(|k| touches(changes, k))
        {
            self.put_rule(desired, props, false).await?;
        }
        if touches(changes, "targets") {
            self.sync_targets(desired, props, observed).await?;
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
        let arn = util::output(desired, observed, "arn")?;
        let events = self.pool.events(&desired.region);
        if !set.is_empty() {
            events
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(sdk_tags(set)?))
                .send()
                .await
                .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
        }
        if !remove.is_empty() {
            events
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
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
    use reconciler_kinds::events::Target as KindTarget;
    use reconciler_kinds::Input;

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
    fn desired_targets_need_resolved_arns() {
        let mut rule = Rule {
            description: "d".into(),
            state: "ENABLED".into(),
            event_pattern: json!({ "source": ["aws.ecs"] }),
            targets: vec![KindTarget {
                id: "a".into(),
                arn: "arn:a".into(),
                input: Some("\"hi\"".into()),
            }],
        };
        let targets = desired_targets(&rule).unwrap();
        assert_eq!(
            targets[0].value(),
            json!({ "id": "a", "arn": "arn:a", "input": "\"hi\"" })
        );
        rule.targets[0].arn = Input::output("lambda.function/stop", "arn");
        let err = desired_targets(&rule).unwrap_err();
        assert!(
            err.message.contains("`targets/arn` is still unresolved"),
            "{err}"
        );
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
