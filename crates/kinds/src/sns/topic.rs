//! `sns.topic`, by name. Outputs `arn`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Properties;

/// A topic with its access policy and subscriptions (a set: endpoints not listed are
/// unsubscribed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    /// The name shown in messages.
    pub display_name: String,
    /// The access policy (a document).
    pub policy: Value,
    /// Subscriptions.
    pub subscriptions: Vec<Subscription>,
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `email`, `sms`, `https`, ...
    pub protocol: String,
    /// The address.
    pub endpoint: String,
}

impl Properties for Topic {
    const KIND: &'static str = "sns.topic";

    fn spec() -> KindSpec {
        KindSpec::new().unordered("/subscriptions")
    }
}
