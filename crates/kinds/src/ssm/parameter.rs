//! `ssm.parameter`, by name. Outputs `name`, `version`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Properties;

/// A parameter holding JSON (stored serialized, deflated when large): the apply records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// Any JSON.
    pub value: Value,
}

impl Properties for Parameter {
    const KIND: &'static str = "ssm.parameter";
}
