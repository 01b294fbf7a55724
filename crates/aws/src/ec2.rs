//! EC2: the Base's network (VPC, internet gateway, public subnets, route table), the servers'
//! security groups, the optional SSH key pair and the launch templates.
//!
//! Discovery, per kind and region, in one describe call (plus pagination) filtered by the
//! identity of the desired objects and the ownership tag `reconciler.dev/managed-by`:
//!
//! | kind | identity | batched read |
//! |---|---|---|
//! | `ec2.vpc` | tag `Name` | `DescribeVpcs` (+ `DescribeVpcAttribute`, see [`VpcClient`]) |
//! | `ec2.internet-gateway` | tag `Name` | `DescribeInternetGateways` |
//! | `ec2.subnet` | tag `Name` | `DescribeSubnets` (+ cached `DescribeAvailabilityZones`) |
//! | `ec2.route-table` | tag `Name` | `DescribeRouteTables` |
//! | `ec2.security-group` | group name | `DescribeSecurityGroups` + one `DescribeSecurityGroupRules` |
//! | `ec2.key-pair` | key name | `DescribeKeyPairs` |
//! | `ec2.launch-template` | template name | `DescribeLaunchTemplates` + one `DescribeLaunchTemplateVersions` (+ cached SSM `GetParameters`) |
//!
//! Objects without the ownership tag are invisible to observation, so they are never changed.
//! The `Name` tag (or the unique AWS name) is the identity: creates always write it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceInterruptionBehavior, InstanceType, IpPermission,
    IpRange, Ipv6Range, KeyType, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMarketOptionsRequest, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateInstanceMetadataProtocolIpv6,
    LaunchTemplateInstanceMetadataTagsState, LaunchTemplateSpotMarketOptionsRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplatesMonitoringRequest, MarketType,
    PrefixListId, RequestLaunchTemplateData, ResourceType, ResponseLaunchTemplateData, Route,
    RouteTable, SecurityGroup, SecurityGroupRule, SecurityGroupRuleRequest,
    SecurityGroupRuleUpdate, SpotInstanceType, Tag, TagSpecification, UserIdGroupPair, VolumeType,
    VpcAttributeName,
};
use base64::Engine as _;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use reconciler_render::naming::{bounded, MANAGED_BY, TAG_MANAGED_BY};
use serde_json::{json, Map, Value};

use crate::error::{classify, code_of};
use crate::pool::ClientPool;
use crate::tags::tag_delta;
use crate::util;

/// The clients of this service, sharing one zone and AMI cache.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    let shared = Ec2Shared::new(pool.clone());
    vec![
        Arc::new(VpcClient {
            shared: shared.clone(),
        }),
        Arc::new(InternetGatewayClient {
            shared: shared.clone(),
        }),
        Arc::new(SubnetClient {
            shared: shared.clone(),
        }),
        Arc::new(RouteTableClient {
            shared: shared.clone(),
        }),
        Arc::new(SecurityGroupClient {
            shared: shared.clone(),
        }),
        Arc::new(KeyPairClient {
            shared: shared.clone(),
        }),
        Arc::new(LaunchTemplateClient { shared }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// EC2 accepts at most 200 values in one filter.
const MAX_FILTER_VALUES: usize = 200;
/// SSM `GetParameters` takes at most 10 names.
const MAX_SSM_NAMES: usize = 10;
/// Where a key pair's private key is kept (as an SSM SecureString), after the key pair id.
pub const KEY_PAIR_PARAMETER_PREFIX: &str = "/ec2/keypair/";

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

/// Brings an object's tags to the desired ones (`CreateTags` for added or changed keys,
/// `DeleteTags` for our stale keys); no call when nothing differs.
async fn sync_tags(
    ec2: &aws_sdk_ec2::Client,
    resource_id: &str,
    desired: &IndexMap<String, String>,
    current: &IndexMap<String, String>,
) -> Result<(), ProviderError> {
    let (set, remove) = tag_delta(desired, current);
    if !set.is_empty() {
        ec2.create_tags()
            .resources(resource_id)
            .set_tags(Some(ec2_tags(&set)))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateTags {resource_id}"), e))?;
    }
    if !remove.is_empty() {
        ec2.delete_tags()
            .resources(resource_id)
            .set_tags(Some(
                remove
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteTags {resource_id}"), e))?;
    }
    Ok(())
}

/// Whether a change list touches a tag.
fn tags_changed(changes: &[FieldChange]) -> bool {
    changes.iter().any(FieldChange::is_tag)
}

/// Whether a change list touches the property `key` (or something below it).
fn changed(changes: &[FieldChange], key: &str) -> bool {
    let top = format!("/{key}");
    changes
        .iter()
        .any(|c| c.path == top || c.path.starts_with(&format!("{top}/")))
}

/// The observation after an update: the old one with the changed top-level properties and the
/// tags set to the desired values. Reading back right after a write could return the old
/// state (EC2 is eventually consistent), so the written values are reported.
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
    let (set, remove) = tag_delta(&desired.tags, &observed.tags);
    out.tags.extend(set);
    out.tags.retain(|k, _| !remove.contains(k));
    out
}

/// The id output of an observation, or a terminal error.
fn observed_id<'a>(observed: &'a Observed, what: &str) -> Result<&'a str, ProviderError> {
    observed
        .output("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::terminal(format!("{}: the observed {what} has no id", observed.id))
        })
}

/// Pairs desired resources with the found objects by identity. When several owned objects
/// share one identity (left behind by an interrupted create that has no idempotency token),
/// the one whose ownership tags match the desired ones best wins, then the lowest id, and the
/// others are reported in the log.
fn pair_by<T>(
    desired: &[DesiredResource],
    found: Vec<T>,
    ident_of: impl Fn(&DesiredResource) -> &str,
    key_of: impl Fn(&T) -> Option<String>,
    id_of: impl Fn(&T) -> String,
    tags_of: impl Fn(&T) -> IndexMap<String, String>,
) -> Vec<(&DesiredResource, T)> {
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
            let tags = tags_of(item);
            d.tags
                .iter()
                .filter(|(k, v)| k.starts_with("reconciler.dev/") && tags.get(*k) != Some(*v))
                .count()
        };
        candidates.sort_by(|a, b| score(a).cmp(&score(b)).then(id_of(a).cmp(&id_of(b))));
        if candidates.len() > 1 {
            let ids: Vec<String> = candidates.iter().map(&id_of).collect();
            tracing::warn!(id = %d.id, candidates = ?ids, "several owned objects share one name; using the first");
        }
        if let Some(first) = candidates.into_iter().next() {
            out.push((d, first));
        }
    }
    out
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

/// About 40 s in all: short first polls (AWS is usually done in a second), then 5 s steps.
fn availability_delays() -> Vec<Duration> {
    [
        250u64, 500, 1000, 2000, 3000, 5000, 5000, 5000, 5000, 5000, 5000,
    ]
    .into_iter()
    .map(Duration::from_millis)
    .collect()
}

/// A required string property read from resolved desired properties.
fn req_str<'a>(desired: &'a DesiredResource, key: &str) -> Result<&'a str, ProviderError> {
    util::str_prop(desired, key)
}

// ---------------------------------------------------------------------------------------------
// VPC
// ---------------------------------------------------------------------------------------------

/// `ec2.vpc`: `cidrBlock` (immutable), `enableDnsSupport`, `enableDnsHostnames`. Output `id`.
///
/// The DNS attributes are only readable with `DescribeVpcAttribute`, one call per VPC and per
/// attribute (the API has no batch form); a Base has one VPC, so that is two extra reads.
pub struct VpcClient {
    shared: Arc<Ec2Shared>,
}

const DNS_SUPPORT: &str = "enableDnsSupport";
const DNS_HOSTNAMES: &str = "enableDnsHostnames";

impl VpcClient {
    async fn find(
        &self,
        ec2: &aws_sdk_ec2::Client,
        desired: &[DesiredResource],
    ) -> Result<Vec<aws_sdk_ec2::types::Vpc>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| ident(d).to_string()).collect();
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            let vpcs: Vec<_> = ec2
                .describe_vpcs()
                .filters(filter("tag:Name", chunk.iter().cloned()))
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeVpcs", e))?;
            found.extend(vpcs);
        }
        Ok(found)
    }

    async fn attribute(
        ec2: &aws_sdk_ec2::Client,
        vpc_id: &str,
        attribute: VpcAttributeName,
    ) -> Result<Option<bool>, ProviderError> {
        let out = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeVpcAttribute {vpc_id} {attribute}"), e))?;
        Ok(match attribute {
            VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
            _ => out.enable_dns_hostnames(),
        }
        .and_then(AttributeBooleanValue::value))
    }

    async fn modify(
        ec2: &aws_sdk_ec2::Client,
        vpc_id: &str,
        attribute: &str,
        value: bool,
    ) -> Result<(), ProviderError> {
        let v = AttributeBooleanValue::builder().value(value).build();
        let call = ec2.modify_vpc_attribute().vpc_id(vpc_id);
        let call = if attribute == DNS_SUPPORT {
            call.enable_dns_support(v)
        } else {
            call.enable_dns_hostnames(v)
        };
        call.send()
            .await
            .map_err(|e| classify(&format!("ModifyVpcAttribute {vpc_id} {attribute}"), e))?;
        Ok(())
    }

    /// Sets the DNS attributes, one per call as the API requires, in the order AWS accepts:
    /// host names need DNS support, so support is turned on first and off last.
    async fn set_dns(
        ec2: &aws_sdk_ec2::Client,
        vpc_id: &str,
        support: Option<bool>,
        hostnames: Option<bool>,
    ) -> Result<(), ProviderError> {
        if support == Some(true) {
            Self::modify(ec2, vpc_id, DNS_SUPPORT, true).await?;
        }
        if let Some(h) = hostnames {
            Self::modify(ec2, vpc_id, DNS_HOSTNAMES, h).await?;
        }
        if support == Some(false) {
            Self::modify(ec2, vpc_id, DNS_SUPPORT, false).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl ResourceClient for VpcClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::VPC)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().immutable("/cidrBlock")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let found = self.find(&ec2, desired).await?;
        let pairs = pair_by(
            desired,
            found,
            ident,
            |v| tag_map(v.tags()).get("Name").cloned(),
            |v| v.vpc_id().unwrap_or_default().to_string(),
            |v| tag_map(v.tags()),
        );
        let mut out = Vec::new();
        for (d, vpc) in pairs {
            let Some(id) = vpc.vpc_id() else { continue };
            let mut props = Map::new();
            props.insert("cidrBlock".into(), json!(vpc.cidr_block()));
            // Per-VPC, per-attribute reads: see the type's docs. Only what is managed is read.
            if d.properties.get(DNS_SUPPORT).is_some() {
                let v = Self::attribute(&ec2, id, VpcAttributeName::EnableDnsSupport).await?;
                props.insert(DNS_SUPPORT.into(), json!(v));
            }
            if d.properties.get(DNS_HOSTNAMES).is_some() {
                let v = Self::attribute(&ec2, id, VpcAttributeName::EnableDnsHostnames).await?;
                props.insert(DNS_HOSTNAMES.into(), json!(v));
            }
            out.push(util::observed(
                d,
                Value::Object(props),
                [("id", json!(id))],
                tag_map(vpc.tags()),
            ));
        }
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let cidr = req_str(desired, "cidrBlock")?;
        // CreateVpc has no idempotency token: a retried create first looks for the VPC an
        // earlier attempt made, and lets the engine adopt it.
        if !self
            .find(&ec2, std::slice::from_ref(desired))
            .await?
            .is_empty()
        {
            return Err(ProviderError::conflict(format!(
                "VPC {} already exists",
                ident(desired)
            )));
        }
        let tags = create_tags(desired);
        let out = ec2
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(tag_spec(ResourceType::Vpc, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateVpc {}", desired.name), e))?;
        let vpc = out
            .vpc()
            .ok_or_else(|| ProviderError::transient("CreateVpc: the answer has no VPC"))?;
        let id = vpc
            .vpc_id()
            .ok_or_else(|| ProviderError::transient("CreateVpc: the answer has no VPC id"))?
            .to_string();
        if vpc.state().map(|s| s.as_str()) != Some("available") {
            wait_until(&format!("VPC {id}"), &availability_delays(), || async {
                let out = ec2
                    .describe_vpcs()
                    .vpc_ids(&id)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("DescribeVpcs {id}"), e))?;
                Ok(out
                    .vpcs()
                    .iter()
                    .any(|v| v.state().map(|s| s.as_str()) == Some("available")))
            })
            .await?;
        }
        // AWS defaults: DNS support on, host names off. Only differences are written.
        let support = desired
            .properties
            .get(DNS_SUPPORT)
            .and_then(Value::as_bool)
            .filter(|v| !*v);
        let hostnames = desired
            .properties
            .get(DNS_HOSTNAMES)
            .and_then(Value::as_bool)
            .filter(|v| *v);
        Self::set_dns(&ec2, &id, support, hostnames).await?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "VPC")?;
        let value = |key: &str| -> Result<Option<bool>, ProviderError> {
            if changed(changes, key) {
                util::bool_prop(desired, key).map(Some)
            } else {
                Ok(None)
            }
        };
        Self::set_dns(&ec2, id, value(DNS_SUPPORT)?, value(DNS_HOSTNAMES)?).await?;
        if tags_changed(changes) {
            sync_tags(&ec2, id, &desired.tags, &observed.tags).await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = observed_id(observed, "VPC")?;
        // DependencyViolation (subnets, gateways, ENIs still there) is retried by the engine.
        self.shared
            .ec2(&desired.region)
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteVpc {id}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Internet gateway
// ---------------------------------------------------------------------------------------------

/// `ec2.internet-gateway`: `vpcId` (the attachment; moving it detaches and attaches). Output
/// `id`.
pub struct InternetGatewayClient {
    shared: Arc<Ec2Shared>,
}

impl InternetGatewayClient {
    async fn find(
        ec2: &aws_sdk_ec2::Client,
        desired: &[DesiredResource],
    ) -> Result<Vec<aws_sdk_ec2::types::InternetGateway>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| ident(d).to_string()).collect();
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            let igws: Vec<_> = ec2
                .describe_internet_gateways()
                .filters(filter("tag:Name", chunk.iter().cloned()))
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeInternetGateways", e))?;
            found.extend(igws);
        }
        Ok(found)
    }

    async fn attach(ec2: &aws_sdk_ec2::Client, igw: &str, vpc: &str) -> Result<(), ProviderError> {
        ec2.attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(|e| classify(&format!("AttachInternetGateway {igw} {vpc}"), e))?;
        Ok(())
    }

    /// Detaches; "not attached" and "not found" mean there is nothing to do.
    async fn detach(ec2: &aws_sdk_ec2::Client, igw: &str, vpc: &str) -> Result<(), ProviderError> {
        match ec2
            .detach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("Gateway.NotAttached") => Ok(()),
            Err(e) => {
                let err = classify(&format!("DetachInternetGateway {igw} {vpc}"), e);
                if err.class == reconciler_engine::provider::ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[async_trait]
impl ResourceClient for InternetGatewayClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::INTERNET_GATEWAY)
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let found = Self::find(&ec2, desired).await?;
        let pairs = pair_by(
            desired,
            found,
            ident,
            |g| tag_map(g.tags()).get("Name").cloned(),
            |g| g.internet_gateway_id().unwrap_or_default().to_string(),
            |g| tag_map(g.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, igw)| {
                let id = igw.internet_gateway_id()?;
                let vpc = igw
                    .attachments()
                    .iter()
                    .filter(|a| {
                        a.state().is_none_or(|s| {
                            matches!(s.as_str(), "attached" | "available" | "attaching")
                        })
                    })
                    .find_map(|a| a.vpc_id());
                Some(util::observed(
                    d,
                    json!({ "vpcId": vpc }),
                    [("id", json!(id))],
                    tag_map(igw.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let vpc = req_str(desired, "vpcId")?;
        // No idempotency token on CreateInternetGateway: look first (see VpcClient::create).
        if !Self::find(&ec2, std::slice::from_ref(desired))
            .await?
            .is_empty()
        {
            return Err(ProviderError::conflict(format!(
                "internet gateway {} already exists",
                ident(desired)
            )));
        }
        let tags = create_tags(desired);
        let out = ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateInternetGateway {}", desired.name), e))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| ProviderError::transient("CreateInternetGateway: no gateway id"))?
            .to_string();
        // A failure here leaves a detached gateway; the retried create finds it (conflict),
        // and the engine's update attaches it.
        Self::attach(&ec2, &id, vpc).await?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "internet gateway")?;
        if changed(changes, "vpcId") {
            let vpc = req_str(desired, "vpcId")?;
            if let Some(old) = observed.properties.get("vpcId").and_then(Value::as_str) {
                Self::detach(&ec2, id, old).await?;
            }
            Self::attach(&ec2, id, vpc).await?;
        }
        if tags_changed(changes) {
            sync_tags(&ec2, id, &desired.tags, &observed.tags).await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "internet gateway")?;
        // Detaching fails with DependencyViolation while instances in the VPC still hold public
        // addresses; the engine retries it as eventual consistency.
        if let Some(vpc) = observed.properties.get("vpcId").and_then(Value::as_str) {
            Self::detach(&ec2, id, vpc).await?;
        }
        ec2.delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteInternetGateway {id}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Subnet
// ---------------------------------------------------------------------------------------------

/// `ec2.subnet`: `vpcId`, `cidrBlock`, `availabilityZoneIndex` (all immutable),
/// `mapPublicIpOnLaunch`. Outputs `id`, `availabilityZone`.
pub struct SubnetClient {
    shared: Arc<Ec2Shared>,
}

impl SubnetClient {
    async fn find(
        ec2: &aws_sdk_ec2::Client,
        desired: &[DesiredResource],
    ) -> Result<Vec<aws_sdk_ec2::types::Subnet>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| ident(d).to_string()).collect();
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            let subnets: Vec<_> = ec2
                .describe_subnets()
                .filters(filter("tag:Name", chunk.iter().cloned()))
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeSubnets", e))?;
            found.extend(subnets);
        }
        Ok(found)
    }

    async fn set_public_ip(
        ec2: &aws_sdk_ec2::Client,
        id: &str,
        value: bool,
    ) -> Result<(), ProviderError> {
        ec2.modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(value).build())
            .send()
            .await
            .map_err(|e| classify(&format!("ModifySubnetAttribute {id}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl ResourceClient for SubnetClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::SUBNET)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/vpcId")
            .immutable("/cidrBlock")
            .immutable("/availabilityZoneIndex")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let found = Self::find(&ec2, desired).await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let zones = self.shared.describe_availability_zones(region).await?;
        let pairs = pair_by(
            desired,
            found,
            ident,
            |s| tag_map(s.tags()).get("Name").cloned(),
            |s| s.subnet_id().unwrap_or_default().to_string(),
            |s| tag_map(s.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, s)| {
                let id = s.subnet_id()?;
                let zone = s.availability_zone();
                // A zone outside the list (a Local Zone, say) has no index: reported as null,
                // which differs from any desired index and so plans a replacement.
                let index = zone.and_then(|z| zones.iter().position(|n| n == z));
                Some(util::observed(
                    d,
                    json!({
                        "vpcId": s.vpc_id(),
                        "cidrBlock": s.cidr_block(),
                        "availabilityZoneIndex": index,
                        "mapPublicIpOnLaunch": s.map_public_ip_on_launch().unwrap_or(false)
                    }),
                    [("id", json!(id)), ("availabilityZone", json!(zone))],
                    tag_map(s.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let region = desired.region.as_str();
        let ec2 = self.shared.ec2(region);
        let vpc = req_str(desired, "vpcId")?;
        let cidr = req_str(desired, "cidrBlock")?;
        let index = util::i64_prop(desired, "availabilityZoneIndex")?;
        let zones = self.shared.describe_availability_zones(region).await?;
        let zone = usize::try_from(index)
            .ok()
            .and_then(|i| zones.get(i))
            .ok_or_else(|| {
                ProviderError::terminal(format!(
                    "{}: availabilityZoneIndex {index} is out of range: {region} has {} zone(s) ({})",
                    desired.id,
                    zones.len(),
                    zones.join(", ")
                ))
            })?
            .clone();
        // No idempotency token on CreateSubnet: look first (see VpcClient::create).
        if !Self::find(&ec2, std::slice::from_ref(desired))
            .await?
            .is_empty()
        {
            return Err(ProviderError::conflict(format!(
                "subnet {} already exists",
                ident(desired)
            )));
        }
        let tags = create_tags(desired);
        let out = ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .availability_zone(&zone)
            .tag_specifications(tag_spec(ResourceType::Subnet, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateSubnet {}", desired.name), e))?;
        let subnet = out
            .subnet()
            .ok_or_else(|| ProviderError::transient("CreateSubnet: the answer has no subnet"))?;
        let id = subnet
            .subnet_id()
            .ok_or_else(|| ProviderError::transient("CreateSubnet: no subnet id"))?
            .to_string();
        if subnet.state().map(|s| s.as_str()) != Some("available") {
            wait_until(&format!("subnet {id}"), &availability_delays(), || async {
                let out = ec2
                    .describe_subnets()
                    .subnet_ids(&id)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("DescribeSubnets {id}"), e))?;
                Ok(out
                    .subnets()
                    .iter()
                    .any(|s| s.state().map(|s| s.as_str()) == Some("available")))
            })
            .await?;
        }
        // New subnets do not map public addresses; only `true` needs a call.
        if desired
            .properties
            .get("mapPublicIpOnLaunch")
            .and_then(Value::as_bool)
            == Some(true)
        {
            Self::set_public_ip(&ec2, &id, true).await?;
        }
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("id", json!(id)), ("availabilityZone", json!(zone))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "subnet")?;
        if changed(changes, "mapPublicIpOnLaunch") {
            let value = util::bool_prop(desired, "mapPublicIpOnLaunch")?;
            Self::set_public_ip(&ec2, id, value).await?;
        }
        if tags_changed(changes) {
            sync_tags(&ec2, id, &desired.tags, &observed.tags).await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = observed_id(observed, "subnet")?;
        // DependencyViolation while ENIs (instances, mount targets) remain: retried.
        self.shared
            .ec2(&desired.region)
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSubnet {id}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Route table
// ---------------------------------------------------------------------------------------------

/// `ec2.route-table`: `vpcId` (immutable), `routes` [{`destinationCidrBlock`, `gatewayId`}]
/// and `subnetIds` (the explicit associations), both compared as sets. Output `id`.
///
/// Only routes made with `CreateRoute` are managed: the `local` route and propagated routes
/// belong to AWS.
pub struct RouteTableClient {
    shared: Arc<Ec2Shared>,
}

/// Route destination keys, in the order they are looked for.
const ROUTE_DESTINATIONS: &[&str] = &[
    "destinationCidrBlock",
    "destinationIpv6CidrBlock",
    "destinationPrefixListId",
];

/// Route target keys.
const ROUTE_TARGETS: &[&str] = &[
    "gatewayId",
    "natGatewayId",
    "transitGatewayId",
    "vpcPeeringConnectionId",
    "networkInterfaceId",
    "egressOnlyInternetGatewayId",
    "carrierGatewayId",
    "localGatewayId",
];

/// A route as the reconciler compares it: (destination key, destination) and targets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteSpec {
    destination: (String, String),
    targets: BTreeMap<String, String>,
}

impl RouteSpec {
    fn from_json(value: &Value) -> Option<RouteSpec> {
        let obj = value.as_object()?;
        let destination = ROUTE_DESTINATIONS.iter().find_map(|k| {
            obj.get(*k)
                .and_then(Value::as_str)
                .map(|v| (k.to_string(), v.to_string()))
        })?;
        let targets = ROUTE_TARGETS
            .iter()
            .filter_map(|k| {
                obj.get(*k)
                    .and_then(Value::as_str)
                    .map(|v| (k.to_string(), v.to_string()))
            })
            .collect();
        Some(RouteSpec {
            destination,
            targets,
        })
    }

    /// A managed route of AWS's answer; `None` for the local and propagated routes.
    fn from_route(r: &Route) -> Option<RouteSpec> {
        match r.origin().map(|o| o.as_str()) {
            Some("CreateRouteTable") | Some("EnableVgwRoutePropagation") => return None,
            _ => {}
        }
        if r.gateway_id() == Some("local") {
            return None;
        }
        let destination = [
            ("destinationCidrBlock", r.destination_cidr_block()),
            ("destinationIpv6CidrBlock", r.destination_ipv6_cidr_block()),
            ("destinationPrefixListId", r.destination_prefix_list_id()),
        ]
        .into_iter()
        .find_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))?;
        let targets = [
            ("gatewayId", r.gateway_id()),
            ("natGatewayId", r.nat_gateway_id()),
            ("transitGatewayId", r.transit_gateway_id()),
            ("vpcPeeringConnectionId", r.vpc_peering_connection_id()),
            // Routes to an instance also name its interface; the interface is what is kept.
            ("networkInterfaceId", r.network_interface_id()),
            (
                "egressOnlyInternetGatewayId",
                r.egress_only_internet_gateway_id(),
            ),
            ("carrierGatewayId", r.carrier_gateway_id()),
            ("localGatewayId", r.local_gateway_id()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect();
        Some(RouteSpec {
            destination,
            targets,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(self.destination.0.clone(), json!(self.destination.1));
        for (k, v) in &self.targets {
            m.insert(k.clone(), json!(v));
        }
        Value::Object(m)
    }
}

macro_rules! route_call {
    ($call:expr, $spec:expr) => {{
        let mut call = $call;
        call = match $spec.destination.0.as_str() {
            "destinationIpv6CidrBlock" => call.destination_ipv6_cidr_block(&$spec.destination.1),
            "destinationPrefixListId" => call.destination_prefix_list_id(&$spec.destination.1),
            _ => call.destination_cidr_block(&$spec.destination.1),
        };
        for (k, v) in &$spec.targets {
            call = match k.as_str() {
                "gatewayId" => call.gateway_id(v),
                "natGatewayId" => call.nat_gateway_id(v),
                "transitGatewayId" => call.transit_gateway_id(v),
                "vpcPeeringConnectionId" => call.vpc_peering_connection_id(v),
                "networkInterfaceId" => call.network_interface_id(v),
                "egressOnlyInternetGatewayId" => call.egress_only_internet_gateway_id(v),
                "carrierGatewayId" => call.carrier_gateway_id(v),
                "localGatewayId" => call.local_gateway_id(v),
                _ => call,
            };
        }
        call
    }};
}

impl RouteTableClient {
    async fn find(
        ec2: &aws_sdk_ec2::Client,
        desired: &[DesiredResource],
    ) -> Result<Vec<RouteTable>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| ident(d).to_string()).collect();
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            let tables: Vec<_> = ec2
                .describe_route_tables()
                .filters(filter("tag:Name", chunk.iter().cloned()))
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeRouteTables", e))?;
            found.extend(tables);
        }
        Ok(found)
    }

    /// A fresh read of one table, for its association ids; `None` when it is gone.
    async fn read(
        ec2: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Option<RouteTable>, ProviderError> {
        match ec2.describe_route_tables().route_table_ids(id).send().await {
            Ok(out) => Ok(out.route_tables().first().cloned()),
            Err(e) => {
                let err = classify(&format!("DescribeRouteTables {id}"), e);
                if err.class == reconciler_engine::provider::ErrorClass::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    fn routes(table: &RouteTable) -> Vec<RouteSpec> {
        table
            .routes()
            .iter()
            .filter_map(RouteSpec::from_route)
            .collect()
    }

    /// Explicit subnet associations: subnet id -> association id.
    fn associations(table: &RouteTable) -> BTreeMap<String, String> {
        table
            .associations()
            .iter()
            .filter(|a| a.main() != Some(true))
            .filter(|a| {
                a.association_state()
                    .and_then(|s| s.state())
                    .is_none_or(|s| matches!(s.as_str(), "associated" | "associating"))
            })
            .filter_map(|a| {
                Some((
                    a.subnet_id()?.to_string(),
                    a.route_table_association_id()?.to_string(),
                ))
            })
            .collect()
    }

    fn desired_routes(desired: &DesiredResource) -> Result<Vec<RouteSpec>, ProviderError> {
        let Some(routes) = desired.properties.get("routes") else {
            return Ok(Vec::new());
        };
        let routes = routes
            .as_array()
            .ok_or_else(|| util::missing(desired, "routes"))?;
        routes
            .iter()
            .map(|r| {
                RouteSpec::from_json(r)
                    .ok_or_else(|| util::missing(desired, "routes/*/destinationCidrBlock"))
            })
            .collect()
    }

    /// Routes: create the missing, replace those whose target differs, delete the extra.
    async fn reconcile_routes(
        ec2: &aws_sdk_ec2::Client,
        table_id: &str,
        desired: &[RouteSpec],
        current: &[RouteSpec],
    ) -> Result<(), ProviderError> {
        for want in desired {
            match current.iter().find(|c| c.destination == want.destination) {
                None => {
                    route_call!(ec2.create_route().route_table_id(table_id), want)
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&format!("CreateRoute {table_id} {}", want.destination.1), e)
                        })?;
                }
                Some(have) if have.targets != want.targets => {
                    route_call!(ec2.replace_route().route_table_id(table_id), want)
                        .send()
                        .await
                        .map_err(|e| {
                            classify(
                                &format!("ReplaceRoute {table_id} {}", want.destination.1),
                                e,
                            )
                        })?;
                }
                Some(_) => {}
            }
        }
        for have in current {
            if desired.iter().any(|d| d.destination == have.destination) {
                continue;
            }
            let call = ec2.delete_route().route_table_id(table_id);
            let call = match have.destination.0.as_str() {
                "destinationIpv6CidrBlock" => call.destination_ipv6_cidr_block(&have.destination.1),
                "destinationPrefixListId" => call.destination_prefix_list_id(&have.destination.1),
                _ => call.destination_cidr_block(&have.destination.1),
            };
            match call.send().await {
                Ok(_) => {}
                Err(e) => {
                    let err =
                        classify(&format!("DeleteRoute {table_id} {}", have.destination.1), e);
                    if err.class != reconciler_engine::provider::ErrorClass::NotFound {
                        return Err(err);
                    }
                }
            }
        }
        Ok(())
    }

    /// Associates a subnet. A subnet has one explicit association at most: when another table
    /// holds it (say, a table being replaced), the association is moved here.
    async fn associate(
        ec2: &aws_sdk_ec2::Client,
        table_id: &str,
        subnet: &str,
    ) -> Result<(), ProviderError> {
        match ec2
            .associate_route_table()
            .route_table_id(table_id)
            .subnet_id(subnet)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("Resource.AlreadyAssociated") => {
                let out = ec2
                    .describe_route_tables()
                    .filters(filter("association.subnet-id", [subnet]))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("DescribeRouteTables subnet {subnet}"), e))?;
                let assoc = out
                    .route_tables()
                    .iter()
                    .flat_map(|t| t.associations())
                    .find(|a| a.subnet_id() == Some(subnet))
                    .and_then(|a| Some((a.route_table_id()?, a.route_table_association_id()?)));
                match assoc {
                    Some((t, _)) if t == table_id => Ok(()),
                    Some((_, assoc)) => {
                        ec2.replace_route_table_association()
                            .association_id(assoc)
                            .route_table_id(table_id)
                            .send()
                            .await
                            .map_err(|e| {
                                classify(&format!("ReplaceRouteTableAssociation {assoc}"), e)
                            })?;
                        Ok(())
                    }
                    None => Err(ProviderError::conflict(format!(
                        "subnet {subnet} is associated elsewhere"
                    ))),
                }
            }
            Err(e) => Err(classify(
                &format!("AssociateRouteTable {table_id} {subnet}"),
                e,
            )),
        }
    }

    async fn disassociate(ec2: &aws_sdk_ec2::Client, assoc: &str) -> Result<(), ProviderError> {
        match ec2
            .disassociate_route_table()
            .association_id(assoc)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(&format!("DisassociateRouteTable {assoc}"), e);
                if err.class == reconciler_engine::provider::ErrorClass::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[async_trait]
impl ResourceClient for RouteTableClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::ROUTE_TABLE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/vpcId")
            .unordered("/routes")
            .unordered("/subnetIds")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let found = Self::find(&ec2, desired).await?;
        let pairs = pair_by(
            desired,
            found,
            ident,
            |t| tag_map(t.tags()).get("Name").cloned(),
            |t| t.route_table_id().unwrap_or_default().to_string(),
            |t| tag_map(t.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, t)| {
                let id = t.route_table_id()?;
                let mut routes: Vec<Value> =
                    Self::routes(&t).iter().map(RouteSpec::to_json).collect();
                routes.sort_by_key(|r| r.to_string());
                let subnets: Vec<String> = Self::associations(&t).into_keys().collect();
                Some(util::observed(
                    d,
                    json!({ "vpcId": t.vpc_id(), "routes": routes, "subnetIds": subnets }),
                    [("id", json!(id))],
                    tag_map(t.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let vpc = req_str(desired, "vpcId")?;
        let routes = Self::desired_routes(desired)?;
        let subnets = util::str_list(desired, "subnetIds");
        let tags = create_tags(desired);
        // The token ties a retried create to the table an earlier attempt made. It includes
        // the VPC, so a table recreated in a new VPC never gets the old answer.
        let token = bounded(&format!("{}-{vpc}", desired.name), 64);
        let out = ec2
            .create_route_table()
            .vpc_id(vpc)
            .client_token(token)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateRouteTable {}", desired.name), e))?;
        let table = out
            .route_table()
            .ok_or_else(|| ProviderError::transient("CreateRouteTable: the answer has no table"))?;
        let id = table
            .route_table_id()
            .ok_or_else(|| ProviderError::transient("CreateRouteTable: no table id"))?
            .to_string();
        // A retried create gets the same table back, possibly with routes already made.
        Self::reconcile_routes(&ec2, &id, &routes, &Self::routes(table)).await?;
        let current = Self::associations(table);
        for subnet in &subnets {
            if !current.contains_key(subnet) {
                Self::associate(&ec2, &id, subnet).await?;
            }
        }
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "route table")?;
        if changed(changes, "routes") || changed(changes, "subnetIds") {
            // Association ids are not part of the observation: read the table again.
            let table = Self::read(&ec2, id)
                .await?
                .ok_or_else(|| ProviderError::not_found(format!("route table {id} is gone")))?;
            if changed(changes, "routes") {
                let routes = Self::desired_routes(desired)?;
                Self::reconcile_routes(&ec2, id, &routes, &Self::routes(&table)).await?;
            }
            if changed(changes, "subnetIds") {
                let want: BTreeSet<String> =
                    util::str_list(desired, "subnetIds").into_iter().collect();
                let have = Self::associations(&table);
                for subnet in want.iter().filter(|s| !have.contains_key(*s)) {
                    Self::associate(&ec2, id, subnet).await?;
                }
                for (_, assoc) in have.iter().filter(|(s, _)| !want.contains(*s)) {
                    Self::disassociate(&ec2, assoc).await?;
                }
            }
        }
        if tags_changed(changes) {
            sync_tags(&ec2, id, &desired.tags, &observed.tags).await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "route table")?;
        let Some(table) = Self::read(&ec2, id).await? else {
            return Ok(());
        };
        for assoc in Self::associations(&table).values() {
            Self::disassociate(&ec2, assoc).await?;
        }
        ec2.delete_route_table()
            .route_table_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteRouteTable {id}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Security group
// ---------------------------------------------------------------------------------------------

/// `ec2.security-group`: `groupName`, `description`, `vpcId` (immutable), `ingress` and
/// `egress` rule lists compared as sets. Output `id`.
///
/// A rule is {`ipProtocol` (lower case; `-1` for all), `fromPort`, `toPort` (absent for `-1`),
/// one of `cidrIpv4` | `cidrIpv6` | `sourceSecurityGroupId` | `prefixListId`, `description`}.
/// Rules are reconciled one by one: missing rules are authorized, extra ones revoked by rule
/// id, and rules that differ only in their description are modified in place, so traffic is
/// never cut while a description changes. `egress: []` revokes the default allow-all rule.
pub struct SecurityGroupClient {
    shared: Arc<Ec2Shared>,
}

/// The peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Peer {
    Cidr4(String),
    Cidr6(String),
    Group(String),
    PrefixList(String),
}

/// What identifies a rule in AWS: protocol, ports and peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RuleKey {
    protocol: String,
    from: Option<i32>,
    to: Option<i32>,
    peer: Peer,
}

/// A normalised rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    key: RuleKey,
    description: Option<String>,
    /// The AWS rule id (observed rules only).
    id: Option<String>,
}

/// Lower-case protocol names; the numbers AWS also accepts become their names.
fn normalise_protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        "58" => "icmpv6".into(),
        "all" => "-1".into(),
        other => other.to_string(),
    }
}

/// Ports as compared: none for "all protocols", and none for protocols without ports, for
/// which AWS answers `-1`.
fn normalise_ports(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> (Option<i32>, Option<i32>) {
    match protocol {
        "-1" => (None, None),
        "tcp" | "udp" | "icmp" | "icmpv6" => (from, to),
        _ if from.unwrap_or(-1) == -1 && to.unwrap_or(-1) == -1 => (None, None),
        _ => (from, to),
    }
}

impl Rule {
    fn from_json(value: &Value) -> Option<Rule> {
        let obj = value.as_object()?;
        let protocol = match obj.get("ipProtocol")? {
            Value::String(s) => normalise_protocol(s),
            Value::Number(n) => normalise_protocol(&n.to_string()),
            _ => return None,
        };
        let port = |k: &str| {
            obj.get(k)
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
        };
        let (from, to) = normalise_ports(&protocol, port("fromPort"), port("toPort"));
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let peer = if let Some(c) = s("cidrIpv4") {
            Peer::Cidr4(c)
        } else if let Some(c) = s("cidrIpv6") {
            Peer::Cidr6(c)
        } else if let Some(g) = s("sourceSecurityGroupId") {
            Peer::Group(g)
        } else {
            Peer::PrefixList(s("prefixListId")?)
        };
        Some(Rule {
            key: RuleKey {
                protocol,
                from,
                to,
                peer,
            },
            description: s("description").filter(|d| !d.is_empty()),
            id: None,
        })
    }

    fn from_aws(r: &SecurityGroupRule) -> Option<Rule> {
        let protocol = normalise_protocol(r.ip_protocol()?);
        let (from, to) = normalise_ports(&protocol, r.from_port(), r.to_port());
        let peer = if let Some(c) = r.cidr_ipv4() {
            Peer::Cidr4(c.to_string())
        } else if let Some(c) = r.cidr_ipv6() {
            Peer::Cidr6(c.to_string())
        } else if let Some(g) = r.referenced_group_info().and_then(|g| g.group_id()) {
            Peer::Group(g.to_string())
        } else {
            Peer::PrefixList(r.prefix_list_id()?.to_string())
        };
        Some(Rule {
            key: RuleKey {
                protocol,
                from,
                to,
                peer,
            },
            description: r
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            id: r.security_group_rule_id().map(str::to_string),
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ipProtocol".into(), json!(self.key.protocol));
        if let Some(f) = self.key.from {
            m.insert("fromPort".into(), json!(f));
        }
        if let Some(t) = self.key.to {
            m.insert("toPort".into(), json!(t));
        }
        let (k, v) = match &self.key.peer {
            Peer::Cidr4(c) => ("cidrIpv4", c),
            Peer::Cidr6(c) => ("cidrIpv6", c),
            Peer::Group(g) => ("sourceSecurityGroupId", g),
            Peer::PrefixList(p) => ("prefixListId", p),
        };
        m.insert(k.into(), json!(v));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        Value::Object(m)
    }

    /// The rule as an `IpPermission` (for Authorize).
    fn to_permission(&self) -> IpPermission {
        let mut p = IpPermission::builder()
            .ip_protocol(&self.key.protocol)
            .set_from_port(self.key.from)
            .set_to_port(self.key.to);
        let d = self.description.clone();
        p = match &self.key.peer {
            Peer::Cidr4(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).set_description(d).build()),
            Peer::Cidr6(c) => {
                p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).set_description(d).build())
            }
            Peer::Group(g) => p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(g)
                    .set_description(d)
                    .build(),
            ),
            Peer::PrefixList(l) => p.prefix_list_ids(
                PrefixListId::builder()
                    .prefix_list_id(l)
                    .set_description(d)
                    .build(),
            ),
        };
        p.build()
    }

    /// The rule as a `SecurityGroupRuleRequest` (for Modify, which needs ports even for
    /// "all protocols": -1).
    fn to_request(&self) -> SecurityGroupRuleRequest {
        let mut r = SecurityGroupRuleRequest::builder()
            .ip_protocol(&self.key.protocol)
            .from_port(self.key.from.unwrap_or(-1))
            .to_port(self.key.to.unwrap_or(-1))
            .set_description(self.description.clone());
        r = match &self.key.peer {
            Peer::Cidr4(c) => r.cidr_ipv4(c),
            Peer::Cidr6(c) => r.cidr_ipv6(c),
            Peer::Group(g) => r.referenced_group_id(g),
            Peer::PrefixList(l) => r.prefix_list_id(l),
        };
        r.build()
    }
}

/// Ingress and egress rules of one group.
#[derive(Debug, Default, Clone)]
struct GroupRules {
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

fn sorted_json(rules: &[Rule]) -> Value {
    let mut rules = rules.to_vec();
    rules.sort_by(|a, b| a.key.cmp(&b.key));
    Value::Array(rules.iter().map(Rule::to_json).collect())
}

/// The description of a group-referencing rule, read from the group's permissions.
///
/// The emulator leaves `Description` out of `DescribeSecurityGroupRules` for rules whose peer
/// is a security group (it keeps it only in `DescribeSecurityGroups`). AWS fills both, so on
/// AWS this finds the same value; it only matters when the rule list has none.
fn permission_description(group: &SecurityGroup, egress: bool, rule: &Rule) -> Option<String> {
    let Peer::Group(peer) = &rule.key.peer else {
        return None;
    };
    let perms = if egress {
        group.ip_permissions_egress()
    } else {
        group.ip_permissions()
    };
    perms
        .iter()
        .filter(|p| {
            let protocol = normalise_protocol(p.ip_protocol().unwrap_or_default());
            protocol == rule.key.protocol
                && normalise_ports(&protocol, p.from_port(), p.to_port())
                    == (rule.key.from, rule.key.to)
        })
        .flat_map(|p| p.user_id_group_pairs())
        .find(|pair| pair.group_id() == Some(peer.as_str()))
        .and_then(|pair| pair.description())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
}

impl SecurityGroupClient {
    async fn find(
        ec2: &aws_sdk_ec2::Client,
        names: &[String],
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            let groups: Vec<_> = ec2
                .describe_security_groups()
                .filters(filter("group-name", chunk.iter().cloned()))
                .filters(managed_filter())
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeSecurityGroups", e))?;
            found.extend(groups);
        }
        Ok(found)
    }

    /// The rules of the given groups, in one `DescribeSecurityGroupRules` call (per 200
    /// groups, plus pagination). `groups` supplies descriptions the rule list lacks.
    async fn rules(
        ec2: &aws_sdk_ec2::Client,
        ids: &[String],
        groups: &[SecurityGroup],
    ) -> Result<HashMap<String, GroupRules>, ProviderError> {
        let mut out: HashMap<String, GroupRules> = HashMap::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let rules: Vec<SecurityGroupRule> = ec2
                .describe_security_group_rules()
                .filters(filter("group-id", chunk.iter().cloned()))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeSecurityGroupRules", e))?;
            for r in &rules {
                let (Some(group_id), Some(mut rule)) = (r.group_id(), Rule::from_aws(r)) else {
                    continue;
                };
                let egress = r.is_egress().unwrap_or(false);
                if rule.description.is_none() {
                    if let Some(g) = groups.iter().find(|g| g.group_id() == Some(group_id)) {
                        rule.description = permission_description(g, egress, &rule);
                    }
                }
                let entry = out.entry(group_id.to_string()).or_default();
                if egress {
                    entry.egress.push(rule);
                } else {
                    entry.ingress.push(rule);
                }
            }
        }
        Ok(out)
    }

    fn desired_rules(
        desired: &DesiredResource,
        key: &str,
    ) -> Result<Option<Vec<Rule>>, ProviderError> {
        let Some(value) = desired.properties.get(key) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| util::missing(desired, key))?;
        let mut rules: Vec<Rule> = Vec::new();
        for item in items {
            let rule = Rule::from_json(item).ok_or_else(|| {
                ProviderError::terminal(format!(
                    "{}: a rule of `{key}` needs ipProtocol and one of cidrIpv4, cidrIpv6, sourceSecurityGroupId, prefixListId: {item}",
                    desired.id
                ))
            })?;
            // Two desired rules with one key are one AWS rule.
            if !rules.iter().any(|r| r.key == rule.key) {
                rules.push(rule);
            }
        }
        Ok(Some(rules))
    }

    /// Brings one group's rules to the desired lists (`None`: that direction is not managed).
    /// Order: authorize what is new, modify descriptions, then revoke what is left over, so a
    /// rule being replaced never leaves a gap.
    async fn reconcile_rules(
        ec2: &aws_sdk_ec2::Client,
        group_id: &str,
        ingress: Option<&[Rule]>,
        egress: Option<&[Rule]>,
        current: &GroupRules,
    ) -> Result<(), ProviderError> {
        let mut modify: Vec<SecurityGroupRuleUpdate> = Vec::new();
        let mut revoke: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for (i, (want, have)) in [(ingress, &current.ingress), (egress, &current.egress)]
            .into_iter()
            .enumerate()
        {
            let Some(want) = want else { continue };
            let egress = i == 1;
            let add: Vec<IpPermission> = want
                .iter()
                .filter(|w| !have.iter().any(|h| h.key == w.key))
                .map(Rule::to_permission)
                .collect();
            if !add.is_empty() {
                if egress {
                    ec2.authorize_security_group_egress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(add))
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&format!("AuthorizeSecurityGroupEgress {group_id}"), e)
                        })?;
                } else {
                    ec2.authorize_security_group_ingress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(add))
                        .send()
                        .await
                        .map_err(|e| {
                            classify(&format!("AuthorizeSecurityGroupIngress {group_id}"), e)
                        })?;
                }
            }
            for w in want {
                if let Some(h) = have.iter().find(|h| h.key == w.key) {
                    if h.description != w.description {
                        if let Some(id) = &h.id {
                            modify.push(
                                SecurityGroupRuleUpdate::builder()
                                    .security_group_rule_id(id)
                                    .security_group_rule(w.to_request())
                                    .build(),
                            );
                        }
                    }
                }
            }
            revoke[i] = have
                .iter()
                .filter(|h| !want.iter().any(|w| w.key == h.key))
                .filter_map(|h| h.id.clone())
                .collect();
        }
        if !modify.is_empty() {
            ec2.modify_security_group_rules()
                .group_id(group_id)
                .set_security_group_rules(Some(modify))
                .send()
                .await
                .map_err(|e| classify(&format!("ModifySecurityGroupRules {group_id}"), e))?;
        }
        let [revoke_in, revoke_out] = revoke;
        if !revoke_in.is_empty() {
            ec2.revoke_security_group_ingress()
                .group_id(group_id)
                .set_security_group_rule_ids(Some(revoke_in))
                .send()
                .await
                .map_err(|e| classify(&format!("RevokeSecurityGroupIngress {group_id}"), e))?;
        }
        if !revoke_out.is_empty() {
            ec2.revoke_security_group_egress()
                .group_id(group_id)
                .set_security_group_rule_ids(Some(revoke_out))
                .send()
                .await
                .map_err(|e| classify(&format!("RevokeSecurityGroupEgress {group_id}"), e))?;
        }
        Ok(())
    }

    fn group_name(desired: &DesiredResource) -> &str {
        util::opt_str(desired, "groupName").unwrap_or(desired.name.as_str())
    }
}

#[async_trait]
impl ResourceClient for SecurityGroupClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::SECURITY_GROUP)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/groupName")
            .immutable("/description")
            .immutable("/vpcId")
            .unordered("/ingress")
            .unordered("/egress")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let names: Vec<String> = desired
            .iter()
            .map(|d| Self::group_name(d).to_string())
            .collect();
        let groups = Self::find(&ec2, &names).await?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = groups
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect();
        let mut rules = Self::rules(&ec2, &ids, &groups).await?;
        let pairs = pair_by(
            desired,
            groups,
            Self::group_name,
            |g| g.group_name().map(str::to_string),
            |g| g.group_id().unwrap_or_default().to_string(),
            |g| tag_map(g.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, g)| {
                let id = g.group_id()?;
                let r = rules.remove(id).unwrap_or_default();
                Some(util::observed(
                    d,
                    json!({
                        "groupName": g.group_name(),
                        "description": g.description(),
                        "vpcId": g.vpc_id(),
                        "ingress": sorted_json(&r.ingress),
                        "egress": sorted_json(&r.egress)
                    }),
                    [("id", json!(id))],
                    tag_map(g.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let name = Self::group_name(desired);
        let description = req_str(desired, "description")?;
        let vpc = req_str(desired, "vpcId")?;
        let ingress = Self::desired_rules(desired, "ingress")?;
        let egress = Self::desired_rules(desired, "egress")?;
        let tags = create_tags(desired);
        // Group names are unique per VPC: a second create answers InvalidGroup.Duplicate,
        // a conflict the engine resolves by observing again.
        let out = ec2
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateSecurityGroup {name}"), e))?;
        let id = out
            .group_id()
            .ok_or_else(|| ProviderError::transient("CreateSecurityGroup: no group id"))?
            .to_string();
        // The new group holds AWS's default egress rule; compare against what is there.
        let current = Self::rules(&ec2, std::slice::from_ref(&id), &[])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Self::reconcile_rules(&ec2, &id, ingress.as_deref(), egress.as_deref(), &current).await?;
        let mut props = desired.properties.clone();
        if let Value::Object(m) = &mut props {
            for (key, rules) in [("ingress", &ingress), ("egress", &egress)] {
                if let Some(rules) = rules {
                    m.insert(key.into(), sorted_json(rules));
                }
            }
        }
        Ok(util::observed(desired, props, [("id", json!(id))], tags))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "security group")?.to_string();
        let ingress = if changed(changes, "ingress") {
            Self::desired_rules(desired, "ingress")?
        } else {
            None
        };
        let egress = if changed(changes, "egress") {
            Self::desired_rules(desired, "egress")?
        } else {
            None
        };
        if ingress.is_some() || egress.is_some() {
            // Rule ids are not part of the observation, and the rules may have moved since the
            // plan: read this group's rules again (and the group, for descriptions).
            let groups = ec2
                .describe_security_groups()
                .group_ids(&id)
                .send()
                .await
                .map_err(|e| classify(&format!("DescribeSecurityGroups {id}"), e))?;
            let current = Self::rules(&ec2, std::slice::from_ref(&id), groups.security_groups())
                .await?
                .remove(&id)
                .unwrap_or_default();
            Self::reconcile_rules(&ec2, &id, ingress.as_deref(), egress.as_deref(), &current)
                .await?;
        }
        if tags_changed(changes) {
            sync_tags(&ec2, &id, &desired.tags, &observed.tags).await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = observed_id(observed, "security group")?;
        // AWS refuses with DependencyViolation while network interfaces use the group or other
        // groups' rules reference it; the engine retries that as eventual consistency.
        self.shared
            .ec2(&desired.region)
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSecurityGroup {id}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Key pair
// ---------------------------------------------------------------------------------------------

/// `ec2.key-pair`: `keyType` (immutable). Outputs `id`, `name`, `privateKeyParameter`.
///
/// AWS hands out the private key once, in the create answer. It is stored at once as the SSM
/// SecureString `/ec2/keypair/<key-pair-id>` (where the console and CloudFormation keep keys
/// they create), tagged like the key pair, so an operator can fetch it later. If storing fails
/// the fresh key pair is deleted again, so the next attempt makes a key whose private half is
/// kept rather than one nobody can use.
pub struct KeyPairClient {
    shared: Arc<Ec2Shared>,
}

fn key_parameter(key_pair_id: &str) -> String {
    format!("{KEY_PAIR_PARAMETER_PREFIX}{key_pair_id}")
}

impl KeyPairClient {
    async fn delete_key(ec2: &aws_sdk_ec2::Client, name: &str) -> Result<(), ProviderError> {
        // By name: AWS accepts name or id, and the emulator only honours the name.
        ec2.delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteKeyPair {name}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl ResourceClient for KeyPairClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::KEY_PAIR)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().immutable("/keyType")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let mut found = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            // A `key-name` filter, not KeyNames: KeyNames fails when one name is missing.
            let out = ec2
                .describe_key_pairs()
                .filters(filter("key-name", chunk.iter().cloned()))
                .filters(managed_filter())
                .send()
                .await
                .map_err(|e| classify("DescribeKeyPairs", e))?;
            found.extend(out.key_pairs().to_vec());
        }
        let pairs = pair_by(
            desired,
            found,
            |d| d.name.as_str(),
            |k| k.key_name().map(str::to_string),
            |k| k.key_pair_id().unwrap_or_default().to_string(),
            |k| tag_map(k.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, k)| {
                let id = k.key_pair_id()?;
                Some(util::observed(
                    d,
                    json!({ "keyType": k.key_type().map(|t| t.as_str()) }),
                    [
                        ("id", json!(id)),
                        ("name", json!(k.key_name())),
                        ("privateKeyParameter", json!(key_parameter(id))),
                    ],
                    tag_map(k.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let region = desired.region.as_str();
        let ec2 = self.shared.ec2(region);
        let key_type = util::opt_str(desired, "keyType").unwrap_or("ed25519");
        let tags = desired.tags.clone();
        // Key names are unique: a second create answers InvalidKeyPair.Duplicate (conflict).
        let out = ec2
            .create_key_pair()
            .key_name(&desired.name)
            .key_type(KeyType::from(key_type))
            .tag_specifications(tag_spec(ResourceType::KeyPair, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateKeyPair {}", desired.name), e))?;
        let (Some(id), Some(material)) = (out.key_pair_id(), out.key_material()) else {
            let _ = Self::delete_key(&ec2, &desired.name).await;
            return Err(ProviderError::transient(format!(
                "CreateKeyPair {}: the answer has no key id or key material",
                desired.name
            )));
        };
        let parameter = key_parameter(id);
        let ssm_tags: Vec<aws_sdk_ssm::types::Tag> = tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_ssm::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let stored = self
            .shared
            .pool
            .ssm(region)
            .put_parameter()
            .name(&parameter)
            .description(format!(
                "Private key of EC2 key pair {} ({id})",
                desired.name
            ))
            .value(material)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .set_tags(Some(ssm_tags))
            .send()
            .await;
        if let Err(e) = stored {
            let err = classify(&format!("PutParameter {parameter}"), e);
            // Without its private half the key is useless: remove it so a retry starts over.
            // If even that fails, the key stays behind and the next create reports it as a
            // conflict; say so, as the key then has to be deleted by hand.
            if let Err(cleanup) = Self::delete_key(&ec2, &desired.name).await {
                return Err(ProviderError::terminal(format!(
                    "{}; deleting the key pair again failed too ({}): delete key pair {} by hand, its private key is lost",
                    err.message, cleanup.message, desired.name
                )));
            }
            return Err(err);
        }
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [
                ("id", json!(id)),
                ("name", json!(desired.name)),
                ("privateKeyParameter", json!(parameter)),
            ],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // Only tags can change in place (the key type is immutable).
        if tags_changed(changes) {
            let id = observed_id(observed, "key pair")?;
            sync_tags(
                &self.shared.ec2(&desired.region),
                id,
                &desired.tags,
                &observed.tags,
            )
            .await?;
        }
        Ok(after_update(desired, observed, changes))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let region = desired.region.as_str();
        let id = observed_id(observed, "key pair")?;
        let name = observed
            .output("name")
            .and_then(Value::as_str)
            .unwrap_or(desired.name.as_str());
        // The parameter first: once the key pair is gone a retried delete would find nothing
        // and never come back for the parameter.
        let parameter = key_parameter(id);
        if let Err(e) = self
            .shared
            .pool
            .ssm(region)
            .delete_parameter()
            .name(&parameter)
            .send()
            .await
        {
            let err = classify(&format!("DeleteParameter {parameter}"), e);
            if err.class != reconciler_engine::provider::ErrorClass::NotFound {
                return Err(err);
            }
        }
        Self::delete_key(&self.shared.ec2(region), name).await
    }
}

// ---------------------------------------------------------------------------------------------
// Launch template
// ---------------------------------------------------------------------------------------------

/// `ec2.launch-template`: `imageParameter`, `instanceType`, `instanceMarketType` (`on-demand` or
/// `spot`), `iamInstanceProfileArn`,
/// `securityGroupIds`, `metadataOptions`, `monitoring`, `blockDeviceMappings`, `userData`
/// (plain text), `instanceTags`, optional `keyName`. Outputs `id`, `latestVersion`,
/// `defaultVersion`.
///
/// * `imageParameter` names a public SSM parameter holding the current AMI id. The observation
///   reports the parameter's name while the template's image is the parameter's current value,
///   and the AMI id otherwise, so a new AMI shows as drift and apply makes a new version.
/// * The observed version is `$Latest`, the one the Auto Scaling group launches.
/// * An update creates a new version with the full data (never relying on `SourceVersion`)
///   and makes it the default. Old versions are left in place (AWS keeps up to 10,000 per
///   template); they cost nothing and allow rollback.
pub struct LaunchTemplateClient {
    shared: Arc<Ec2Shared>,
}

/// The template data as observed properties.
fn template_properties(
    data: &ResponseLaunchTemplateData,
    desired: &DesiredResource,
    images: &HashMap<String, String>,
) -> Value {
    let mut m = Map::new();
    let image = data.image_id();
    let parameter = util::opt_str(desired, "imageParameter");
    let image_value = match (parameter, image) {
        (Some(p), Some(i)) if images.get(p).map(String::as_str) == Some(i) => json!(p),
        (_, i) => json!(i),
    };
    m.insert("imageParameter".into(), image_value);
    m.insert(
        "instanceType".into(),
        json!(data.instance_type().map(|t| t.as_str())),
    );
    let market = data
        .instance_market_options()
        .and_then(|o| o.market_type())
        .map_or("on-demand", |t| t.as_str());
    m.insert("instanceMarketType".into(), json!(market));
    m.insert(
        "iamInstanceProfileArn".into(),
        json!(data.iam_instance_profile().and_then(|p| p.arn())),
    );
    let mut groups: Vec<String> = data.security_group_ids().to_vec();
    if groups.is_empty() {
        groups = data
            .network_interfaces()
            .iter()
            .flat_map(|n| n.groups())
            .cloned()
            .collect();
    }
    groups.sort();
    m.insert("securityGroupIds".into(), json!(groups));
    if let Some(md) = data.metadata_options() {
        let mut o = Map::new();
        if let Some(v) = md.http_tokens() {
            o.insert("httpTokens".into(), json!(v.as_str()));
        }
        if let Some(v) = md.http_endpoint() {
            o.insert("httpEndpoint".into(), json!(v.as_str()));
        }
        if let Some(v) = md.http_put_response_hop_limit() {
            o.insert("httpPutResponseHopLimit".into(), json!(v));
        }
        if let Some(v) = md.http_protocol_ipv6() {
            o.insert("httpProtocolIpv6".into(), json!(v.as_str()));
        }
        if let Some(v) = md.instance_metadata_tags() {
            o.insert("instanceMetadataTags".into(), json!(v.as_str()));
        }
        m.insert("metadataOptions".into(), Value::Object(o));
    }
    m.insert(
        "monitoring".into(),
        json!(data
            .monitoring()
            .and_then(|mo| mo.enabled())
            .unwrap_or(false)),
    );
    let mappings: Vec<Value> = data
        .block_device_mappings()
        .iter()
        .map(|b| {
            let mut o = Map::new();
            if let Some(v) = b.device_name() {
                o.insert("deviceName".into(), json!(v));
            }
            if let Some(v) = b.virtual_name() {
                o.insert("virtualName".into(), json!(v));
            }
            if let Some(v) = b.no_device() {
                o.insert("noDevice".into(), json!(v));
            }
            if let Some(e) = b.ebs() {
                let mut ebs = Map::new();
                let mut put = |k: &str, v: Value| {
                    if !v.is_null() {
                        ebs.insert(k.into(), v);
                    }
                };
                put("encrypted", json!(e.encrypted()));
                put("deleteOnTermination", json!(e.delete_on_termination()));
                put("iops", json!(e.iops()));
                put("kmsKeyId", json!(e.kms_key_id()));
                put("snapshotId", json!(e.snapshot_id()));
                put("volumeSize", json!(e.volume_size()));
                put("volumeType", json!(e.volume_type().map(|t| t.as_str())));
                put("throughput", json!(e.throughput()));
                o.insert("ebs".into(), Value::Object(ebs));
            }
            Value::Object(o)
        })
        .collect();
    m.insert("blockDeviceMappings".into(), Value::Array(mappings));
    let user_data = data.user_data().map(|encoded| {
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_else(|| encoded.to_string())
    });
    m.insert("userData".into(), json!(user_data));
    let instance_tags: IndexMap<String, String> = data
        .tag_specifications()
        .iter()
        .filter(|s| s.resource_type().map(|r| r.as_str()) == Some("instance"))
        .flat_map(|s| tag_map(s.tags()))
        .collect();
    m.insert("instanceTags".into(), json!(instance_tags));
    if let Some(k) = data.key_name() {
        m.insert("keyName".into(), json!(k));
    }
    Value::Object(m)
}

/// The full template data from the (resolved) desired properties and the AMI id.
fn template_data(
    desired: &DesiredResource,
    image: &str,
) -> Result<RequestLaunchTemplateData, ProviderError> {
    let p = &desired.properties;
    let bad = |key: &str| util::missing(desired, key);
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(InstanceType::from(req_str(desired, "instanceType")?));
    match p.get("instanceMarketType").and_then(Value::as_str) {
        None | Some("on-demand") => {}
        Some("spot") => {
            // One-time spot requests that terminate on interruption: the group replaces a
            // reclaimed instance itself, and the world lives on EFS.
            data = data.instance_market_options(
                LaunchTemplateInstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        LaunchTemplateSpotMarketOptionsRequest::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        Some(_) => return Err(bad("instanceMarketType")),
    }
    if let Some(arn) = p.get("iamInstanceProfileArn").filter(|v| !v.is_null()) {
        let arn = arn.as_str().ok_or_else(|| bad("iamInstanceProfileArn"))?;
        data = data.iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(arn)
                .build(),
        );
    }
    if p.get("securityGroupIds").is_some() {
        data = data.set_security_group_ids(Some(util::str_list(desired, "securityGroupIds")));
    }
    if let Some(md) = p.get("metadataOptions").filter(|v| !v.is_null()) {
        let md = md.as_object().ok_or_else(|| bad("metadataOptions"))?;
        let s = |k: &str| md.get(k).and_then(Value::as_str);
        let mut o = LaunchTemplateInstanceMetadataOptionsRequest::builder();
        if let Some(v) = s("httpTokens") {
            o = o.http_tokens(LaunchTemplateHttpTokensState::from(v));
        }
        if let Some(v) = s("httpEndpoint") {
            o = o.http_endpoint(LaunchTemplateInstanceMetadataEndpointState::from(v));
        }
        if let Some(v) = md.get("httpPutResponseHopLimit").and_then(Value::as_i64) {
            o = o.http_put_response_hop_limit(
                i32::try_from(v).map_err(|_| bad("metadataOptions/httpPutResponseHopLimit"))?,
            );
        }
        if let Some(v) = s("httpProtocolIpv6") {
            o = o.http_protocol_ipv6(LaunchTemplateInstanceMetadataProtocolIpv6::from(v));
        }
        if let Some(v) = s("instanceMetadataTags") {
            o = o.instance_metadata_tags(LaunchTemplateInstanceMetadataTagsState::from(v));
        }
        data = data.metadata_options(o.build());
    }
    if let Some(m) = p.get("monitoring").filter(|v| !v.is_null()) {
        let m = m.as_bool().ok_or_else(|| bad("monitoring"))?;
        data = data.monitoring(
            LaunchTemplatesMonitoringRequest::builder()
                .enabled(m)
                .build(),
        );
    }
    if let Some(mappings) = p.get("blockDeviceMappings").filter(|v| !v.is_null()) {
        let mappings = mappings
            .as_array()
            .ok_or_else(|| bad("blockDeviceMappings"))?;
        for b in mappings {
            let b = b.as_object().ok_or_else(|| bad("blockDeviceMappings"))?;
            let s = |k: &str| b.get(k).and_then(Value::as_str);
            let mut r = LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(s("deviceName").map(str::to_string))
                .set_virtual_name(s("virtualName").map(str::to_string))
                .set_no_device(s("noDevice").map(str::to_string));
            if let Some(e) = b.get("ebs").and_then(Value::as_object) {
                let i = |k: &str| {
                    e.get(k)
                        .and_then(Value::as_i64)
                        .and_then(|v| i32::try_from(v).ok())
                };
                let es = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                r = r.ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .set_encrypted(e.get("encrypted").and_then(Value::as_bool))
                        .set_delete_on_termination(
                            e.get("deleteOnTermination").and_then(Value::as_bool),
                        )
                        .set_iops(i("iops"))
                        .set_kms_key_id(es("kmsKeyId"))
                        .set_snapshot_id(es("snapshotId"))
                        .set_volume_size(i("volumeSize"))
                        .set_volume_type(es("volumeType").map(|v| VolumeType::from(v.as_str())))
                        .set_throughput(i("throughput"))
                        .build(),
                );
            }
            data = data.block_device_mappings(r.build());
        }
    }
    if let Some(text) = p.get("userData").filter(|v| !v.is_null()) {
        let text = text.as_str().ok_or_else(|| bad("userData"))?;
        data = data.user_data(base64::engine::general_purpose::STANDARD.encode(text));
    }
    if let Some(tags) = p.get("instanceTags").filter(|v| !v.is_null()) {
        let tags = tags.as_object().ok_or_else(|| bad("instanceTags"))?;
        let tags: IndexMap<String, String> = tags
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        // The instance and its volumes carry the same tags.
        for resource in [ResourceType::Instance, ResourceType::Volume] {
            data = data.tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(resource)
                    .set_tags(Some(ec2_tags(&tags)))
                    .build(),
            );
        }
    }
    if let Some(key) = p.get("keyName").filter(|v| !v.is_null()) {
        data = data.key_name(key.as_str().ok_or_else(|| bad("keyName"))?);
    }
    Ok(data.build())
}

impl LaunchTemplateClient {
    async fn image(&self, desired: &DesiredResource) -> Result<String, ProviderError> {
        let value = req_str(desired, "imageParameter")?;
        // An AMI id in place of a parameter is taken as it is.
        if value.starts_with("ami-") {
            return Ok(value.to_string());
        }
        self.shared.image_id(&desired.region, value).await
    }
}

#[async_trait]
impl ResourceClient for LaunchTemplateClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::LAUNCH_TEMPLATE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .unordered("/securityGroupIds")
            .unordered("/blockDeviceMappings")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let ec2 = self.shared.ec2(region);
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let mut templates = Vec::new();
        for chunk in names.chunks(MAX_FILTER_VALUES) {
            // A name filter, not LaunchTemplateNames, which fails when one name is missing.
            let found: Vec<_> = ec2
                .describe_launch_templates()
                .filters(filter("launch-template-name", chunk.iter().cloned()))
                .filters(managed_filter())
                .max_results(200)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeLaunchTemplates", e))?;
            templates.extend(found);
        }
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        // The latest version of every template in one call: without a template id the API
        // answers `$Latest` of each template of the account (AWS pages them 200 at a time).
        // That reads other templates of the account too, but it is one call where the
        // per-template form would be one call per server.
        let ids: BTreeSet<String> = templates
            .iter()
            .filter_map(|t| t.launch_template_id().map(str::to_string))
            .collect();
        let versions: Vec<_> = ec2
            .describe_launch_template_versions()
            .versions("$Latest")
            .max_results(200)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("DescribeLaunchTemplateVersions $Latest", e))?;
        let mut latest: HashMap<String, aws_sdk_ec2::types::LaunchTemplateVersion> = HashMap::new();
        for v in versions {
            let Some(id) = v.launch_template_id().filter(|id| ids.contains(*id)) else {
                continue;
            };
            let newer = latest
                .get(id)
                .is_none_or(|old| v.version_number() > old.version_number());
            if newer {
                latest.insert(id.to_string(), v);
            }
        }
        // The AMI parameters' current values, for the image comparison. A parameter that does
        // not exist only shows the image as an AMI id here; create and update report it.
        let parameters: BTreeSet<String> = desired
            .iter()
            .filter_map(|d| util::opt_str(d, "imageParameter"))
            .filter(|p| !p.starts_with("ami-"))
            .map(str::to_string)
            .collect();
        let images = self.shared.image_ids(region, &parameters).await?;
        let pairs = pair_by(
            desired,
            templates,
            |d| d.name.as_str(),
            |t| t.launch_template_name().map(str::to_string),
            |t| t.launch_template_id().unwrap_or_default().to_string(),
            |t| tag_map(t.tags()),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, t)| {
                let id = t.launch_template_id()?;
                let version = latest.get(id);
                let props = match version.and_then(|v| v.launch_template_data()) {
                    Some(data) => template_properties(data, d, &images),
                    None => json!({}),
                };
                Some(util::observed(
                    d,
                    props,
                    [
                        ("id", json!(id)),
                        (
                            "latestVersion",
                            json!(version
                                .and_then(|v| v.version_number())
                                .or(t.latest_version_number())),
                        ),
                        ("defaultVersion", json!(t.default_version_number())),
                    ],
                    tag_map(t.tags()),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let image = self.image(desired).await?;
        let data = template_data(desired, &image)?;
        // Template names are unique: a second create answers
        // InvalidLaunchTemplateName.AlreadyExistsException, a conflict.
        let out = ec2
            .create_launch_template()
            .launch_template_name(&desired.name)
            .version_description(format!("image {image}"))
            .launch_template_data(data)
            .tag_specifications(tag_spec(ResourceType::LaunchTemplate, &desired.tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateLaunchTemplate {}", desired.name), e))?;
        let template = out
            .launch_template()
            .ok_or_else(|| ProviderError::transient("CreateLaunchTemplate: no template"))?;
        let id = template
            .launch_template_id()
            .ok_or_else(|| ProviderError::transient("CreateLaunchTemplate: no template id"))?;
        let version = template.latest_version_number().unwrap_or(1);
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [
                ("id", json!(id)),
                ("latestVersion", json!(version)),
                ("defaultVersion", json!(version)),
            ],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = observed_id(observed, "launch template")?.to_string();
        let mut out = after_update(desired, observed, changes);
        if changes.iter().any(|c| !c.is_tag()) {
            let image = self.image(desired).await?;
            let data = template_data(desired, &image)?;
            let created = ec2
                .create_launch_template_version()
                .launch_template_id(&id)
                .version_description(format!("image {image}"))
                .launch_template_data(data)
                .send()
                .await
                .map_err(|e| classify(&format!("CreateLaunchTemplateVersion {id}"), e))?;
            let version = created
                .launch_template_version()
                .and_then(|v| v.version_number())
                .ok_or_else(|| {
                    ProviderError::transient(format!(
                        "CreateLaunchTemplateVersion {id}: no version number"
                    ))
                })?;
            ec2.modify_launch_template()
                .launch_template_id(&id)
                .default_version(version.to_string())
                .send()
                .await
                .map_err(|e| classify(&format!("ModifyLaunchTemplate {id}"), e))?;
            out.outputs.insert("latestVersion".into(), json!(version));
            out.outputs.insert("defaultVersion".into(), json!(version));
        }
        if tags_changed(changes) {
            sync_tags(&ec2, &id, &desired.tags, &observed.tags).await?;
        }
        Ok(out)
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = observed_id(observed, "launch template")?;
        self.shared
            .ec2(&desired.region)
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteLaunchTemplate {id}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(
            err.class,
            reconciler_engine::provider::ErrorClass::EventualConsistency
        );
        assert!(err.message.contains("subnet-1"));
    }

    #[test]
    fn rules_normalise_both_ways() {
        let all = Rule::from_json(&json!({"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"})).unwrap();
        assert_eq!(all.key.from, None);
        assert_eq!(
            all.to_json(),
            json!({"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"})
        );
        let aws = SecurityGroupRule::builder()
            .ip_protocol("-1")
            .from_port(-1)
            .to_port(-1)
            .cidr_ipv4("0.0.0.0/0")
            .security_group_rule_id("sgr-1")
            .build();
        let observed = Rule::from_aws(&aws).unwrap();
        assert_eq!(observed.key, all.key);
        assert_eq!(observed.id.as_deref(), Some("sgr-1"));

        let tcp = Rule::from_json(&json!({
            "ipProtocol": "TCP", "fromPort": 22, "toPort": 22,
            "sourceSecurityGroupId": "sg-1", "description": "ssh"
        }))
        .unwrap();
        assert_eq!(tcp.key.protocol, "tcp");
        assert_eq!(tcp.key.peer, Peer::Group("sg-1".into()));
        assert_eq!(
            Rule::from_json(
                &json!({"ipProtocol": "6", "fromPort": 1, "toPort": 2, "cidrIpv4": "10.0.0.0/8"})
            )
            .unwrap()
            .key
            .protocol,
            "tcp"
        );
        // ESP has no ports; AWS answers -1.
        assert_eq!(normalise_ports("50", Some(-1), Some(-1)), (None, None));
        assert!(
            Rule::from_json(&json!({"ipProtocol": "tcp", "fromPort": 1, "toPort": 1})).is_none()
        );
    }

    #[test]
    fn managed_routes_skip_the_local_route() {
        let local = Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .origin(aws_sdk_ec2::types::RouteOrigin::CreateRouteTable)
            .build();
        assert!(RouteSpec::from_route(&local).is_none());
        let igw = Route::builder()
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id("igw-1")
            .origin(aws_sdk_ec2::types::RouteOrigin::CreateRoute)
            .build();
        let spec = RouteSpec::from_route(&igw).unwrap();
        assert_eq!(
            spec.to_json(),
            json!({"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"})
        );
        assert_eq!(
            RouteSpec::from_json(
                &json!({"destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-1"})
            ),
            Some(spec)
        );
    }

    #[test]
    fn after_update_takes_changed_fields_and_tags() {
        let desired = DesiredResource::new("ec2.subnet", "a", "us-east-1", "rc-a")
            .with_properties(json!({"mapPublicIpOnLaunch": true, "cidrBlock": "10.0.0.0/20"}))
            .with_tag("reconciler.dev/base", "main");
        let mut observed = Observed::new("ec2.subnet/a");
        observed.properties = json!({"mapPublicIpOnLaunch": false, "cidrBlock": "10.0.0.0/20"});
        observed
            .tags
            .insert("reconciler.dev/old".into(), "x".into());
        let changes = vec![FieldChange {
            path: "/mapPublicIpOnLaunch".into(),
            before: Some(json!(false)),
            after: None,
            forces_replacement: false,
        }];
        let out = after_update(&desired, &observed, &changes);
        assert_eq!(out.properties["mapPublicIpOnLaunch"], json!(true));
        assert_eq!(
            out.tags.get("reconciler.dev/base").map(String::as_str),
            Some("main")
        );
        assert!(!out.tags.contains_key("reconciler.dev/old"));
    }
}
