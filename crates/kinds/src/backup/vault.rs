//! `backup.vault`, by name; always retained (it holds the recovery points). Outputs `arn`,
//! `name`.

use serde::{Deserialize, Serialize};

use crate::Properties;

/// A backup vault: nothing to set but its name and tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Vault {}

impl Properties for Vault {
    const KIND: &'static str = "backup.vault";
}
