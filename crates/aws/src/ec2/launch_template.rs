//! `ec2.launch-template` ([`reconciler_kinds::ec2::LaunchTemplate`]): `imageParameter`,
//! `instanceType`, `instanceMarketType` (`on-demand` or `spot`), `iamInstanceProfileArn`,
//! `securityGroupIds`, `metadataOptions`, `monitoring`, `blockDeviceMappings`, `userData`
//! (plain text), `instanceTags`, optional `keyName`. Outputs `id`, `latestVersion`,
//! `defaultVersion`. Found by name with one `DescribeLaunchTemplates`, the latest versions of
//! all with one `DescribeLaunchTemplateVersions`, the AMI parameters from the run's cache.
//!
//! * `imageParameter` names a public SSM parameter holding the current AMI id. The observation
//!   reports the parameter's name while the template's image is the parameter's current value,
//!   and the AMI id otherwise, so a new AMI shows as drift and apply makes a new version.
//! * The observed version is `$Latest`, the one the Auto Scaling group launches.
//! * An update creates a new version with the full data (never relying on `SourceVersion`)
//!   and makes it the default. Old versions are left in place (AWS keeps up to 10,000 per
//!   template); they cost nothing and allow rollback.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    InstanceInterruptionBehavior, InstanceType, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMarketOptionsRequest, LaunchTemplateInstanceMetadataEndpointState,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateSpotMarketOptionsRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplateVersion, LaunchTemplatesMonitoringRequest,
    MarketType, RequestLaunchTemplateData, ResourceType, ResponseLaunchTemplateData,
    SpotInstanceType, VolumeType,
};
use base64::Engine as _;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::{BlockDevice, LaunchTemplate};
use serde_json::{json, Map, Value};

use super::{after_update, describe_owned, ec2_tags, pair_by, tag_map, tag_spec, Ec2Shared};
use crate::error::classify;
use crate::managed::KindClient;
use crate::util;

/// The client of launch templates.
pub struct LaunchTemplateClient {
    shared: Arc<Ec2Shared>,
}

impl LaunchTemplateClient {
    /// A client over the service's shared state (for the AMI cache).
    pub fn new(shared: Arc<Ec2Shared>) -> Self {
        LaunchTemplateClient { shared }
    }

    /// The AMI id the template gets: the parameter's current value, or an AMI id given in its
    /// place as it is.
    async fn image(
        &self,
        desired: &DesiredResource,
        props: &LaunchTemplate,
    ) -> Result<String, ProviderError> {
        let value = props.image_parameter.as_str();
        if value.starts_with("ami-") {
            return Ok(value.to_string());
        }
        self.shared.image_id(&desired.region, value).await
    }
}

/// The metadata options as observed.
fn metadata_properties(data: &ResponseLaunchTemplateData) -> Option<Value> {
    let md = data.metadata_options()?;
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
    Some(Value::Object(o))
}

/// The block device mappings as observed.
fn block_device_properties(data: &ResponseLaunchTemplateData) -> Value {
    let mappings = data
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
    Value::Array(mappings)
}

/// The template data as observed properties. The image shows as the desired parameter's name
/// while it is that parameter's value (`images`), as the AMI id otherwise.
fn template_properties(
    data: &ResponseLaunchTemplateData,
    image_parameter: Option<&str>,
    images: &HashMap<String, String>,
) -> Value {
    let mut m = Map::new();
    let image_value = match (image_parameter, data.image_id()) {
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
    if let Some(md) = metadata_properties(data) {
        m.insert("metadataOptions".into(), md);
    }
    m.insert(
        "monitoring".into(),
        json!(data
            .monitoring()
            .and_then(|mo| mo.enabled())
            .unwrap_or(false)),
    );
    m.insert("blockDeviceMappings".into(), block_device_properties(data));
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

/// One-time spot requests that terminate on interruption: the group replaces a reclaimed
/// instance itself, and the world lives on EFS.
fn spot_market() -> LaunchTemplateInstanceMarketOptionsRequest {
    LaunchTemplateInstanceMarketOptionsRequest::builder()
        .market_type(MarketType::Spot)
        .spot_options(
            LaunchTemplateSpotMarketOptionsRequest::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build(),
        )
        .build()
}

fn block_device(b: &BlockDevice) -> LaunchTemplateBlockDeviceMappingRequest {
    let ebs = &b.ebs;
    LaunchTemplateBlockDeviceMappingRequest::builder()
        .device_name(&b.device_name)
        .ebs(
            LaunchTemplateEbsBlockDeviceRequest::builder()
                .encrypted(ebs.encrypted)
                .delete_on_termination(ebs.delete_on_termination)
                .set_volume_size(ebs.volume_size)
                .volume_type(VolumeType::from(ebs.volume_type.as_str()))
                .build(),
        )
        .build()
}

/// The full template data from the (resolved) desired properties and the AMI id.
fn template_data(
    desired: &DesiredResource,
    props: &LaunchTemplate,
    image: &str,
) -> Result<RequestLaunchTemplateData, ProviderError> {
    let mut data = RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(InstanceType::from(props.instance_type.as_str()));
    match props.instance_market_type.as_deref() {
        None | Some("on-demand") => {}
        Some("spot") => data = data.instance_market_options(spot_market()),
        Some(_) => return Err(util::missing(desired, "instanceMarketType")),
    }
    let groups = props
        .security_group_ids
        .iter()
        .map(|g| g.get("securityGroupIds").cloned())
        .collect::<Result<Vec<String>, _>>()?;
    let md = &props.metadata_options;
    data = data
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(
                    props
                        .iam_instance_profile_arn
                        .get("iamInstanceProfileArn")?,
                )
                .build(),
        )
        .set_security_group_ids(Some(groups))
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::from(md.http_tokens.as_str()))
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::from(
                    md.http_endpoint.as_str(),
                ))
                .http_put_response_hop_limit(md.http_put_response_hop_limit)
                .build(),
        )
        .monitoring(
            LaunchTemplatesMonitoringRequest::builder()
                .enabled(props.monitoring)
                .build(),
        )
        .set_block_device_mappings(Some(
            props
                .block_device_mappings
                .iter()
                .map(block_device)
                .collect(),
        ))
        .user_data(
            base64::engine::general_purpose::STANDARD.encode(props.user_data.get("userData")?),
        );
    // The instance and its volumes carry the same tags.
    for resource in [ResourceType::Instance, ResourceType::Volume] {
        data = data.tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(resource)
                .set_tags(Some(ec2_tags(&props.instance_tags)))
                .build(),
        );
    }
    Ok(data.set_key_name(props.key_name.clone()).build())
}

/// The latest version of each template in `ids`, in one call: without a template id the API
/// answers `$Latest` of each template of the account (AWS pages them 200 at a time). That reads
/// other templates of the account too, but it is one call where the per-template form would be
/// one call per server.
async fn latest_versions(
    ec2: &aws_sdk_ec2::Client,
    ids: &BTreeSet<String>,
) -> Result<HashMap<String, LaunchTemplateVersion>, ProviderError> {
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
    let mut latest: HashMap<String, LaunchTemplateVersion> = HashMap::new();
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
    Ok(latest)
}

#[async_trait]
impl KindClient<LaunchTemplate> for LaunchTemplateClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.shared.ec2(region);
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        // A name filter, not LaunchTemplateNames, which fails when one name is missing.
        let templates = describe_owned(
            "DescribeLaunchTemplates",
            "launch-template-name",
            &names,
            |filters| {
                ec2.describe_launch_templates()
                    .set_filters(Some(filters))
                    .max_results(200)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
            },
        )
        .await?;
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        let ids: BTreeSet<String> = templates
            .iter()
            .filter_map(|t| t.launch_template_id().map(str::to_string))
            .collect();
        let latest = latest_versions(&ec2, &ids).await?;
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
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, t)| {
                let id = t.launch_template_id()?;
                let version = latest.get(id);
                let props = match version.and_then(|v| v.launch_template_data()) {
                    Some(data) => {
                        template_properties(data, util::opt_str(d, "imageParameter"), &images)
                    }
                    None => json!({}),
                };
                let latest_version = version
                    .and_then(|v| v.version_number())
                    .or(t.latest_version_number());
                Some(util::observed(
                    d,
                    props,
                    [
                        ("id", json!(id)),
                        ("latestVersion", json!(latest_version)),
                        ("defaultVersion", json!(t.default_version_number())),
                    ],
                    tag_map(t.tags()),
                ))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &LaunchTemplate,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let image = self.image(desired, props).await?;
        let data = template_data(desired, props, &image)?;
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
        props: &LaunchTemplate,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        let image = self.image(desired, props).await?;
        let data = template_data(desired, props, &image)?;
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
        let mut out = after_update(desired, observed, changes);
        out.outputs.insert("latestVersion".into(), json!(version));
        out.outputs.insert("defaultVersion".into(), json!(version));
        Ok(out)
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.shared.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = util::output(desired, observed, "id")?;
        self.shared
            .ec2(&desired.region)
            .delete_launch_template()
            .launch_template_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteLaunchTemplate {id}"), e))?;
        Ok(())
    }
}
