//! CloudWatch Logs: log groups, resource policies and subscription filters.
//!
//! Observation cost, per region:
//! - log groups: one paginated `DescribeLogGroups` per name namespace (see [`prefixes`]); tags
//!   from the region's tag index (see [`crate::tagging`]), `ListTagsForResource` per group only
//!   where the index disagrees with the desired tags;
//! - resource policies: one paginated `DescribeResourcePolicies` for the whole account;
//! - subscription filters: one paginated `DescribeSubscriptionFilters` per log group involved,
//!   because the API lists the filters of one group only and has no account-wide listing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::grant::{allowing_statement, ServiceRequest};
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
        Arc::new(LogGroupClient { pool: pool.clone() }),
        Arc::new(ResourcePolicyClient { pool: pool.clone() }),
        Arc::new(SubscriptionFilterClient { pool: pool.clone() }),
    ]
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
            .and_modify(|p| *p = util::common_prefix([p.as_str(), name]))
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

/// Log group names per `DescribeLogGroups` call by identifier (the API's maximum).
const IDENTIFIERS_PER_CALL: usize = 50;

/// The groups called `names`: one call per fifty names, whatever their namespaces. Where the
/// identifiers filter is refused, one listing per namespace (see [`prefixes`]) instead.
async fn by_identifiers<'a>(
    logs: &aws_sdk_cloudwatchlogs::Client,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<aws_sdk_cloudwatchlogs::types::LogGroup>, ProviderError> {
    let names: Vec<&str> = names.into_iter().collect();
    let mut out = Vec::new();
    for chunk in names.chunks(IDENTIFIERS_PER_CALL) {
        let answer = logs
            .describe_log_groups()
            .set_log_group_identifiers(Some(chunk.iter().map(|n| n.to_string()).collect()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        match answer {
            Ok(groups) => out.extend(groups),
            Err(e) => {
                let e = classify("DescribeLogGroups", e);
                if e.class != ErrorClass::Terminal {
                    return Err(e);
                }
                tracing::debug!(error = %e, "log groups by identifier refused; listing by prefix");
                let mut all = Vec::new();
                for prefix in prefixes(names.iter().copied()) {
                    all.extend(list(logs, &prefix).await?);
                }
                return Ok(all);
            }
        }
    }
    Ok(out)
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
        for group in by_identifiers(&logs, by_name.keys().copied()).await? {
            let Some(d) = group.log_group_name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            // The prefix listings of unusual names (`/aws/x` next to `/aws/lambda/y`) overlap.
            if !seen.insert(d.name.as_str()) {
                continue;
            }
            let Some(arn) = bare_arn(&group) else {
                continue;
            };
            found.push((*d, arn, group.retention_in_days()));
        }
        let objects: Vec<(&DesiredResource, String)> =
            found.iter().map(|(d, arn, _)| (*d, arn.clone())).collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_tags(logs.clone(), arn)
        })
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

// ---------------------------------------------------------------------------------------------
// Resource policies.
// ---------------------------------------------------------------------------------------------

/// `logs.resource-policy`: an account-wide policy of the region, by name (`desired.name`):
/// `policyDocument` (JSON). Untaggable. AWS allows ten per region and account, so render
/// shares one policy between every server that needs it.
pub struct ResourcePolicyClient {
    pool: Arc<ClientPool>,
}

/// Every account-level resource policy of the region (`DescribeResourcePolicies`, page by page:
/// the SDK has no paginator for it).
async fn list_resource_policies(
    logs: &aws_sdk_cloudwatchlogs::Client,
) -> Result<Vec<aws_sdk_cloudwatchlogs::types::ResourcePolicy>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = logs
            .describe_resource_policies()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify("DescribeResourcePolicies", e))?;
        out.extend(page.resource_policies().iter().cloned());
        match page.next_token() {
            // A token equal to the one sent would loop forever.
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                token = Some(next.to_string());
            }
            _ => return Ok(out),
        }
    }
}

async fn put_resource_policy(
    logs: &aws_sdk_cloudwatchlogs::Client,
    desired: &DesiredResource,
) -> Result<(), ProviderError> {
    let name = desired.name.as_str();
    let document = desired
        .properties
        .get("policyDocument")
        .ok_or_else(|| util::missing(desired, "policyDocument"))?;
    // PutResourcePolicy creates or replaces the policy of that name.
    logs.put_resource_policy()
        .policy_name(name)
        .policy_document(document_text(desired, document)?)
        .send()
        .await
        .map_err(|e| classify(&format!("PutResourcePolicy {name}"), e))?;
    Ok(())
}

#[async_trait]
impl ResourceClient for ResourcePolicyClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::LOG_RESOURCE_POLICY)
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
        let policies = list_resource_policies(&logs).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let policy = policies
                    .iter()
                    .find(|p| p.policy_name() == Some(d.name.as_str()))?;
                let document = policy
                    .policy_document()
                    .map(|text| {
                        align_policy(util::parse_policy(text), d.properties.get("policyDocument"))
                    })
                    .unwrap_or(Value::Null);
                Some(util::observed(
                    d,
                    json!({ "policyDocument": document }),
                    [("name", json!(d.name))],
                    IndexMap::new(),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let logs = self.pool.logs(&desired.region);
        put_resource_policy(&logs, desired).await?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("name", json!(desired.name))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        if touches(changes, "policyDocument") {
            let logs = self.pool.logs(&desired.region);
            put_resource_policy(&logs, desired).await?;
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
        logs.delete_resource_policy()
            .policy_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteResourcePolicy {name}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Subscription filters.
// ---------------------------------------------------------------------------------------------

/// `logs.subscription-filter`, by filter name (`desired.name`): `logGroupName` (a literal
/// name, so observe knows which group to list), `filterPattern`, `destinationArn`. Untaggable.
/// AWS allows two filters per log group.
pub struct SubscriptionFilterClient {
    pool: Arc<ClientPool>,
}

/// The filters of one log group; none when the group does not exist (yet).
async fn list_filters(
    logs: aws_sdk_cloudwatchlogs::Client,
    group: String,
) -> Result<Vec<aws_sdk_cloudwatchlogs::types::SubscriptionFilter>, ProviderError> {
    let listed = logs
        .describe_subscription_filters()
        .log_group_name(&group)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await;
    match listed {
        Ok(filters) => Ok(filters),
        Err(e) => {
            let err = classify(&format!("DescribeSubscriptionFilters {group}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(Vec::new())
            } else {
                Err(err)
            }
        }
    }
}

fn filter_properties(group: &str, pattern: &str, destination: &str) -> Value {
    json!({
        "logGroupName": group,
        "filterPattern": pattern,
        "destinationArn": destination,
    })
}

async fn put_filter(pool: &ClientPool, desired: &DesiredResource) -> Result<Value, ProviderError> {
    let logs = pool.logs(&desired.region);
    let name = desired.name.as_str();
    let group = util::str_prop(desired, "logGroupName")?;
    let pattern = util::opt_str(desired, "filterPattern").unwrap_or_default();
    let destination = util::str_prop(desired, "destinationArn")?;
    // PutSubscriptionFilter creates or replaces the filter of that name.
    let put = logs
        .put_subscription_filter()
        .log_group_name(group)
        .filter_name(name)
        .filter_pattern(pattern)
        .destination_arn(destination)
        .send()
        .await;
    if let Err(e) = put {
        let err = classify(&format!("PutSubscriptionFilter {name}"), e);
        return Err(destination_refused(pool, &desired.region, group, destination, err).await);
    }
    Ok(filter_properties(group, pattern, destination))
}

/// CloudWatch Logs tests the destination when a filter is written and answers
/// `InvalidParameterException` ("Could not execute the lambda function") when it may not
/// invoke it. A permission added a moment ago may not be in effect yet, which is worth a
/// short wait; a policy that grants nothing to this group never heals, and saying which
/// permission is missing beats retrying. So the function's policy is read and evaluated with
/// the source ARN Logs presents (the group's ARN with `:*`).
async fn destination_refused(
    pool: &ClientPool,
    region: &str,
    group: &str,
    destination: &str,
    mut err: ProviderError,
) -> ProviderError {
    let refused = err.code.as_deref() == Some("InvalidParameterException") && {
        let m = err.message.to_ascii_lowercase();
        m.contains("could not execute") || m.contains("permission")
    };
    let Some(function) = refused.then(|| lambda_function_of(destination)).flatten() else {
        return err;
    };
    let account = destination.split(':').nth(4).unwrap_or_default();
    let source_arn = format!("{}:*", group_arn(destination, region, group));
    let request = ServiceRequest {
        principal: "logs.amazonaws.com",
        action: "lambda:InvokeFunction",
        source_arn: &source_arn,
        source_account: account,
    };
    let lambda = pool.lambda(function.region);
    let policy = match lambda.get_policy().function_name(destination).send().await {
        Ok(out) => out.policy().map(util::parse_policy),
        Err(_) => None,
    };
    match policy
        .as_ref()
        .and_then(|p| allowing_statement(p, &request))
    {
        Some(sid) => {
            err.class = ErrorClass::EventualConsistency;
            err.message = format!(
                "{}; permission `{sid}` of function {} lets logs.amazonaws.com invoke it from \
                 {source_arn} but is not in effect yet",
                err.message, function.name
            );
        }
        None => {
            err.class = ErrorClass::Terminal;
            err.message = format!(
                "{}; no permission of function {} lets logs.amazonaws.com invoke it from \
                 {source_arn} (CloudWatch Logs presents the log group's ARN with `:*` as the \
                 source ARN; a permission for the bare group ARN never matches)",
                err.message, function.name
            );
        }
    }
    err
}

/// A Lambda function's region and name, from its ARN.
struct FunctionRef<'a> {
    region: &'a str,
    name: &'a str,
}

fn lambda_function_of(arn: &str) -> Option<FunctionRef<'_>> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "lambda", region, _, "function", name] => Some(FunctionRef {
            region,
            name: name.split(':').next().unwrap_or(name),
        }),
        _ => None,
    }
}

/// The bare ARN of log group `group` of the destination's account and partition.
fn group_arn(destination: &str, region: &str, group: &str) -> String {
    let parts: Vec<&str> = destination.split(':').collect();
    let partition = parts.get(1).copied().unwrap_or("aws");
    let account = parts.get(4).copied().unwrap_or_default();
    format!("arn:{partition}:logs:{region}:{account}:log-group:{group}")
}

#[async_trait]
impl ResourceClient for SubscriptionFilterClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::SUBSCRIPTION_FILTER)
    }

    fn spec(&self) -> KindSpec {
        // A filter belongs to its group: moving it is a new filter.
        KindSpec::new().immutable("/logGroupName")
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
        let mut groups: Vec<String> = Vec::new();
        for d in desired {
            let group = util::str_prop(d, "logGroupName")?.to_string();
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        let listed = read_all(
            groups
                .iter()
                .map(|g| list_filters(logs.clone(), g.clone()))
                .collect(),
        )
        .await?;
        let by_group: HashMap<&str, &Vec<aws_sdk_cloudwatchlogs::types::SubscriptionFilter>> =
            groups
                .iter()
                .map(String::as_str)
                .zip(listed.iter())
                .collect();
        Ok(desired
            .iter()
            .filter_map(|d| {
                let group = util::opt_str(d, "logGroupName")?;
                let filter = by_group
                    .get(group)?
                    .iter()
                    .find(|f| f.filter_name() == Some(d.name.as_str()))?;
                Some(util::observed(
                    d,
                    filter_properties(
                        group,
                        filter.filter_pattern().unwrap_or_default(),
                        filter.destination_arn().unwrap_or_default(),
                    ),
                    [("name", json!(d.name))],
                    IndexMap::new(),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let properties = put_filter(&self.pool, desired).await?;
        Ok(util::observed(
            desired,
            properties,
            [("name", json!(desired.name))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        if touches(changes, "filterPattern") || touches(changes, "destinationArn") {
            put_filter(&self.pool, desired).await?;
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
        // The group as observed: the desired one is the same (an immutable field).
        let group = observed
            .properties
            .get("logGroupName")
            .and_then(Value::as_str)
            .map_or_else(|| util::str_prop(desired, "logGroupName"), Ok)?;
        logs.delete_subscription_filter()
            .log_group_name(group)
            .filter_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSubscriptionFilter {name}"), e))?;
        Ok(())
    }
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
