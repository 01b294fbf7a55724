//! IAM roles and instance profiles.
//!
//! IAM is global: every call goes to the `us-east-1` endpoint ([`GLOBAL_REGION`]), whatever
//! region the desired resource names.
//!
//! Observation cost, per run: one paginated `ListRoles` and one paginated `ListInstanceProfiles`
//! find every desired role and profile by name. IAM has no batch read for the parts of a role
//! that listings leave out, so each role that exists costs `ListRoleTags`,
//! `ListAttachedRolePolicies`, `ListRolePolicies` and one `GetRolePolicy` per inline policy, and
//! each profile costs one `GetInstanceProfile` (for its tags). These per-object reads run a few
//! at a time. (`GetAccountAuthorizationDetails` would return everything in one paginated call,
//! but it lists every role, user, group and policy of the account with their documents and needs
//! a permission that security teams rarely grant to automation.)
//!
//! IAM is eventually consistent: a role or profile just created may not be readable, attachable
//! or usable by EC2 for some seconds. Creates therefore report what they wrote instead of reading
//! it back, and the consumers' errors (`NoSuchEntity` on a create, EC2's
//! `InvalidParameterValue ... instance profile`) are retried by the engine as eventual
//! consistency.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::{EntityType, RoleDetail, Tag};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use reconciler_render::naming::GLOBAL_REGION;
use serde_json::{json, Map, Value};

use crate::documents::{align_policy, document_text, policy_equivalent};
use crate::error::classify;
use crate::pool::ClientPool;
use crate::tags::ensure_managed;
use crate::tags::{tag_delta, tags_agree};
use crate::util::{self, read_all, touches, touches_tags, updated};

/// The path every role and profile is created under.
const PATH: &str = "/";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(RoleClient { pool: pool.clone() }),
        Arc::new(InstanceProfileClient { pool: pool.clone() }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared IAM pieces.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// iam.role
// ---------------------------------------------------------------------------------------------

/// `iam.role`: `description`, `assumeRolePolicyDocument`, `managedPolicyArns` (a set),
/// `inlinePolicies` {name: document}; created under path `/`. Outputs `arn`, `name`.
///
/// Inline policies are managed by name: a policy the desired map names is written when it
/// differs, and whenever inline policies are updated, policies the desired map does not name are
/// removed (the role is ours). The diff compares only the names the desired map holds, so an
/// inline policy added out of band alone does not show as drift.
pub struct RoleClient {
    pool: Arc<ClientPool>,
}

/// What is read for one existing role.
struct RoleRead {
    arn: String,
    name: String,
    properties: Value,
    tags: IndexMap<String, String>,
}

/// The properties `ListRoles` returns: path, description and trust policy.
fn role_listing_properties(role: &aws_sdk_iam::types::Role, want: &Value) -> Map<String, Value> {
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
                want.get("assumeRolePolicyDocument"),
            ),
        );
    }
    props
}

/// Reads the parts of one role that `ListRoles` leaves out, one call each: for a role the
/// authorization details do not show yet (created between the two listings).
async fn read_role(
    iam: aws_sdk_iam::Client,
    role: aws_sdk_iam::types::Role,
    want: Value,
) -> Result<RoleRead, ProviderError> {
    let name = role.role_name().to_string();
    let tags = iam
        .list_role_tags()
        .role_name(&name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify(&format!("ListRoleTags {name}"), e))?;
    let mut props = role_listing_properties(&role, &want);
    if want.get("managedPolicyArns").is_some() {
        let attached = iam
            .list_attached_role_policies()
            .role_name(&name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListAttachedRolePolicies {name}"), e))?;
        let arns: Vec<Value> = attached
            .iter()
            .filter_map(|p| p.policy_arn())
            .map(|a| json!(a))
            .collect();
        props.insert("managedPolicyArns".into(), Value::Array(arns));
    }
    if let Some(wanted_inline) = want.get("inlinePolicies") {
        let names = iam
            .list_role_policies()
            .role_name(&name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListRolePolicies {name}"), e))?;
        let mut inline = Map::new();
        for policy in names {
            let out = iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(|e| classify(&format!("GetRolePolicy {name}/{policy}"), e))?;
            let doc = util::parse_policy(out.policy_document());
            inline.insert(
                policy.clone(),
                align_policy(doc, wanted_inline.get(&policy)),
            );
        }
        props.insert("inlinePolicies".into(), Value::Object(inline));
    }
    Ok(RoleRead {
        arn: role.arn().to_string(),
        name,
        properties: Value::Object(props),
        tags: tag_map(&tags),
    })
}

/// Builds one role's read from its listing and its authorization details, which hold the tags
/// and the inline and attached policies, so no per-role call is needed.
fn role_from_details(
    role: &aws_sdk_iam::types::Role,
    details: &RoleDetail,
    want: &Value,
) -> RoleRead {
    let mut props = role_listing_properties(role, want);
    if want.get("managedPolicyArns").is_some() {
        let arns: Vec<Value> = details
            .attached_managed_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .map(|a| json!(a))
            .collect();
        props.insert("managedPolicyArns".into(), Value::Array(arns));
    }
    if let Some(wanted_inline) = want.get("inlinePolicies") {
        let mut inline = Map::new();
        for policy in details.role_policy_list() {
            let Some(name) = policy.policy_name() else {
                continue;
            };
            let doc = util::parse_policy(policy.policy_document().unwrap_or_default());
            inline.insert(name.to_string(), align_policy(doc, wanted_inline.get(name)));
        }
        props.insert("inlinePolicies".into(), Value::Object(inline));
    }
    RoleRead {
        arn: role.arn().to_string(),
        name: role.role_name().to_string(),
        properties: Value::Object(props),
        tags: tag_map(details.tags()),
    }
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
            if e.class == reconciler_engine::provider::ErrorClass::Terminal {
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

fn role_observed(desired: &DesiredResource, read: RoleRead) -> Observed {
    util::observed(
        desired,
        read.properties,
        [("arn", json!(read.arn)), ("name", json!(read.name))],
        read.tags,
    )
}

/// The desired inline policies.
fn inline_policies(desired: &DesiredResource) -> Map<String, Value> {
    desired
        .properties
        .get("inlinePolicies")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[async_trait]
impl ResourceClient for RoleClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::ROLE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/path")
            .unordered("/managedPolicyArns")
    }

    async fn observe(
        &self,
        _region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
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
        let roles: Vec<(&DesiredResource, aws_sdk_iam::types::Role)> = roles
            .into_iter()
            .filter_map(|role| Some((wanted.get(role.role_name()).copied()?, role)))
            .collect();
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let details = role_details(&self.pool).await?;
        let mut out = Vec::new();
        let mut found = Vec::new();
        let mut reads = Vec::new();
        for (d, role) in roles {
            match details.get(role.role_name()) {
                Some(detail) => out.push(role_observed(
                    d,
                    role_from_details(&role, detail, &d.properties),
                )),
                None => {
                    found.push(d);
                    reads.push(read_role(iam.clone(), role, d.properties.clone()));
                }
            }
        }
        for (d, r) in found.into_iter().zip(read_all(reads).await?) {
            out.push(role_observed(d, r));
        }
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        let trust = desired
            .properties
            .get("assumeRolePolicyDocument")
            .ok_or_else(|| util::missing(desired, "assumeRolePolicyDocument"))?;
        let out = iam
            .create_role()
            .role_name(name)
            .path(PATH)
            .assume_role_policy_document(document_text(desired, trust)?)
            .set_description(util::opt_str(desired, "description").map(str::to_string))
            .set_tags(Some(iam_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateRole {name}"), e))?;
        let arn = out.role().map(|r| r.arn().to_string()).ok_or_else(|| {
            ProviderError::transient(format!("CreateRole {name}: no role in the answer"))
        })?;
        // A failure below leaves a role without all its policies; the engine's retry of this
        // create meets `EntityAlreadyExists`, re-observes and finishes the job as an update.
        for policy in util::str_list(desired, "managedPolicyArns") {
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(&policy)
                .send()
                .await
                .map_err(|e| classify(&format!("AttachRolePolicy {name} {policy}"), e))?;
        }
        for (policy, doc) in inline_policies(desired) {
            iam.put_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .policy_document(document_text(desired, &doc)?)
                .send()
                .await
                .map_err(|e| classify(&format!("PutRolePolicy {name}/{policy}"), e))?;
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
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        if touches(changes, "description") {
            iam.update_role()
                .role_name(name)
                .description(util::opt_str(desired, "description").unwrap_or_default())
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateRole {name}"), e))?;
        }
        if touches(changes, "assumeRolePolicyDocument") {
            let trust = desired
                .properties
                .get("assumeRolePolicyDocument")
                .ok_or_else(|| util::missing(desired, "assumeRolePolicyDocument"))?;
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(document_text(desired, trust)?)
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateAssumeRolePolicy {name}"), e))?;
        }
        if touches(changes, "managedPolicyArns") {
            let want: HashSet<String> = util::str_list(desired, "managedPolicyArns")
                .into_iter()
                .collect();
            let have: HashSet<String> = observed
                .properties
                .get("managedPolicyArns")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for policy in have.difference(&want) {
                iam.detach_role_policy()
                    .role_name(name)
                    .policy_arn(policy)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("DetachRolePolicy {name} {policy}"), e))?;
            }
            for policy in want.difference(&have) {
                iam.attach_role_policy()
                    .role_name(name)
                    .policy_arn(policy)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("AttachRolePolicy {name} {policy}"), e))?;
            }
        }
        if touches(changes, "inlinePolicies") {
            let want = inline_policies(desired);
            let have = observed
                .properties
                .get("inlinePolicies")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (policy, doc) in &want {
                if have.get(policy).is_some_and(|h| policy_equivalent(h, doc)) {
                    continue;
                }
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .policy_document(document_text(desired, doc)?)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("PutRolePolicy {name}/{policy}"), e))?;
            }
            for policy in have.keys().filter(|p| !want.contains_key(*p)) {
                iam.delete_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("DeleteRolePolicy {name}/{policy}"), e))?;
            }
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                iam.tag_role()
                    .role_name(name)
                    .set_tags(Some(iam_tags(&set)?))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagRole {name}"), e))?;
            }
            if !remove.is_empty() {
                iam.untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagRole {name}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        // IAM refuses to delete a role that still has policies or sits in an instance profile;
        // fresh listings, because something may have been attached since the observation.
        let attached = iam
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListAttachedRolePolicies {name}"), e))?;
        for policy in attached.iter().filter_map(|p| p.policy_arn()) {
            iam.detach_role_policy()
                .role_name(name)
                .policy_arn(policy)
                .send()
                .await
                .map_err(|e| classify(&format!("DetachRolePolicy {name} {policy}"), e))?;
        }
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListRolePolicies {name}"), e))?;
        for policy in inline {
            iam.delete_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(|e| classify(&format!("DeleteRolePolicy {name}/{policy}"), e))?;
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
            let profile = profile.instance_profile_name();
            iam.remove_role_from_instance_profile()
                .instance_profile_name(profile)
                .role_name(name)
                .send()
                .await
                .map_err(|e| {
                    classify(
                        &format!("RemoveRoleFromInstanceProfile {profile} {name}"),
                        e,
                    )
                })?;
        }
        iam.delete_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteRole {name}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// iam.instance-profile
// ---------------------------------------------------------------------------------------------

/// `iam.instance-profile`: `roles` [role name] (a set; IAM allows one). Outputs `arn`, `name`.
///
/// EC2 may refuse a profile for some seconds after it was created or got its role; the
/// launch-template and instance clients see that as eventual consistency and retry.
pub struct InstanceProfileClient {
    pool: Arc<ClientPool>,
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
            if err.class == reconciler_engine::provider::ErrorClass::NotFound {
                // Deleted between the listing and this read.
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

#[async_trait]
impl ResourceClient for InstanceProfileClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::INSTANCE_PROFILE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().immutable("/path").unordered("/roles")
    }

    async fn observe(
        &self,
        _region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
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

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
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
        let roles = util::str_list(desired, "roles");
        for role in &roles {
            // A role created moments ago may not be visible yet: `NoSuchEntity` is retried;
            // the retry meets `EntityAlreadyExists` and finishes as an update.
            iam.add_role_to_instance_profile()
                .instance_profile_name(name)
                .role_name(role)
                .send()
                .await
                .map_err(|e| classify(&format!("AddRoleToInstanceProfile {name} {role}"), e))?;
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
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        if touches(changes, "roles") {
            let want: HashSet<String> = util::str_list(desired, "roles").into_iter().collect();
            let have: Vec<String> = observed
                .properties
                .get("roles")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            // Remove first: a profile holds at most one role.
            for role in have.iter().filter(|r| !want.contains(*r)) {
                iam.remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role)
                    .send()
                    .await
                    .map_err(|e| {
                        classify(&format!("RemoveRoleFromInstanceProfile {name} {role}"), e)
                    })?;
            }
            for role in want.iter().filter(|r| !have.contains(*r)) {
                iam.add_role_to_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("AddRoleToInstanceProfile {name} {role}"), e))?;
            }
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                iam.tag_instance_profile()
                    .instance_profile_name(name)
                    .set_tags(Some(iam_tags(&set)?))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagInstanceProfile {name}"), e))?;
            }
            if !remove.is_empty() {
                iam.untag_instance_profile()
                    .instance_profile_name(name)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagInstanceProfile {name}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let iam = self.pool.iam(GLOBAL_REGION);
        let name = desired.name.as_str();
        // IAM refuses to delete a profile that still holds a role; read it fresh.
        let Some(profile) = read_profile(iam.clone(), name.to_string()).await? else {
            return Ok(());
        };
        for role in profile.roles() {
            let role = role.role_name();
            iam.remove_role_from_instance_profile()
                .instance_profile_name(name)
                .role_name(role)
                .send()
                .await
                .map_err(|e| {
                    classify(&format!("RemoveRoleFromInstanceProfile {name} {role}"), e)
                })?;
        }
        iam.delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteInstanceProfile {name}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};

    #[test]
    fn ownership_is_checked_only_for_tagged_kinds() {
        let desired = DesiredResource::new("iam.role", "r", GLOBAL_REGION, "rc-r")
            .with_tag(TAG_MANAGED_BY, MANAGED_BY);
        let mut observed = Observed::new("iam.role/r");
        assert!(ensure_managed(&desired, &observed, "change").is_err());
        observed
            .tags
            .insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
        assert!(ensure_managed(&desired, &observed, "change").is_ok());
        let untagged = DesiredResource::new("efs.mount-target", "m", "eu-west-1", "m-0");
        assert!(ensure_managed(&untagged, &Observed::new("efs.mount-target/m"), "delete").is_ok());
    }
}
