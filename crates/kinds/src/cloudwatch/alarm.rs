//! `cloudwatch.alarm`, a metric-math alarm by name. Outputs `arn`. Its state is the running
//! system's.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Input, Properties};

/// A metric-math alarm (at most 10 metrics, AWS's limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// What it means.
    pub alarm_description: String,
    /// The metric queries and expressions (`PutMetricAlarm`'s `Metrics`, camelCase).
    pub metrics: Vec<Value>,
    /// `LessThanOrEqualToThreshold`, ...
    pub comparison_operator: String,
    /// The threshold (a JSON number as written: an integer stays one).
    pub threshold: serde_json::Number,
    /// Periods evaluated.
    pub evaluation_periods: i32,
    /// Of which breaching.
    pub datapoints_to_alarm: i32,
    /// `missing`, `notBreaching`, ...
    pub treat_missing_data: String,
    /// What it triggers (a set).
    pub alarm_actions: Vec<Input<String>>,
}

impl Properties for Alarm {
    const KIND: &'static str = "cloudwatch.alarm";

    fn spec() -> KindSpec {
        // The state is the running system's; render never sets it, and declaring it keeps any
        // future desired value from being "repaired". AWS keeps the actions as a set.
        KindSpec::new()
            .runtime_owned("/stateValue")
            .unordered("/alarmActions")
    }
}
