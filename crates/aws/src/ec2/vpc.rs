//! `ec2.vpc` ([`reconciler_kinds::ec2::Vpc`]): `cidrBlock` (immutable), `enableDnsSupport`,
//! `enableDnsHostnames`. Output `id`. Found by `Name` tag with one `DescribeVpcs`.
//!
//! The DNS attributes are only readable with `DescribeVpcAttribute`, one call per VPC and per
//! attribute (the API has no batch form); a Base has one VPC, so that is two extra reads.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Vpc as Ec2Vpc, VpcAttributeName};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::Vpc;
use serde_json::{json, Map, Value};

use super::{
    after_update, already_exists, create_tags, describe_owned, name_tags, pair_by_name_tag,
    tag_map, tag_spec, wait_available,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, touches};

/// The client of VPCs.
pub struct VpcClient {
    pool: Arc<ClientPool>,
}

impl VpcClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        VpcClient { pool }
    }
}

const DNS_SUPPORT: &str = "enableDnsSupport";
const DNS_HOSTNAMES: &str = "enableDnsHostnames";

/// The owned VPCs `desired` names.
async fn find(
    ec2: &aws_sdk_ec2::Client,
    desired: &[DesiredResource],
) -> Result<Vec<Ec2Vpc>, ProviderError> {
    describe_owned("DescribeVpcs", "tag:Name", &name_tags(desired), |filters| {
        ec2.describe_vpcs()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send()
            .try_collect()
    })
    .await
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
        modify(ec2, vpc_id, DNS_SUPPORT, true).await?;
    }
    if let Some(h) = hostnames {
        modify(ec2, vpc_id, DNS_HOSTNAMES, h).await?;
    }
    if support == Some(false) {
        modify(ec2, vpc_id, DNS_SUPPORT, false).await?;
    }
    Ok(())
}

/// A found VPC in the desired shape: the DNS attributes only where `desired` manages them (see
/// the module doc for their cost).
async fn observation(
    ec2: &aws_sdk_ec2::Client,
    desired: &DesiredResource,
    vpc: &Ec2Vpc,
    id: &str,
) -> Result<Observed, ProviderError> {
    let props = reconciler_kinds::read::<Vpc>(desired)?;
    let mut properties = Map::new();
    properties.insert("cidrBlock".into(), json!(vpc.cidr_block()));
    if props.enable_dns_support.is_some() {
        let v = attribute(ec2, id, VpcAttributeName::EnableDnsSupport).await?;
        properties.insert(DNS_SUPPORT.into(), json!(v));
    }
    if props.enable_dns_hostnames.is_some() {
        let v = attribute(ec2, id, VpcAttributeName::EnableDnsHostnames).await?;
        properties.insert(DNS_HOSTNAMES.into(), json!(v));
    }
    Ok(util::observed(
        desired,
        Value::Object(properties),
        [("id", json!(id))],
        tag_map(vpc.tags()),
    ))
}

#[async_trait]
impl KindClient<Vpc> for VpcClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.pool.ec2(region);
        let found = find(&ec2, desired).await?;
        let mut out = Vec::new();
        for (d, vpc) in pair_by_name_tag(desired, found) {
            let Some(id) = vpc.vpc_id() else { continue };
            out.push(observation(&ec2, d, &vpc, id).await?);
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Vpc,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        // No idempotency token: look first (see `already_exists`).
        if !find(&ec2, std::slice::from_ref(desired)).await?.is_empty() {
            return Err(already_exists("VPC", desired));
        }
        let tags = create_tags(desired);
        let out = ec2
            .create_vpc()
            .cidr_block(&props.cidr_block)
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
            wait_available(&format!("VPC {id}"), || async {
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
        let support = props.enable_dns_support.filter(|v| !*v);
        let hostnames = props.enable_dns_hostnames.filter(|v| *v);
        set_dns(&ec2, &id, support, hostnames).await?;
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
        props: &Vpc,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        let support = props
            .enable_dns_support
            .filter(|_| touches(changes, DNS_SUPPORT));
        let hostnames = props
            .enable_dns_hostnames
            .filter(|_| touches(changes, DNS_HOSTNAMES));
        set_dns(&ec2, &id, support, hostnames).await?;
        Ok(after_update(desired, observed, changes))
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
        let id = util::output(desired, observed, "id")?;
        // DependencyViolation (subnets, gateways, ENIs still there) is retried by the engine.
        self.pool
            .ec2(&desired.region)
            .delete_vpc()
            .vpc_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteVpc {id}"), e))?;
        Ok(())
    }
}
