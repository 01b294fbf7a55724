//! `events.rule` on the default bus, by name. Outputs `arn`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Input, Properties};

/// A rule and its complete set of targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// What it is for.
    pub description: String,
    /// `ENABLED`.
    pub state: String,
    /// The event pattern (EventBridge's JSON).
    pub event_pattern: Value,
    /// Targets (a set, by id).
    pub targets: Vec<Target>,
}

/// A target of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Its id within the rule.
    pub id: String,
    /// The function or topic.
    pub arn: Input<String>,
    /// A fixed input (JSON text) instead of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

impl Properties for Rule {
    const KIND: &'static str = "events.rule";

    fn spec() -> KindSpec {
        KindSpec::new().unordered("/targets")
    }
}
