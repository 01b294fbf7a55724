//! `ecs.service` ([`reconciler_kinds::ecs::Service`]), by name in its cluster: one
//! `DescribeServices` per cluster and 10 names.
//!
//! A daemon service has no desired count: ECS places one task per container instance, and the
//! instance count is the Auto Scaling group's (runtime-owned) capacity.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    ClusterField, DeploymentConfiguration as Deployment, LaunchType, PropagateTags,
    SchedulingStrategy, Service as ServiceDescription, ServiceField,
};
use aws_sdk_ecs::Client;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::ecs::{DeploymentConfiguration, Service};
use serde_json::{json, Value};

use super::{describe_clusters, ecs_error, ecs_tags, tag_map, ACTIVE, INACTIVE};
use crate::autoscaling::{poll_until, Wait};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tags::is_managed;
use crate::util::{self, read_all, touches};

/// Names per `DescribeServices` call (the API's limit).
const SERVICES_PER_CALL: usize = 10;
/// Status of a service being deleted.
const DRAINING: &str = "DRAINING";

/// The client of services.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    pool: Arc<ClientPool>,
    delete_wait: Wait,
}

impl ServiceClient {
    /// A client over `pool`; a delete waits up to 10 minutes for the service to drain (its
    /// task stopping), so the cluster's delete and a re-creation under the same name can follow.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ServiceClient {
            pool,
            delete_wait: Wait::new(Duration::from_secs(5), Duration::from_secs(10 * 60)),
        }
    }

    /// Changes how long a delete waits for the service to become inactive.
    pub fn with_delete_wait(mut self, wait: Wait) -> Self {
        self.delete_wait = wait;
        self
    }

    /// Reads one service back after a create or update.
    async fn read_back(
        &self,
        desired: &DesiredResource,
        cluster: &str,
    ) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        describe_in(&client, cluster, std::slice::from_ref(&desired.name))
            .await?
            .iter()
            .find(|s| s.status() == Some(ACTIVE))
            .map(|s| service_observation(desired, s))
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "service {} is not visible yet",
                    desired.name
                ))
            })
    }
}

/// Services called `names` in `cluster`, by name, whatever their status. A missing cluster
/// holds no services.
async fn describe_in(
    client: &Client,
    cluster: &str,
    names: &[String],
) -> Result<Vec<ServiceDescription>, ProviderError> {
    let mut out = Vec::new();
    for chunk in names.chunks(SERVICES_PER_CALL) {
        let page = client
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await;
        match page {
            Ok(page) => out.extend(page.services().iter().cloned()),
            Err(err) => {
                let e = ecs_error(&format!("DescribeServices {cluster}"), err);
                if e.class == ErrorClass::NotFound {
                    return Ok(Vec::new());
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// The active clusters carrying the ownership tag, as ARNs: where services of unknown cluster
/// are looked for.
async fn managed_clusters(client: &Client) -> Result<Vec<String>, ProviderError> {
    let arns: Vec<String> = client
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| ecs_error("ListClusters", e))?;
    let clusters = describe_clusters(client, &arns, &[ClusterField::Tags]).await?;
    let mut managed: Vec<String> = clusters
        .values()
        .filter(|c| c.status() == Some(ACTIVE) && is_managed(&tag_map(c.tags())))
        .filter_map(|c| c.cluster_arn().map(str::to_string))
        .collect();
    managed.sort();
    Ok(managed)
}

/// The desired cluster of `d` when observation knows it. Render gives the cluster's ARN, but a
/// graph may hold a reference to the cluster instead, which observation cannot resolve.
fn known_cluster(d: &DesiredResource) -> Option<&str> {
    d.properties.get("cluster").and_then(Value::as_str)
}

/// Which services to look for in which clusters: the desired cluster when it is known,
/// otherwise every managed cluster.
async fn clusters_to_search(
    client: &Client,
    desired: &[DesiredResource],
) -> Result<IndexMap<String, Vec<String>>, ProviderError> {
    let mut by_cluster: IndexMap<String, Vec<String>> = IndexMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for d in desired {
        match known_cluster(d) {
            Some(c) => by_cluster
                .entry(c.to_string())
                .or_default()
                .push(d.name.clone()),
            None => unknown.push(d.name.clone()),
        }
    }
    if !unknown.is_empty() {
        for arn in managed_clusters(client).await? {
            let names = by_cluster.entry(arn).or_default();
            names.extend(unknown.iter().cloned());
        }
    }
    Ok(by_cluster)
}

/// The live services found in `by_cluster`, by name (one name may live in several clusters).
async fn live_services(
    client: &Client,
    by_cluster: IndexMap<String, Vec<String>>,
) -> Result<HashMap<String, Vec<ServiceDescription>>, ProviderError> {
    // One cluster per call (ten services each), clusters read side by side.
    let reads = by_cluster
        .into_iter()
        .map(|(cluster, mut names)| {
            let client = client.clone();
            names.sort();
            names.dedup();
            async move { describe_in(&client, &cluster, &names).await }
        })
        .collect();
    let mut found: HashMap<String, Vec<ServiceDescription>> = HashMap::new();
    for services in read_all(reads).await? {
        for s in services {
            // Deleted services linger as DRAINING, then INACTIVE: absent.
            if s.status() == Some(DRAINING) || s.status() == Some(INACTIVE) {
                continue;
            }
            if let Some(name) = s.service_name() {
                found.entry(name.to_string()).or_default().push(s);
            }
        }
    }
    Ok(found)
}

/// The one service among `candidates` that is `d`'s (in its cluster, when known); an error
/// when several clusters hold one of that name and nothing tells which.
fn pick<'a>(
    d: &DesiredResource,
    candidates: &'a [ServiceDescription],
) -> Result<Option<&'a ServiceDescription>, ProviderError> {
    let wanted = known_cluster(d).map(cluster_name);
    let matching: Vec<&ServiceDescription> = candidates
        .iter()
        .filter(|s| wanted.is_none_or(|w| s.cluster_arn().map(cluster_name) == Some(w)))
        .collect();
    match matching.as_slice() {
        [] => Ok(None),
        [s] => Ok(Some(*s)),
        many => {
            let clusters: Vec<&str> = many.iter().filter_map(|s| s.cluster_arn()).collect();
            Err(ProviderError::terminal(format!(
                "service {} exists in several clusters ({}); remove the stray ones",
                d.name,
                clusters.join(", ")
            )))
        }
    }
}

fn service_observation(desired: &DesiredResource, s: &ServiceDescription) -> Observed {
    let deployment = s.deployment_configuration().map(|d| {
        json!({
            "maximumPercent": d.maximum_percent(),
            "minimumHealthyPercent": d.minimum_healthy_percent(),
        })
    });
    util::observed(
        desired,
        json!({
            "cluster": s.cluster_arn(),
            "taskDefinition": s.task_definition(),
            "launchType": s.launch_type().map(LaunchType::as_str),
            "schedulingStrategy": s.scheduling_strategy().map(SchedulingStrategy::as_str),
            "deploymentConfiguration": deployment,
            "enableEcsManagedTags": s.enable_ecs_managed_tags(),
            "propagateTags": s.propagate_tags().map(PropagateTags::as_str),
        }),
        [
            ("arn", json!(s.service_arn())),
            ("name", json!(s.service_name())),
        ],
        tag_map(s.tags()),
    )
}

/// The desired deployment configuration as the SDK's.
fn deployment(d: &DeploymentConfiguration) -> Deployment {
    Deployment::builder()
        .maximum_percent(d.maximum_percent)
        .minimum_healthy_percent(d.minimum_healthy_percent)
        .build()
}

/// The cluster name inside a cluster ARN (or the name itself).
fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once('/').map_or(cluster, |(_, n)| n)
}

#[async_trait]
impl KindClient<Service> for ServiceClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let client = self.pool.ecs(region);
        let by_cluster = clusters_to_search(&client, desired).await?;
        let found = live_services(&client, by_cluster).await?;
        let mut out = Vec::new();
        for d in desired {
            let Some(candidates) = found.get(&d.name) else {
                continue;
            };
            if let Some(s) = pick(d, candidates)? {
                out.push(service_observation(d, s));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Service,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        self.pool
            .ecs(&desired.region)
            .create_service()
            .cluster(&props.cluster)
            .service_name(name)
            .task_definition(props.task_definition.get("taskDefinition")?)
            .launch_type(LaunchType::from(props.launch_type.as_str()))
            .scheduling_strategy(SchedulingStrategy::from(props.scheduling_strategy.as_str()))
            .deployment_configuration(deployment(&props.deployment_configuration))
            .enable_ecs_managed_tags(props.enable_ecs_managed_tags)
            .propagate_tags(PropagateTags::from(props.propagate_tags.as_str()))
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateService {name}"), e))?;
        self.read_back(desired, &props.cluster).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Service,
        _observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        let mut call = self
            .pool
            .ecs(&desired.region)
            .update_service()
            .cluster(&props.cluster)
            .service(name);
        let mut any = false;
        if touches(changes, "taskDefinition") {
            call = call.task_definition(props.task_definition.get("taskDefinition")?);
            any = true;
        }
        if touches(changes, "deploymentConfiguration") {
            call = call.deployment_configuration(deployment(&props.deployment_configuration));
            any = true;
        }
        if touches(changes, "enableEcsManagedTags") {
            call = call.enable_ecs_managed_tags(props.enable_ecs_managed_tags);
            any = true;
        }
        if touches(changes, "propagateTags") {
            call = call.propagate_tags(PropagateTags::from(props.propagate_tags.as_str()));
            any = true;
        }
        if any {
            call.send()
                .await
                .map_err(|e| ecs_error(&format!("UpdateService {name}"), e))?;
        }
        self.read_back(desired, &props.cluster).await
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
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let name = &desired.name;
        let cluster = observed
            .properties
            .get("cluster")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::terminal(format!("{}: the observation has no cluster", desired.id))
            })?;
        // force: a daemon service cannot be scaled to zero first.
        let deleted = client
            .delete_service()
            .cluster(cluster)
            .service(name)
            .force(true)
            .send()
            .await;
        if let Err(err) = deleted {
            let e = ecs_error(&format!("DeleteService {name}"), err);
            if e.class != ErrorClass::NotFound {
                return Err(e);
            }
        }
        // DRAINING until the task has stopped; the cluster cannot go before that.
        let client = &client;
        let names = std::slice::from_ref(name);
        poll_until(
            self.delete_wait,
            &format!("deleting service {name}"),
            || async move {
                Ok(describe_in(client, cluster, names)
                    .await?
                    .iter()
                    .all(|s| s.status() == Some(INACTIVE)))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_come_from_arns() {
        assert_eq!(cluster_name("arn:aws:ecs:eu-west-1:1:cluster/rc-x"), "rc-x");
        assert_eq!(cluster_name("rc-x"), "rc-x");
    }
}
