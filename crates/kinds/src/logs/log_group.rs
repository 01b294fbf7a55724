//! `logs.log-group`, by name. Outputs `arn` (without the `:*` `DescribeLogGroups` appends),
//! `name`.

use serde::{Deserialize, Serialize};

use crate::Properties;

/// A log group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroup {
    /// Days to keep events.
    pub retention_in_days: i32,
}

impl Properties for LogGroup {
    const KIND: &'static str = "logs.log-group";
}
