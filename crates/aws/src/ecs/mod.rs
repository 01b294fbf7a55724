//! ECS: the server's cluster, its capacity provider over the Auto Scaling group, the
//! association between the two, the task definition and the daemon service, one file each.
//!
//! Calls per observation (each kind, one region):
//! - `ecs.cluster`, `ecs.cluster-capacity-providers`: one `DescribeClusters` per 100 names,
//!   shared by both kinds (see [`observed_clusters`]).
//! - `ecs.capacity-provider`: one `DescribeCapacityProviders` per 100 names (pages included).
//! - `ecs.task-definition`: one family's latest ACTIVE revision per `DescribeTaskDefinition`
//!   (ECS has no batch describe for task definitions); with several families, one paged
//!   `ListTaskDefinitions` first, and the revisions whose content tag vouches for the desired
//!   definition (see [`TaskDefinitionClient`]) are not described.
//! - `ecs.service`: services live inside a cluster and there is no account-wide describe. One
//!   `DescribeServices` per cluster and 10 names; where the desired `cluster` is a reference
//!   that observation cannot resolve, the client lists the clusters (`ListClusters`), keeps the
//!   active ones carrying the ownership tag (one `DescribeClusters` per 100) and looks in each.
//!
//! Deleted clusters, capacity providers, services and task definition revisions linger as
//! `INACTIVE` (services as `DRAINING` first); all of them count as absent.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ecs::types::{Cluster as ClusterDescription, ClusterField, Tag};
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::util;

mod capacity_provider;
mod cluster;
mod cluster_capacity_providers;
mod containers;
mod service;
mod task_definition;

pub use capacity_provider::CapacityProviderClient;
pub use cluster::ClusterClient;
pub use cluster_capacity_providers::ClusterCapacityProvidersClient;
pub use service::ServiceClient;
pub use task_definition::TaskDefinitionClient;

/// Names per `DescribeClusters` / `DescribeCapacityProviders` call.
const CLUSTERS_PER_CALL: usize = 100;
/// Status of a deleted cluster, capacity provider or service that ECS still lists.
const INACTIVE: &str = "INACTIVE";
/// Status of a live cluster or service.
const ACTIVE: &str = "ACTIVE";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(ClusterClient::new(pool.clone()))),
        Arc::new(Managed::new(CapacityProviderClient::new(pool.clone()))),
        Arc::new(Managed::new(ClusterCapacityProvidersClient::new(
            pool.clone(),
        ))),
        Arc::new(Managed::new(TaskDefinitionClient::new(pool.clone()))),
        Arc::new(Managed::new(ServiceClient::new(pool.clone()))),
    ]
}

/// Classifies an ECS error, adding what the shared table cannot know: a cluster that still holds
/// services, tasks or instances will be empty once they are gone; a service that is not active
/// is as good as missing; a service name still draining refuses a new service ("not
/// idempotent") until the old one is inactive; a capacity provider name in use answers with a
/// generic `ClientException`.
fn ecs_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = classify(what, err);
    let message = e.message.to_ascii_lowercase();
    match e.code.as_deref() {
        Some(
            "ClusterContainsServicesException"
            | "ClusterContainsTasksException"
            | "ClusterContainsContainerInstancesException"
            | "ClusterContainsCapacityProviderException",
        ) => e.class = ErrorClass::EventualConsistency,
        Some("ServiceNotActiveException") => e.class = ErrorClass::NotFound,
        Some("InvalidParameterException") if message.contains("not idempotent") => {
            e.class = ErrorClass::EventualConsistency
        }
        Some("ClientException") if message.contains("already exist") => {
            e.class = ErrorClass::Conflict
        }
        Some("ClientException")
            if message.contains("in use") || message.contains("is associated") =>
        {
            e.class = ErrorClass::EventualConsistency
        }
        Some("ClientException") if message.contains("unable to describe task definition") => {
            e.class = ErrorClass::NotFound
        }
        _ => {}
    }
    e
}

/// ECS tags as a map.
fn tag_map(tags: &[Tag]) -> IndexMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// A map as ECS tags.
fn ecs_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Sets `set` and removes `remove` on the observed object, by its ARN: the one tag write of
/// every taggable ECS kind.
async fn write_tags(
    pool: &ClientPool,
    desired: &DesiredResource,
    observed: &Observed,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    let client = pool.ecs(&desired.region);
    let arn = util::output(desired, observed, "arn")?;
    if !set.is_empty() {
        client
            .tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(ecs_tags(set)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("TagResource {arn}"), e))?;
    }
    if !remove.is_empty() {
        client
            .untag_resource()
            .resource_arn(&arn)
            .set_tag_keys(Some(remove.to_vec()))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("UntagResource {arn}"), e))?;
    }
    Ok(())
}

/// The object an answer should hold, or a transient error saying which call left it out.
fn in_answer<'a, T>(value: Option<&'a T>, call: &str, what: &str) -> Result<&'a T, ProviderError> {
    value.ok_or_else(|| ProviderError::transient(format!("{call}: no {what} in the answer")))
}

/// A creation's observation with the desired tags when the answer echoed none (ECS does not
/// always echo the tags it was given).
fn with_desired_tags(mut o: Observed, desired: &DesiredResource) -> Observed {
    if o.tags.is_empty() {
        o.tags = desired.tags.clone();
    }
    o
}

/// The clusters called `names` (names or ARNs) that ECS knows, by name, INACTIVE ones included.
async fn describe_clusters(
    client: &Client,
    names: &[String],
    include: &[ClusterField],
) -> Result<HashMap<String, ClusterDescription>, ProviderError> {
    let mut out = HashMap::new();
    for chunk in names.chunks(CLUSTERS_PER_CALL) {
        let page = client
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .set_include((!include.is_empty()).then(|| include.to_vec()))
            .send()
            .await
            .map_err(|e| ecs_error("DescribeClusters", e))?;
        // Missing names come back as `failures` with reason MISSING: simply absent here.
        for c in page.clusters() {
            if let Some(name) = c.cluster_name() {
                out.insert(name.to_string(), c.clone());
            }
        }
    }
    Ok(out)
}

/// The live clusters named after `desired` (the cluster and the cluster-capacity-providers
/// kinds both name their resources after their cluster), with their tags and settings,
/// described once per observation for both kinds alike.
async fn observed_clusters(
    pool: &ClientPool,
    region: &str,
    desired: &[DesiredResource],
) -> Result<Arc<HashMap<String, ClusterDescription>>, ProviderError> {
    let mut sorted: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
    sorted.sort();
    let client = pool.ecs(region);
    pool.shared_read(
        &format!("ecs:DescribeClusters:{region}:{}", sorted.join(",")),
        || async move {
            let all = describe_clusters(
                &client,
                &sorted,
                &[ClusterField::Tags, ClusterField::Settings],
            )
            .await?;
            Ok(all
                .into_iter()
                .filter(|(_, c)| c.status().is_some_and(|s| s != INACTIVE))
                .collect::<HashMap<_, _>>())
        },
    )
    .await
}
