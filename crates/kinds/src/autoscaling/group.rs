//! `autoscaling.group`, by name. Outputs `arn`, `name`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A server's group. Its desired capacity belongs to the running system (the wake and sleep
/// path), so it is never compared or written after the create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The launch template.
    pub launch_template_id: Input<String>,
    /// Its version, `$Latest`.
    pub launch_template_version: String,
    /// Always 0.
    pub min_size: i32,
    /// Always 1.
    pub max_size: i32,
    /// The subnets, one per zone.
    pub vpc_zone_identifier: Vec<Input<String>>,
    /// `EC2`.
    pub health_check_type: String,
    /// Scale-in protection of new instances (ECS managed termination protection needs it).
    pub new_instances_protected_from_scale_in: bool,
    /// Topics told about launch and terminate errors.
    pub notifications: Vec<Notification>,
    /// Runtime-owned: set once at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_capacity: Option<i32>,
}

/// A notification configuration: a topic and the event types it hears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The topic.
    pub topic_arn: Input<String>,
    /// `autoscaling:EC2_INSTANCE_LAUNCH_ERROR`, ...
    pub types: Vec<String>,
}

impl Properties for Group {
    const KIND: &'static str = "autoscaling.group";

    fn spec() -> KindSpec {
        KindSpec::new()
            .runtime_owned("/desiredCapacity")
            .unordered("/vpcZoneIdentifier")
            .unordered("/notifications")
            .unordered("/notifications/*/types")
    }
}
