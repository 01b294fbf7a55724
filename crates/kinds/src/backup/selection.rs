//! `backup.selection`, by name in its plan; untaggable and unchangeable (a change replaces
//! it). Outputs `id`.

use indexmap::IndexMap;
use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// The condition operators a selection takes, in the order the API lists them.
pub const OPERATORS: [&str; 4] = [
    "stringEquals",
    "stringNotEquals",
    "stringLike",
    "stringNotLike",
];

/// What a plan backs up: resources by ARN pattern, narrowed by tag conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// The plan.
    pub backup_plan_id: Input<String>,
    /// The role AWS Backup works with.
    pub iam_role_arn: Input<String>,
    /// ARN patterns.
    pub resources: Vec<String>,
    /// Conditions by operator (one of [`OPERATORS`]).
    pub conditions: IndexMap<String, Vec<Condition>>,
}

/// One tag condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `aws:ResourceTag/<key>`.
    pub condition_key: String,
    /// The value.
    pub condition_value: String,
}

impl Properties for Selection {
    const KIND: &'static str = "backup.selection";

    fn spec() -> KindSpec {
        let mut spec = KindSpec::new()
            .immutable("/backupPlanId")
            .immutable("/iamRoleArn")
            .immutable("/resources")
            .immutable("/conditions")
            .unordered("/resources");
        for key in OPERATORS {
            spec = spec.unordered(format!("/conditions/{key}"));
        }
        spec
    }
}
