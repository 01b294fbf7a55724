//! `efs.mount-target`, one per file system and zone; untaggable. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A mount target of a file system in one subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountTarget {
    /// Its file system.
    pub file_system_id: Input<String>,
    /// Its subnet.
    pub subnet_id: Input<String>,
    /// Its security groups.
    pub security_groups: Vec<Input<String>>,
}

impl Properties for MountTarget {
    const KIND: &'static str = "efs.mount-target";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/fileSystemId")
            .immutable("/subnetId")
            .unordered("/securityGroups")
    }
}
