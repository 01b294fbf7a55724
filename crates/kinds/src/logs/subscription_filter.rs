//! `logs.subscription-filter`, by filter name in its group; untaggable (at most two per
//! group).

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A subscription filter that sends matching events to a Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    /// The group, by its deterministic name (so observe knows which group to list).
    pub log_group_name: String,
    /// The filter pattern (quoted terms are case-sensitive).
    pub filter_pattern: String,
    /// The destination function.
    pub destination_arn: Input<String>,
}

impl Properties for SubscriptionFilter {
    const KIND: &'static str = "logs.subscription-filter";

    fn spec() -> KindSpec {
        // A filter belongs to its group: moving it is a new filter.
        KindSpec::new().immutable("/logGroupName")
    }
}
