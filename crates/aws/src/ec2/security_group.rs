//! `ec2.security-group` ([`reconciler_kinds::ec2::SecurityGroup`]): `groupName`,
//! `description`, `vpcId` (immutable), `ingress` and `egress` rule lists compared as sets.
//! Output `id`. Found by group name among the region's owned groups (one `DescribeSecurityGroups`
//! shared with the default groups' kind: [`super::owned_security_groups`]), the rules of every
//! group found with one `DescribeSecurityGroupRules` (see [`super::rules`]). `egress: []`
//! revokes the default allow-all rule.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, SecurityGroup as Ec2SecurityGroup};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::SecurityGroup;
use serde_json::{json, Value};

use super::rules::{
    converge_rules, desired_rules, read_group_rules, read_rules, reconcile_rules, sorted_json,
};
use super::{
    after_update, create_tags, owned_security_groups, pair_by, tag_map, tag_spec, Ec2Object,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// The client of security groups.
pub struct SecurityGroupClient {
    pool: Arc<ClientPool>,
}

impl SecurityGroupClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        SecurityGroupClient { pool }
    }
}

/// The group's name: `groupName`, else the resource's name.
fn group_name(desired: &DesiredResource) -> &str {
    util::opt_str(desired, "groupName").unwrap_or(desired.name.as_str())
}

#[async_trait]
impl KindClient<SecurityGroup> for SecurityGroupClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.pool.ec2(region);
        let names: HashSet<&str> = desired.iter().map(group_name).collect();
        let groups: Vec<Ec2SecurityGroup> = owned_security_groups(&self.pool, region)
            .await?
            .iter()
            .filter(|g| g.group_name().is_some_and(|n| names.contains(n)))
            .cloned()
            .collect();
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = groups
            .iter()
            .filter_map(|g| g.object_id().map(str::to_string))
            .collect();
        let mut rules = read_rules(&ec2, &ids, &groups).await?;
        let pairs = pair_by(desired, groups, group_name, |g| {
            g.group_name().map(str::to_string)
        });
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &SecurityGroup,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        let name = props.group_name.as_str();
        let ingress = desired_rules(desired, "ingress", &props.ingress)?;
        let egress = desired_rules(desired, "egress", &props.egress)?;
        let tags = create_tags(desired);
        // Group names are unique per VPC: a second create answers InvalidGroup.Duplicate,
        // a conflict the engine resolves by observing again.
        let out = ec2
            .create_security_group()
            .group_name(name)
            .description(&props.description)
            .vpc_id(props.vpc_id.get("vpcId")?)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateSecurityGroup {name}"), e))?;
        let id = out
            .group_id()
            .ok_or_else(|| ProviderError::transient("CreateSecurityGroup: no group id"))?
            .to_string();
        // The new group holds AWS's default egress rule; compare against what is there.
        let current = read_group_rules(&ec2, &id, &[]).await?;
        reconcile_rules(&ec2, &id, Some(&ingress), Some(&egress), &current).await?;
        let mut properties = desired.properties.clone();
        if let Value::Object(m) = &mut properties {
            m.insert("ingress".into(), sorted_json(&ingress));
            m.insert("egress".into(), sorted_json(&egress));
        }
        Ok(util::observed(
            desired,
            properties,
            [("id", json!(id))],
            tags,
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &SecurityGroup,
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

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = util::output(desired, observed, "id")?;
        // AWS refuses with DependencyViolation while network interfaces use the group or other
        // groups' rules reference it; the engine retries that as eventual consistency.
        self.pool
            .ec2(&desired.region)
            .delete_security_group()
            .group_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteSecurityGroup {id}"), e))?;
        Ok(())
    }
}
