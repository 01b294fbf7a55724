//! `ecs.capacity-provider`, by name. Outputs `arn`, `name`. Managed scaling is always created
//! disabled: the group's capacity belongs to the wake and sleep path.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A capacity provider over a server's group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProvider {
    /// The group.
    pub auto_scaling_group_arn: Input<String>,
    /// `ENABLED`: ECS drains the task before the instance goes.
    pub managed_draining: String,
    /// `DISABLED` or `ENABLED`.
    pub managed_termination_protection: String,
}

impl Properties for CapacityProvider {
    const KIND: &'static str = "ecs.capacity-provider";

    fn spec() -> KindSpec {
        KindSpec::new().immutable("/autoScalingGroupArn")
    }
}
