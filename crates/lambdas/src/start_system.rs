//! start-system: a DNS query for the server arrived, so start the instance.
//!
//! CloudWatch Logs invokes this function with each batch of Route 53 query-log
//! lines that match the server's name. It does two idempotent calls and does
//! not look at the current state, so repeated batches are harmless:
//!
//! 1. PutMetricData of the DNS-traffic metric with the idle threshold plus
//!    one. That minute then counts as active for the idle alarm, which keeps a
//!    just-started instance from being judged idle while it boots, and moves an
//!    alarm left in ALARM by the last shutdown back to OK so it can fire again.
//! 2. UpdateAutoScalingGroup with DesiredCapacity 1.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::StartSystemConfig;
use crate::error::HandlerError;
use crate::events::LogBatchReading;

/// Clients of the start-system handler, built once per cold start.
#[derive(Debug, Clone)]
pub struct StartSystemClients {
    /// CloudWatch, in the group's region (where the idle alarm reads the metric).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Auto Scaling, in the group's region.
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl StartSystemClients {
    /// Builds the clients from one SDK configuration, whose region must be
    /// the group's ([`StartSystemConfig::asg_region`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        StartSystemClients {
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
        }
    }
}

/// The datum start-system pushed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPushed {
    /// CloudWatch namespace.
    pub namespace: String,
    /// Metric name.
    pub name: String,
    /// Pushed value (threshold plus one), unit Count.
    pub value: f64,
}

/// What start-system did for one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartSystemOutcome {
    /// The group that was asked for one instance.
    pub asg_name: String,
    /// Always 1.
    pub desired_capacity: i32,
    /// The metric datum that was pushed.
    pub metric: MetricPushed,
    /// What the triggering log batch contained, for the logs.
    pub batch: LogBatchReading,
}

/// Handles one CloudWatch Logs subscription batch.
///
/// The payload is only summarised for the logs; whatever it holds, both calls
/// are made. Both are attempted even when the first fails, because starting
/// the server matters more than the metric: a failed metric push is still
/// returned as the error (after the scale-up), so it shows in the function's
/// error count.
pub async fn start_system(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
    event: &Value,
) -> Result<StartSystemOutcome, HandlerError> {
    let batch = LogBatchReading::from_event(event);
    match &batch {
        LogBatchReading::Read(summary) => info!(
            log_events = summary.log_events,
            queried_names = summary.queried_names,
            message_type = summary.message_type.as_deref().unwrap_or("unknown"),
            "DNS query batch received"
        ),
        LogBatchReading::Unreadable { reason } => {
            warn!(reason = %reason, "the payload is not a readable log batch; starting anyway")
        }
    }

    let metric = put_metric(config, clients).await;
    if let Err(err) = &metric {
        error!(error = %err, "pushing the DNS-traffic metric failed; starting the server anyway");
    }

    clients
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&config.asg_name)
        .desired_capacity(1)
        .send()
        .await
        .map_err(HandlerError::aws("UpdateAutoScalingGroup"))?;
    info!(asg = %config.asg_name, desired_capacity = 1, "server start requested");

    metric?;
    Ok(StartSystemOutcome {
        asg_name: config.asg_name.clone(),
        desired_capacity: 1,
        metric: MetricPushed {
            namespace: config.metric_namespace.clone(),
            name: config.metric_name.clone(),
            value: config.metric_value,
        },
        batch,
    })
}

async fn put_metric(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
) -> Result<(), HandlerError> {
    let dimensions = config
        .metric_dimensions
        .iter()
        .map(|d| Dimension::builder().name(&d.name).value(&d.value).build())
        .collect();
    let datum = MetricDatum::builder()
        .metric_name(&config.metric_name)
        .set_dimensions(Some(dimensions))
        .unit(StandardUnit::Count)
        .value(config.metric_value)
        .build();
    clients
        .cloudwatch
        .put_metric_data()
        .namespace(&config.metric_namespace)
        .metric_data(datum)
        .send()
        .await
        .map_err(HandlerError::aws("PutMetricData"))?;
    info!(
        namespace = %config.metric_namespace,
        metric = %config.metric_name,
        value = config.metric_value,
        "DNS-traffic metric pushed"
    );
    Ok(())
}
