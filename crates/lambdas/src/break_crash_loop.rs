//! break-crash-loop: the container keeps failing, so stop the instance.
//!
//! EventBridge sends the ECS `Task State Change` events of tasks that failed
//! to start or whose essential container exited with a non-zero code. The
//! daemon scheduler would restart such a task forever on a running instance,
//! costing money while nobody can play; setting the group's desired capacity
//! to 0 ends that, and the normal spin-down chain (DNS to the unavailable
//! address) follows.
//!
//! The event is only summarised for the logs: whatever it holds, the group is
//! scaled in, so a changed payload cannot keep a crash loop running.

use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::config::BreakCrashLoopConfig;
use crate::error::HandlerError;
use crate::events::TaskStopSummary;

/// Clients of the break-crash-loop handler, built once per cold start.
#[derive(Debug, Clone)]
pub struct BreakCrashLoopClients {
    /// Auto Scaling, in the group's region.
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl BreakCrashLoopClients {
    /// Builds the client from an SDK configuration whose region is the
    /// group's ([`BreakCrashLoopConfig::asg_region`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        BreakCrashLoopClients {
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
        }
    }
}

/// What break-crash-loop did for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakCrashLoopOutcome {
    /// The group that was scaled in.
    pub asg_name: String,
    /// Always 0.
    pub desired_capacity: i32,
    /// Why the task stopped, as the event told it.
    pub task: TaskStopSummary,
}

/// Handles one ECS task state change event.
pub async fn break_crash_loop(
    config: &BreakCrashLoopConfig,
    clients: &BreakCrashLoopClients,
    event: &Value,
) -> Result<BreakCrashLoopOutcome, HandlerError> {
    let task = TaskStopSummary::from_event(event);
    let exit_codes: Vec<String> = task
        .containers
        .iter()
        .map(|c| {
            let code = c.exit_code.map_or("none".to_owned(), |c| c.to_string());
            format!("{}={code}", c.name.as_deref().unwrap_or("?"))
        })
        .collect();
    warn!(
        task = task.task_arn.as_deref().unwrap_or("-"),
        stop_code = task.stop_code.as_deref().unwrap_or("-"),
        stopped_reason = task.stopped_reason.as_deref().unwrap_or("-"),
        exit_codes = %exit_codes.join(","),
        "the server's task stopped abnormally; stopping the instance"
    );

    clients
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&config.asg_name)
        .desired_capacity(0)
        .send()
        .await
        .map_err(HandlerError::aws("SetDesiredCapacity"))?;
    info!(asg = %config.asg_name, desired_capacity = 0, "server stop requested");

    Ok(BreakCrashLoopOutcome {
        asg_name: config.asg_name.clone(),
        desired_capacity: 0,
        task,
    })
}
