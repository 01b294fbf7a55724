//! `iam.instance-profile`, by name, under path `/`. Outputs `arn`, `name`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// An instance profile holding the instance role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceProfile {
    /// Its roles, by name (AWS allows one).
    pub roles: Vec<Input<String>>,
}

impl Properties for InstanceProfile {
    const KIND: &'static str = "iam.instance-profile";

    fn spec() -> KindSpec {
        KindSpec::new().immutable("/path").unordered("/roles")
    }
}
