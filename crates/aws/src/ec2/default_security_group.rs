//! `ec2.default-security-group` ([`reconciler_kinds::ec2::DefaultSecurityGroup`]): the rules
//! of the default security group AWS makes with a VPC, which the reconciler adopts and keeps
//! empty (the CIS AWS Foundations Benchmark's "the default security group restricts all
//! traffic"). Output `id`.
//!
//! The group is found through its VPC when adopted, and by the `Name` tag written then
//! afterwards: observation picks the groups named `default` out of the region's owned security
//! groups, which the security group kind lists anyway ([`super::owned_security_groups`]), and
//! reads their rules from that listing's permissions, so the kind costs no read of its own.
//!
//! AWS creates the group with the VPC and deletes it with the VPC (it refuses to delete it
//! before), so a create adopts it (tags it and strips its rules) and a delete does nothing.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::SecurityGroup as Ec2SecurityGroup;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::DefaultSecurityGroup;
use serde_json::json;

use super::rules::{
    converge_rules, desired_rules, permission_rules, read_group_rules, reconcile_rules, sorted_json,
};
use super::{
    after_update, create_tags, filter, owned_security_groups, pair_by_name_tag, tag_map, tag_object,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// The name AWS gives every VPC's default security group.
const DEFAULT_GROUP: &str = "default";

/// The client of VPCs' default security groups.
pub struct DefaultSecurityGroupClient {
    pool: Arc<ClientPool>,
}

impl DefaultSecurityGroupClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        DefaultSecurityGroupClient { pool }
    }
}

/// The default security group of VPC `vpc`.
async fn of_vpc(ec2: &aws_sdk_ec2::Client, vpc: &str) -> Result<Ec2SecurityGroup, ProviderError> {
    let out = ec2
        .describe_security_groups()
        .filters(filter("vpc-id", [vpc]))
        .filters(filter("group-name", [DEFAULT_GROUP]))
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeSecurityGroups {DEFAULT_GROUP} {vpc}"), e))?;
    out.security_groups().first().cloned().ok_or_else(|| {
        ProviderError::eventual_consistency(format!(
            "the default security group of VPC {vpc} is not listed yet"
        ))
    })
}

#[async_trait]
impl KindClient<DefaultSecurityGroup> for DefaultSecurityGroupClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let listed = owned_security_groups(&self.pool, region).await?;
        let defaults: Vec<Ec2SecurityGroup> = listed
            .iter()
            .filter(|g| g.group_name() == Some(DEFAULT_GROUP))
            .cloned()
            .collect();
        Ok(pair_by_name_tag(desired, defaults)
            .into_iter()
            .filter_map(|(d, g)| {
                let id = g.group_id()?;
                let rules = permission_rules(&g);
                Some(util::observed(
                    d,
                    json!({
                        "vpcId": g.vpc_id(),
                        "ingress": sorted_json(&rules.ingress),
                        "egress": sorted_json(&rules.egress)
                    }),
                    [("id", json!(id))],
                    tag_map(g.tags()),
                ))
            })
            .collect())
    }

    /// Adopts the VPC's default group: tags it (so it is found and owned from now on), then
    /// brings its rules to the desired ones. Tagging comes first so that a strip cut short is
    /// finished by the next apply as an update.
    async fn create(
        &self,
        desired: &DesiredResource,
        props: &DefaultSecurityGroup,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let vpc = props.vpc_id.get("vpcId")?;
        let ingress = desired_rules(desired, "ingress", &props.ingress)?;
        let egress = desired_rules(desired, "egress", &props.egress)?;
        let group = of_vpc(&ec2, vpc).await?;
        let id = group.group_id().ok_or_else(|| {
            ProviderError::transient(format!(
                "DescribeSecurityGroups {DEFAULT_GROUP} {vpc}: no group id"
            ))
        })?;
        let tags = create_tags(desired);
        tag_object(&ec2, id, &tags, &[]).await?;
        let current = read_group_rules(&ec2, id, std::slice::from_ref(&group)).await?;
        reconcile_rules(&ec2, id, Some(&ingress), Some(&egress), &current).await?;
        Ok(util::observed(
            desired,
            json!({
                "vpcId": vpc,
                "ingress": sorted_json(&ingress),
                "egress": sorted_json(&egress)
            }),
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &DefaultSecurityGroup,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let id = util::output(desired, observed, "id")?;
        converge_rules(&ec2, &id, desired, changes, &props.ingress, &props.egress).await?;
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

    /// Nothing: the group goes with its VPC, and AWS refuses to delete it before.
    async fn delete(
        &self,
        _desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
}
