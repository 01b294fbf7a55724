//! CloudWatch Logs log groups.
//!
//! Observation cost, per region: one paginated `DescribeLogGroups` per name namespace (see
//! [`prefixes`]), plus one `ListTagsForResource` per existing group, because the Logs API has
//! no batch tag read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::error::classify;
use crate::iam::{read_all, updated};
use crate::pool::ClientPool;
use crate::tags::ensure_managed;
use crate::tags::tag_delta;
use crate::util;
use crate::util::{touches, touches_tags};

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(LogGroupClient { pool: pool.clone() })]
}

/// `logs.log-group`: `retentionInDays` (absent or null: never expire). Outputs `arn` (without
/// the `:*` suffix some APIs show) and `name`.
pub struct LogGroupClient {
    pool: Arc<ClientPool>,
}

/// The name prefixes to list so that every desired name is covered with few calls and little
/// noise.
///
/// Names are grouped by their first path segment (`/reconciler/...`), except in the
/// AWS-reserved `/aws/` namespace, which every service in the account writes into: there the
/// group is the first two segments (`/aws/lambda/...`, `/aws/route53/...`), so a listing does
/// not page through every other function's logs. Each group is listed with the longest prefix
/// its names share. The number of calls is therefore the number of namespaces, not of groups.
pub fn prefixes<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for name in names {
        let key = namespace(name);
        groups
            .entry(key)
            .and_modify(|p| *p = common_prefix(p, name))
            .or_insert_with(|| name.to_string());
    }
    groups.into_values().collect()
}

/// `/reconciler/x/y` -> `/reconciler/`; `/aws/lambda/f` -> `/aws/lambda/`; a name with fewer
/// segments -> everything up to its last `/` (`plain` -> ``).
fn namespace(name: &str) -> String {
    let depth = if name.starts_with("/aws/") { 3 } else { 2 };
    let slashes: Vec<usize> = name.match_indices('/').map(|(i, _)| i).collect();
    let end = slashes
        .get(depth - 1)
        .or(slashes.last())
        .map_or(0, |&i| i + 1);
    name[..end].to_string()
}

fn common_prefix(a: &str, b: &str) -> String {
    let len = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    a[..len].to_string()
}

/// The log group ARN without the `:*` that `DescribeLogGroups` appends to `arn`; the tagging
/// API wants it bare.
fn bare_arn(group: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Option<String> {
    group
        .log_group_arn()
        .map(str::to_string)
        .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_string()))
}

async fn read_tags(
    logs: aws_sdk_cloudwatchlogs::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| classify(&format!("ListTagsForResource {arn}"), e))?;
    // Sorted, for stable output: the API returns a hash map.
    let sorted: BTreeMap<String, String> = out
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(sorted.into_iter().collect())
}

fn properties(retention: Option<i32>) -> Value {
    json!({ "retentionInDays": retention })
}

/// Lists the groups whose names start with `prefix`.
async fn list(
    logs: &aws_sdk_cloudwatchlogs::Client,
    prefix: &str,
) -> Result<Vec<aws_sdk_cloudwatchlogs::types::LogGroup>, ProviderError> {
    logs.describe_log_groups()
        .log_group_name_prefix(prefix)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("DescribeLogGroups {prefix}"), e))
}

#[async_trait]
impl ResourceClient for LogGroupClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::LOG_GROUP)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let logs = self.pool.logs(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for prefix in prefixes(by_name.keys().copied()) {
            for group in list(&logs, &prefix).await? {
                let Some(d) = group.log_group_name().and_then(|n| by_name.get(n)) else {
                    continue;
                };
                // Namespaces of unusual names (`/aws/x` next to `/aws/lambda/y`) may overlap.
                if !seen.insert(d.name.as_str()) {
                    continue;
                }
                let Some(arn) = bare_arn(&group) else {
                    continue;
                };
                found.push((*d, arn, group.retention_in_days()));
            }
        }
        let tags = read_all(
            found
                .iter()
                .map(|(_, arn, _)| read_tags(logs.clone(), arn.clone()))
                .collect(),
        )
        .await?;
        Ok(found
            .into_iter()
            .zip(tags)
            .map(|((d, arn, retention), tags)| {
                util::observed(
                    d,
                    properties(retention),
                    [("arn", json!(arn)), ("name", json!(d.name))],
                    tags,
                )
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let logs = self.pool.logs(&desired.region);
        let name = desired.name.as_str();
        let tags: HashMap<String, String> = desired
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        logs.create_log_group()
            .log_group_name(name)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateLogGroup {name}"), e))?;
        // Left without a retention policy if this fails: the retry meets
        // `ResourceAlreadyExistsException`, re-observes and sets it as an update.
        let retention = desired
            .properties
            .get("retentionInDays")
            .and_then(Value::as_i64);
        if let Some(days) = retention {
            put_retention(&logs, name, days).await?;
        }
        // One read for the ARN (it carries the account id).
        let group = list(&logs, name)
            .await?
            .into_iter()
            .find(|g| g.log_group_name() == Some(name))
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "CreateLogGroup {name}: the new group is not listed yet"
                ))
            })?;
        let arn = bare_arn(&group).ok_or_else(|| {
            ProviderError::transient(format!("DescribeLogGroups {name}: no ARN in the answer"))
        })?;
        Ok(util::observed(
            desired,
            properties(retention.and_then(|d| i32::try_from(d).ok())),
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
        let logs = self.pool.logs(&desired.region);
        let name = desired.name.as_str();
        if touches(changes, "retentionInDays") {
            match desired
                .properties
                .get("retentionInDays")
                .and_then(Value::as_i64)
            {
                Some(days) => put_retention(&logs, name, days).await?,
                None => {
                    logs.delete_retention_policy()
                        .log_group_name(name)
                        .send()
                        .await
                        .map_err(|e| classify(&format!("DeleteRetentionPolicy {name}"), e))?;
                }
            }
        }
        if touches_tags(changes) {
            let arn = observed
                .output("arn")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::terminal(format!("{}: observed without an ARN", desired.id))
                })?;
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                logs.tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagResource {name}"), e))?;
            }
            if !remove.is_empty() {
                logs.untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagResource {name}"), e))?;
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
        let logs = self.pool.logs(&desired.region);
        let name = desired.name.as_str();
        logs.delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteLogGroup {name}"), e))?;
        Ok(())
    }
}

async fn put_retention(
    logs: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    days: i64,
) -> Result<(), ProviderError> {
    let days = i32::try_from(days).map_err(|_| {
        ProviderError::terminal(format!("{name}: retentionInDays {days} is out of range"))
    })?;
    logs.put_retention_policy()
        .log_group_name(name)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| classify(&format!("PutRetentionPolicy {name}"), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefixes;

    #[test]
    fn one_prefix_per_namespace() {
        assert_eq!(
            prefixes([
                "/reconciler/minecraft/container",
                "/reconciler/valheim/container"
            ]),
            vec!["/reconciler/".to_string()]
        );
        assert_eq!(
            prefixes(["/reconciler/minecraft/container"]),
            vec!["/reconciler/minecraft/container".to_string()]
        );
        assert_eq!(
            prefixes([
                "/aws/route53/mc.example.com",
                "/aws/lambda/rc-main-start",
                "/aws/lambda/rc-main-stop",
                "/reconciler/mc/container",
            ]),
            vec![
                "/aws/lambda/rc-main-st".to_string(),
                "/aws/route53/mc.example.com".to_string(),
                "/reconciler/mc/container".to_string(),
            ]
        );
        assert_eq!(prefixes(["plain-a", "plain-b"]), vec!["plain-".to_string()]);
    }
}
