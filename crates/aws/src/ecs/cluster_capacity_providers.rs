//! `ecs.cluster-capacity-providers` ([`reconciler_kinds::ecs::ClusterCapacityProviders`]):
//! which capacity providers a cluster uses. Its AWS name is the cluster's name, and it is read
//! from the cluster's description (see [`super::observed_clusters`]). Untaggable.
//!
//! `PutClusterCapacityProviders` replaces both lists, so create and update are the same call
//! and delete puts empty lists. Outputs the cluster's `arn` and `name`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecs::types::{CapacityProviderStrategyItem, Cluster as ClusterDescription};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ecs::ClusterCapacityProviders;
use serde_json::{json, Value};

use super::{ecs_error, in_answer, observed_clusters};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// The client of cluster capacity provider associations.
#[derive(Debug, Clone)]
pub struct ClusterCapacityProvidersClient {
    pool: Arc<ClientPool>,
}

impl ClusterCapacityProvidersClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ClusterCapacityProvidersClient { pool }
    }

    async fn put(
        &self,
        desired: &DesiredResource,
        props: &ClusterCapacityProviders,
    ) -> Result<Observed, ProviderError> {
        let cluster = props.cluster.get("cluster")?;
        let providers = props
            .capacity_providers
            .iter()
            .map(|p| p.get("capacityProviders").cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let call = format!("PutClusterCapacityProviders {cluster}");
        let out = self
            .pool
            .ecs(&desired.region)
            .put_cluster_capacity_providers()
            .cluster(cluster)
            .set_capacity_providers(Some(providers))
            .set_default_capacity_provider_strategy(Some(strategy(
                desired,
                &props.default_capacity_provider_strategy,
            )?))
            .send()
            .await
            .map_err(|e| ecs_error(&call, e))?;
        let c = in_answer(out.cluster(), &call, "cluster")?;
        Ok(association_observation(desired, c))
    }
}

/// The desired default strategy as SDK items.
fn strategy(
    desired: &DesiredResource,
    items: &[Value],
) -> Result<Vec<CapacityProviderStrategyItem>, ProviderError> {
    items
        .iter()
        .map(|item| {
            let provider = item
                .get("capacityProvider")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    util::missing(desired, "defaultCapacityProviderStrategy/capacityProvider")
                })?;
            let int = |k: &str| {
                item.get(k)
                    .and_then(Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
            };
            CapacityProviderStrategyItem::builder()
                .capacity_provider(provider)
                .set_weight(int("weight"))
                .set_base(int("base"))
                .build()
                .map_err(|e| ProviderError::terminal(format!("{}: {e}", desired.id)))
        })
        .collect()
}

fn association_observation(desired: &DesiredResource, c: &ClusterDescription) -> Observed {
    let strategy: Vec<Value> = c
        .default_capacity_provider_strategy()
        .iter()
        .map(|s| {
            json!({
                "capacityProvider": s.capacity_provider(),
                "weight": s.weight(),
                "base": s.base(),
            })
        })
        .collect();
    util::observed(
        desired,
        json!({
            "cluster": c.cluster_name(),
            "capacityProviders": c.capacity_providers(),
            "defaultCapacityProviderStrategy": strategy,
        }),
        [
            ("arn", json!(c.cluster_arn())),
            ("name", json!(c.cluster_name())),
        ],
        IndexMap::new(),
    )
}

/// Whether `desired` asks for no provider at all (providers still unresolved count as none).
fn wants_none(desired: &DesiredResource) -> Result<bool, ProviderError> {
    let props = reconciler_kinds::read::<ClusterCapacityProviders>(desired)?;
    Ok(props.capacity_providers.iter().all(|p| p.known().is_none())
        && props.default_capacity_provider_strategy.is_empty())
}

#[async_trait]
impl KindClient<ClusterCapacityProviders> for ClusterCapacityProvidersClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let clusters = observed_clusters(&self.pool, region, desired).await?;
        let mut out = Vec::new();
        for d in desired {
            let Some(c) = clusters.get(&d.name) else {
                continue;
            };
            // A cluster without providers has no association to speak of, unless that is
            // exactly what is wanted.
            let attached = !c.capacity_providers().is_empty()
                || !c.default_capacity_provider_strategy().is_empty();
            if attached || wants_none(d)? {
                out.push(association_observation(d, c));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &ClusterCapacityProviders,
    ) -> Result<Observed, ProviderError> {
        self.put(desired, props).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &ClusterCapacityProviders,
        _observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        self.put(desired, props).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let cluster = observed
            .properties
            .get("cluster")
            .and_then(Value::as_str)
            .unwrap_or(&desired.name);
        // Refused (ResourceInUse) while tasks still run on a provider: retried.
        self.pool
            .ecs(&desired.region)
            .put_cluster_capacity_providers()
            .cluster(cluster)
            .set_capacity_providers(Some(Vec::new()))
            .set_default_capacity_provider_strategy(Some(Vec::new()))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("PutClusterCapacityProviders {cluster}"), e))?;
        Ok(())
    }
}
