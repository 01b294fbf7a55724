//! `iam.instance-profile` ([`reconciler_kinds::iam::InstanceProfile`]): from the roles'
//! authorization details where they show the profile with the desired tags, otherwise found in
//! one paginated `ListInstanceProfiles` and read with `GetInstanceProfile`.
//!
//! EC2 may refuse a profile for some seconds after it was created or got its role; the
//! launch-template and instance clients see that as eventual consistency and retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::iam::InstanceProfile;
use reconciler_render::naming::GLOBAL_REGION;
use serde_json::{json, Value};

use super::{by_name, iam_tags, remove_role_from_profile, role_details, tag_map, PATH};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tags::tags_agree;
use crate::util::{self, read_all, touches, updated};

/// The client of instance profiles.
pub struct InstanceProfileClient {
    pool: Arc<ClientPool>,
}

impl InstanceProfileClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        InstanceProfileClient { pool }
    }
}

fn profile_observed(
    desired: &DesiredResource,
    profile: &aws_sdk_iam::types::InstanceProfile,
) -> Observed {
    let roles: Vec<Value> = profile
        .roles()
        .iter()
        .map(|r| json!(r.role_name()))
        .collect();
    util::observed(
        desired,
        json!({ "roles": roles }),
        [
            ("arn", json!(profile.arn())),
            ("name", json!(profile.instance_profile_name())),
        ],
        tag_map(profile.tags()),
    )
}

/// Reads one profile with its tags. Listings omit tags (AWS documents this), and
/// `ListInstanceProfileTags` is missing from the emulator, so `GetInstanceProfile`, which
/// returns roles and tags in one call, serves on both.
async fn read_profile(
    iam: aws_sdk_iam::Client,
    name: String,
) -> Result<Option<aws_sdk_iam::types::InstanceProfile>, ProviderError> {
    match iam
        .get_instance_profile()
        .instance_profile_name(&name)
        .send()
        .await
    {
        Ok(out) => Ok(out.instance_profile().cloned()),
        Err(e) => {
            let err = classify(&format!("GetInstanceProfile {name}"), e);
            if err.class == ErrorClass::NotFound {
                // Deleted between the listing and this read.
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// Puts `role` into profile `profile`. A role created moments ago may not be visible yet:
/// `NoSuchEntity` is retried as eventual consistency.
async fn add_role(
    iam: &aws_sdk_iam::Client,
    profile: &str,
    role: &str,
) -> Result<(), ProviderError> {
    iam.add_role_to_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .map_err(|e| classify(&format!("AddRoleToInstanceProfile {profile} {role}"), e))?;
    Ok(())
}

/// The desired roles, by name.
fn desired_roles(props: &InstanceProfile) -> Result<Vec<String>, ProviderError> {
    props
        .roles
        .iter()
        .map(|r| r.get("roles").cloned())
        .collect()
}

#[async_trait]
impl KindClient<InstanceProfile> for InstanceProfileClient {
    async fn observe(
        &self,
        _region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        // A profile whose role's authorization details show it with the desired tags is
        // observed from them; the others are listed, then read with `GetInstanceProfile`
        // (profiles without a role, or details without tags).
        let details = role_details(&self.pool).await?;
        let detailed: HashMap<&str, &aws_sdk_iam::types::InstanceProfile> = details
            .values()
            .flat_map(|d| d.instance_profile_list())
            .map(|p| (p.instance_profile_name(), p))
            .collect();
        let mut out = Vec::new();
        let mut rest = Vec::new();
        for d in desired {
            match detailed.get(d.name.as_str()) {
                Some(p) if tags_agree(&d.tags, &tag_map(p.tags())) => {
                    out.push(profile_observed(d, p));
                }
                _ => rest.push(d.clone()),
            }
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let wanted = by_name(&rest);
        let profiles = iam
            .list_instance_profiles()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("ListInstanceProfiles", e))?;
        let mut found = Vec::new();
        let mut reads = Vec::new();
        for profile in profiles {
            let name = profile.instance_profile_name();
            if let Some(d) = wanted.get(name) {
                found.push(*d);
                reads.push(read_profile(iam.clone(), name.to_string()));
            }
        }
        for (d, p) in found.into_iter().zip(read_all(reads).await?) {
            if let Some(p) = p {
                out.push(profile_observed(d, &p));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &InstanceProfile,
    ) -> Result<Observed, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        let roles = desired_roles(props)?;
        let out = iam
            .create_instance_profile()
            .instance_profile_name(name)
            .path(PATH)
            .set_tags(Some(iam_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateInstanceProfile {name}"), e))?;
        let arn = out
            .instance_profile()
            .map(|p| p.arn().to_string())
            .ok_or_else(|| {
                ProviderError::transient(format!(
                    "CreateInstanceProfile {name}: no profile in the answer"
                ))
            })?;
        for role in &roles {
            // The retry of a create that failed here meets `EntityAlreadyExists` and finishes
            // as an update.
            add_role(&iam, name, role).await?;
        }
        Ok(util::observed(
            desired,
            json!({ "roles": roles }),
            [("arn", json!(arn)), ("name", json!(name))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &InstanceProfile,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        if !touches(changes, "roles") {
            return Ok(updated(observed, desired));
        }
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        let want: HashSet<String> = desired_roles(props)?.into_iter().collect();
        let have = util::strings(observed.properties.get("roles"));
        // Remove first: a profile holds at most one role.
        for role in have.iter().filter(|r| !want.contains(*r)) {
            remove_role_from_profile(&iam, name, role).await?;
        }
        for role in want.iter().filter(|r| !have.contains(*r)) {
            add_role(&iam, name, role).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        if !set.is_empty() {
            iam.tag_instance_profile()
                .instance_profile_name(name)
                .set_tags(Some(iam_tags(set)?))
                .send()
                .await
                .map_err(|e| classify(&format!("TagInstanceProfile {name}"), e))?;
        }
        if !remove.is_empty() {
            iam.untag_instance_profile()
                .instance_profile_name(name)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("UntagInstanceProfile {name}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        // IAM refuses to delete a profile that still holds a role; read it fresh.
        let Some(profile) = read_profile(iam.clone(), name.to_string()).await? else {
            return Ok(());
        };
        for role in profile.roles() {
            remove_role_from_profile(&iam, name, role.role_name()).await?;
        }
        iam.delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteInstanceProfile {name}"), e))?;
        Ok(())
    }
}
