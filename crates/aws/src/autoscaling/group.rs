//! `autoscaling.group` ([`reconciler_kinds::autoscaling::Group`]), by name: one
//! `DescribeAutoScalingGroups` per 50 names and one `DescribeNotificationConfigurations` for
//! the groups found; tags come with the groups. Outputs `arn`, `name`.
//!
//! The group's desired capacity belongs to the running system: the start Lambda sets it to 1
//! when a DNS query wakes the server and the alarms set it back to 0. So the client creates the
//! group with a capacity of 0 and never sends `DesiredCapacity` again; the kind declares
//! `/desiredCapacity` runtime-owned so the engine never diffs it either.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_autoscaling::operation::update_auto_scaling_group::builders::UpdateAutoScalingGroupFluentBuilder;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, Tag};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::autoscaling::Group;
use serde_json::{json, Value};

use super::{asg_error, describe_named, poll_until, Wait};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{missing, observed, touches};

/// `ResourceType` of a group's tags.
const GROUP_RESOURCE: &str = "auto-scaling-group";
/// The group status while a delete is running (instances terminating, lifecycle hooks waiting).
const DELETE_IN_PROGRESS: &str = "Delete in progress";

/// The client of `autoscaling.group`.
#[derive(Debug, Clone)]
pub struct GroupClient {
    pool: Arc<ClientPool>,
    delete_wait: Wait,
}

/// Topic ARN -> notification types (as AWS lists them, one entry per type).
type Notifications = BTreeMap<String, Vec<String>>;

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
        let groups = describe_named("DescribeAutoScalingGroups", names, |chunk| {
            client
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(chunk))
                .max_records(100)
                .into_paginator()
                .items()
                .send()
                .try_collect()
        })
        .await?;
        Ok(groups
            .into_iter()
            .filter_map(|g| Some((g.auto_scaling_group_name()?.to_string(), g)))
            .collect())
    }

    /// Notification configurations of `names`: group -> topic -> types.
    async fn notifications(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, Notifications>, ProviderError> {
        let client = self.pool.autoscaling(region);
        let configurations = describe_named("DescribeNotificationConfigurations", names, |chunk| {
            client
                .describe_notification_configurations()
                .set_auto_scaling_group_names(Some(chunk))
                .max_records(100)
                .into_paginator()
                .items()
                .send()
                .try_collect()
        })
        .await?;
        let mut out: HashMap<String, Notifications> = HashMap::new();
        for n in &configurations {
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

    /// Makes the group's notification configurations match `props`: puts the topics whose
    /// types differ and deletes the topics no longer wanted.
    async fn sync_notifications(
        &self,
        desired: &DesiredResource,
        props: &Group,
        current: &Notifications,
    ) -> Result<(), ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let name = desired.name.as_str();
        let wanted = desired_notifications(props)?;
        for (topic, types) in &wanted {
            let mut have = current.get(topic).cloned().unwrap_or_default();
            have.sort();
            if &have == types {
                continue;
            }
            client
                .put_notification_configuration()
                .auto_scaling_group_name(name)
                .topic_arn(topic)
                .set_notification_types(Some(types.clone()))
                .send()
                .await
                .map_err(|e| asg_error(&format!("PutNotificationConfiguration {name}"), e))?;
        }
        for topic in current.keys().filter(|t| !wanted.contains_key(*t)) {
            client
                .delete_notification_configuration()
                .auto_scaling_group_name(name)
                .topic_arn(topic)
                .send()
                .await
                .map_err(|e| asg_error(&format!("DeleteNotificationConfiguration {name}"), e))?;
        }
        Ok(())
    }

    /// Whether the group called `name` is being deleted (and so blocks its name for a while).
    async fn deleting(&self, region: &str, name: &str) -> Result<bool, ProviderError> {
        Ok(self
            .describe(region, &[name.to_string()])
            .await?
            .get(name)
            .is_some_and(|g| g.status() == Some(DELETE_IN_PROGRESS)))
    }
}

/// The desired notifications, topic -> sorted types.
fn desired_notifications(props: &Group) -> Result<Notifications, ProviderError> {
    let mut out = Notifications::new();
    for n in &props.notifications {
        let entry = out
            .entry(n.topic_arn.get("notifications/topicArn")?.clone())
            .or_default();
        entry.extend(n.types.iter().cloned());
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

/// AWS keeps the subnets as one comma-separated string; the desired shape is a list.
fn split_zone_identifier(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The subnets as AWS takes them, one comma-separated string; never empty.
fn zone_identifier(desired: &DesiredResource, props: &Group) -> Result<String, ProviderError> {
    let subnets = props
        .vpc_zone_identifier
        .iter()
        .map(|s| s.get("vpcZoneIdentifier").cloned())
        .collect::<Result<Vec<String>, _>>()?;
    if subnets.is_empty() {
        return Err(missing(desired, "vpcZoneIdentifier"));
    }
    Ok(subnets.join(","))
}

fn launch_template(props: &Group) -> Result<LaunchTemplateSpecification, ProviderError> {
    Ok(LaunchTemplateSpecification::builder()
        .launch_template_id(props.launch_template_id.get("launchTemplateId")?)
        .version(&props.launch_template_version)
        .build())
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

/// The `UpdateAutoScalingGroup` call for the changed fields; `None` when no field it sets
/// changed. Never with `DesiredCapacity`: if a new maximum is below the running capacity, AWS
/// lowers the capacity itself.
fn update_call(
    call: UpdateAutoScalingGroupFluentBuilder,
    desired: &DesiredResource,
    props: &Group,
    changes: &[FieldChange],
) -> Result<Option<UpdateAutoScalingGroupFluentBuilder>, ProviderError> {
    let mut call = call;
    let mut any = false;
    if touches(changes, "launchTemplateId") || touches(changes, "launchTemplateVersion") {
        call = call.launch_template(launch_template(props)?);
        any = true;
    }
    if touches(changes, "minSize") {
        call = call.min_size(props.min_size);
        any = true;
    }
    if touches(changes, "maxSize") {
        call = call.max_size(props.max_size);
        any = true;
    }
    if touches(changes, "vpcZoneIdentifier") {
        call = call.vpc_zone_identifier(zone_identifier(desired, props)?);
        any = true;
    }
    if touches(changes, "healthCheckType") {
        call = call.health_check_type(&props.health_check_type);
        any = true;
    }
    if touches(changes, "newInstancesProtectedFromScaleIn") {
        call =
            call.new_instances_protected_from_scale_in(props.new_instances_protected_from_scale_in);
        any = true;
    }
    Ok(any.then_some(call))
}

#[async_trait]
impl KindClient<Group> for GroupClient {
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Group,
    ) -> Result<Observed, ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let result = client
            .create_auto_scaling_group()
            .auto_scaling_group_name(&desired.name)
            .launch_template(launch_template(props)?)
            .min_size(props.min_size)
            .max_size(props.max_size)
            // The capacity is the running system's: a new group starts asleep.
            .desired_capacity(props.desired_capacity.unwrap_or(0))
            .vpc_zone_identifier(zone_identifier(desired, props)?)
            .health_check_type(&props.health_check_type)
            .new_instances_protected_from_scale_in(props.new_instances_protected_from_scale_in)
            .set_tags(Some(group_tags(&desired.name, &desired.tags)))
            .send()
            .await;
        if let Err(err) = result {
            let mut e = asg_error(&format!("CreateAutoScalingGroup {}", desired.name), err);
            // A group of this name that is still being deleted blocks the name until it is
            // gone; that heals by itself, unlike a live group (adopted after re-observing).
            if e.class == ErrorClass::Conflict
                && self.deleting(&desired.region, &desired.name).await?
            {
                e.class = ErrorClass::EventualConsistency;
            }
            return Err(e);
        }
        self.sync_notifications(desired, props, &Notifications::new())
            .await?;
        self.read_back(desired).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Group,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let call = client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&desired.name);
        if let Some(call) = update_call(call, desired, props, changes)? {
            call.send()
                .await
                .map_err(|e| asg_error(&format!("UpdateAutoScalingGroup {}", desired.name), e))?;
        }
        if touches(changes, "notifications") {
            let current = observed_notifications(observed);
            self.sync_notifications(desired, props, &current).await?;
        }
        self.read_back(desired).await
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let client = self.pool.autoscaling(&desired.region);
        let name = desired.name.as_str();
        if !set.is_empty() {
            client
                .create_or_update_tags()
                .set_tags(Some(group_tags(name, set)))
                .send()
                .await
                .map_err(|e| asg_error(&format!("CreateOrUpdateTags {name}"), e))?;
        }
        if !remove.is_empty() {
            let tags = remove
                .iter()
                .map(|k| {
                    Tag::builder()
                        .resource_id(name)
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
                .map_err(|e| asg_error(&format!("DeleteTags {name}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let props: Group = serde_json::from_value(json!({
            "launchTemplateId": "lt-1",
            "launchTemplateVersion": "$Latest",
            "minSize": 0,
            "maxSize": 1,
            "vpcZoneIdentifier": ["subnet-a"],
            "healthCheckType": "EC2",
            "newInstancesProtectedFromScaleIn": true,
            "notifications": [
                { "topicArn": "arn:t1", "types": ["b", "a"] },
                { "topicArn": "arn:t2", "types": ["c"] }
            ]
        }))
        .unwrap();
        let n = desired_notifications(&props).unwrap();
        assert_eq!(n["arn:t1"], vec!["a".to_string(), "b".to_string()]);
        let v = notifications_value(Some(&n));
        assert_eq!(v[0], json!({ "topicArn": "arn:t1", "types": ["a", "b"] }));
        let mut o = Observed::new("autoscaling.group/x");
        o.properties = json!({ "notifications": v });
        assert_eq!(observed_notifications(&o), n);
    }
}
