//! `ecs.task-definition`: a family, observed as its latest active revision; a change registers
//! the next revision before the old one is deregistered. Outputs `arn`, `revision`.

use reconciler_engine::provider::{KindSpec, ReplaceStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Input, Properties};

/// A task definition (revisions are immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    /// The family.
    pub family: String,
    /// `bridge`: the container in its own network namespace, its ports published on the
    /// host (never `host`, which would share the host's network and metadata service).
    pub network_mode: String,
    /// `EC2`.
    pub requires_compatibilities: Vec<String>,
    /// The role ECS pulls images and reads secrets with.
    pub execution_role_arn: Input<String>,
    /// The containers, in ECS's JSON shape (`RegisterTaskDefinition`'s, camelCase).
    pub container_definitions: Vec<Value>,
    /// Host volumes, in ECS's JSON shape.
    pub volumes: Vec<Value>,
}

impl Properties for TaskDefinition {
    const KIND: &'static str = "ecs.task-definition";

    fn spec() -> KindSpec {
        let mut spec = KindSpec::new().replace_strategy(ReplaceStrategy::CreateBeforeDelete);
        for path in [
            "/family",
            "/networkMode",
            "/requiresCompatibilities",
            "/executionRoleArn",
            "/containerDefinitions",
            "/volumes",
        ] {
            spec = spec.immutable(path);
        }
        for path in [
            "/requiresCompatibilities",
            "/volumes",
            "/containerDefinitions/*/portMappings",
            "/containerDefinitions/*/environment",
            "/containerDefinitions/*/secrets",
            "/containerDefinitions/*/mountPoints",
        ] {
            spec = spec.unordered(path);
        }
        spec
    }
}
