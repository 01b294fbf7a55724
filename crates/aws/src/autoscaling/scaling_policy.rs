//! `autoscaling.scaling-policy` ([`reconciler_kinds::autoscaling::ScalingPolicy`]), by policy
//! name: `autoScalingGroupName` (the group's deterministic name), `policyType`,
//! `adjustmentType`, `stepAdjustments` [{`metricIntervalLowerBound`,
//! `metricIntervalUpperBound`, `scalingAdjustment`}]. Untaggable. Outputs `arn`, `name`. Every
//! policy of a region is read with one `DescribePolicies` per 50 names.
//!
//! `PutScalingPolicy` is an upsert that replaces the whole policy, so create and update are the
//! same call. A policy belongs to its group: moving it to another group is a replacement.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{ScalingPolicy as AsgScalingPolicy, StepAdjustment};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::autoscaling::ScalingPolicy;
use serde_json::{json, Value};

use super::{asg_error, describe_named};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{observed, updated};

/// The client of `autoscaling.scaling-policy`.
#[derive(Debug, Clone)]
pub struct ScalingPolicyClient {
    pool: Arc<ClientPool>,
}

/// A step adjustment in the desired shape: only the bounds AWS holds (an open interval has no
/// key), as floats.
fn step_value(step: &StepAdjustment) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(lower) = step.metric_interval_lower_bound() {
        out.insert("metricIntervalLowerBound".into(), json!(lower));
    }
    if let Some(upper) = step.metric_interval_upper_bound() {
        out.insert("metricIntervalUpperBound".into(), json!(upper));
    }
    out.insert("scalingAdjustment".into(), json!(step.scaling_adjustment()));
    Value::Object(out)
}

/// The desired step adjustments as the SDK wants them.
fn desired_steps(props: &ScalingPolicy) -> Vec<StepAdjustment> {
    props
        .step_adjustments
        .iter()
        .map(|step| {
            StepAdjustment::builder()
                .set_metric_interval_lower_bound(step.metric_interval_lower_bound)
                .set_metric_interval_upper_bound(step.metric_interval_upper_bound)
                .scaling_adjustment(step.scaling_adjustment)
                .build()
        })
        .collect()
}

/// A policy in the desired shape.
fn policy_observation(desired: &DesiredResource, policy: &AsgScalingPolicy) -> Observed {
    let properties = json!({
        "autoScalingGroupName": policy.auto_scaling_group_name(),
        "policyType": policy.policy_type(),
        "adjustmentType": policy.adjustment_type(),
        "stepAdjustments": policy.step_adjustments().iter().map(step_value).collect::<Vec<_>>(),
    });
    observed(
        desired,
        properties,
        [
            ("arn", json!(policy.policy_arn())),
            ("name", json!(policy.policy_name())),
        ],
        IndexMap::new(),
    )
}

/// Of the policies called `name` (names are unique per group only), the one in `group`;
/// failing that any, so that a policy left in another group shows up as a change of its group
/// (a replacement) instead of being duplicated.
fn pick<'a>(
    name: &str,
    group: &str,
    policies: &'a [AsgScalingPolicy],
) -> Option<&'a AsgScalingPolicy> {
    let named = || policies.iter().filter(|p| p.policy_name() == Some(name));
    named()
        .find(|p| p.auto_scaling_group_name() == Some(group))
        .or_else(|| named().next())
}

impl ScalingPolicyClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ScalingPolicyClient { pool }
    }

    /// The policies called `names`, in whatever group. `DescribePolicies` takes at most one
    /// group name; leaving it out and filtering by policy names serves every group at once.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<AsgScalingPolicy>, ProviderError> {
        let client = self.pool.autoscaling(region);
        describe_named("DescribePolicies", names, |chunk| {
            client
                .describe_policies()
                .set_policy_names(Some(chunk))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        })
        .await
    }

    /// `PutScalingPolicy` with the full definition; the policy's ARN when AWS returns it.
    async fn put(
        &self,
        desired: &DesiredResource,
        props: &ScalingPolicy,
    ) -> Result<Option<String>, ProviderError> {
        let name = desired.name.as_str();
        let out = self
            .pool
            .autoscaling(&desired.region)
            .put_scaling_policy()
            .auto_scaling_group_name(&props.auto_scaling_group_name)
            .policy_name(name)
            .policy_type(&props.policy_type)
            .adjustment_type(&props.adjustment_type)
            .set_step_adjustments(Some(desired_steps(props)))
            .send()
            .await
            .map_err(|e| asg_error(&format!("PutScalingPolicy {name}"), e))?;
        Ok(out.policy_arn().map(str::to_string))
    }
}

#[async_trait]
impl KindClient<ScalingPolicy> for ScalingPolicyClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let policies = self.describe(region, &names).await?;
        let mut out = Vec::new();
        for d in desired {
            let group = reconciler_kinds::read::<ScalingPolicy>(d)?.auto_scaling_group_name;
            if let Some(policy) = pick(&d.name, &group, &policies) {
                out.push(policy_observation(d, policy));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &ScalingPolicy,
    ) -> Result<Observed, ProviderError> {
        let arn = match self.put(desired, props).await? {
            Some(arn) => arn,
            // The ARN is in every answer AWS gives; read it back should one lack it.
            None => self
                .describe(&desired.region, std::slice::from_ref(&desired.name))
                .await?
                .iter()
                .find(|p| {
                    p.auto_scaling_group_name() == Some(props.auto_scaling_group_name.as_str())
                        && p.policy_name() == Some(desired.name.as_str())
                })
                .and_then(|p| p.policy_arn().map(str::to_string))
                .ok_or_else(|| {
                    ProviderError::eventual_consistency(format!(
                        "PutScalingPolicy {}: the new policy is not listed yet",
                        desired.name
                    ))
                })?,
        };
        Ok(observed(
            desired,
            desired.properties.clone(),
            [("arn", json!(arn)), ("name", json!(desired.name))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &ScalingPolicy,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        self.put(desired, props).await?;
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        // The group the policy was found in, which a replacement may be moving it away from.
        let group = match observed
            .properties
            .get("autoScalingGroupName")
            .and_then(Value::as_str)
        {
            Some(group) => group.to_string(),
            None => reconciler_kinds::read::<ScalingPolicy>(desired)?.auto_scaling_group_name,
        };
        self.pool
            .autoscaling(&desired.region)
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(&desired.name)
            .send()
            .await
            .map_err(|e| asg_error(&format!("DeletePolicy {}", desired.name), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_adjustments_keep_only_present_bounds() {
        let steps = json!([
            { "metricIntervalUpperBound": 0.0, "scalingAdjustment": 0 },
            { "metricIntervalLowerBound": 0.0, "metricIntervalUpperBound": 5.5, "scalingAdjustment": 1 }
        ]);
        let props: ScalingPolicy = serde_json::from_value(json!({
            "autoScalingGroupName": "rc-x",
            "policyType": "StepScaling",
            "adjustmentType": "ExactCapacity",
            "stepAdjustments": steps
        }))
        .unwrap();
        let back: Vec<Value> = desired_steps(&props).iter().map(step_value).collect();
        assert_eq!(Value::Array(back), steps);
    }

    #[test]
    fn the_policy_in_the_desired_group_wins() {
        let policy = |group: &str| {
            AsgScalingPolicy::builder()
                .policy_name("rc-x-stop")
                .auto_scaling_group_name(group)
                .build()
        };
        let other = policy("rc-old");
        let mine = policy("rc-x");
        let both = [other.clone(), mine.clone()];
        assert_eq!(pick("rc-x-stop", "rc-x", &both), Some(&mine));
        let only_other = [other.clone()];
        assert_eq!(pick("rc-x-stop", "rc-x", &only_other), Some(&other));
        assert_eq!(pick("rc-x-stop", "rc-x", &[]), None);
    }
}
