//! `logs.resource-policy`, account-wide by name (at most ten per region).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Properties;

/// A CloudWatch Logs resource policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// The policy document.
    pub policy_document: Value,
}

impl Properties for ResourcePolicy {
    const KIND: &'static str = "logs.resource-policy";
}
