//! `ec2.internet-gateway` ([`reconciler_kinds::ec2::InternetGateway`]): `vpcId` (the
//! attachment; moving it detaches and attaches). Output `id`. Found by `Name` tag with one
//! `DescribeInternetGateways`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{InternetGateway as Ec2InternetGateway, ResourceType};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::InternetGateway;
use serde_json::{json, Value};

use super::{
    after_update, already_exists, create_tags, describe_owned, name_tags, pair_by_name_tag,
    tag_map, tag_spec, unless_gone,
};
use crate::error::{classify, code_of};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, touches};

/// The client of internet gateways.
pub struct InternetGatewayClient {
    pool: Arc<ClientPool>,
}

impl InternetGatewayClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        InternetGatewayClient { pool }
    }
}

/// The owned gateways `desired` names.
async fn find(
    ec2: &aws_sdk_ec2::Client,
    desired: &[DesiredResource],
) -> Result<Vec<Ec2InternetGateway>, ProviderError> {
    describe_owned(
        "DescribeInternetGateways",
        "tag:Name",
        &name_tags(desired),
        |filters| {
            ec2.describe_internet_gateways()
                .set_filters(Some(filters))
                .into_paginator()
                .items()
                .send()
                .try_collect()
        },
    )
    .await
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
        Err(e) => unless_gone(Err(classify(
            &format!("DetachInternetGateway {igw} {vpc}"),
            e,
        )))
        .map(|_: Option<()>| ()),
    }
}

/// The VPC a gateway is attached (or attaching) to.
fn attached_vpc(igw: &Ec2InternetGateway) -> Option<&str> {
    igw.attachments()
        .iter()
        .filter(|a| {
            a.state()
                .is_none_or(|s| matches!(s.as_str(), "attached" | "available" | "attaching"))
        })
        .find_map(|a| a.vpc_id())
}

#[async_trait]
impl KindClient<InternetGateway> for InternetGatewayClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.pool.ec2(region);
        let found = find(&ec2, desired).await?;
        Ok(pair_by_name_tag(desired, found)
            .into_iter()
            .filter_map(|(d, igw)| {
                let id = igw.internet_gateway_id()?;
                Some(util::observed(
                    d,
                    json!({ "vpcId": attached_vpc(&igw) }),
                    [("id", json!(id))],
                    tag_map(igw.tags()),
                ))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &InternetGateway,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let vpc = props.vpc_id.get("vpcId")?;
        // No idempotency token: look first (see `already_exists`).
        if !find(&ec2, std::slice::from_ref(desired)).await?.is_empty() {
            return Err(already_exists("internet gateway", desired));
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
        attach(&ec2, &id, vpc).await?;
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
        props: &InternetGateway,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        if touches(changes, "vpcId") {
            let vpc = props.vpc_id.get("vpcId")?;
            if let Some(old) = observed.properties.get("vpcId").and_then(Value::as_str) {
                detach(&ec2, &id, old).await?;
            }
            attach(&ec2, &id, vpc).await?;
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
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        // Detaching fails with DependencyViolation while instances in the VPC still hold public
        // addresses; the engine retries it as eventual consistency.
        if let Some(vpc) = observed.properties.get("vpcId").and_then(Value::as_str) {
            detach(&ec2, &id, vpc).await?;
        }
        ec2.delete_internet_gateway()
            .internet_gateway_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteInternetGateway {id}"), e))?;
        Ok(())
    }
}
