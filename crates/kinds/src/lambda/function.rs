//! `lambda.function`, by name. Outputs `arn`, `name`. Everything changes in place: the
//! architecture with the code, the rest with the configuration.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A function running the `reconciler-lambda` binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// What it does (at most 256 characters).
    pub description: String,
    /// `provided.al2023`.
    pub runtime: String,
    /// `bootstrap`.
    pub handler: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
    /// MB.
    pub memory_size: i32,
    /// Seconds.
    pub timeout: i32,
    /// Its execution role.
    pub role_arn: Input<String>,
    /// The binary to package; the package's hash decides code updates.
    pub artifact: String,
    /// Environment variables (names in [`super::env`]).
    pub environment: IndexMap<String, Input<String>>,
    /// Its log group, by name.
    pub log_group: String,
}

impl Properties for Function {
    const KIND: &'static str = "lambda.function";
}
