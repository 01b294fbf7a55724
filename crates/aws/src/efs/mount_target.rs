//! `efs.mount-target` ([`reconciler_kinds::efs::MountTarget`]): `fileSystemId` and `subnetId`
//! (immutable), `securityGroups` (a set). Untaggable. Outputs `id` and `availabilityZone`.
//!
//! Mount targets have no name or tags. Render names them `<creation token>-<zone index>`, so
//! `observe` finds the file system by the token (the region's shared file system listing,
//! [`super::list_file_systems`]) and the mount target by the zone: the one in the region's
//! `<zone index>`-th zone in name order, the zone the desired subnet lies in.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_efs::types::MountTargetDescription;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::efs::MountTarget;
use serde_json::json;

use super::{by_name, is_gone, list_file_systems, wait_until, zone_names, POLL_INTERVAL};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all, touches, updated};

/// How long a mount target may take to become available or to go away (AWS documents about a
/// minute and a half for either).
const MOUNT_TARGET_WAIT: Duration = Duration::from_secs(8 * 60);

/// The client of mount targets.
pub struct MountTargetClient {
    pool: Arc<ClientPool>,
}

impl MountTargetClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        MountTargetClient { pool }
    }
}

/// `rc-mc-data-1` -> (`rc-mc-data`, 1).
fn split_name(name: &str) -> Option<(&str, usize)> {
    let (token, index) = name.rsplit_once('-')?;
    Some((token, index.parse().ok()?))
}

/// A mount target's state: `None` once it is gone.
async fn mount_target_state(
    efs: &aws_sdk_efs::Client,
    id: &str,
) -> Result<Option<String>, ProviderError> {
    match efs
        .describe_mount_targets()
        .mount_target_id(id)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .mount_targets()
            .first()
            .map(|mt| mt.life_cycle_state().as_str().to_string())
            .filter(|s| s != "deleted")),
        Err(e) => {
            let err = classify(&format!("DescribeMountTargets {id}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// The live mount targets of one file system.
async fn list_mount_targets(
    efs: aws_sdk_efs::Client,
    fs_id: String,
) -> Result<Vec<MountTargetDescription>, ProviderError> {
    let all = efs
        .describe_mount_targets()
        .file_system_id(&fs_id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("DescribeMountTargets {fs_id}"), e))?;
    Ok(all
        .into_iter()
        .filter(|mt| !is_gone(mt.life_cycle_state()))
        .collect())
}

/// Network interfaces per `DescribeNetworkInterfaces` filter (the filter's value limit).
const INTERFACES_PER_CALL: usize = 200;

/// The security groups of mount targets, by mount target id, read from their network
/// interfaces (which carry the mount target's groups) in a few EC2 calls instead of one EFS
/// call per mount target. A mount target whose interface is not in the answer (or every one,
/// without `ec2:DescribeNetworkInterfaces`) is left out, for [`read_security_groups`] to read.
async fn groups_by_interface(
    ec2: &aws_sdk_ec2::Client,
    targets: &[&MountTargetDescription],
) -> Result<HashMap<String, Vec<String>>, ProviderError> {
    let by_interface: HashMap<&str, &str> = targets
        .iter()
        .filter_map(|mt| Some((mt.network_interface_id()?, mt.mount_target_id())))
        .collect();
    let ids: Vec<String> = by_interface.keys().map(|id| id.to_string()).collect();
    let mut out = HashMap::new();
    for chunk in ids.chunks(INTERFACES_PER_CALL) {
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("network-interface-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let interfaces: Result<Vec<aws_sdk_ec2::types::NetworkInterface>, _> = ec2
            .describe_network_interfaces()
            .filters(filter)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        let interfaces = match interfaces {
            Ok(interfaces) => interfaces,
            Err(e) => {
                let e = classify("DescribeNetworkInterfaces", e);
                // Not allowed here: EFS answers per mount target instead.
                if e.class == ErrorClass::Terminal {
                    tracing::debug!(error = %e, "reading mount targets' groups per mount target");
                    return Ok(out);
                }
                return Err(e);
            }
        };
        for eni in interfaces {
            let Some(mt) = eni
                .network_interface_id()
                .and_then(|id| by_interface.get(id))
            else {
                continue;
            };
            let groups = eni
                .groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect();
            out.insert(mt.to_string(), groups);
        }
    }
    Ok(out)
}

async fn read_security_groups(
    efs: aws_sdk_efs::Client,
    id: String,
) -> Result<Vec<String>, ProviderError> {
    let out = efs
        .describe_mount_target_security_groups()
        .mount_target_id(&id)
        .send()
        .await
        .map_err(|e| classify(&format!("DescribeMountTargetSecurityGroups {id}"), e))?;
    Ok(out.security_groups().to_vec())
}

/// The mount target's security group ids (resolved references).
fn group_ids(props: &MountTarget) -> Result<Vec<String>, ProviderError> {
    props
        .security_groups
        .iter()
        .map(|g| g.get("securityGroups").cloned())
        .collect()
}

#[async_trait]
impl KindClient<MountTarget> for MountTargetClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let wanted: Vec<(&DesiredResource, &str, usize)> = desired
            .iter()
            .filter_map(|d| split_name(&d.name).map(|(token, index)| (d, token, index)))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let efs = self.pool.efs(region);
        let tokens: HashSet<&str> = wanted.iter().map(|(_, t, _)| *t).collect();
        let all = list_file_systems(&self.pool, region).await?;
        let file_systems: HashMap<String, String> = by_name(&all, tokens)
            .into_iter()
            .map(|(name, fs)| (name.to_string(), fs.file_system_id().to_string()))
            .collect();
        if file_systems.is_empty() {
            return Ok(Vec::new());
        }
        let zones = zone_names(&self.pool.ec2(region)).await?;
        // DescribeMountTargets takes one file system id: one call per file system.
        let fs_list: Vec<(String, String)> = file_systems.into_iter().collect();
        let listed = read_all(
            fs_list
                .iter()
                .map(|(_, id)| list_mount_targets(efs.clone(), id.clone()))
                .collect(),
        )
        .await?;
        let by_token: HashMap<&str, &Vec<MountTargetDescription>> = fs_list
            .iter()
            .map(|(token, _)| token.as_str())
            .zip(listed.iter())
            .collect();
        let mut found = Vec::new();
        for (d, token, index) in wanted {
            let (Some(mts), Some(zone)) = (by_token.get(token), zones.get(index)) else {
                continue;
            };
            if let Some(mt) = mts
                .iter()
                .find(|mt| mt.availability_zone_name() == Some(zone.as_str()))
            {
                found.push((d, mt.clone()));
            }
        }
        let managed: Vec<&MountTargetDescription> = found
            .iter()
            .filter(|(d, _)| d.properties.get("securityGroups").is_some())
            .map(|(_, mt)| mt)
            .collect();
        let by_interface = if managed.is_empty() {
            HashMap::new()
        } else {
            groups_by_interface(&self.pool.ec2(region), &managed).await?
        };
        let groups = read_all(
            found
                .iter()
                .map(|(d, mt)| {
                    let efs = efs.clone();
                    let id = mt.mount_target_id().to_string();
                    let managed = d.properties.get("securityGroups").is_some();
                    let known = by_interface.get(&id).cloned();
                    async move {
                        match (managed, known) {
                            (false, _) => Ok(None),
                            (true, Some(groups)) => Ok(Some(groups)),
                            (true, None) => read_security_groups(efs, id).await.map(Some),
                        }
                    }
                })
                .collect(),
        )
        .await?;
        Ok(found
            .into_iter()
            .zip(groups)
            .map(|((d, mt), groups)| {
                let mut properties = json!({
                    "fileSystemId": mt.file_system_id(),
                    "subnetId": mt.subnet_id(),
                });
                if let Some(groups) = groups {
                    properties["securityGroups"] = json!(groups);
                }
                util::observed(
                    d,
                    properties,
                    [
                        ("id", json!(mt.mount_target_id())),
                        ("availabilityZone", json!(mt.availability_zone_name())),
                    ],
                    IndexMap::new(),
                )
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &MountTarget,
    ) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let fs_id = props.file_system_id.get("fileSystemId")?;
        let subnet = props.subnet_id.get("subnetId")?;
        let groups = group_ids(props)?;
        let what = format!("CreateMountTarget {fs_id} {subnet}");
        let out = match efs
            .create_mount_target()
            .file_system_id(fs_id)
            .subnet_id(subnet)
            .set_security_groups(Some(groups.clone()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let mut err = classify(&what, e);
                if err.code.as_deref() == Some("MountTargetConflict") {
                    err.class = self.conflict_class(&desired.region, fs_id, subnet).await?;
                }
                return Err(err);
            }
        };
        let id = out.mount_target_id().to_string();
        wait_until(
            &format!("mount target {id} ({})", desired.name),
            POLL_INTERVAL,
            MOUNT_TARGET_WAIT,
            || mount_target_state(&efs, &id),
            |s| s == Some("available"),
        )
        .await?;
        Ok(util::observed(
            desired,
            json!({ "fileSystemId": fs_id, "subnetId": subnet, "securityGroups": groups }),
            [
                ("id", json!(id)),
                ("availabilityZone", json!(out.availability_zone_name())),
            ],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &MountTarget,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = util::output(desired, observed, "id")?;
        if touches(changes, "securityGroups") {
            efs.modify_mount_target_security_groups()
                .mount_target_id(&id)
                .set_security_groups(Some(group_ids(props)?))
                .send()
                .await
                .map_err(|e| classify(&format!("ModifyMountTargetSecurityGroups {id}"), e))?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let efs = self.pool.efs(&desired.region);
        let id = util::output(desired, observed, "id")?;
        efs.delete_mount_target()
            .mount_target_id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteMountTarget {id}"), e))?;
        // Wait until gone: the file system's delete (and a new mount target in the same zone)
        // must not start before.
        wait_until(
            &format!("mount target {id} ({})", desired.name),
            POLL_INTERVAL,
            MOUNT_TARGET_WAIT,
            || mount_target_state(&efs, &id),
            |s| s.is_none(),
        )
        .await
    }
}

impl MountTargetClient {
    /// What a `MountTargetConflict` means: a live mount target of the file system already
    /// serves the subnet's zone (ours from an interrupted run: re-observe and adopt it), or the
    /// zone's old one is still being deleted (wait).
    async fn conflict_class(
        &self,
        region: &str,
        fs_id: &str,
        subnet: &str,
    ) -> Result<ErrorClass, ProviderError> {
        let subnets = self
            .pool
            .ec2(region)
            .describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeSubnets {subnet}"), e))?;
        let zone = subnets
            .subnets()
            .first()
            .and_then(|s| s.availability_zone())
            .map(str::to_string);
        let live = list_mount_targets(self.pool.efs(region), fs_id.to_string()).await?;
        let taken = live
            .iter()
            .any(|mt| mt.subnet_id() == subnet || mt.availability_zone_name() == zone.as_deref());
        Ok(if taken {
            ErrorClass::Conflict
        } else {
            ErrorClass::EventualConsistency
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_token_and_zone_index() {
        assert_eq!(split_name("rc-mc-data-0"), Some(("rc-mc-data", 0)));
        assert_eq!(split_name("rc-mc-data-1-12"), Some(("rc-mc-data-1", 12)));
        assert_eq!(split_name("rc-mc-data"), None);
    }
}
