//! `ecs.cluster`, by name. Outputs `arn`, `name`.

use serde::{Deserialize, Serialize};

use crate::Properties;

/// A cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// `enabled` or `disabled`.
    pub container_insights: String,
}

impl Properties for Cluster {
    const KIND: &'static str = "ecs.cluster";
}
