//! idle-stop: the idle alarm fired, so stop the instance unless it is still
//! booting.
//!
//! Without a boot grace the idle alarm scales the group in through a step
//! scaling policy, with no code in between, and nothing could tell a booting
//! server from an idle one. With a grace the alarm invokes this function
//! instead, which reads the launch time of the group's instances and:
//!
//! - stops the server (desired capacity 0) when every instance is older than
//!   the grace (or there is none);
//! - otherwise leaves it running and sets the alarm back to OK. Alarm actions
//!   only run on a change into ALARM, so the reset lets the alarm fire again
//!   at its next evaluation; once the grace is over an idle server stops
//!   within a minute.

use std::time::SystemTime;

use aws_sdk_cloudwatch::types::StateValue;
use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use crate::config::IdleStopConfig;
use crate::error::HandlerError;

/// Clients of the idle-stop handler, built once per cold start.
#[derive(Debug, Clone)]
pub struct IdleStopClients {
    /// Auto Scaling, in the group's region.
    pub autoscaling: aws_sdk_autoscaling::Client,
    /// EC2, for the instances' launch times.
    pub ec2: aws_sdk_ec2::Client,
    /// CloudWatch, to reset the idle alarm during the grace.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl IdleStopClients {
    /// Builds the clients from one SDK configuration in the group's region.
    pub fn new(sdk: &SdkConfig) -> Self {
        IdleStopClients {
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
        }
    }
}

/// What idle-stop did for one alarm event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum IdleStopOutcome {
    /// The group was set to zero.
    Stopped {
        /// The group.
        asg_name: String,
        /// Age in seconds of the youngest instance, if any ran.
        youngest_age_secs: Option<i64>,
    },
    /// The youngest instance is still in its boot grace: it keeps running
    /// and the alarm was reset to OK.
    InBootGrace {
        /// The instance.
        instance_id: String,
        /// Its age in seconds.
        age_secs: i64,
        /// The grace, in seconds.
        grace_secs: i64,
    },
    /// The event is not an alarm entering ALARM (e.g. OK): nothing to do.
    Ignored {
        /// The state the event carried.
        state: String,
    },
}

/// Handles one CloudWatch alarm state-change invocation.
pub async fn idle_stop(
    config: &IdleStopConfig,
    clients: &IdleStopClients,
    event: &Value,
) -> Result<IdleStopOutcome, HandlerError> {
    idle_stop_at(config, clients, event, SystemTime::now()).await
}

/// [`idle_stop`] at a given time, so tests can move past the grace.
pub async fn idle_stop_at(
    config: &IdleStopConfig,
    clients: &IdleStopClients,
    event: &Value,
    now: SystemTime,
) -> Result<IdleStopOutcome, HandlerError> {
    let state = event
        .pointer("/alarmData/state/value")
        .and_then(Value::as_str)
        .ok_or_else(|| HandlerError::InvalidEvent {
            expected: "CloudWatch alarm state change",
            reason: "no alarmData.state.value".to_owned(),
        })?;
    if state != "ALARM" {
        return Ok(IdleStopOutcome::Ignored {
            state: state.to_owned(),
        });
    }

    let groups = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&config.asg_name)
        .send()
        .await
        .map_err(HandlerError::aws("DescribeAutoScalingGroups"))?;
    let group = groups
        .auto_scaling_groups()
        .first()
        .ok_or_else(|| HandlerError::GroupNotFound(config.asg_name.clone()))?;
    let ids: Vec<String> = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();

    let mut youngest: Option<(String, i64)> = None;
    if !ids.is_empty() {
        let out = clients
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .map_err(HandlerError::aws("DescribeInstances"))?;
        let now_secs = aws_sdk_ec2::primitives::DateTime::from(now).secs();
        for instance in out.reservations().iter().flat_map(|r| r.instances()) {
            let (Some(id), Some(launched)) = (instance.instance_id(), instance.launch_time())
            else {
                continue;
            };
            let age = now_secs - launched.secs();
            if youngest.as_ref().is_none_or(|(_, a)| age < *a) {
                youngest = Some((id.to_owned(), age));
            }
        }
    }

    let grace_secs = i64::from(config.boot_grace_minutes) * 60;
    if let Some((instance_id, age_secs)) = &youngest {
        if *age_secs < grace_secs {
            clients
                .cloudwatch
                .set_alarm_state()
                .alarm_name(&config.alarm_name)
                .state_value(StateValue::Ok)
                .state_reason(format!(
                    "Instance {instance_id} launched {age_secs}s ago, within the {}-minute boot grace",
                    config.boot_grace_minutes
                ))
                .send()
                .await
                .map_err(HandlerError::aws("SetAlarmState"))?;
            info!(instance = %instance_id, age_secs, grace_secs, "idle but still in its boot grace; kept running");
            return Ok(IdleStopOutcome::InBootGrace {
                instance_id: instance_id.clone(),
                age_secs: *age_secs,
                grace_secs,
            });
        }
    }

    clients
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&config.asg_name)
        .desired_capacity(0)
        .send()
        .await
        .map_err(HandlerError::aws("SetDesiredCapacity"))?;
    info!(asg = %config.asg_name, desired_capacity = 0, "idle; server stop requested");
    Ok(IdleStopOutcome::Stopped {
        asg_name: config.asg_name.clone(),
        youngest_age_secs: youngest.map(|(_, a)| a),
    })
}
