//! `ecs.cluster-capacity-providers`: a cluster's providers; untaggable.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Input, Properties};

/// The capacity providers of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCapacityProviders {
    /// The cluster.
    pub cluster: Input<String>,
    /// Its providers, by name.
    pub capacity_providers: Vec<Input<String>>,
    /// The default strategy (empty: none).
    pub default_capacity_provider_strategy: Vec<Value>,
}

impl Properties for ClusterCapacityProviders {
    const KIND: &'static str = "ecs.cluster-capacity-providers";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/cluster")
            .unordered("/capacityProviders")
            .unordered("/defaultCapacityProviderStrategy")
    }
}
