//! IAM: roles and instance profiles, one file each.
//!
//! IAM is global: every call goes to the `us-east-1` endpoint ([`GLOBAL_REGION`]), whatever
//! region the desired resource names.
//!
//! Observation cost, per observation:
//! - roles: one paginated `ListRoles` (descriptions and trust policies) and one paginated
//!   `GetAccountAuthorizationDetails` for every role of the account (tags, inline policies with
//!   their documents, attached policies), shared with the profile client through the pool's
//!   observation memo ([`role_details`]), with the permissions boundary. Where the caller may
//!   not read the authorization details, or a role is missing from them (created between the
//!   two calls), that role costs `ListRoleTags`, `ListAttachedRolePolicies`,
//!   `ListRolePolicies`, one `GetRolePolicy` per inline policy and, when its boundary is
//!   managed, `GetRole`, a few roles at a time;
//! - instance profiles: from the same authorization details, where each role lists its
//!   profiles with their tags; a profile they do not show with the desired tags (no role, or
//!   details unavailable) costs one paginated `ListInstanceProfiles` and one
//!   `GetInstanceProfile`.
//!
//! IAM is eventually consistent: a role or profile just created may not be readable, attachable
//! or usable by EC2 for some seconds. Creates therefore report what they wrote instead of reading
//! it back, and the consumers' errors (`NoSuchEntity` on a create, EC2's
//! `InvalidParameterValue ... instance profile`) are retried by the engine as eventual
//! consistency.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_iam::types::{EntityType, RoleDetail, Tag};
use indexmap::IndexMap;
use reconciler_engine::model::DesiredResource;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};
use reconciler_render::naming::GLOBAL_REGION;

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;

mod instance_profile;
mod role;

pub use instance_profile::InstanceProfileClient;
pub use role::RoleClient;

/// The path every role and profile is created under.
const PATH: &str = "/";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(RoleClient::new(pool.clone()))),
        Arc::new(Managed::new(InstanceProfileClient::new(pool.clone()))),
    ]
}

fn iam_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::terminal(format!("tag `{k}`: {e}")))
        })
        .collect()
}

fn tag_map(tags: &[Tag]) -> IndexMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The desired resources by AWS name, for client-side filtering of a listing.
fn by_name(desired: &[DesiredResource]) -> HashMap<&str, &DesiredResource> {
    desired.iter().map(|d| (d.name.as_str(), d)).collect()
}

/// Takes `role` out of instance profile `profile`.
async fn remove_role_from_profile(
    iam: &aws_sdk_iam::Client,
    profile: &str,
    role: &str,
) -> Result<(), ProviderError> {
    iam.remove_role_from_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            classify(
                &format!("RemoveRoleFromInstanceProfile {profile} {role}"),
                e,
            )
        })?;
    Ok(())
}

/// Every role's authorization details by role name.
pub(crate) type RoleDetails = Arc<HashMap<String, RoleDetail>>;

/// The roles' authorization details by role name: tags, inline policies with their documents,
/// attached policies and instance profiles, for every role of the account in one paged call
/// (up to 1000 roles a page), read once per observation for both the role and the profile
/// clients. Empty when the caller may not read them: every role is then read one call at a
/// time.
async fn role_details(pool: &ClientPool) -> Result<RoleDetails, ProviderError> {
    pool.role_details()
        .get(GLOBAL_REGION, || fetch_role_details(pool))
        .await
}

async fn fetch_role_details(pool: &ClientPool) -> Result<RoleDetails, ProviderError> {
    let iam = pool.iam(GLOBAL_REGION);
    let pages: Vec<_> = match iam
        .get_account_authorization_details()
        .filter(EntityType::Role)
        .max_items(1000)
        .into_paginator()
        .send()
        .try_collect()
        .await
    {
        Ok(pages) => pages,
        Err(e) => {
            let e = classify("GetAccountAuthorizationDetails", e);
            if e.class == ErrorClass::Terminal {
                tracing::debug!(error = %e, "authorization details unavailable; reading roles one by one");
                return Ok(RoleDetails::default());
            }
            return Err(e);
        }
    };
    Ok(Arc::new(
        pages
            .iter()
            .flat_map(|p| p.role_detail_list())
            .filter_map(|d| Some((d.role_name()?.to_string(), d.clone())))
            .collect(),
    ))
}
