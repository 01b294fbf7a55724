//! `logs.subscription-filter` ([`reconciler_kinds::logs::SubscriptionFilter`]), by filter name
//! in its group: one paginated `DescribeSubscriptionFilters` per log group involved, because
//! the API lists the filters of one group only and has no account-wide listing. Untaggable.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::logs::SubscriptionFilter;
use serde_json::{json, Value};

use crate::error::classify;
use crate::grant::{allowing_statement, ServiceRequest};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all, updated};

/// The client of subscription filters.
pub struct SubscriptionFilterClient {
    pool: Arc<ClientPool>,
}

impl SubscriptionFilterClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        SubscriptionFilterClient { pool }
    }
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

/// Creates or replaces the filter of that name.
async fn put_filter(
    pool: &ClientPool,
    desired: &DesiredResource,
    props: &SubscriptionFilter,
) -> Result<Value, ProviderError> {
    let logs = pool.logs(&desired.region);
    let name = desired.name.as_str();
    let group = props.log_group_name.as_str();
    let destination = props.destination_arn.get("destinationArn")?;
    let put = logs
        .put_subscription_filter()
        .log_group_name(group)
        .filter_name(name)
        .filter_pattern(&props.filter_pattern)
        .destination_arn(destination)
        .send()
        .await;
    if let Err(e) = put {
        let err = classify(&format!("PutSubscriptionFilter {name}"), e);
        return Err(destination_refused(pool, &desired.region, group, destination, err).await);
    }
    Ok(filter_properties(group, &props.filter_pattern, destination))
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
impl KindClient<SubscriptionFilter> for SubscriptionFilterClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let logs = self.pool.logs(region);
        let mut groups: Vec<String> = Vec::new();
        for d in desired {
            let group = reconciler_kinds::read::<SubscriptionFilter>(d)?.log_group_name;
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
                let group = d.properties.get("logGroupName")?.as_str()?;
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &SubscriptionFilter,
    ) -> Result<Observed, ProviderError> {
        let properties = put_filter(&self.pool, desired, props).await?;
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
        props: &SubscriptionFilter,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The pattern or the destination: the group is immutable.
        put_filter(&self.pool, desired, props).await?;
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        // The group as observed: the desired one is the same (an immutable field).
        let group = match observed
            .properties
            .get("logGroupName")
            .and_then(Value::as_str)
        {
            Some(group) => group.to_string(),
            None => reconciler_kinds::read::<SubscriptionFilter>(desired)?.log_group_name,
        };
        self.pool
            .logs(&desired.region)
            .delete_subscription_filter()
            .log_group_name(&group)
            .filter_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSubscriptionFilter {name}"), e))?;
        Ok(())
    }
}
