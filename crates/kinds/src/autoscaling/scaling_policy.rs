//! `autoscaling.scaling-policy`, by name in its group. Outputs `arn`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::Properties;

/// A step scaling policy (the sleep path's "exactly zero").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// The group, by its deterministic name (so observe can list its policies).
    pub auto_scaling_group_name: String,
    /// `StepScaling`.
    pub policy_type: String,
    /// `ExactCapacity`.
    pub adjustment_type: String,
    /// The steps.
    pub step_adjustments: Vec<StepAdjustment>,
}

/// One step: an interval of the alarm's metric and the capacity to set in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepAdjustment {
    /// Lower bound of the interval (relative to the threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_lower_bound: Option<f64>,
    /// Upper bound of the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_interval_upper_bound: Option<f64>,
    /// The capacity (for `ExactCapacity`).
    pub scaling_adjustment: i32,
}

impl Properties for ScalingPolicy {
    const KIND: &'static str = "autoscaling.scaling-policy";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/autoScalingGroupName")
            .unordered("/stepAdjustments")
    }
}
