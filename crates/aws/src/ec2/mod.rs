//! EC2: the Base's network (VPC and its default security group, internet gateway, public
//! subnets, route table), the servers' security groups, the optional SSH key pair and the
//! launch templates, one file per kind.
//!
//! Discovery, per kind and region, in one describe call (plus pagination, and one call per 200
//! identities: see [`describe_owned`]) filtered by the identity of the desired objects and the
//! ownership tag `reconciler.dev/managed-by`:
//!
//! | kind | identity | batched read |
//! |---|---|---|
//! | `ec2.vpc` | tag `Name` | `DescribeVpcs` (+ `DescribeVpcAttribute`, see [`VpcClient`]) |
//! | `ec2.internet-gateway` | tag `Name` | `DescribeInternetGateways` |
//! | `ec2.subnet` | tag `Name` | `DescribeSubnets` (+ cached `DescribeAvailabilityZones`) |
//! | `ec2.route-table` | tag `Name` | `DescribeRouteTables` |
//! | `ec2.security-group` | group name | the owned groups' `DescribeSecurityGroups` (see [`owned_security_groups`]) + one `DescribeSecurityGroupRules` |
//! | `ec2.default-security-group` | tag `Name` | the same `DescribeSecurityGroups`, shared |
//! | `ec2.key-pair` | key name | `DescribeKeyPairs` |
//! | `ec2.launch-template` | template name | `DescribeLaunchTemplates` + one `DescribeLaunchTemplateVersions` (+ cached SSM `GetParameters`) |
//!
//! Objects without the ownership tag are invisible to observation, so they are never changed.
//! The `Name` tag (or the unique AWS name) is the identity: creates always write it.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, ResourceType, SecurityGroup, Tag, TagSpecification};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};
use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};
use serde_json::Value;

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;

mod default_security_group;
mod internet_gateway;
mod key_pair;
mod launch_template;
mod route_table;
mod rules;
mod security_group;
mod subnet;
mod vpc;

pub use default_security_group::DefaultSecurityGroupClient;
pub use internet_gateway::InternetGatewayClient;
pub use key_pair::{KeyPairClient, KEY_PAIR_PARAMETER_PREFIX};
pub use launch_template::LaunchTemplateClient;
pub use route_table::RouteTableClient;
pub use security_group::SecurityGroupClient;
pub use subnet::SubnetClient;
pub use vpc::VpcClient;

/// The clients of this service; the subnets and launch templates share one zone and AMI cache.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    let shared = Ec2Shared::new(pool.clone());
    vec![
        Arc::new(Managed::new(VpcClient::new(pool.clone()))),
        Arc::new(Managed::new(InternetGatewayClient::new(pool.clone()))),
        Arc::new(Managed::new(SubnetClient::new(shared.clone()))),
        Arc::new(Managed::new(RouteTableClient::new(pool.clone()))),
        Arc::new(Managed::new(SecurityGroupClient::new(pool.clone()))),
        Arc::new(Managed::new(DefaultSecurityGroupClient::new(pool.clone()))),
        Arc::new(Managed::new(KeyPairClient::new(pool.clone()))),
        Arc::new(Managed::new(LaunchTemplateClient::new(shared))),
    ]
}

/// EC2 accepts at most 200 values in one filter.
const MAX_FILTER_VALUES: usize = 200;
/// SSM `GetParameters` takes at most 10 names.
const MAX_SSM_NAMES: usize = 10;

/// The client pool plus what is worth reading once per run: the zones of a region and the AMI
/// ids behind public SSM parameters. Both caches live as long as the client set, which the CLI
/// builds once per run.
pub struct Ec2Shared {
    pool: Arc<ClientPool>,
    zones: Mutex<HashMap<String, Arc<Vec<String>>>>,
    images: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for Ec2Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Shared").finish_non_exhaustive()
    }
}

impl Ec2Shared {
    /// Shared state over a pool.
    pub fn new(pool: Arc<ClientPool>) -> Arc<Self> {
        Arc::new(Ec2Shared {
            pool,
            zones: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
        })
    }

    fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        self.pool.ec2(region)
    }

    /// The region's availability zones a subnet's `availabilityZoneIndex` points into: state
    /// `available`, type `availability-zone` (no Local or Wavelength Zones), no opt-in needed,
    /// sorted by zone name. Read once per region and cached for the run, so the index means
    /// the same zone for every subnet of the run.
    pub async fn describe_availability_zones(
        &self,
        region: &str,
    ) -> Result<Arc<Vec<String>>, ProviderError> {
        if let Some(zones) = self.zones.lock().expect("zone cache").get(region) {
            return Ok(zones.clone());
        }
        let out = self
            .ec2(region)
            .describe_availability_zones()
            .filters(filter("state", ["available"]))
            .filters(filter("zone-type", ["availability-zone"]))
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeAvailabilityZones {region}"), e))?;
        let mut zones: Vec<String> = out
            .availability_zones()
            .iter()
            // A missing opt-in status is read as "not required" (the emulator leaves it out;
            // AWS always sends it).
            .filter(|z| {
                z.opt_in_status()
                    .is_none_or(|s| s.as_str() == "opt-in-not-required")
            })
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        zones.sort();
        zones.dedup();
        let zones = Arc::new(zones);
        self.zones
            .lock()
            .expect("zone cache")
            .insert(region.to_string(), zones.clone());
        Ok(zones)
    }

    /// The values of public SSM parameters (AMI ids), batched 10 names per `GetParameters`
    /// call and cached per region for the run. Names SSM does not know are left out.
    pub async fn image_ids(
        &self,
        region: &str,
        names: &BTreeSet<String>,
    ) -> Result<HashMap<String, String>, ProviderError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.images.lock().expect("image cache");
            for name in names {
                match cache.get(&(region.to_string(), name.clone())) {
                    Some(v) => {
                        found.insert(name.clone(), v.clone());
                    }
                    None => missing.push(name.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let ssm = self.pool.ssm(region);
        for chunk in missing.chunks(MAX_SSM_NAMES) {
            let out = ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("GetParameters {}", chunk.join(", ")), e))?;
            let mut cache = self.images.lock().expect("image cache");
            for p in out.parameters() {
                if let (Some(name), Some(value)) = (p.name(), p.value()) {
                    cache.insert((region.to_string(), name.to_string()), value.to_string());
                    found.insert(name.to_string(), value.to_string());
                }
            }
        }
        Ok(found)
    }

    /// The AMI id behind one public parameter, or a terminal error naming it.
    async fn image_id(&self, region: &str, name: &str) -> Result<String, ProviderError> {
        let names = BTreeSet::from([name.to_string()]);
        self.image_ids(region, &names)
            .await?
            .remove(name)
            .ok_or_else(|| {
                ProviderError::terminal(format!(
                    "SSM parameter `{name}` does not exist in {region}: cannot pick the instance image"
                ))
            })
    }
}

/// An EC2 filter.
fn filter<I, S>(name: &str, values: I) -> Filter
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

/// The ownership filter: only objects the reconciler manages.
fn managed_filter() -> Filter {
    filter(&format!("tag:{TAG_MANAGED_BY}"), [MANAGED_BY])
}

/// Every object whose filter `filter_name` matches one of `values`: `describe` (one describe
/// call with its pagination, given the filters) once per 200 values, EC2's limit per filter.
async fn describe_filtered<T, E, F, Fut>(
    operation: &str,
    filter_name: &str,
    values: &[String],
    describe: F,
) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<Filter>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut found = Vec::new();
    for chunk in values.chunks(MAX_FILTER_VALUES) {
        let filters = vec![filter(filter_name, chunk.iter().cloned())];
        found.extend(
            describe(filters)
                .await
                .map_err(|e| classify(operation, e))?,
        );
    }
    Ok(found)
}

/// As [`describe_filtered`], and only objects carrying the ownership tag.
async fn describe_owned<T, E, F, Fut>(
    operation: &str,
    filter_name: &str,
    values: &[String],
    describe: F,
) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<Filter>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    describe_filtered(operation, filter_name, values, |mut filters| {
        filters.push(managed_filter());
        describe(filters)
    })
    .await
}

/// The `Name` tags of `desired`, the identities [`describe_owned`] looks for with `tag:Name`.
fn name_tags(desired: &[DesiredResource]) -> Vec<String> {
    desired.iter().map(|d| ident(d).to_string()).collect()
}

/// Tags as a map.
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

/// A map as EC2 tags.
fn ec2_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The identity of a `Name`-tagged object: the desired `Name` tag, else the desired name.
fn ident(desired: &DesiredResource) -> &str {
    desired
        .tags
        .get("Name")
        .map(String::as_str)
        .unwrap_or(desired.name.as_str())
}

/// The tags a create writes: the desired tags, with `Name` set so the object can be found.
fn create_tags(desired: &DesiredResource) -> IndexMap<String, String> {
    let mut tags = desired.tags.clone();
    if !tags.contains_key("Name") {
        tags.insert("Name".into(), desired.name.clone());
    }
    tags
}

fn tag_spec(resource: ResourceType, tags: &IndexMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(ec2_tags(tags)))
        .build()
}

/// The owned security groups of `region`, for the kinds that hold security groups: one
/// paginated `DescribeSecurityGroups` filtered by the ownership tag alone, made once per
/// observation and shared ([`ClientPool::shared_read`]). It lists the other Bases' groups of
/// the region too, but the server groups and the VPCs' default groups cost one read together,
/// where listing each kind by its names would cost one each.
async fn owned_security_groups(
    pool: &ClientPool,
    region: &str,
) -> Result<Arc<Vec<SecurityGroup>>, ProviderError> {
    let ec2 = pool.ec2(region);
    pool.shared_read(
        &format!("ec2:DescribeSecurityGroups:owned:{region}"),
        || async move {
            ec2.describe_security_groups()
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeSecurityGroups", e))
        },
    )
    .await
}

/// Writes a tag delta on the object `id`: `CreateTags` for the tags to set, `DeleteTags` for
/// the keys to remove; no call for an empty half.
async fn tag_object(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    if !set.is_empty() {
        ec2.create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(set)))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateTags {id}"), e))?;
    }
    if !remove.is_empty() {
        ec2.delete_tags()
            .resources(id)
            .set_tags(Some(
                remove
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteTags {id}"), e))?;
    }
    Ok(())
}

/// [`tag_object`] on the observed object: every EC2 kind tags this way.
async fn write_tags(
    pool: &ClientPool,
    desired: &DesiredResource,
    observed: &Observed,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    let id = crate::util::output(desired, observed, "id")?;
    tag_object(&pool.ec2(&desired.region), &id, set, remove).await
}

/// The observation after an update: the old one with the changed top-level properties set to
/// the desired values. Reading back right after a write could return the old state (EC2 is
/// eventually consistent), so the written values are reported.
fn after_update(
    desired: &DesiredResource,
    observed: &Observed,
    changes: &[FieldChange],
) -> Observed {
    let mut out = observed.clone();
    for c in changes.iter().filter(|c| !c.is_tag()) {
        let top = c
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let key = reconciler_engine::path::unescape(top);
        if let (Some(v), Value::Object(props)) = (desired.properties.get(&key), &mut out.properties)
        {
            props.insert(key, v.clone());
        }
    }
    out
}

/// `Ok(None)` for an answer that the object is not there: deleting or detaching what is gone
/// already is done.
fn unless_gone<T>(result: Result<T, ProviderError>) -> Result<Option<T>, ProviderError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.class == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The error of a create that found the object an earlier attempt made. `CreateVpc`,
/// `CreateSubnet` and `CreateInternetGateway` take no idempotency token, so their creates look
/// first, and the engine adopts what they find.
fn already_exists(what: &str, desired: &DesiredResource) -> ProviderError {
    ProviderError::conflict(format!("{what} {} already exists", ident(desired)))
}

/// What pairing needs of an object in a describe answer.
trait Ec2Object {
    /// The object's id.
    fn object_id(&self) -> Option<&str>;
    /// The object's tags.
    fn object_tags(&self) -> &[Tag];
}

macro_rules! ec2_object {
    ($($ty:ty => $id:ident),* $(,)?) => {
        $(impl Ec2Object for $ty {
            fn object_id(&self) -> Option<&str> {
                self.$id()
            }
            fn object_tags(&self) -> &[Tag] {
                self.tags()
            }
        })*
    };
}

ec2_object!(
    aws_sdk_ec2::types::Vpc => vpc_id,
    aws_sdk_ec2::types::InternetGateway => internet_gateway_id,
    aws_sdk_ec2::types::Subnet => subnet_id,
    aws_sdk_ec2::types::RouteTable => route_table_id,
    aws_sdk_ec2::types::SecurityGroup => group_id,
    aws_sdk_ec2::types::KeyPairInfo => key_pair_id,
    aws_sdk_ec2::types::LaunchTemplate => launch_template_id,
);

/// The object's `Name` tag.
fn name_tag(object: &impl Ec2Object) -> Option<String> {
    tag_map(object.object_tags()).get("Name").cloned()
}

/// Pairs desired resources with the found objects by identity. When several owned objects
/// share one identity (left behind by an interrupted create that has no idempotency token),
/// the one whose ownership tags match the desired ones best wins, then the lowest id, and the
/// others are reported in the log.
fn pair_by<T: Ec2Object>(
    desired: &[DesiredResource],
    found: Vec<T>,
    ident_of: impl Fn(&DesiredResource) -> &str,
    key_of: impl Fn(&T) -> Option<String>,
) -> Vec<(&DesiredResource, T)> {
    let id_of = |item: &T| item.object_id().unwrap_or_default().to_string();
    let mut by_key: HashMap<String, Vec<T>> = HashMap::new();
    for item in found {
        if let Some(k) = key_of(&item) {
            by_key.entry(k).or_default().push(item);
        }
    }
    let mut out = Vec::new();
    for d in desired {
        let Some(mut candidates) = by_key.remove(ident_of(d)) else {
            continue;
        };
        let score = |item: &T| {
            let tags = tag_map(item.object_tags());
            d.tags
                .iter()
                .filter(|(k, v)| k.starts_with("reconciler.dev/") && tags.get(*k) != Some(*v))
                .count()
        };
        candidates.sort_by(|a, b| score(a).cmp(&score(b)).then(id_of(a).cmp(&id_of(b))));
        if candidates.len() > 1 {
            let ids: Vec<String> = candidates.iter().map(id_of).collect();
            tracing::warn!(id = %d.id, candidates = ?ids, "several owned objects share one name; using the first");
        }
        if let Some(first) = candidates.into_iter().next() {
            out.push((d, first));
        }
    }
    out
}

/// [`pair_by`] the `Name` tag.
fn pair_by_name_tag<T: Ec2Object>(
    desired: &[DesiredResource],
    found: Vec<T>,
) -> Vec<(&DesiredResource, T)> {
    pair_by(desired, found, ident, name_tag)
}

/// Polls `check` until it answers `true`, sleeping `delays[i]` before poll `i + 1`. AWS
/// reports VPCs and subnets `pending` for a moment after their create; follow-up calls
/// (attribute changes, attachments) wait for `available`. The emulator answers `available`
/// at once, so this is unit-tested with a fake check.
async fn wait_until<F, Fut>(
    what: &str,
    delays: &[Duration],
    mut check: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ProviderError>>,
{
    if check().await? {
        return Ok(());
    }
    for delay in delays {
        tokio::time::sleep(*delay).await;
        if check().await? {
            return Ok(());
        }
    }
    Err(ProviderError::eventual_consistency(format!(
        "{what} is still not available"
    )))
}

/// Waits until the object a create answered `pending` reports `available` (see
/// [`wait_until`]): about 40 s in all, short first polls (AWS is usually done in a second),
/// then 5 s steps.
async fn wait_available<F, Fut>(what: &str, check: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, ProviderError>>,
{
    let delays: Vec<Duration> = [
        250u64, 500, 1000, 2000, 3000, 5000, 5000, 5000, 5000, 5000, 5000,
    ]
    .into_iter()
    .map(Duration::from_millis)
    .collect();
    wait_until(what, &delays, check).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn waiting_polls_until_available_and_gives_up_as_eventual() {
        let polls = AtomicU32::new(0);
        let delays = [Duration::ZERO; 5];
        // pending, pending, available
        wait_until("vpc-1", &delays, || async {
            Ok(polls.fetch_add(1, Ordering::SeqCst) >= 2)
        })
        .await
        .unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 3);

        let err = wait_until("subnet-1", &delays[..2], || async { Ok(false) })
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("subnet-1"));
    }

    #[test]
    fn after_update_takes_changed_fields_only() {
        let desired = DesiredResource::new("ec2.subnet", "a", "us-east-1", "rc-a")
            .with_properties(json!({"mapPublicIpOnLaunch": true, "cidrBlock": "10.0.0.0/20"}));
        let mut observed = Observed::new("ec2.subnet/a");
        observed.properties = json!({"mapPublicIpOnLaunch": false, "cidrBlock": "10.0.0.0/16"});
        let changes = vec![FieldChange {
            path: "/mapPublicIpOnLaunch".into(),
            before: Some(json!(false)),
            after: None,
            forces_replacement: false,
        }];
        let out = after_update(&desired, &observed, &changes);
        assert_eq!(out.properties["mapPublicIpOnLaunch"], json!(true));
        assert_eq!(out.properties["cidrBlock"], json!("10.0.0.0/16"));
    }

    #[test]
    fn the_best_tagged_of_several_namesakes_is_paired() {
        let desired = [
            DesiredResource::new("ec2.vpc", "main", "eu-west-1", "rc-main")
                .with_tag("Name", "rc-main")
                .with_tag("reconciler.dev/base", "main"),
        ];
        let vpc = |id: &str, base: &str| {
            aws_sdk_ec2::types::Vpc::builder()
                .vpc_id(id)
                .tags(Tag::builder().key("Name").value("rc-main").build())
                .tags(
                    Tag::builder()
                        .key("reconciler.dev/base")
                        .value(base)
                        .build(),
                )
                .build()
        };
        let found = vec![
            vpc("vpc-1", "other"),
            vpc("vpc-3", "main"),
            vpc("vpc-2", "main"),
        ];
        let pairs = pair_by_name_tag(&desired, found);
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].1.vpc_id(), Some("vpc-2"));
        let none = pair_by_name_tag(&desired, vec![aws_sdk_ec2::types::Vpc::builder().build()]);
        assert!(none.is_empty());
    }
}
