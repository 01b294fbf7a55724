//! `ec2.subnet` ([`reconciler_kinds::ec2::Subnet`]): `vpcId`, `cidrBlock`,
//! `availabilityZoneIndex` (all immutable), `mapPublicIpOnLaunch`. Outputs `id`,
//! `availabilityZone`. Found by `Name` tag with one `DescribeSubnets`; the zones an index points
//! into come from the run's cache ([`Ec2Shared::describe_availability_zones`]).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, Subnet as Ec2Subnet};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::Subnet;
use serde_json::json;

use super::{
    after_update, already_exists, create_tags, describe_owned, name_tags, pair_by_name_tag,
    tag_map, tag_spec, wait_available, Ec2Shared,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::util::{self, touches};

/// The client of subnets.
pub struct SubnetClient {
    shared: Arc<Ec2Shared>,
}

impl SubnetClient {
    /// A client over the service's shared state (for the zone cache).
    pub fn new(shared: Arc<Ec2Shared>) -> Self {
        SubnetClient { shared }
    }

    /// The zone `index` points into, or a terminal error listing the region's zones.
    async fn zone(&self, desired: &DesiredResource, index: u32) -> Result<String, ProviderError> {
        let region = desired.region.as_str();
        let zones = self.shared.describe_availability_zones(region).await?;
        usize::try_from(index)
            .ok()
            .and_then(|i| zones.get(i))
            .cloned()
            .ok_or_else(|| {
                ProviderError::terminal(format!(
                    "{}: availabilityZoneIndex {index} is out of range: {region} has {} zone(s) ({})",
                    desired.id,
                    zones.len(),
                    zones.join(", ")
                ))
            })
    }
}

/// The owned subnets `desired` names.
async fn find(
    ec2: &aws_sdk_ec2::Client,
    desired: &[DesiredResource],
) -> Result<Vec<Ec2Subnet>, ProviderError> {
    describe_owned(
        "DescribeSubnets",
        "tag:Name",
        &name_tags(desired),
        |filters| {
            ec2.describe_subnets()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        },
    )
    .await
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

/// Waits until a subnet AWS answered `pending` is `available`.
async fn wait_for(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), ProviderError> {
    wait_available(&format!("subnet {id}"), || async {
        let out = ec2
            .describe_subnets()
            .subnet_ids(id)
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeSubnets {id}"), e))?;
        Ok(out
            .subnets()
            .iter()
            .any(|s| s.state().map(|s| s.as_str()) == Some("available")))
    })
    .await
}

#[async_trait]
impl KindClient<Subnet> for SubnetClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.shared.ec2(region);
        let found = find(&ec2, desired).await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let zones = self.shared.describe_availability_zones(region).await?;
        Ok(pair_by_name_tag(desired, found)
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Subnet,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let vpc = props.vpc_id.get("vpcId")?;
        let zone = self.zone(desired, props.availability_zone_index).await?;
        // No idempotency token: look first (see `already_exists`).
        if !find(&ec2, std::slice::from_ref(desired)).await?.is_empty() {
            return Err(already_exists("subnet", desired));
        }
        let tags = create_tags(desired);
        let out = ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(&props.cidr_block)
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
            wait_for(&ec2, &id).await?;
        }
        // New subnets do not map public addresses; only `true` needs a call.
        if props.map_public_ip_on_launch {
            set_public_ip(&ec2, &id, true).await?;
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
        props: &Subnet,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.shared.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        if touches(changes, "mapPublicIpOnLaunch") {
            set_public_ip(&ec2, &id, props.map_public_ip_on_launch).await?;
        }
        Ok(after_update(desired, observed, changes))
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
        // DependencyViolation while ENIs (instances, mount targets) remain: retried.
        self.shared
            .ec2(&desired.region)
            .delete_subnet()
            .subnet_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSubnet {id}"), e))?;
        Ok(())
    }
}
