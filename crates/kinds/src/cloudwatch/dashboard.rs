//! `cloudwatch.dashboard`, by name; untaggable.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Properties;

/// A dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Its body (CloudWatch's dashboard JSON).
    pub body: Value,
}

impl Properties for Dashboard {
    const KIND: &'static str = "cloudwatch.dashboard";
}
