//! `iam.role` ([`reconciler_kinds::iam::Role`]): found by name in one paginated `ListRoles`,
//! the rest from the account's authorization details (see the module doc of [`super`]); a role
//! the details do not show is read one call per part.
//!
//! The permissions boundary is managed when the desired role names the property: created
//! with it, and put back (or removed, for a desired `null`) before any policy is written, so a
//! deployer allowed to write policies only under the boundary can repair a role that lost it.
//!
//! Inline policies are managed by name: a policy the desired map names is written when it
//! differs, and whenever inline policies are updated, policies the desired map does not name are
//! removed (the role is ours). The diff compares only the names the desired map holds, so an
//! inline policy added out of band alone does not show as drift.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::RoleDetail;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::iam::Role;
use reconciler_render::naming::GLOBAL_REGION;
use serde_json::{json, Map, Value};

use super::{by_name, iam_tags, remove_role_from_profile, role_details, tag_map, PATH};
use crate::documents::{align_policy, document_text, policy_equivalent};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all, touches, updated};

/// The client of roles.
pub struct RoleClient {
    pool: Arc<ClientPool>,
}

impl RoleClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        RoleClient { pool }
    }
}

/// What is read for one existing role beyond its listing.
struct RoleParts {
    /// Attached managed policies, by ARN.
    attached: Vec<String>,
    /// Inline policies: name and document as AWS returns it.
    inline: Vec<(String, String)>,
    tags: IndexMap<String, String>,
    /// The permissions boundary's ARN; read only when the desired role names the property.
    boundary: Option<String>,
}

/// Whether the desired role manages its permissions boundary (names one, or asks for none).
fn manages_boundary(desired: &DesiredResource) -> bool {
    desired.properties.get("permissionsBoundary").is_some()
}

/// One role as observed, in the desired shape: the listing's path, description and trust
/// policy, then the parts read beside it.
fn role_observed(
    desired: &DesiredResource,
    want: &Role,
    role: &aws_sdk_iam::types::Role,
    parts: RoleParts,
) -> Observed {
    let mut props = Map::new();
    props.insert("path".into(), json!(role.path()));
    props.insert(
        "description".into(),
        role.description()
            .filter(|d| !d.is_empty())
            .map_or(Value::Null, |d| json!(d)),
    );
    if let Some(doc) = role.assume_role_policy_document() {
        props.insert(
            "assumeRolePolicyDocument".into(),
            align_policy(
                util::parse_policy(doc),
                Some(&want.assume_role_policy_document),
            ),
        );
    }
    props.insert("managedPolicyArns".into(), json!(parts.attached));
    let inline: Map<String, Value> = parts
        .inline
        .into_iter()
        .map(|(name, doc)| {
            let doc = align_policy(util::parse_policy(&doc), want.inline_policies.get(&name));
            (name, doc)
        })
        .collect();
    props.insert("inlinePolicies".into(), Value::Object(inline));
    if manages_boundary(desired) {
        props.insert("permissionsBoundary".into(), json!(parts.boundary));
    }
    util::observed(
        desired,
        Value::Object(props),
        [
            ("arn", json!(role.arn())),
            ("name", json!(role.role_name())),
        ],
        parts.tags,
    )
}

/// The ARNs of the managed policies attached to role `name`.
async fn attached_policies(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Vec<String>, ProviderError> {
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListAttachedRolePolicies {name}"), e))?;
    Ok(attached
        .iter()
        .filter_map(|p| p.policy_arn())
        .map(str::to_string)
        .collect())
}

/// The names of role `name`'s inline policies.
async fn inline_policy_names(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Vec<String>, ProviderError> {
    iam.list_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListRolePolicies {name}"), e))
}

/// Reads the parts of one role that `ListRoles` leaves out, one call each: for a role the
/// authorization details do not show (denied, or created between the two listings). The
/// boundary, which listings omit too, costs a `GetRole` and is read only when `boundary`.
async fn read_parts(
    iam: aws_sdk_iam::Client,
    name: String,
    boundary: bool,
) -> Result<RoleParts, ProviderError> {
    let tags = iam
        .list_role_tags()
        .role_name(&name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListRoleTags {name}"), e))?;
    let attached = attached_policies(&iam, &name).await?;
    let mut inline = Vec::new();
    for policy in inline_policy_names(&iam, &name).await? {
        let out = iam
            .get_role_policy()
            .role_name(&name)
            .policy_name(&policy)
            .send()
            .await
            .map_err(|e| classify(&format!("GetRolePolicy {name}/{policy}"), e))?;
        inline.push((policy, out.policy_document().to_string()));
    }
    let boundary = if boundary {
        read_boundary(&iam, &name).await?
    } else {
        None
    };
    Ok(RoleParts {
        attached,
        inline,
        tags: tag_map(&tags),
        boundary,
    })
}

/// The ARN of role `name`'s permissions boundary (`GetRole`).
async fn read_boundary(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<Option<String>, ProviderError> {
    let out = iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify(&format!("GetRole {name}"), e))?;
    Ok(out
        .role()
        .and_then(|r| r.permissions_boundary())
        .and_then(|b| b.permissions_boundary_arn())
        .map(str::to_string))
}

/// One role's parts from its authorization details, which hold the tags and the inline and
/// attached policies, so no per-role call is needed.
fn parts_from_details(details: &RoleDetail) -> RoleParts {
    RoleParts {
        attached: details
            .attached_managed_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .map(str::to_string)
            .collect(),
        inline: details
            .role_policy_list()
            .iter()
            .filter_map(|p| {
                let name = p.policy_name()?;
                Some((
                    name.to_string(),
                    p.policy_document().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        tags: tag_map(details.tags()),
        boundary: details
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string),
    }
}

/// Writes inline policy `policy` of role `name`.
async fn put_inline_policy(
    iam: &aws_sdk_iam::Client,
    desired: &DesiredResource,
    policy: &str,
    document: &Value,
) -> Result<(), ProviderError> {
    let name = desired.name.as_str();
    iam.put_role_policy()
        .role_name(name)
        .policy_name(policy)
        .policy_document(document_text(desired, document)?)
        .send()
        .await
        .map_err(|e| classify(&format!("PutRolePolicy {name}/{policy}"), e))?;
    Ok(())
}

async fn attach_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> Result<(), ProviderError> {
    iam.attach_role_policy()
        .role_name(name)
        .policy_arn(policy)
        .send()
        .await
        .map_err(|e| classify(&format!("AttachRolePolicy {name} {policy}"), e))?;
    Ok(())
}

async fn detach_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> Result<(), ProviderError> {
    iam.detach_role_policy()
        .role_name(name)
        .policy_arn(policy)
        .send()
        .await
        .map_err(|e| classify(&format!("DetachRolePolicy {name} {policy}"), e))?;
    Ok(())
}

async fn delete_inline_policy(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &str,
) -> Result<(), ProviderError> {
    iam.delete_role_policy()
        .role_name(name)
        .policy_name(policy)
        .send()
        .await
        .map_err(|e| classify(&format!("DeleteRolePolicy {name}/{policy}"), e))?;
    Ok(())
}

/// Sets role `name`'s permissions boundary to `boundary`, or removes it.
async fn write_boundary(
    iam: &aws_sdk_iam::Client,
    name: &str,
    boundary: Option<&str>,
) -> Result<(), ProviderError> {
    match boundary {
        Some(arn) => iam
            .put_role_permissions_boundary()
            .role_name(name)
            .permissions_boundary(arn)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify(&format!("PutRolePermissionsBoundary {name}"), e)),
        None => iam
            .delete_role_permissions_boundary()
            .role_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| classify(&format!("DeleteRolePermissionsBoundary {name}"), e)),
    }
}

/// Attaches and detaches managed policies so that exactly the desired ones are attached.
async fn sync_managed_policies(
    iam: &aws_sdk_iam::Client,
    name: &str,
    props: &Role,
    observed: &Observed,
) -> Result<(), ProviderError> {
    let want: HashSet<String> = props.managed_policy_arns.iter().cloned().collect();
    let have: HashSet<String> = util::strings(observed.properties.get("managedPolicyArns"))
        .into_iter()
        .collect();
    for policy in have.difference(&want) {
        detach_policy(iam, name, policy).await?;
    }
    for policy in want.difference(&have) {
        attach_policy(iam, name, policy).await?;
    }
    Ok(())
}

/// Writes the desired inline policies that differ and deletes those the desired map does not
/// name.
async fn sync_inline_policies(
    iam: &aws_sdk_iam::Client,
    desired: &DesiredResource,
    props: &Role,
    observed: &Observed,
) -> Result<(), ProviderError> {
    let have = observed
        .properties
        .get("inlinePolicies")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (policy, doc) in &props.inline_policies {
        if have.get(policy).is_some_and(|h| policy_equivalent(h, doc)) {
            continue;
        }
        put_inline_policy(iam, desired, policy, doc).await?;
    }
    for policy in have
        .keys()
        .filter(|p| !props.inline_policies.contains_key(*p))
    {
        delete_inline_policy(iam, &desired.name, policy).await?;
    }
    Ok(())
}

#[async_trait]
impl KindClient<Role> for RoleClient {
    async fn observe(
        &self,
        _region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let wanted = by_name(desired);
        // One paginated listing finds every role; the name filter is client-side because IAM
        // filters listings by path only.
        // `ListRoles` has descriptions; the authorization details have the rest. Two paged
        // calls for every role of the account instead of four or more per role.
        let roles = iam
            .list_roles()
            .max_items(1000)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify("ListRoles", e))?;
        let mut roles_found = Vec::new();
        for role in roles {
            if let Some(d) = wanted.get(role.role_name()) {
                roles_found.push((*d, reconciler_kinds::read::<Role>(d)?, role));
            }
        }
        if roles_found.is_empty() {
            return Ok(Vec::new());
        }
        let details = role_details(&self.pool).await?;
        let mut out = Vec::new();
        let mut unread = Vec::new();
        let mut reads = Vec::new();
        for (d, want, role) in roles_found {
            match details.get(role.role_name()) {
                Some(detail) => {
                    out.push(role_observed(d, &want, &role, parts_from_details(detail)))
                }
                None => {
                    reads.push(read_parts(
                        iam.clone(),
                        role.role_name().to_string(),
                        manages_boundary(d),
                    ));
                    unread.push((d, want, role));
                }
            }
        }
        for ((d, want, role), parts) in unread.into_iter().zip(read_all(reads).await?) {
            out.push(role_observed(d, &want, &role, parts));
        }
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Role,
    ) -> Result<Observed, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        let out = iam
            .create_role()
            .role_name(name)
            .path(PATH)
            .assume_role_policy_document(document_text(
                desired,
                &props.assume_role_policy_document,
            )?)
            .description(&props.description)
            .set_permissions_boundary(props.permissions_boundary.clone())
            .set_tags(Some(iam_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateRole {name}"), e))?;
        let arn = out.role().map(|r| r.arn().to_string()).ok_or_else(|| {
            ProviderError::transient(format!("CreateRole {name}: no role in the answer"))
        })?;
        // A failure below leaves a role without all its policies; the engine's retry of this
        // create meets `EntityAlreadyExists`, re-observes and finishes the job as an update.
        for policy in &props.managed_policy_arns {
            attach_policy(&iam, name, policy).await?;
        }
        for (policy, doc) in &props.inline_policies {
            put_inline_policy(&iam, desired, policy, doc).await?;
        }
        // Reported from what was written: a read right after the create may not see the role
        // yet (IAM is eventually consistent).
        let mut props = desired.properties.clone();
        if let Value::Object(map) = &mut props {
            map.insert("path".into(), json!(PATH));
        }
        Ok(util::observed(
            desired,
            props,
            [("arn", json!(arn)), ("name", json!(name))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Role,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        // The boundary first: a deployer policy that writes a role's policies only under the
        // boundary then allows the writes below.
        if touches(changes, "permissionsBoundary") {
            write_boundary(&iam, name, props.permissions_boundary.as_deref()).await?;
        }
        if touches(changes, "description") {
            iam.update_role()
                .role_name(name)
                .description(&props.description)
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateRole {name}"), e))?;
        }
        if touches(changes, "assumeRolePolicyDocument") {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(document_text(desired, &props.assume_role_policy_document)?)
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateAssumeRolePolicy {name}"), e))?;
        }
        if touches(changes, "managedPolicyArns") {
            sync_managed_policies(&iam, name, props, observed).await?;
        }
        if touches(changes, "inlinePolicies") {
            sync_inline_policies(&iam, desired, props, observed).await?;
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
            iam.tag_role()
                .role_name(name)
                .set_tags(Some(iam_tags(set)?))
                .send()
                .await
                .map_err(|e| classify(&format!("TagRole {name}"), e))?;
        }
        if !remove.is_empty() {
            iam.untag_role()
                .role_name(name)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("UntagRole {name}"), e))?;
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
        // IAM refuses to delete a role that still has policies or sits in an instance profile;
        // fresh listings, because something may have been attached since the observation.
        for policy in attached_policies(&iam, name).await? {
            detach_policy(&iam, name, &policy).await?;
        }
        for policy in inline_policy_names(&iam, name).await? {
            delete_inline_policy(&iam, name, &policy).await?;
        }
        let profiles = iam
            .list_instance_profiles_for_role()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListInstanceProfilesForRole {name}"), e))?;
        for profile in profiles {
            remove_role_from_profile(&iam, profile.instance_profile_name(), name).await?;
        }
        iam.delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteRole {name}"), e))?;
        Ok(())
    }
}
