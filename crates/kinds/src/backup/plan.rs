//! `backup.plan`, by name. Outputs `id`, `arn`. Only the rule fields the desired rules name
//! are compared, so defaults AWS fills in (`scheduleExpressionTimezone` = `Etc/UTC`, rule ids)
//! are no drift.

use indexmap::IndexMap;
use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A backup plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Its rules (a set).
    pub rules: Vec<Rule>,
}

/// One rule: when to back up into which vault, and how long to keep the copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The rule's name.
    pub rule_name: String,
    /// The vault.
    pub target_backup_vault_name: Input<String>,
    /// A cron expression.
    pub schedule_expression: String,
    /// Its time zone (AWS's default: `Etc/UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression_timezone: Option<String>,
    /// Minutes a job may wait to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_window_minutes: Option<i64>,
    /// Minutes a job may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_window_minutes: Option<i64>,
    /// Continuous backups (not for EFS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_continuous_backup: Option<bool>,
    /// Tags of the recovery points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_tags: Option<IndexMap<String, String>>,
    /// How long copies are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// How long a rule's copies are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Days until a copy is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_days: Option<i64>,
    /// Days until a copy moves to cold storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_cold_storage_after_days: Option<i64>,
    /// Archive tier for resources that support it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_in_to_archive_for_supported_resources: Option<bool>,
}

impl Properties for Plan {
    const KIND: &'static str = "backup.plan";

    fn spec() -> KindSpec {
        KindSpec::new().unordered("/rules")
    }
}
