//! `ecs.cluster` ([`reconciler_kinds::ecs::Cluster`]), by name: `DescribeClusters`, shared
//! with the cluster's capacity providers (see [`super::observed_clusters`]).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecs::types::{Cluster as ClusterDescription, ClusterSetting, ClusterSettingName};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ecs::Cluster;
use serde_json::json;

use super::{ecs_error, ecs_tags, in_answer, observed_clusters, tag_map, with_desired_tags};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// The client of clusters.
#[derive(Debug, Clone)]
pub struct ClusterClient {
    pool: Arc<ClientPool>,
}

impl ClusterClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ClusterClient { pool }
    }
}

fn cluster_observation(desired: &DesiredResource, c: &ClusterDescription) -> Observed {
    let insights = c
        .settings()
        .iter()
        .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
        .and_then(ClusterSetting::value);
    util::observed(
        desired,
        json!({ "containerInsights": insights }),
        [
            ("arn", json!(c.cluster_arn())),
            ("name", json!(c.cluster_name())),
        ],
        tag_map(c.tags()),
    )
}

fn insights_setting(value: &str) -> ClusterSetting {
    ClusterSetting::builder()
        .name(ClusterSettingName::ContainerInsights)
        .value(value)
        .build()
}

#[async_trait]
impl KindClient<Cluster> for ClusterClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let clusters = observed_clusters(&self.pool, region, desired).await?;
        Ok(desired
            .iter()
            .filter_map(|d| Some(cluster_observation(d, clusters.get(&d.name)?)))
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Cluster,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        let out = self
            .pool
            .ecs(&desired.region)
            .create_cluster()
            .cluster_name(name)
            .settings(insights_setting(&props.container_insights))
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateCluster {name}"), e))?;
        let cluster = in_answer(out.cluster(), &format!("CreateCluster {name}"), "cluster")?;
        Ok(with_desired_tags(
            cluster_observation(desired, cluster),
            desired,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Cluster,
        _observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The insights setting is the only property.
        let name = desired.name.as_str();
        self.pool
            .ecs(&desired.region)
            .update_cluster_settings()
            .cluster(name)
            .settings(insights_setting(&props.container_insights))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("UpdateClusterSettings {name}"), e))?;
        self.observe(&desired.region, std::slice::from_ref(desired))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::not_found(format!("cluster {name} vanished")))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        // Refused while services, tasks or instances remain (retried until they are gone). The
        // cluster then lingers as INACTIVE, which observation treats as absent.
        let name = desired.name.as_str();
        self.pool
            .ecs(&desired.region)
            .delete_cluster()
            .cluster(name)
            .send()
            .await
            .map_err(|e| ecs_error(&format!("DeleteCluster {name}"), e))?;
        Ok(())
    }
}
