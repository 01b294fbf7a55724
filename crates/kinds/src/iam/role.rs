//! `iam.role`, by name, created under path `/`. Outputs `arn`, `name`.

use indexmap::IndexMap;
use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Properties;

/// A role assumable by one AWS service, with its complete set of policies: managed policies
/// and inline policies not listed here are removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// What the role is for.
    pub description: String,
    /// Who may assume it (a policy document).
    pub assume_role_policy_document: Value,
    /// AWS-managed policies attached, by ARN.
    pub managed_policy_arns: Vec<String>,
    /// Inline policies, by name (documents).
    pub inline_policies: IndexMap<String, Value>,
    /// The ARN of the managed policy that caps the role's permissions (the Base's
    /// `permissionsBoundary`). Absent: the role's boundary is not managed, whatever it is; a
    /// `null` asks for no boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
}

impl Properties for Role {
    const KIND: &'static str = "iam.role";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/path")
            .unordered("/managedPolicyArns")
    }
}
