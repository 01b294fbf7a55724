//! `ecs.service`, by name in its cluster. Outputs `arn`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A daemon service: one task on each container instance of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// The cluster, by ARN (known at render time, so observation describes the service in its
    /// own cluster).
    pub cluster: String,
    /// The task definition revision.
    pub task_definition: Input<String>,
    /// `EC2`.
    pub launch_type: String,
    /// `DAEMON`.
    pub scheduling_strategy: String,
    /// How a new revision replaces the running task.
    pub deployment_configuration: DeploymentConfiguration,
    /// ECS tags the tasks it starts.
    pub enable_ecs_managed_tags: bool,
    /// `SERVICE`: tasks get the service's tags.
    pub propagate_tags: String,
}

/// How a deployment replaces tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    /// Tasks that may run during a deployment, in percent of the desired count.
    pub maximum_percent: i32,
    /// Tasks that must keep running, in percent.
    pub minimum_healthy_percent: i32,
}

impl Properties for Service {
    const KIND: &'static str = "ecs.service";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/cluster")
            .immutable("/launchType")
            .immutable("/schedulingStrategy")
    }
}
