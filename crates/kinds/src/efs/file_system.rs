//! `efs.file-system`, found by creation token (its name), or by its `Name` tag when adopted
//! or restored. Outputs `id`, `arn`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Input, Properties};

/// A volume's file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSystem {
    /// Encrypted at rest.
    pub encrypted: bool,
    /// `generalPurpose`.
    pub performance_mode: String,
    /// `bursting`.
    pub throughput_mode: String,
    /// The file system policy (a document).
    pub file_system_policy: Value,
    /// An existing file system used instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<String>,
    /// A recovery point to create the file system from; read only by the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

/// Where a restored file system comes from, and with which role AWS Backup restores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFrom {
    /// The recovery point.
    pub recovery_point_arn: String,
    /// Its vault.
    pub backup_vault_name: Input<String>,
    /// The role AWS Backup restores with.
    pub iam_role_arn: Input<String>,
}

impl Properties for FileSystem {
    const KIND: &'static str = "efs.file-system";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/encrypted")
            .immutable("/performanceMode")
            .immutable("/adopt")
            // Read only by the create that restores the volume.
            .runtime_owned("/restoreFrom")
    }
}
