//! Tags of many objects in one paged read: the Resource Groups Tagging API.
//!
//! Log groups, Lambda functions, event rules, alarms, topics, SSM parameters and backup vaults
//! are listed without their tags, and each service reads tags one object at a time. Instead,
//! observation asks `GetResources` once per region (paged, 100 objects a page) for every object
//! carrying the ownership tag, and takes each object's tags from that index.
//!
//! The index is a fast path, never the authority. `GetResources` is eventually consistent and
//! lists only objects that carry the filter tag, so whenever the index does not show exactly the
//! tags the desired resource wants (a new object not indexed yet, an object without our tag, a
//! tag changed out of band), the object's own service is asked, one object at a time, as before.
//! A no-op reconcile therefore reads tags in a few calls, and a difference is always confirmed by
//! the authoritative read before anything is planned on it.
//!
//! One index serves every kind of one observation (see [`crate::memo`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed, ResourceId};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};

use crate::error::classify;
use crate::memo::ObservationMemo;
use crate::pool::ClientPool;
use crate::tags::{is_managed, tags_agree};
use crate::util::read_all;

/// Objects per `GetResources` page (the API's maximum).
const PER_PAGE: i32 = 100;
/// The services whose tags are read through the index. Service names, not `service:type`
/// pairs, keep the filter short and cover every type the reconciler tags in them.
const SERVICES: &[&str] = &[
    "logs",
    "lambda",
    "events",
    "cloudwatch",
    "sns",
    "ssm",
    "backup",
    "route53",
    // Task definition revisions only (their content digest; see the ECS provider).
    "ecs:task-definition",
];

/// Tags by ARN, as one `GetResources` pass saw them; `None` when the API is not available to
/// this caller (no `tag:GetResources` permission), so every read goes to the services.
pub type Snapshot = Option<Arc<HashMap<String, IndexMap<String, String>>>>;

/// The per-region tag indexes of one client pool.
pub type TagIndex = ObservationMemo<Snapshot>;

/// Reads `region`'s index: every object of [`SERVICES`] carrying the ownership tag.
async fn fetch(pool: &ClientPool, region: &str) -> Result<Snapshot, ProviderError> {
    let client = pool.tagging(region);
    let filter = aws_sdk_resourcegroupstagging::types::TagFilter::builder()
        .key(TAG_MANAGED_BY)
        .values(MANAGED_BY)
        .build();
    let mut out = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_resources()
            .tag_filters(filter.clone())
            .set_resource_type_filters(Some(SERVICES.iter().map(|s| s.to_string()).collect()))
            .resources_per_page(PER_PAGE)
            .set_pagination_token(token.take())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                let e = classify("GetResources", e);
                // Not allowed or not offered here: the services answer instead. Throttling and
                // network errors are the engine's to retry.
                if e.class == ErrorClass::Terminal {
                    tracing::debug!(region, error = %e, "tag index unavailable; reading tags per object");
                    return Ok(None);
                }
                return Err(e);
            }
        };
        for mapping in page.resource_tag_mapping_list() {
            let Some(arn) = mapping.resource_arn() else {
                continue;
            };
            let sorted: BTreeMap<String, String> = mapping
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            out.insert(arn.to_string(), sorted.into_iter().collect());
        }
        match page.pagination_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(Some(Arc::new(out)))
}

/// The index of `region`, fetched once per observation.
async fn snapshot(pool: &ClientPool, region: &str) -> Result<Snapshot, ProviderError> {
    pool.tag_index().get(region, || fetch(pool, region)).await
}

/// The ARNs of `region`'s index that `wanted` accepts (say, a service's), empty without an
/// index. An object listed here existed when the index was read; one missing from it may exist
/// all the same (not indexed yet, or not tagged as ours).
pub async fn indexed_arns(
    pool: &ClientPool,
    region: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<String>, ProviderError> {
    let index = snapshot(pool, region).await?;
    Ok(index
        .iter()
        .flat_map(|ix| ix.keys())
        .filter(|arn| wanted(arn))
        .cloned()
        .collect())
}

/// What `region`'s index shows for each of `arns`, in order: `None` where it shows nothing (or
/// there is no index). For clients that read the rest in batches of their own.
pub async fn indexed_tags(
    pool: &ClientPool,
    region: &str,
    arns: &[String],
) -> Result<Vec<Option<IndexMap<String, String>>>, ProviderError> {
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let index = snapshot(pool, region).await?;
    Ok(arns
        .iter()
        .map(|arn| index.as_ref().and_then(|ix| ix.get(arn)).cloned())
        .collect())
}

/// The tags of each `(desired, arn)` pair, in order: from the index when it shows exactly what
/// the desired resource wants, otherwise from `read_one(arn)`, the service's own per-object read.
pub async fn tags_of<F, Fut>(
    pool: &ClientPool,
    region: &str,
    objects: &[(&DesiredResource, String)],
    read_one: F,
) -> Result<Vec<IndexMap<String, String>>, ProviderError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<IndexMap<String, String>, ProviderError>> + Send + 'static,
{
    let arns: Vec<&str> = objects.iter().map(|(_, arn)| arn.as_str()).collect();
    lookup(pool, region, &arns, read_one, |i, tags| {
        tags_agree(&objects[i].0.tags, tags)
    })
    .await
}

/// Sets the tags of each observation of `desired` (found by its `arn` output) as [`tags_of`]
/// reads them: for clients that observe an object's other parts first.
pub async fn fill_tags<F, Fut>(
    pool: &ClientPool,
    region: &str,
    desired: &[DesiredResource],
    observed: &mut [Observed],
    read_one: F,
) -> Result<(), ProviderError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<IndexMap<String, String>, ProviderError>> + Send + 'static,
{
    let by_id: HashMap<&ResourceId, &DesiredResource> =
        desired.iter().map(|d| (&d.id, d)).collect();
    let mut slots = Vec::new();
    let mut objects = Vec::new();
    for (i, o) in observed.iter().enumerate() {
        let (Some(d), Some(arn)) = (by_id.get(&o.id), o.output("arn").and_then(|a| a.as_str()))
        else {
            continue;
        };
        slots.push(i);
        objects.push((*d, arn.to_string()));
    }
    let tags = tags_of(pool, region, &objects, read_one).await?;
    for (i, tags) in slots.into_iter().zip(tags) {
        observed[i].tags = tags;
    }
    Ok(())
}

/// The tags of objects no desired resource describes (found while looking for orphans), in
/// order: from the index when it shows the ownership tag, otherwise from `read_one(arn)`.
pub async fn owned_tags_of<F, Fut>(
    pool: &ClientPool,
    region: &str,
    arns: &[&str],
    read_one: F,
) -> Result<Vec<IndexMap<String, String>>, ProviderError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<IndexMap<String, String>, ProviderError>> + Send + 'static,
{
    lookup(pool, region, arns, read_one, |_, tags| is_managed(tags)).await
}

/// Takes the tags of `arns[i]` from the index when `trusted(i, tags)`, and reads the rest.
async fn lookup<F, Fut>(
    pool: &ClientPool,
    region: &str,
    arns: &[&str],
    read_one: F,
    trusted: impl Fn(usize, &IndexMap<String, String>) -> bool,
) -> Result<Vec<IndexMap<String, String>>, ProviderError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<IndexMap<String, String>, ProviderError>> + Send + 'static,
{
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let index = snapshot(pool, region).await?;
    let mut out: Vec<Option<IndexMap<String, String>>> = Vec::with_capacity(arns.len());
    let mut confirm = Vec::new();
    let mut reads = Vec::new();
    for (i, arn) in arns.iter().enumerate() {
        match index.as_ref().and_then(|ix| ix.get(*arn)) {
            Some(tags) if trusted(i, tags) => out.push(Some(tags.clone())),
            _ => {
                out.push(None);
                confirm.push(i);
                reads.push(read_one(arn.to_string()));
            }
        }
    }
    for (i, tags) in confirm.into_iter().zip(read_all(reads).await?) {
        out[i] = Some(tags);
    }
    Ok(out.into_iter().flatten().collect())
}
