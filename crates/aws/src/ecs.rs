//! ECS: the server's cluster, its capacity provider over the Auto Scaling group, the
//! association between the two, the task definition and the daemon service.
//!
//! Calls per observation (each kind, one region):
//! - `ecs.cluster`, `ecs.cluster-capacity-providers`: one `DescribeClusters` per 100 names.
//! - `ecs.capacity-provider`: one `DescribeCapacityProviders` per 100 names (pages included).
//! - `ecs.task-definition`: one `ListTaskDefinitionFamilies` (name prefix, pages included), then
//!   one `DescribeTaskDefinition` per family that exists: ECS has no batch describe for task
//!   definitions.
//! - `ecs.service`: services live inside a cluster and there is no account-wide describe. The
//!   desired `cluster` is a reference that observation cannot resolve, so the client lists the
//!   clusters (`ListClusters`), keeps the active ones carrying the ownership tag (one
//!   `DescribeClusters` per 100) and makes one `DescribeServices` per such cluster and 10 names.
//!
//! Deleted clusters, capacity providers, services and task definition revisions linger as
//! `INACTIVE` (services as `DRAINING` first); all of them count as absent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate, CapacityProvider,
    CapacityProviderField, CapacityProviderStatus, CapacityProviderStrategyItem,
    CapacityProviderUpdateStatus, Cluster, ClusterField, ClusterSetting, ClusterSettingName,
    Compatibility, ContainerDefinition, DeploymentConfiguration, HostVolumeProperties,
    KeyValuePair, LaunchType, LogConfiguration, LogDriver, ManagedDraining, ManagedScaling,
    ManagedScalingStatus, ManagedTerminationProtection, MountPoint, NetworkMode, PortMapping,
    PropagateTags, SchedulingStrategy, Secret, Service, ServiceField, Tag, TaskDefinition,
    TaskDefinitionField, TaskDefinitionStatus, TransportProtocol, Volume,
};
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::diff::{self, FieldChange};
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{
    ErrorClass, KindSpec, ProviderError, ReplaceStrategy, ResourceClient,
};
use reconciler_render::kinds;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::autoscaling::{poll_until, Wait};
use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::ensure_managed;
use crate::tags::{is_managed, tag_delta, tags_agree};
use crate::util::read_all;
use crate::util::touches;
use crate::util::{missing, observed, opt_str, str_list, str_prop};

/// Names per `DescribeClusters` / `DescribeCapacityProviders` call.
const CLUSTERS_PER_CALL: usize = 100;
/// Names per `DescribeServices` call (the API's limit).
const SERVICES_PER_CALL: usize = 10;
/// Status of a deleted cluster, capacity provider or service that ECS still lists.
const INACTIVE: &str = "INACTIVE";
/// Status of a service being deleted.
const DRAINING: &str = "DRAINING";
/// Status of a live cluster or service.
const ACTIVE: &str = "ACTIVE";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(ClusterClient::new(pool.clone())),
        Arc::new(CapacityProviderClient::new(pool.clone())),
        Arc::new(ClusterCapacityProvidersClient::new(pool.clone())),
        Arc::new(TaskDefinitionClient::new(pool.clone())),
        Arc::new(ServiceClient::new(pool.clone())),
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

/// Makes the tags of `arn` match the desired ones (only keys the reconciler owns are removed).
async fn sync_tags(
    client: &Client,
    arn: &str,
    desired: &IndexMap<String, String>,
    current: &IndexMap<String, String>,
) -> Result<(), ProviderError> {
    let (set, remove) = tag_delta(desired, current);
    if !set.is_empty() {
        client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecs_tags(&set)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("TagResource {arn}"), e))?;
    }
    if !remove.is_empty() {
        client
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(remove))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("UntagResource {arn}"), e))?;
    }
    Ok(())
}

/// The ARN an observation recorded, or a terminal error.
fn observed_arn<'a>(desired: &DesiredResource, o: &'a Observed) -> Result<&'a str, ProviderError> {
    o.outputs.get("arn").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::terminal(format!("{}: the observation has no ARN", desired.id))
    })
}

/// The clusters called `names` (names or ARNs) that ECS knows, by name, INACTIVE ones included.
async fn describe_clusters(
    client: &Client,
    names: &[String],
    include: &[ClusterField],
) -> Result<HashMap<String, Cluster>, ProviderError> {
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

/// The clusters called `names` with their tags and settings, described once per observation
/// for the cluster and the cluster-capacity-providers clients alike (both name resources after
/// their cluster).
async fn observed_clusters(
    pool: &ClientPool,
    region: &str,
    names: &[String],
) -> Result<Arc<HashMap<String, Cluster>>, ProviderError> {
    let mut sorted = names.to_vec();
    sorted.sort();
    let client = pool.ecs(region);
    pool.shared_read(
        &format!("ecs:DescribeClusters:{region}:{}", sorted.join(",")),
        || async move {
            describe_clusters(
                &client,
                &sorted,
                &[ClusterField::Tags, ClusterField::Settings],
            )
            .await
        },
    )
    .await
}

fn is_live_cluster(c: &Cluster) -> bool {
    c.status().is_some_and(|s| s != INACTIVE)
}

// ---------------------------------------------------------------------------------------------
// ecs.cluster

/// The client of `ecs.cluster`: `containerInsights` (`enabled`/`disabled`), tags.
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

fn cluster_observation(desired: &DesiredResource, c: &Cluster) -> Observed {
    let insights = c
        .settings()
        .iter()
        .find(|s| s.name() == Some(&ClusterSettingName::ContainerInsights))
        .and_then(ClusterSetting::value);
    observed(
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
impl ResourceClient for ClusterClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::CLUSTER)
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let clusters = observed_clusters(&self.pool, region, &names).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let c = clusters.get(&d.name).filter(|c| is_live_cluster(c))?;
                Some(cluster_observation(d, c))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let settings = opt_str(desired, "containerInsights").map(|v| vec![insights_setting(v)]);
        let out = client
            .create_cluster()
            .cluster_name(&desired.name)
            .set_settings(settings)
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateCluster {}", desired.name), e))?;
        let cluster = out.cluster().ok_or_else(|| {
            ProviderError::transient(format!(
                "CreateCluster {}: no cluster in the answer",
                desired.name
            ))
        })?;
        let mut o = cluster_observation(desired, cluster);
        if o.tags.is_empty() {
            // The answer does not always echo the tags it was given.
            o.tags = desired.tags.clone();
        }
        Ok(o)
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.ecs(&desired.region);
        if touches(changes, "containerInsights") {
            client
                .update_cluster_settings()
                .cluster(&desired.name)
                .settings(insights_setting(str_prop(desired, "containerInsights")?))
                .send()
                .await
                .map_err(|e| ecs_error(&format!("UpdateClusterSettings {}", desired.name), e))?;
        }
        if changes.iter().any(FieldChange::is_tag) {
            sync_tags(
                &client,
                observed_arn(desired, observed)?,
                &desired.tags,
                &observed.tags,
            )
            .await?;
        }
        self.observe(&desired.region, std::slice::from_ref(desired))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::not_found(format!("cluster {} vanished", desired.name)))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        // Refused while services, tasks or instances remain (retried until they are gone). The
        // cluster then lingers as INACTIVE, which observation treats as absent.
        self.pool
            .ecs(&desired.region)
            .delete_cluster()
            .cluster(&desired.name)
            .send()
            .await
            .map_err(|e| ecs_error(&format!("DeleteCluster {}", desired.name), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// ecs.capacity-provider

/// The client of `ecs.capacity-provider`: `autoScalingGroupArn` (immutable), `managedDraining`,
/// `managedTerminationProtection`, tags.
///
/// Managed scaling is always created disabled: the group's capacity belongs to the wake/sleep
/// system (start Lambda and alarms), and ECS scaling it would fight them.
#[derive(Debug, Clone)]
pub struct CapacityProviderClient {
    pool: Arc<ClientPool>,
    delete_wait: Wait,
}

impl CapacityProviderClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        CapacityProviderClient {
            pool,
            delete_wait: Wait::new(Duration::from_secs(5), Duration::from_secs(5 * 60)),
        }
    }

    /// Changes how long a delete waits for the provider to be gone.
    pub fn with_delete_wait(mut self, wait: Wait) -> Self {
        self.delete_wait = wait;
        self
    }

    /// The providers called `names` that ECS knows, by name, whatever their status.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, CapacityProvider>, ProviderError> {
        let client = self.pool.ecs(region);
        let mut out = HashMap::new();
        for chunk in names.chunks(CLUSTERS_PER_CALL) {
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .describe_capacity_providers()
                    .set_capacity_providers(Some(chunk.to_vec()))
                    .include(CapacityProviderField::Tags)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| ecs_error("DescribeCapacityProviders", e))?;
                for p in page.capacity_providers() {
                    if let Some(name) = p.name() {
                        out.insert(name.to_string(), p.clone());
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

/// A provider that is deleted or being deleted.
fn is_gone_provider(p: &CapacityProvider) -> bool {
    p.status() == Some(&CapacityProviderStatus::Inactive)
        || matches!(
            p.update_status(),
            Some(
                CapacityProviderUpdateStatus::DeleteInProgress
                    | CapacityProviderUpdateStatus::DeleteComplete
            )
        )
}

fn provider_observation(desired: &DesiredResource, p: &CapacityProvider) -> Observed {
    let asg = p.auto_scaling_group_provider();
    observed(
        desired,
        json!({
            "autoScalingGroupArn": asg.map(AutoScalingGroupProvider::auto_scaling_group_arn),
            "managedDraining": asg.and_then(AutoScalingGroupProvider::managed_draining).map(ManagedDraining::as_str),
            "managedTerminationProtection": asg
                .and_then(AutoScalingGroupProvider::managed_termination_protection)
                .map(ManagedTerminationProtection::as_str),
        }),
        [
            ("arn", json!(p.capacity_provider_arn())),
            ("name", json!(p.name())),
        ],
        tag_map(p.tags()),
    )
}

#[async_trait]
impl ResourceClient for CapacityProviderClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::CAPACITY_PROVIDER)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().immutable("/autoScalingGroupArn")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let providers = self.describe(region, &names).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let p = providers.get(&d.name).filter(|p| !is_gone_provider(p))?;
                Some(provider_observation(d, p))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let provider = AutoScalingGroupProvider::builder()
            .auto_scaling_group_arn(str_prop(desired, "autoScalingGroupArn")?)
            .set_managed_draining(opt_str(desired, "managedDraining").map(ManagedDraining::from))
            .set_managed_termination_protection(
                opt_str(desired, "managedTerminationProtection")
                    .map(ManagedTerminationProtection::from),
            )
            .managed_scaling(
                ManagedScaling::builder()
                    .status(ManagedScalingStatus::Disabled)
                    .build(),
            )
            .build()
            .map_err(|e| ProviderError::terminal(format!("{}: {e}", desired.id)))?;
        let out = client
            .create_capacity_provider()
            .name(&desired.name)
            .auto_scaling_group_provider(provider)
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateCapacityProvider {}", desired.name), e))?;
        let p = out.capacity_provider().ok_or_else(|| {
            ProviderError::transient(format!(
                "CreateCapacityProvider {}: no capacity provider in the answer",
                desired.name
            ))
        })?;
        let mut o = provider_observation(desired, p);
        if o.tags.is_empty() {
            o.tags = desired.tags.clone();
        }
        Ok(o)
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.ecs(&desired.region);
        let draining = touches(changes, "managedDraining");
        let protection = touches(changes, "managedTerminationProtection");
        if draining || protection {
            let mut update = AutoScalingGroupProviderUpdate::builder();
            if draining {
                update = update
                    .managed_draining(ManagedDraining::from(str_prop(desired, "managedDraining")?));
            }
            if protection {
                update = update.managed_termination_protection(ManagedTerminationProtection::from(
                    str_prop(desired, "managedTerminationProtection")?,
                ));
            }
            client
                .update_capacity_provider()
                .name(&desired.name)
                .auto_scaling_group_provider(update.build())
                .send()
                .await
                .map_err(|e| ecs_error(&format!("UpdateCapacityProvider {}", desired.name), e))?;
        }
        if changes.iter().any(FieldChange::is_tag) {
            sync_tags(
                &client,
                observed_arn(desired, observed)?,
                &desired.tags,
                &observed.tags,
            )
            .await?;
        }
        self.observe(&desired.region, std::slice::from_ref(desired))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ProviderError::not_found(format!("capacity provider {} vanished", desired.name))
            })
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        // AWS refuses while the provider is attached to a cluster; the association's delete
        // (which depends on this provider, so it runs first) detaches it.
        self.pool
            .ecs(&desired.region)
            .delete_capacity_provider()
            .capacity_provider(&desired.name)
            .send()
            .await
            .map_err(|e| ecs_error(&format!("DeleteCapacityProvider {}", desired.name), e))?;
        // Deleting is asynchronous (DELETE_IN_PROGRESS); the group underneath must not go first.
        let names = std::slice::from_ref(&desired.name);
        poll_until(
            self.delete_wait,
            &format!("deleting capacity provider {}", desired.name),
            || async move {
                match self
                    .describe(&desired.region, names)
                    .await?
                    .get(&desired.name)
                {
                    None => Ok(true),
                    Some(p)
                        if p.update_status()
                            == Some(&CapacityProviderUpdateStatus::DeleteFailed) =>
                    {
                        Err(ProviderError::terminal(format!(
                            "DeleteCapacityProvider {}: {}",
                            desired.name,
                            p.update_status_reason().unwrap_or("delete failed")
                        )))
                    }
                    Some(p) => Ok(p.status() == Some(&CapacityProviderStatus::Inactive)
                        || p.update_status()
                            == Some(&CapacityProviderUpdateStatus::DeleteComplete)),
                }
            },
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// ecs.cluster-capacity-providers

/// The client of `ecs.cluster-capacity-providers`: which capacity providers a cluster uses
/// (`cluster` name, `capacityProviders`, `defaultCapacityProviderStrategy`). Its AWS name is the
/// cluster's name. `PutClusterCapacityProviders` replaces both lists, so create and update are
/// the same call and delete puts empty lists. Outputs the cluster's `arn` and `name`.
#[derive(Debug, Clone)]
pub struct ClusterCapacityProvidersClient {
    pool: Arc<ClientPool>,
}

impl ClusterCapacityProvidersClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ClusterCapacityProvidersClient { pool }
    }

    async fn put(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let cluster = str_prop(desired, "cluster")?;
        let out = client
            .put_cluster_capacity_providers()
            .cluster(cluster)
            .set_capacity_providers(Some(str_list(desired, "capacityProviders")))
            .set_default_capacity_provider_strategy(Some(strategy(desired)?))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("PutClusterCapacityProviders {cluster}"), e))?;
        let c = out.cluster().ok_or_else(|| {
            ProviderError::transient(format!(
                "PutClusterCapacityProviders {cluster}: no cluster in the answer"
            ))
        })?;
        Ok(association_observation(desired, c))
    }
}

/// The desired default strategy as SDK items.
fn strategy(desired: &DesiredResource) -> Result<Vec<CapacityProviderStrategyItem>, ProviderError> {
    let Some(items) = desired.properties.get("defaultCapacityProviderStrategy") else {
        return Ok(Vec::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| missing(desired, "defaultCapacityProviderStrategy"))?;
    items
        .iter()
        .map(|item| {
            let provider = item
                .get("capacityProvider")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    missing(desired, "defaultCapacityProviderStrategy/capacityProvider")
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

fn association_observation(desired: &DesiredResource, c: &Cluster) -> Observed {
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
    observed(
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

#[async_trait]
impl ResourceClient for ClusterCapacityProvidersClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::CLUSTER_CAPACITY_PROVIDERS)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/cluster")
            .unordered("/capacityProviders")
            .unordered("/defaultCapacityProviderStrategy")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let clusters = observed_clusters(&self.pool, region, &names).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let c = clusters.get(&d.name).filter(|c| is_live_cluster(c))?;
                // A cluster without providers has no association to speak of, unless that is
                // exactly what is wanted.
                let attached = !c.capacity_providers().is_empty()
                    || !c.default_capacity_provider_strategy().is_empty();
                let wants_none = str_list(d, "capacityProviders").is_empty()
                    && d.properties
                        .get("defaultCapacityProviderStrategy")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty);
                (attached || wants_none).then(|| association_observation(d, c))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        self.put(desired).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        self.put(desired).await
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

// ---------------------------------------------------------------------------------------------
// ecs.task-definition

/// Container definition keys this provider manages (the ones render sets). Any other key is
/// refused rather than silently dropped.
const CONTAINER_KEYS: &[&str] = &[
    "name",
    "image",
    "essential",
    "memoryReservation",
    "portMappings",
    "environment",
    "secrets",
    "mountPoints",
    "privileged",
    "logConfiguration",
];

/// The client of `ecs.task-definition`. The resource is a family's latest ACTIVE revision.
///
/// Revisions are immutable, so every content field is declared immutable and the kind replaces
/// create-before-delete: the engine registers the new revision, moves the service to it (the
/// service's `taskDefinition` reference becomes "known after apply" and is updated), then
/// deletes the old object, which deregisters the previous revision. An in-place update would
/// change the ARN other resources refer to, which the engine assumes updates never do. Only
/// tags are updated in place (on the current revision).
///
/// Deleting deregisters every ACTIVE revision up to the observed one, so older revisions left
/// ACTIVE by an interrupted run are cleaned up too, while a newer revision (the replacement) is
/// kept.
///
/// Container definitions may hold environment values that are sensitive: they are never put in
/// error messages or traces, only key paths are.
///
/// `RegisterTaskDefinition` has no idempotency token: a register whose answer was lost (the
/// connection reset or timed out after ECS acted) leaves a revision the retry would duplicate.
/// The client remembers such families and, before registering again, adopts the latest
/// revision when it already holds the desired definition.
#[derive(Debug, Clone)]
pub struct TaskDefinitionClient {
    pool: Arc<ClientPool>,
    unsettled: Arc<Mutex<HashSet<String>>>,
}

impl TaskDefinitionClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        TaskDefinitionClient {
            pool,
            unsettled: Arc::default(),
        }
    }

    /// Notes whether the last register of `family` may have made a revision unseen.
    fn set_unsettled(&self, family: &str, unsettled: bool) {
        let mut families = self.unsettled.lock().expect("unsettled families lock");
        if unsettled {
            families.insert(family.to_string());
        } else {
            families.remove(family);
        }
    }

    fn is_unsettled(&self, family: &str) -> bool {
        self.unsettled
            .lock()
            .expect("unsettled families lock")
            .contains(family)
    }
}

/// The tag that vouches for a revision's content (see [`content_digest`]). Never part of an
/// observation's tags: it is the provider's, not the spec's.
const TAG_CONTENT: &str = "reconciler.dev/content";

/// The value of [`TAG_CONTENT`] on the revision `arn` registered from `desired`: a SHA-256 of
/// the revision's ARN and the desired definition. A revision never changes, so while the
/// latest ACTIVE revision of a family carries the digest of its own ARN and the current
/// desired definition, it is that definition and observation need not describe it. A revision
/// registered out of band with copied tags carries another ARN's digest and is described.
fn content_digest(arn: &str, desired: &DesiredResource) -> String {
    let mut hash = Sha256::new();
    hash.update(arn.as_bytes());
    hash.update(b"\n");
    hash.update(serde_json::to_vec(&desired.properties).unwrap_or_default());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The family and revision of a task definition ARN (`...:task-definition/family:7`).
fn family_revision(arn: &str) -> Option<(&str, i32)> {
    let (_, tail) = arn.rsplit_once(":task-definition/")?;
    let (family, revision) = tail.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

/// The latest ACTIVE revision of every family in the region, by family: one paged listing
/// (a hundred revisions a page), for observing many families at once. `None` when the region
/// holds so many other revisions that the listing would take more than `max_pages` calls
/// (describing each family is then cheaper).
async fn latest_revisions(
    client: &Client,
    max_pages: usize,
) -> Result<Option<HashMap<String, String>>, ProviderError> {
    let mut pages = client
        .list_task_definitions()
        .status(TaskDefinitionStatus::Active)
        .max_results(100)
        .into_paginator()
        .send();
    let mut arns: Vec<String> = Vec::new();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ecs_error("ListTaskDefinitions", e))?;
        arns.extend(page.task_definition_arns().iter().cloned());
        read += 1;
        if read >= max_pages && page.next_token().is_some_and(|t| !t.is_empty()) {
            return Ok(None);
        }
    }
    let mut latest: HashMap<String, (i32, String)> = HashMap::new();
    for arn in arns {
        let Some((family, revision)) = family_revision(&arn) else {
            continue;
        };
        let newer = latest.get(family).is_none_or(|(r, _)| *r < revision);
        if newer {
            latest.insert(family.to_string(), (revision, arn.clone()));
        }
    }
    Ok(Some(
        latest.into_iter().map(|(f, (_, arn))| (f, arn)).collect(),
    ))
}

/// Reads a property that must be an array of objects.
fn objects<'a>(v: Option<&'a Value>, at: &str) -> Result<Vec<&'a Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_object()
                    .ok_or_else(|| format!("{at}/{i} is not an object"))
            })
            .collect(),
        Some(_) => Err(format!("{at} is not a list")),
    }
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn get_i32(m: &Map<String, Value>, k: &str, at: &str) -> Result<Option<i32>, String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{at}/{k} is not an integer")),
    }
}

/// One desired container definition as the SDK type. Errors name key paths only, never values.
fn container_definition(i: usize, v: &Value) -> Result<ContainerDefinition, String> {
    let at = format!("containerDefinitions/{i}");
    let m = v
        .as_object()
        .ok_or_else(|| format!("{at} is not an object"))?;
    if let Some(k) = m.keys().find(|k| !CONTAINER_KEYS.contains(&k.as_str())) {
        return Err(format!("{at}/{k} is not supported by this provider"));
    }
    let mut b = ContainerDefinition::builder()
        .set_name(get_str(m, "name").map(str::to_string))
        .set_image(get_str(m, "image").map(str::to_string))
        .set_essential(m.get("essential").and_then(Value::as_bool))
        .set_memory_reservation(get_i32(m, "memoryReservation", &at)?)
        .set_privileged(m.get("privileged").and_then(Value::as_bool));
    for p in objects(m.get("portMappings"), &format!("{at}/portMappings"))? {
        b = b.port_mappings(
            PortMapping::builder()
                .set_container_port(get_i32(p, "containerPort", &at)?)
                .set_host_port(get_i32(p, "hostPort", &at)?)
                .set_protocol(get_str(p, "protocol").map(TransportProtocol::from))
                .build(),
        );
    }
    for e in objects(m.get("environment"), &format!("{at}/environment"))? {
        b = b.environment(
            KeyValuePair::builder()
                .set_name(get_str(e, "name").map(str::to_string))
                .set_value(e.get("value").and_then(Value::as_str).map(str::to_string))
                .build(),
        );
    }
    for (j, s) in objects(m.get("secrets"), &format!("{at}/secrets"))?
        .into_iter()
        .enumerate()
    {
        b = b.secrets(
            Secret::builder()
                .set_name(get_str(s, "name").map(str::to_string))
                .set_value_from(get_str(s, "valueFrom").map(str::to_string))
                .build()
                .map_err(|_| format!("{at}/secrets/{j} needs `name` and `valueFrom`"))?,
        );
    }
    for mp in objects(m.get("mountPoints"), &format!("{at}/mountPoints"))? {
        b = b.mount_points(
            MountPoint::builder()
                .set_source_volume(get_str(mp, "sourceVolume").map(str::to_string))
                .set_container_path(get_str(mp, "containerPath").map(str::to_string))
                .set_read_only(mp.get("readOnly").and_then(Value::as_bool))
                .build(),
        );
    }
    if let Some(lc) = m.get("logConfiguration").filter(|v| !v.is_null()) {
        let lc = lc
            .as_object()
            .ok_or_else(|| format!("{at}/logConfiguration is not an object"))?;
        let options = match lc.get("options") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(
                o.iter()
                    .map(|(k, v)| {
                        v.as_str()
                            .map(|v| (k.clone(), v.to_string()))
                            .ok_or_else(|| {
                                format!("{at}/logConfiguration/options/{k} is not a string")
                            })
                    })
                    .collect::<Result<HashMap<_, _>, _>>()?,
            ),
            Some(_) => return Err(format!("{at}/logConfiguration/options is not an object")),
        };
        b = b.log_configuration(
            LogConfiguration::builder()
                .set_log_driver(get_str(lc, "logDriver").map(LogDriver::from))
                .set_options(options)
                .build()
                .map_err(|_| format!("{at}/logConfiguration needs `logDriver`"))?,
        );
    }
    Ok(b.build())
}

/// A container definition in the desired shape: only the keys render sets, with ECS's defaults
/// filled in where ECS leaves a field out (essential: true, privileged/readOnly: false, empty
/// lists, protocol tcp).
fn container_value(c: &ContainerDefinition) -> Value {
    let port_mappings: Vec<Value> = c
        .port_mappings()
        .iter()
        .map(|p| {
            json!({
                "containerPort": p.container_port(),
                "hostPort": p.host_port(),
                "protocol": p.protocol().map_or("tcp", TransportProtocol::as_str),
            })
        })
        .collect();
    let environment: Vec<Value> = c
        .environment()
        .iter()
        .map(|e| json!({ "name": e.name(), "value": e.value() }))
        .collect();
    let secrets: Vec<Value> = c
        .secrets()
        .iter()
        .map(|s| json!({ "name": s.name(), "valueFrom": s.value_from() }))
        .collect();
    let mount_points: Vec<Value> = c
        .mount_points()
        .iter()
        .map(|m| {
            json!({
                "sourceVolume": m.source_volume(),
                "containerPath": m.container_path(),
                "readOnly": m.read_only().unwrap_or(false),
            })
        })
        .collect();
    let log = c.log_configuration().map(|l| {
        let options: Map<String, Value> = l
            .options()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({ "logDriver": l.log_driver().as_str(), "options": options })
    });
    json!({
        "name": c.name(),
        "image": c.image(),
        "essential": c.essential().unwrap_or(true),
        "memoryReservation": c.memory_reservation(),
        "portMappings": port_mappings,
        "environment": environment,
        "secrets": secrets,
        "mountPoints": mount_points,
        "privileged": c.privileged().unwrap_or(false),
        "logConfiguration": log,
    })
}

/// Desired volumes as SDK values (host volumes: `{name, host: {sourcePath}}`).
fn volumes(desired: &DesiredResource) -> Result<Vec<Volume>, String> {
    objects(desired.properties.get("volumes"), "volumes")?
        .into_iter()
        .map(|v| {
            let host = match v.get("host") {
                None | Some(Value::Null) => None,
                Some(Value::Object(h)) => Some(
                    HostVolumeProperties::builder()
                        .set_source_path(get_str(h, "sourcePath").map(str::to_string))
                        .build(),
                ),
                Some(_) => return Err("volumes/host is not an object".to_string()),
            };
            Ok(Volume::builder()
                .set_name(get_str(v, "name").map(str::to_string))
                .set_host(host)
                .build())
        })
        .collect()
}

fn volume_value(v: &Volume) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(v.name()));
    if let Some(h) = v.host() {
        m.insert("host".into(), json!({ "sourcePath": h.source_path() }));
    }
    Value::Object(m)
}

fn task_definition_observation(
    desired: &DesiredResource,
    td: &TaskDefinition,
    tags: &[Tag],
) -> Observed {
    let containers: Vec<Value> = td
        .container_definitions()
        .iter()
        .map(container_value)
        .collect();
    let volumes: Vec<Value> = td.volumes().iter().map(volume_value).collect();
    let compat: Vec<&str> = td
        .requires_compatibilities()
        .iter()
        .map(Compatibility::as_str)
        .collect();
    observed(
        desired,
        json!({
            "family": td.family(),
            "networkMode": td.network_mode().map(NetworkMode::as_str),
            "requiresCompatibilities": compat,
            "executionRoleArn": td.execution_role_arn(),
            "containerDefinitions": containers,
            "volumes": volumes,
        }),
        [
            ("arn", json!(td.task_definition_arn())),
            ("revision", json!(td.revision())),
            ("family", json!(td.family())),
        ],
        without_content_tag(tag_map(tags)),
    )
}

fn without_content_tag(mut tags: IndexMap<String, String>) -> IndexMap<String, String> {
    tags.shift_remove(TAG_CONTENT);
    tags
}

/// Tags a revision with its [`content_digest`]. A failure only warns: the revision is right
/// without it, and observation then describes it instead of trusting the index.
async fn tag_content_digest(client: &Client, arn: &str, desired: &DesiredResource) {
    let tag = Tag::builder()
        .key(TAG_CONTENT)
        .value(content_digest(arn, desired))
        .build();
    if let Err(e) = client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag)
        .send()
        .await
    {
        let e = ecs_error(&format!("TagResource {arn}"), e);
        tracing::warn!(%arn, error = %e, "task definition left without its content digest");
    }
}

/// Describes the latest ACTIVE revision of `desired`'s family; `None` when there is none.
async fn describe_latest(
    client: Client,
    desired: DesiredResource,
) -> Result<Option<Observed>, ProviderError> {
    let answer = client
        .describe_task_definition()
        .task_definition(&desired.name)
        .include(TaskDefinitionField::Tags)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(err) => {
            let e = ecs_error(&format!("DescribeTaskDefinition {}", desired.name), err);
            if e.class == ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(e);
        }
    };
    // Without a revision number ECS answers the latest ACTIVE revision; check the status
    // anyway (a family whose revisions are all INACTIVE is absent).
    Ok(answer
        .task_definition()
        .filter(|td| td.status() == Some(&TaskDefinitionStatus::Active))
        .map(|td| task_definition_observation(&desired, td, answer.tags())))
}

#[async_trait]
impl ResourceClient for TaskDefinitionClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::TASK_DEFINITION)
    }

    fn spec(&self) -> KindSpec {
        let mut spec = KindSpec::new().replace_strategy(ReplaceStrategy::CreateBeforeDelete);
        for path in [
            "/family",
            "/networkMode",
            "/requiresCompatibilities",
            "/executionRoleArn",
            "/containerDefinitions",
            "/volumes",
        ] {
            spec = spec.immutable(path);
        }
        for path in [
            "/requiresCompatibilities",
            "/volumes",
            "/containerDefinitions/*/portMappings",
            "/containerDefinitions/*/environment",
            "/containerDefinitions/*/secrets",
            "/containerDefinitions/*/mountPoints",
        ] {
            spec = spec.unordered(path);
        }
        spec
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let client = self.pool.ecs(region);
        // Many families: one listing gives each family's latest ACTIVE revision, and the tag
        // index shows which of them carry the digest of the desired definition (see
        // `content_digest`); only the others are described, one family per call. One family,
        // or a listing longer than describing each: DescribeTaskDefinition per family
        // ("unable to describe" for a family without an ACTIVE revision).
        let latest = if desired.len() > 1 {
            latest_revisions(&client, desired.len() - 1).await?
        } else {
            None
        };
        let Some(latest) = latest else {
            let reads = desired
                .iter()
                .map(|d| describe_latest(client.clone(), d.clone()))
                .collect();
            return Ok(read_all(reads).await?.into_iter().flatten().collect());
        };
        let present: Vec<(&DesiredResource, &String)> = desired
            .iter()
            .filter_map(|d| Some((d, latest.get(&d.name)?)))
            .collect();
        let arns: Vec<String> = present.iter().map(|(_, arn)| (*arn).clone()).collect();
        let index = tagging::indexed_tags(&self.pool, region, &arns).await?;
        let mut out = Vec::new();
        let mut reads = Vec::new();
        for ((d, arn), tags) in present.into_iter().zip(index) {
            let vouched = tags.filter(|t| {
                t.get(TAG_CONTENT) == Some(&content_digest(arn, d))
                    && tags_agree(&d.tags, &without_content_tag(t.clone()))
            });
            match (vouched, family_revision(arn)) {
                (Some(tags), Some((family, revision))) => out.push(observed(
                    d,
                    d.properties.clone(),
                    [
                        ("arn", json!(arn)),
                        ("revision", json!(revision)),
                        ("family", json!(family)),
                    ],
                    without_content_tag(tags),
                )),
                _ => reads.push(describe_latest(client.clone(), d.clone())),
            }
        }
        out.extend(read_all(reads).await?.into_iter().flatten());
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let bad = |m: String| ProviderError::terminal(format!("{}: {m}", desired.id));
        let containers = desired
            .properties
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .ok_or_else(|| missing(desired, "containerDefinitions"))?
            .iter()
            .enumerate()
            .map(|(i, c)| container_definition(i, c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let volumes = volumes(desired).map_err(bad)?;
        let compat = str_list(desired, "requiresCompatibilities")
            .iter()
            .map(|c| Compatibility::from(c.as_str()))
            .collect();
        let family = opt_str(desired, "family").unwrap_or(&desired.name);
        if self.is_unsettled(family) {
            if let Some(found) = describe_latest(client.clone(), desired.clone()).await? {
                if diff::matches(
                    "",
                    &desired.properties,
                    Some(&found.properties),
                    &self.spec(),
                ) {
                    tracing::info!(%family, "adopting the revision an unanswered register made");
                    self.set_unsettled(family, false);
                    if let Some(arn) = found.output("arn").and_then(Value::as_str) {
                        tag_content_digest(&client, arn, desired).await;
                    }
                    return Ok(found);
                }
            }
        }
        let out = client
            .register_task_definition()
            .family(family)
            .set_network_mode(opt_str(desired, "networkMode").map(NetworkMode::from))
            .set_requires_compatibilities(Some(compat))
            .set_execution_role_arn(opt_str(desired, "executionRoleArn").map(str::to_string))
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| {
                let e = ecs_error(&format!("RegisterTaskDefinition {}", desired.name), e);
                // Only a refusal is sure to have made nothing.
                self.set_unsettled(family, !matches!(e.class, ErrorClass::Terminal));
                e
            })?;
        self.set_unsettled(family, false);
        let td = out.task_definition().ok_or_else(|| {
            ProviderError::transient(format!(
                "RegisterTaskDefinition {}: no task definition in the answer",
                desired.name
            ))
        })?;
        let mut o = task_definition_observation(desired, td, out.tags());
        if o.tags.is_empty() {
            o.tags = desired.tags.clone();
        }
        // The digest needs the ARN, known only now.
        if let Some(arn) = td.task_definition_arn() {
            tag_content_digest(&client, arn, desired).await;
        }
        Ok(o)
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        if let Some(c) = changes.iter().find(|c| !c.is_tag()) {
            // Every content field is immutable, so the engine plans a replacement instead.
            return Err(ProviderError::terminal(format!(
                "{}: `{}` cannot change in place (a new revision is registered by replacement)",
                desired.id, c.path
            )));
        }
        let client = self.pool.ecs(&desired.region);
        let arn = observed_arn(desired, observed)?;
        sync_tags(&client, arn, &desired.tags, &observed.tags).await?;
        // Read the revision back (by its ARN: tags live on each revision).
        let answer = client
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| ecs_error(&format!("DescribeTaskDefinition {arn}"), e))?;
        let td = answer.task_definition().ok_or_else(|| {
            ProviderError::transient(format!(
                "DescribeTaskDefinition {arn}: no task definition in the answer"
            ))
        })?;
        Ok(task_definition_observation(desired, td, answer.tags()))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.ecs(&desired.region);
        let family = observed
            .outputs
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or(&desired.name);
        let upto = observed
            .outputs
            .get("revision")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // `familyPrefix` matches the family exactly here, despite its name.
            let page = client
                .list_task_definitions()
                .family_prefix(family)
                .status(TaskDefinitionStatus::Active)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| ecs_error(&format!("ListTaskDefinitions {family}"), e))?;
            arns.extend(page.task_definition_arns().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        // There is no batch deregister; one call per ACTIVE revision (normally one).
        for arn in arns {
            let belongs = family_revision(&arn)
                .is_some_and(|(f, revision)| f == family && i64::from(revision) <= upto);
            if !belongs {
                continue;
            }
            match client
                .deregister_task_definition()
                .task_definition(&arn)
                .send()
                .await
            {
                Ok(_) => {}
                Err(err) => {
                    let e = ecs_error(&format!("DeregisterTaskDefinition {arn}"), err);
                    if e.class != ErrorClass::NotFound {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// ecs.service

/// The client of `ecs.service`: `cluster` (ARN, immutable), `taskDefinition` (ARN),
/// `launchType` and `schedulingStrategy` (immutable), `deploymentConfiguration`
/// {`maximumPercent`, `minimumHealthyPercent`}, `enableEcsManagedTags`, `propagateTags`, tags.
/// A daemon service has no desired count: ECS places one task per container instance, and the
/// instance count is the Auto Scaling group's (runtime-owned) capacity.
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

    /// Services called `names` in `cluster`, by name, whatever their status. A missing cluster
    /// holds no services.
    async fn describe_in(
        &self,
        client: &Client,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, ProviderError> {
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

    /// The active clusters carrying the ownership tag, as ARNs: where services of unknown
    /// cluster are looked for.
    async fn managed_clusters(&self, client: &Client) -> Result<Vec<String>, ProviderError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_clusters()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| ecs_error("ListClusters", e))?;
            arns.extend(page.cluster_arns().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        let clusters = describe_clusters(client, &arns, &[ClusterField::Tags]).await?;
        let mut managed: Vec<String> = clusters
            .values()
            .filter(|c| c.status() == Some(ACTIVE) && is_managed(&tag_map(c.tags())))
            .filter_map(|c| c.cluster_arn().map(str::to_string))
            .collect();
        managed.sort();
        Ok(managed)
    }

    /// Reads one service back after a create or update.
    async fn read_back(
        &self,
        desired: &DesiredResource,
        cluster: &str,
    ) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        self.describe_in(&client, cluster, std::slice::from_ref(&desired.name))
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

fn service_observation(desired: &DesiredResource, s: &Service) -> Observed {
    let deployment = s.deployment_configuration().map(|d| {
        json!({
            "maximumPercent": d.maximum_percent(),
            "minimumHealthyPercent": d.minimum_healthy_percent(),
        })
    });
    observed(
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

/// The desired deployment configuration.
fn deployment_configuration(desired: &DesiredResource) -> Option<DeploymentConfiguration> {
    let d = desired.properties.get("deploymentConfiguration")?;
    let int = |k: &str| {
        d.get(k)
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    Some(
        DeploymentConfiguration::builder()
            .set_maximum_percent(int("maximumPercent"))
            .set_minimum_healthy_percent(int("minimumHealthyPercent"))
            .build(),
    )
}

/// The cluster name inside a cluster ARN (or the name itself).
fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once('/').map_or(cluster, |(_, n)| n)
}

#[async_trait]
impl ResourceClient for ServiceClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::SERVICE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/cluster")
            .immutable("/launchType")
            .immutable("/schedulingStrategy")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let client = self.pool.ecs(region);
        // Which clusters to look in: the desired cluster when it is already a plain value,
        // otherwise (a reference, unresolved during observation) every managed cluster.
        let mut by_cluster: IndexMap<String, Vec<String>> = IndexMap::new();
        let mut unknown: Vec<String> = Vec::new();
        for d in desired {
            match opt_str(d, "cluster") {
                Some(c) => by_cluster
                    .entry(c.to_string())
                    .or_default()
                    .push(d.name.clone()),
                None => unknown.push(d.name.clone()),
            }
        }
        if !unknown.is_empty() {
            for arn in self.managed_clusters(&client).await? {
                let names = by_cluster.entry(arn).or_default();
                names.extend(unknown.iter().cloned());
            }
        }
        // One cluster per call (ten services each), clusters read side by side.
        let reads = by_cluster
            .into_iter()
            .map(|(cluster, mut names)| {
                let (this, client) = (self.clone(), client.clone());
                names.sort();
                names.dedup();
                async move { this.describe_in(&client, &cluster, &names).await }
            })
            .collect();
        let mut found: HashMap<String, Vec<Service>> = HashMap::new();
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
        let mut out = Vec::new();
        for d in desired {
            let Some(candidates) = found.get(&d.name) else {
                continue;
            };
            let wanted = opt_str(d, "cluster").map(cluster_name);
            let matching: Vec<&Service> = candidates
                .iter()
                .filter(|s| wanted.is_none_or(|w| s.cluster_arn().map(cluster_name) == Some(w)))
                .collect();
            match matching.as_slice() {
                [] => {}
                [s] => out.push(service_observation(d, s)),
                many => {
                    let clusters: Vec<&str> = many.iter().filter_map(|s| s.cluster_arn()).collect();
                    return Err(ProviderError::terminal(format!(
                        "service {} exists in several clusters ({}); remove the stray ones",
                        d.name,
                        clusters.join(", ")
                    )));
                }
            }
        }
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let cluster = str_prop(desired, "cluster")?;
        client
            .create_service()
            .cluster(cluster)
            .service_name(&desired.name)
            .task_definition(str_prop(desired, "taskDefinition")?)
            .set_launch_type(opt_str(desired, "launchType").map(LaunchType::from))
            .set_scheduling_strategy(
                opt_str(desired, "schedulingStrategy").map(SchedulingStrategy::from),
            )
            .set_deployment_configuration(deployment_configuration(desired))
            .set_enable_ecs_managed_tags(
                desired
                    .properties
                    .get("enableEcsManagedTags")
                    .and_then(Value::as_bool),
            )
            .set_propagate_tags(opt_str(desired, "propagateTags").map(PropagateTags::from))
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateService {}", desired.name), e))?;
        self.read_back(desired, cluster).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.ecs(&desired.region);
        let cluster = str_prop(desired, "cluster")?;
        let mut call = client
            .update_service()
            .cluster(cluster)
            .service(&desired.name);
        let mut any = false;
        if touches(changes, "taskDefinition") {
            call = call.task_definition(str_prop(desired, "taskDefinition")?);
            any = true;
        }
        if touches(changes, "deploymentConfiguration") {
            call = call.set_deployment_configuration(deployment_configuration(desired));
            any = true;
        }
        if touches(changes, "enableEcsManagedTags") {
            call = call
                .enable_ecs_managed_tags(crate::util::bool_prop(desired, "enableEcsManagedTags")?);
            any = true;
        }
        if touches(changes, "propagateTags") {
            call = call.propagate_tags(PropagateTags::from(str_prop(desired, "propagateTags")?));
            any = true;
        }
        if any {
            call.send()
                .await
                .map_err(|e| ecs_error(&format!("UpdateService {}", desired.name), e))?;
        }
        if changes.iter().any(FieldChange::is_tag) {
            sync_tags(
                &client,
                observed_arn(desired, observed)?,
                &desired.tags,
                &observed.tags,
            )
            .await?;
        }
        self.read_back(desired, cluster).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "change or delete")?;
        let client = self.pool.ecs(&desired.region);
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
            .service(&desired.name)
            .force(true)
            .send()
            .await;
        if let Err(err) = deleted {
            let e = ecs_error(&format!("DeleteService {}", desired.name), err);
            if e.class != ErrorClass::NotFound {
                return Err(e);
            }
        }
        // DRAINING until the task has stopped; the cluster cannot go before that.
        let client = &client;
        let names = std::slice::from_ref(&desired.name);
        poll_until(
            self.delete_wait,
            &format!("deleting service {}", desired.name),
            || async move {
                Ok(self
                    .describe_in(client, cluster, names)
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
    fn the_content_digest_binds_the_definition_to_one_revision() {
        let desired = DesiredResource::new(kinds::TASK_DEFINITION, "t", "eu-west-1", "rc-x")
            .with_properties(json!({ "family": "rc-x", "image": "a:1" }));
        let arn = "arn:aws:ecs:eu-west-1:1:task-definition/rc-x:3";
        let digest = content_digest(arn, &desired);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, content_digest(arn, &desired), "stable");
        assert_ne!(
            digest,
            content_digest("arn:aws:ecs:eu-west-1:1:task-definition/rc-x:4", &desired)
        );
        let changed = desired
            .clone()
            .with_properties(json!({ "family": "rc-x", "image": "a:2" }));
        assert_ne!(digest, content_digest(arn, &changed));
        let tags: IndexMap<String, String> =
            [(TAG_CONTENT.to_string(), digest), ("k".into(), "v".into())]
                .into_iter()
                .collect();
        assert_eq!(
            without_content_tag(tags).keys().collect::<Vec<_>>(),
            vec!["k"]
        );
    }

    #[test]
    fn revisions_and_cluster_names_come_from_arns() {
        assert_eq!(
            family_revision("arn:aws:ecs:eu-west-1:1:task-definition/rc-x:12"),
            Some(("rc-x", 12))
        );
        assert_eq!(family_revision("rc-x"), None);
        assert_eq!(
            family_revision("arn:aws:ecs:eu-west-1:1:task-definition/rc-x"),
            None
        );
        assert_eq!(cluster_name("arn:aws:ecs:eu-west-1:1:cluster/rc-x"), "rc-x");
        assert_eq!(cluster_name("rc-x"), "rc-x");
    }

    #[test]
    fn container_definitions_round_trip_to_the_desired_shape() {
        let desired = json!({
            "name": "mc",
            "image": "itzg/minecraft-server",
            "essential": true,
            "memoryReservation": 6144,
            "portMappings": [{ "containerPort": 25565, "hostPort": 25565, "protocol": "udp" }],
            "environment": [{ "name": "EULA", "value": "TRUE" }],
            "secrets": [{ "name": "RCON", "valueFrom": "/games/rcon" }],
            "mountPoints": [{ "sourceVolume": "Data-0", "containerPath": "/data", "readOnly": false }],
            "privileged": false,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": { "awslogs-group": "/g", "awslogs-region": "eu-west-1" }
            }
        });
        let c = container_definition(0, &desired).unwrap();
        assert_eq!(container_value(&c), desired);
    }

    #[test]
    fn missing_container_fields_read_as_ecs_defaults() {
        let c = ContainerDefinition::builder().name("x").image("i").build();
        let v = container_value(&c);
        assert_eq!(v["essential"], true);
        assert_eq!(v["privileged"], false);
        assert_eq!(v["secrets"], json!([]));
        assert_eq!(v["logConfiguration"], Value::Null);
    }

    #[test]
    fn unsupported_keys_are_refused_without_echoing_values() {
        let err = container_definition(1, &json!({ "name": "x", "command": ["secret-value"] }))
            .unwrap_err();
        assert!(err.contains("containerDefinitions/1/command"));
        assert!(!err.contains("secret-value"));
        let err = container_definition(0, &json!({ "secrets": [{ "name": "only" }] })).unwrap_err();
        assert!(err.contains("secrets/0"));
    }

    #[test]
    fn volumes_keep_host_paths() {
        let d = DesiredResource::new(kinds::TASK_DEFINITION, "x", "eu-west-1", "rc-x")
            .with_properties(
                json!({ "volumes": [{ "name": "v", "host": { "sourcePath": "/mnt/v" } }] }),
            );
        let v = volumes(&d).unwrap();
        assert_eq!(
            volume_value(&v[0]),
            json!({ "name": "v", "host": { "sourcePath": "/mnt/v" } })
        );
    }
}
