//! CloudWatch Logs: log groups, resource policies and subscription filters, one file each.
//!
//! Observation cost, per region:
//! - log groups: one paginated `DescribeLogGroups` per name namespace (see [`prefixes`]); tags
//!   from the region's tag index (see [`crate::tagging`]), `ListTagsForResource` per group only
//!   where the index disagrees with the desired tags;
//! - resource policies: one paginated `DescribeResourcePolicies` for the whole account;
//! - subscription filters: one paginated `DescribeSubscriptionFilters` per log group involved,
//!   because the API lists the filters of one group only and has no account-wide listing.

use std::collections::BTreeMap;
use std::sync::Arc;

use indexmap::IndexMap;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::util;

mod log_group;
mod resource_policy;
mod subscription_filter;

pub use log_group::LogGroupClient;
pub use resource_policy::ResourcePolicyClient;
pub use subscription_filter::SubscriptionFilterClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(LogGroupClient::new(pool.clone()))),
        Arc::new(Managed::new(ResourcePolicyClient::new(pool.clone()))),
        Arc::new(Managed::new(SubscriptionFilterClient::new(pool.clone()))),
    ]
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
pub(crate) fn bare_arn(group: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Option<String> {
    group
        .log_group_arn()
        .map(str::to_string)
        .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_string()))
}

pub(crate) async fn read_tags(
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

/// Log group names per `DescribeLogGroups` call by identifier (the API's maximum).
const IDENTIFIERS_PER_CALL: usize = 50;

/// The groups called `names`: one call per fifty names, whatever their namespaces. Where the
/// identifiers filter is refused, one listing per namespace (see [`prefixes`]) instead.
pub(crate) async fn by_identifiers<'a>(
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
pub(crate) async fn list(
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
