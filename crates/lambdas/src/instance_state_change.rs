//! instance-state-change: keep the server's A record in step with the instance.
//!
//! EventBridge routes the group's Auto Scaling events here:
//!
//! - **launch successful**: the record is pointed at the new instance's public
//!   IPv4 address;
//! - **terminate lifecycle action** (or **terminate successful**): the record
//!   is pointed at the "unavailable" address, unless another instance of the
//!   group is pending or in service. That guard covers a DNS hit during a
//!   spin-down: the new instance's launch must not be erased by the old
//!   instance's termination. Skipping is a normal outcome, not an error, so
//!   Lambda does not retry it.
//!
//! Every change is an UPSERT, so a repeated event rewrites the same value.

use std::net::Ipv4Addr;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_types::SdkConfig;
use serde::Serialize;
use tracing::{info, warn};

use crate::config::InstanceStateChangeConfig;
use crate::error::HandlerError;
use crate::events::{
    AutoScalingEvent, LAUNCH_SUCCESSFUL, TERMINATE_LIFECYCLE_ACTION, TERMINATE_SUCCESSFUL,
};

/// Clients of the instance-state-change handler, built once per cold start.
#[derive(Debug, Clone)]
pub struct InstanceStateChangeClients {
    /// EC2, in the group's region, to read the instance's public address.
    pub ec2: aws_sdk_ec2::Client,
    /// Auto Scaling, in the group's region, for the terminate guard.
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// Route 53 (global; the region only picks the signing endpoint).
    pub route53: aws_sdk_route53::Client,
}

impl InstanceStateChangeClients {
    /// Builds the clients from one SDK configuration, whose region must be
    /// the group's ([`InstanceStateChangeConfig::asg_region`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        InstanceStateChangeClients {
            ec2: aws_sdk_ec2::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            route53: aws_sdk_route53::Client::new(sdk),
        }
    }
}

/// Which kind of event led to a record change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An instance finished launching.
    Launch,
    /// An instance is terminating (or has terminated).
    Terminate,
}

/// What instance-state-change did for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum InstanceStateChangeOutcome {
    /// The A record was upserted.
    RecordUpdated {
        /// Launch or terminate.
        trigger: Trigger,
        /// The instance the event was about.
        instance_id: Option<String>,
        /// The record's name.
        record_name: String,
        /// The address it now holds.
        ip: Ipv4Addr,
        /// Its TTL in seconds.
        ttl: i64,
        /// Route 53's change id, to look the change up.
        change_id: String,
    },
    /// A terminate event was ignored because another instance is live.
    Skipped {
        /// The terminating instance the event was about.
        instance_id: Option<String>,
        /// The live instance that keeps the record.
        live_instance_id: String,
        /// Its lifecycle state (`Pending…` or `InService`).
        live_instance_state: String,
        /// A sentence for the logs.
        reason: String,
    },
}

/// Handles one Auto Scaling event.
pub async fn instance_state_change(
    config: &InstanceStateChangeConfig,
    clients: &InstanceStateChangeClients,
    event: &AutoScalingEvent,
) -> Result<InstanceStateChangeOutcome, HandlerError> {
    info!(
        detail_type = %event.detail_type,
        event_id = event.id.as_deref().unwrap_or("-"),
        instance_id = event.detail.ec2_instance_id.as_deref().unwrap_or("-"),
        asg = event.detail.auto_scaling_group_name.as_deref().unwrap_or("-"),
        "Auto Scaling event received"
    );
    match event.detail_type.as_str() {
        LAUNCH_SUCCESSFUL => on_launch(config, clients, event).await,
        TERMINATE_LIFECYCLE_ACTION | TERMINATE_SUCCESSFUL => {
            on_terminate(config, clients, event).await
        }
        other => Err(HandlerError::UnknownEventType(other.to_owned())),
    }
}

async fn on_launch(
    config: &InstanceStateChangeConfig,
    clients: &InstanceStateChangeClients,
    event: &AutoScalingEvent,
) -> Result<InstanceStateChangeOutcome, HandlerError> {
    let instance_id = required(event, "EC2InstanceId", &event.detail.ec2_instance_id)?;
    let ip = public_ipv4(clients, instance_id).await?;
    upsert(config, clients, Trigger::Launch, Some(instance_id), ip).await
}

async fn on_terminate(
    config: &InstanceStateChangeConfig,
    clients: &InstanceStateChangeClients,
    event: &AutoScalingEvent,
) -> Result<InstanceStateChangeOutcome, HandlerError> {
    let group = required(
        event,
        "AutoScalingGroupName",
        &event.detail.auto_scaling_group_name,
    )?;
    let leaving = event.detail.ec2_instance_id.as_deref();

    let groups = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(HandlerError::aws("DescribeAutoScalingGroups"))?;
    let Some(asg) = groups.auto_scaling_groups().first() else {
        // A deleted group has no instance to serve, so the record goes to the
        // unavailable address like for a group that scaled to zero.
        warn!(asg = %group, "the group no longer exists; marking the server unavailable");
        return upsert(
            config,
            clients,
            Trigger::Terminate,
            leaving,
            config.unavailable_ip,
        )
        .await;
    };

    let live = asg.instances().iter().find(|instance| {
        let state = instance.lifecycle_state().map_or("", |s| s.as_str());
        instance.instance_id() != leaving && is_live(state)
    });
    if let Some(instance) = live {
        let live_instance_id = instance.instance_id().unwrap_or("unknown").to_owned();
        let live_instance_state = instance
            .lifecycle_state()
            .map_or("unknown", |s| s.as_str())
            .to_owned();
        let reason = format!(
            "instance '{live_instance_id}' is in '{live_instance_state}', so the record keeps \
             pointing at it; skipping this termination event"
        );
        info!(%reason, "termination skipped");
        return Ok(InstanceStateChangeOutcome::Skipped {
            instance_id: leaving.map(str::to_owned),
            live_instance_id,
            live_instance_state,
            reason,
        });
    }
    upsert(
        config,
        clients,
        Trigger::Terminate,
        leaving,
        config.unavailable_ip,
    )
    .await
}

/// Pending, Pending:Wait, Pending:Proceed and InService: the states of an
/// instance that has, or is about to get, the record.
fn is_live(lifecycle_state: &str) -> bool {
    lifecycle_state.starts_with("Pending") || lifecycle_state == "InService"
}

fn required<'a>(
    event: &AutoScalingEvent,
    field: &'static str,
    value: &'a Option<String>,
) -> Result<&'a str, HandlerError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| HandlerError::MissingEventField {
            detail_type: event.detail_type.clone(),
            field,
        })
}

async fn public_ipv4(
    clients: &InstanceStateChangeClients,
    instance_id: &str,
) -> Result<Ipv4Addr, HandlerError> {
    let out = clients
        .ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(HandlerError::aws("DescribeInstances"))?;
    let instance = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .ok_or_else(|| HandlerError::InstanceNotFound(instance_id.to_owned()))?;
    let Some(address) = instance.public_ip_address() else {
        return Err(HandlerError::NoPublicIp {
            instance_id: instance_id.to_owned(),
            state: instance
                .state()
                .and_then(|s| s.name())
                .map_or("unknown", |n| n.as_str())
                .to_owned(),
        });
    };
    address.parse().map_err(|_| HandlerError::InvalidPublicIp {
        instance_id: instance_id.to_owned(),
        address: address.to_owned(),
    })
}

async fn upsert(
    config: &InstanceStateChangeConfig,
    clients: &InstanceStateChangeClients,
    trigger: Trigger,
    instance_id: Option<&str>,
    ip: Ipv4Addr,
) -> Result<InstanceStateChangeOutcome, HandlerError> {
    let record = ResourceRecord::builder()
        .value(ip.to_string())
        .build()
        .map_err(HandlerError::aws("ChangeResourceRecordSets"))?;
    let record_set = ResourceRecordSet::builder()
        .name(&config.record_name)
        .r#type(RrType::A)
        .ttl(config.record_ttl)
        .resource_records(record)
        .build()
        .map_err(HandlerError::aws("ChangeResourceRecordSets"))?;
    let change = Change::builder()
        .action(ChangeAction::Upsert)
        .resource_record_set(record_set)
        .build()
        .map_err(HandlerError::aws("ChangeResourceRecordSets"))?;
    let comment = match trigger {
        Trigger::Launch => format!("instance {} launched", instance_id.unwrap_or("unknown")),
        Trigger::Terminate => format!("instance {} terminating", instance_id.unwrap_or("unknown")),
    };
    let batch = ChangeBatch::builder()
        .comment(comment)
        .changes(change)
        .build()
        .map_err(HandlerError::aws("ChangeResourceRecordSets"))?;
    let out = clients
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(&config.hosted_zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(HandlerError::aws("ChangeResourceRecordSets"))?;
    let change_id = out
        .change_info()
        .map(|info| info.id().to_owned())
        .unwrap_or_default();
    info!(
        record = %config.record_name,
        ip = %ip,
        ttl = config.record_ttl,
        change_id = %change_id,
        "A record upserted"
    );
    Ok(InstanceStateChangeOutcome::RecordUpdated {
        trigger,
        instance_id: instance_id.map(str::to_owned),
        record_name: config.record_name.clone(),
        ip,
        ttl: config.record_ttl,
        change_id,
    })
}

#[cfg(test)]
mod tests {
    use super::is_live;

    #[test]
    fn live_states() {
        for live in ["Pending", "Pending:Wait", "Pending:Proceed", "InService"] {
            assert!(is_live(live), "{live}");
        }
        for gone in [
            "Terminating",
            "Terminating:Wait",
            "Terminating:Proceed",
            "Terminated",
            "Detaching",
            "Standby",
            "",
        ] {
            assert!(!is_live(gone), "{gone}");
        }
    }
}
