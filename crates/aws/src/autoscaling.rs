//! Auto Scaling: the server's group of zero or one instance (`autoscaling.group`) and the
//! step-scaling policy its alarms trigger (`autoscaling.scaling-policy`).
//!
//! The group's desired capacity belongs to the running system: the start Lambda sets it to 1
//! when a DNS query wakes the server and the alarms set it back to 0. So the client creates the
//! group with a capacity of 0 and never sends `DesiredCapacity` again; the kind declares
//! `/desiredCapacity` runtime-owned so the engine never diffs it either.
//!
//! Calls per observation of every group in a region: one `DescribeAutoScalingGroups` per 50
//! names (pages included) and one `DescribeNotificationConfigurations` for the groups found.
//! Tags come with the groups. Every policy in a region: one `DescribePolicies` per 50 names.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, LaunchTemplateSpecification, ScalingPolicy, StepAdjustment, Tag,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tags::tag_delta;
use crate::util::{i64_prop, missing, observed, opt_str, str_list, str_prop, touches};

/// Names per `DescribeAutoScalingGroups` / `DescribeNotificationConfigurations` call.
const NAMES_PER_CALL: usize = 50;
/// `ResourceType` of a group's tags.
const GROUP_RESOURCE: &str = "auto-scaling-group";
/// The group status while a delete is running (instances terminating, lifecycle hooks waiting).
const DELETE_IN_PROGRESS: &str = "Delete in progress";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(GroupClient::new(pool.clone())),
        Arc::new(ScalingPolicyClient { pool: pool.clone() }),
    ]
}

/// How long to poll for an asynchronous state change, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Pause between two reads.
    pub interval: Duration,
    /// Give up (with a retryable error) after this long.
    pub limit: Duration,
}

impl Wait {
    /// A wait of `limit`, reading every `interval`.
    pub const fn new(interval: Duration, limit: Duration) -> Self {
        Wait { interval, limit }
    }
}

/// Polls `done` until it answers true. When `limit` elapses first the answer is an
/// eventual-consistency error, so the engine's retry policy decides whether to keep waiting:
/// a client call never blocks a run forever.
pub(crate) async fn poll_until<F, Fut>(
    wait: Wait,
    what: &str,
    mut done: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ProviderError>>,
{
    let start = Instant::now();
    loop {
        if done().await? {
            return Ok(());
        }
        if start.elapsed() >= wait.limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: still in progress after {}s",
                wait.limit.as_secs()
            )));
        }
        tokio::time::sleep(wait.interval).await;
    }
}

/// A property as `i32` (what the SDK takes), or a terminal error naming it.
pub(crate) fn i32_prop(desired: &DesiredResource, key: &str) -> Result<i32, ProviderError> {
    i32::try_from(i64_prop(desired, key)?).map_err(|_| missing(desired, key))
}

/// Auto Scaling answers "no such group" with a `ValidationError`; turn that into not-found so a
/// delete of a vanished group succeeds and an update re-observes.
fn asg_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = classify(what, err);
    if e.code.as_deref() == Some("ValidationError") && e.message.contains("not found") {
        e.class = ErrorClass::NotFound;
    }
    e
}

/// The client of `autoscaling.group`.
#[derive(Debug, Clone)]
pub struct GroupClient {
    pool: Arc<ClientPool>,
    delete_wait: Wait,
}

impl GroupClient {
    /// A client over `pool`, waiting up to 15 minutes for a deleted group to disappear (the ECS
    /// managed-draining hook holds a terminating instance until its task has stopped).
    pub fn new(pool: Arc<ClientPool>) -> Self {
        GroupClient {
            pool,
            delete_wait: Wait::new(Duration::from_secs(10), Duration::from_secs(15 * 60)),
        }
    }

    /// Changes how long a delete waits for the group to disappear.
    pub fn with_delete_wait(mut self, wait: Wait) -> Self {
        self.delete_wait = wait;
        self
    }

    /// The groups called `names` that exist, by name.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, AutoScalingGroup>, ProviderError> {
        let client = self.pool.autoscaling(region);
        let mut groups = HashMap::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let out = client
                    .describe_auto_scaling_groups()
                    .set_auto_scaling_group_names(Some(chunk.to_vec()))
                    .max_records(100)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| asg_error("DescribeAutoScalingGroups", e))?;
                for g in out.auto_scaling_groups() {
                    if let Some(name) = g.auto_scaling_group_name() {
                        groups.insert(name.to_string(), g.clone());
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(groups)
    }

    /// Notification configurations of `names`: group -> topic -> types.
    async fn notifications(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, Notifications>, ProviderError> {
        let client = self.pool.autoscaling(region);
        let mut out: HashMap<String, Notifications> = HashMap::new();
        for chunk in names.chunks(NAMES_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .describe_notification_configurations()
                    .set_auto_scaling_group_names(Some(chunk.to_vec()))
                    .max_records(100)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| asg_error("DescribeNotificationConfigurations", e))?;
                for n in page.notification_configurations() {
                    if let (Some(group), Some(topic), Some(kind)) = (
                        n.auto_scaling_group_name(),
                        n.topic_arn(),
                        n.notification_type(),
                    ) {
                        out.entry(group.to_string())
                            .or_default()
                            .entry(topic.to_string())
                            .or_default()
                            .push(kind.to_string());
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Observes exactly one group (after a create or update).
    async fn read_back(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        self.observe(&desired.region, std::slice::from_ref(desired))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "Auto Scaling group `{}` is not visible yet",
                    desired.name
                ))
            })
    }

    /// Makes the group's notification configurations match `desired`: puts the topics whose
    /// types differ and deletes the topics no longer wanted.
    async fn sync_notifications(
        &self,
        desired: &DesiredResource,
        current: &Notifications,
    ) -> Result<(), ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let wanted = desired_notifications(desired)?;
        for (topic, types) in &wanted {
            let mut have = current.get(topic).cloned().unwrap_or_default();
            have.sort();
            if &have == types {
                continue;
            }
            client
                .put_notification_configuration()
                .auto_scaling_group_name(&desired.name)
                .topic_arn(topic)
                .set_notification_types(Some(types.clone()))
                .send()
                .await
                .map_err(|e| {
                    asg_error(&format!("PutNotificationConfiguration {}", desired.name), e)
                })?;
        }
        for topic in current.keys().filter(|t| !wanted.contains_key(*t)) {
            client
                .delete_notification_configuration()
                .auto_scaling_group_name(&desired.name)
                .topic_arn(topic)
                .send()
                .await
                .map_err(|e| {
                    asg_error(
                        &format!("DeleteNotificationConfiguration {}", desired.name),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    async fn sync_tags(
        &self,
        desired: &DesiredResource,
        current: &IndexMap<String, String>,
    ) -> Result<(), ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let (set, remove) = tag_delta(&desired.tags, current);
        if !set.is_empty() {
            client
                .create_or_update_tags()
                .set_tags(Some(group_tags(&desired.name, &set)))
                .send()
                .await
                .map_err(|e| asg_error(&format!("CreateOrUpdateTags {}", desired.name), e))?;
        }
        if !remove.is_empty() {
            let tags = remove
                .iter()
                .map(|k| {
                    Tag::builder()
                        .resource_id(&desired.name)
                        .resource_type(GROUP_RESOURCE)
                        .key(k)
                        .build()
                })
                .collect();
            client
                .delete_tags()
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| asg_error(&format!("DeleteTags {}", desired.name), e))?;
        }
        Ok(())
    }
}

/// Topic ARN -> notification types (as AWS lists them, one entry per type).
type Notifications = BTreeMap<String, Vec<String>>;

/// The desired notifications, topic -> sorted types.
fn desired_notifications(desired: &DesiredResource) -> Result<Notifications, ProviderError> {
    let mut out = Notifications::new();
    let Some(items) = desired.properties.get("notifications") else {
        return Ok(out);
    };
    let items = items
        .as_array()
        .ok_or_else(|| missing(desired, "notifications"))?;
    for item in items {
        let topic = item
            .get("topicArn")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(desired, "notifications/topicArn"))?;
        let types = item
            .get("types")
            .and_then(Value::as_array)
            .ok_or_else(|| missing(desired, "notifications/types"))?;
        let entry = out.entry(topic.to_string()).or_default();
        entry.extend(types.iter().filter_map(Value::as_str).map(str::to_string));
        entry.sort();
        entry.dedup();
    }
    Ok(out)
}

/// Notifications in the desired shape: `[{topicArn, types}]`, types sorted (the kind compares
/// both lists as sets anyway).
fn notifications_value(n: Option<&Notifications>) -> Value {
    let items: Vec<Value> = n
        .into_iter()
        .flatten()
        .map(|(topic, types)| {
            let mut types = types.clone();
            types.sort();
            types.dedup();
            json!({ "topicArn": topic, "types": types })
        })
        .collect();
    Value::Array(items)
}

/// AWS keeps the subnets as one comma-separated string; the desired shape is a list.
pub(crate) fn split_zone_identifier(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Tags for `CreateAutoScalingGroup` / `CreateOrUpdateTags`. Instances launched by the group get
/// them too, so the running server is attributable.
fn group_tags(name: &str, tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .resource_id(name)
                .resource_type(GROUP_RESOURCE)
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        })
        .collect()
}

/// A group in the desired shape.
fn group_observation(
    desired: &DesiredResource,
    group: &AutoScalingGroup,
    notifications: Option<&Notifications>,
) -> Observed {
    let lt = group.launch_template();
    let properties = json!({
        "launchTemplateId": lt.and_then(LaunchTemplateSpecification::launch_template_id),
        "launchTemplateVersion": lt.and_then(LaunchTemplateSpecification::version),
        "minSize": group.min_size(),
        "maxSize": group.max_size(),
        "desiredCapacity": group.desired_capacity(),
        "vpcZoneIdentifier": split_zone_identifier(group.vpc_zone_identifier()),
        "healthCheckType": group.health_check_type(),
        "newInstancesProtectedFromScaleIn": group.new_instances_protected_from_scale_in(),
        "notifications": notifications_value(notifications),
    });
    let tags = group
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    observed(
        desired,
        properties,
        [
            ("arn", json!(group.auto_scaling_group_arn())),
            ("name", json!(group.auto_scaling_group_name())),
        ],
        tags,
    )
}

#[async_trait]
impl ResourceClient for GroupClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::AUTO_SCALING_GROUP)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .runtime_owned("/desiredCapacity")
            .unordered("/vpcZoneIdentifier")
            .unordered("/notifications")
            .unordered("/notifications/*/types")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let mut groups = self.describe(region, &names).await?;
        // A group being deleted is already gone as far as the plan is concerned.
        groups.retain(|_, g| g.status() != Some(DELETE_IN_PROGRESS));
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<String> = names
            .iter()
            .filter(|n| groups.contains_key(*n))
            .cloned()
            .collect();
        let notifications = self.notifications(region, &found).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let g = groups.get(&d.name)?;
                Some(group_observation(d, g, notifications.get(&d.name)))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let subnets = str_list(desired, "vpcZoneIdentifier");
        if subnets.is_empty() {
            return Err(missing(desired, "vpcZoneIdentifier"));
        }
        let template = LaunchTemplateSpecification::builder()
            .launch_template_id(str_prop(desired, "launchTemplateId")?)
            .version(opt_str(desired, "launchTemplateVersion").unwrap_or("$Latest"))
            .build();
        // The capacity is the running system's: a new group starts asleep.
        let capacity = match desired.properties.get("desiredCapacity") {
            Some(_) => i32_prop(desired, "desiredCapacity")?,
            None => 0,
        };
        let result = client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&desired.name)
            .launch_template(template)
            .min_size(i32_prop(desired, "minSize")?)
            .max_size(i32_prop(desired, "maxSize")?)
            .desired_capacity(capacity)
            .vpc_zone_identifier(subnets.join(","))
            .set_health_check_type(opt_str(desired, "healthCheckType").map(str::to_string))
            .set_new_instances_protected_from_scale_in(
                desired
                    .properties
                    .get("newInstancesProtectedFromScaleIn")
                    .and_then(Value::as_bool),
            )
            .set_tags(Some(group_tags(&desired.name, &desired.tags)))
            .send()
            .await;
        if let Err(err) = result {
            let mut e = asg_error(&format!("CreateAutoScalingGroup {}", desired.name), err);
            if e.class == ErrorClass::Conflict {
                // A group of this name that is still being deleted blocks the name until it is
                // gone; that heals by itself, unlike a live group (adopted after re-observing).
                let deleting = self
                    .describe(&desired.region, std::slice::from_ref(&desired.name))
                    .await?
                    .get(&desired.name)
                    .is_some_and(|g| g.status() == Some(DELETE_IN_PROGRESS));
                if deleting {
                    e.class = ErrorClass::EventualConsistency;
                }
            }
            return Err(e);
        }
        self.sync_notifications(desired, &Notifications::new())
            .await?;
        self.read_back(desired).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        crate::tags::ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.autoscaling(&desired.region);
        let mut call = client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&desired.name);
        let mut any = false;
        if touches(changes, "launchTemplateId") || touches(changes, "launchTemplateVersion") {
            call = call.launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(str_prop(desired, "launchTemplateId")?)
                    .version(opt_str(desired, "launchTemplateVersion").unwrap_or("$Latest"))
                    .build(),
            );
            any = true;
        }
        if touches(changes, "minSize") {
            call = call.min_size(i32_prop(desired, "minSize")?);
            any = true;
        }
        if touches(changes, "maxSize") {
            // Never together with DesiredCapacity: if the new maximum is below the running
            // capacity, AWS lowers the capacity itself.
            call = call.max_size(i32_prop(desired, "maxSize")?);
            any = true;
        }
        if touches(changes, "vpcZoneIdentifier") {
            let subnets = str_list(desired, "vpcZoneIdentifier");
            if subnets.is_empty() {
                return Err(missing(desired, "vpcZoneIdentifier"));
            }
            call = call.vpc_zone_identifier(subnets.join(","));
            any = true;
        }
        if touches(changes, "healthCheckType") {
            call = call.health_check_type(str_prop(desired, "healthCheckType")?);
            any = true;
        }
        if touches(changes, "newInstancesProtectedFromScaleIn") {
            call = call.new_instances_protected_from_scale_in(crate::util::bool_prop(
                desired,
                "newInstancesProtectedFromScaleIn",
            )?);
            any = true;
        }
        if any {
            call.send()
                .await
                .map_err(|e| asg_error(&format!("UpdateAutoScalingGroup {}", desired.name), e))?;
        }
        if touches(changes, "notifications") {
            let current = observed_notifications(observed);
            self.sync_notifications(desired, &current).await?;
        }
        if changes.iter().any(FieldChange::is_tag) {
            self.sync_tags(desired, &observed.tags).await?;
        }
        self.read_back(desired).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        crate::tags::ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.autoscaling(&desired.region);
        // ForceDelete terminates the instance of a running server; without it AWS refuses
        // while the group has instances.
        client
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&desired.name)
            .force_delete(true)
            .send()
            .await
            .map_err(|e| asg_error(&format!("DeleteAutoScalingGroup {}", desired.name), e))?;
        // The group lingers ("Delete in progress") while its instance terminates; wait so that
        // what depends on the group going away (the launch template, subnets) can follow.
        let name = std::slice::from_ref(&desired.name);
        poll_until(
            self.delete_wait,
            &format!("deleting Auto Scaling group {}", desired.name),
            || async move { Ok(self.describe(&desired.region, name).await?.is_empty()) },
        )
        .await
    }
}

/// The notifications an observation holds, topic -> types.
fn observed_notifications(observed: &Observed) -> Notifications {
    let mut out = Notifications::new();
    for item in observed
        .properties
        .get("notifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(topic) = item.get("topicArn").and_then(Value::as_str) {
            out.insert(
                topic.to_string(),
                item.get("types")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scaling policies.
// ---------------------------------------------------------------------------------------------

/// Policy names per `DescribePolicies` call (the API's limit).
const POLICY_NAMES_PER_CALL: usize = 50;

/// `autoscaling.scaling-policy`, by policy name: `autoScalingGroupName` (the group's
/// deterministic name), `policyType`, `adjustmentType`, `stepAdjustments`
/// [{`metricIntervalLowerBound`, `metricIntervalUpperBound`, `scalingAdjustment`}]. Untaggable.
/// Outputs `arn`, `name`.
///
/// `PutScalingPolicy` is an upsert that replaces the whole policy, so create and update are the
/// same call. A policy belongs to its group: moving it to another group is a replacement.
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
fn desired_steps(desired: &DesiredResource) -> Result<Vec<StepAdjustment>, ProviderError> {
    let Some(items) = desired.properties.get("stepAdjustments") else {
        return Ok(Vec::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| missing(desired, "stepAdjustments"))?;
    items
        .iter()
        .map(|item| {
            let bound = |key: &str| match item.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| missing(desired, &format!("stepAdjustments/{key}"))),
            };
            let adjustment = item
                .get("scalingAdjustment")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| missing(desired, "stepAdjustments/scalingAdjustment"))?;
            Ok(StepAdjustment::builder()
                .set_metric_interval_lower_bound(bound("metricIntervalLowerBound")?)
                .set_metric_interval_upper_bound(bound("metricIntervalUpperBound")?)
                .scaling_adjustment(adjustment)
                .build())
        })
        .collect()
}

/// A policy in the desired shape.
fn policy_observation(desired: &DesiredResource, policy: &ScalingPolicy) -> Observed {
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

/// Of the policies called `desired.name` (names are unique per group only), the one in the
/// desired group; failing that any, so that a policy left in another group shows up as a change
/// of its group (a replacement) instead of being duplicated.
fn pick<'a>(desired: &DesiredResource, policies: &'a [ScalingPolicy]) -> Option<&'a ScalingPolicy> {
    let group = opt_str(desired, "autoScalingGroupName");
    let named = || {
        policies
            .iter()
            .filter(|p| p.policy_name() == Some(desired.name.as_str()))
    };
    named()
        .find(|p| group.is_some() && p.auto_scaling_group_name() == group)
        .or_else(|| named().next())
}

impl ScalingPolicyClient {
    /// The policies called `names`, in whatever group. `DescribePolicies` takes at most one
    /// group name; leaving it out and filtering by policy names serves every group at once.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<ScalingPolicy>, ProviderError> {
        let client = self.pool.autoscaling(region);
        let mut policies = Vec::new();
        for chunk in names.chunks(POLICY_NAMES_PER_CALL) {
            let found: Vec<ScalingPolicy> = client
                .describe_policies()
                .set_policy_names(Some(chunk.to_vec()))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| asg_error("DescribePolicies", e))?;
            policies.extend(found);
        }
        Ok(policies)
    }

    /// `PutScalingPolicy` with the full definition; the policy's ARN when AWS returns it.
    async fn put(&self, desired: &DesiredResource) -> Result<Option<String>, ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let name = desired.name.as_str();
        let out = client
            .put_scaling_policy()
            .auto_scaling_group_name(str_prop(desired, "autoScalingGroupName")?)
            .policy_name(name)
            .policy_type(str_prop(desired, "policyType")?)
            .set_adjustment_type(opt_str(desired, "adjustmentType").map(str::to_string))
            .set_step_adjustments(Some(desired_steps(desired)?))
            .send()
            .await
            .map_err(|e| asg_error(&format!("PutScalingPolicy {name}"), e))?;
        Ok(out.policy_arn().map(str::to_string))
    }
}

#[async_trait]
impl ResourceClient for ScalingPolicyClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::SCALING_POLICY)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/autoScalingGroupName")
            .unordered("/stepAdjustments")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let policies = self.describe(region, &names).await?;
        Ok(desired
            .iter()
            .filter_map(|d| Some(policy_observation(d, pick(d, &policies)?)))
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let arn = match self.put(desired).await? {
            Some(arn) => arn,
            // The ARN is in every answer AWS gives; read it back should one lack it.
            None => self
                .describe(&desired.region, std::slice::from_ref(&desired.name))
                .await?
                .iter()
                .find(|p| {
                    p.auto_scaling_group_name() == opt_str(desired, "autoScalingGroupName")
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
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        crate::tags::ensure_managed(desired, observed, "change")?;
        if changes.iter().any(|c| !c.is_tag()) {
            self.put(desired).await?;
        }
        Ok(crate::util::updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        crate::tags::ensure_managed(desired, observed, "delete")?;
        let client = self.pool.autoscaling(&desired.region);
        // The group the policy was found in, which a replacement may be moving it away from.
        let group = observed
            .properties
            .get("autoScalingGroupName")
            .and_then(Value::as_str)
            .map_or_else(|| str_prop(desired, "autoScalingGroupName"), Ok)?;
        client
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
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn zone_identifier_splits_and_trims() {
        assert_eq!(
            split_zone_identifier(Some("subnet-a, subnet-b,,")),
            vec!["subnet-a".to_string(), "subnet-b".to_string()]
        );
        assert!(split_zone_identifier(None).is_empty());
    }

    #[test]
    fn notifications_group_by_topic_with_sorted_types() {
        let d = DesiredResource::new(kinds::AUTO_SCALING_GROUP, "x", "eu-west-1", "rc-x")
            .with_properties(json!({
                "notifications": [
                    { "topicArn": "arn:t1", "types": ["b", "a"] },
                    { "topicArn": "arn:t2", "types": ["c"] }
                ]
            }));
        let n = desired_notifications(&d).unwrap();
        assert_eq!(n["arn:t1"], vec!["a".to_string(), "b".to_string()]);
        let v = notifications_value(Some(&n));
        assert_eq!(v[0], json!({ "topicArn": "arn:t1", "types": ["a", "b"] }));
        let mut o = Observed::new(d.id.clone());
        o.properties = json!({ "notifications": v });
        assert_eq!(observed_notifications(&o), n);
    }

    #[tokio::test]
    async fn polling_stops_when_done_and_gives_up_retryably() {
        let counter = AtomicU32::new(0);
        let calls = &counter;
        let wait = Wait::new(Duration::from_millis(1), Duration::from_secs(5));
        poll_until(wait, "x", || async move {
            Ok(calls.fetch_add(1, Ordering::SeqCst) >= 2)
        })
        .await
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let wait = Wait::new(Duration::from_millis(1), Duration::from_millis(5));
        let err = poll_until(wait, "deleting y", || async { Ok(false) })
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("deleting y"));
    }

    #[test]
    fn step_adjustments_keep_only_present_bounds() {
        let d = DesiredResource::new(kinds::SCALING_POLICY, "x", "eu-west-1", "rc-x")
            .with_properties(json!({
                "stepAdjustments": [
                    { "metricIntervalUpperBound": 0.0, "scalingAdjustment": 0 },
                    { "metricIntervalLowerBound": 0.0, "metricIntervalUpperBound": 5.5, "scalingAdjustment": 1 }
                ]
            }));
        let back: Vec<Value> = desired_steps(&d).unwrap().iter().map(step_value).collect();
        assert_eq!(Value::Array(back), d.properties["stepAdjustments"]);
        let bad =
            d.with_properties(json!({ "stepAdjustments": [{ "metricIntervalUpperBound": 0 }] }));
        assert!(desired_steps(&bad).is_err());
    }

    #[test]
    fn the_policy_in_the_desired_group_wins() {
        let d = DesiredResource::new(kinds::SCALING_POLICY, "x", "eu-west-1", "rc-x-stop")
            .with_properties(json!({ "autoScalingGroupName": "rc-x" }));
        let policy = |group: &str| {
            ScalingPolicy::builder()
                .policy_name("rc-x-stop")
                .auto_scaling_group_name(group)
                .build()
        };
        let other = policy("rc-old");
        let mine = policy("rc-x");
        let both = [other.clone(), mine.clone()];
        assert_eq!(pick(&d, &both), Some(&mine));
        let only_other = [other.clone()];
        assert_eq!(pick(&d, &only_other), Some(&other));
        assert_eq!(pick(&d, &[]), None);
    }
}
