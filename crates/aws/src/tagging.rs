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
//! One index serves every kind of one observation: the first client to ask fetches it, the
//! others wait for that fetch. The engine announces each observation of a graph (the provider's
//! observation hook expires the index), so the next plan, `watch` round or re-plan under the
//! lock fetches anew; an index also expires after [`FRESH_FOR`], for reads outside an
//! observation (the refresh after a conflict).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed, ResourceId};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};
use tokio::sync::OnceCell;

use crate::error::classify;
use crate::iam::read_all;
use crate::pool::ClientPool;
use crate::tags::{is_managed, tags_agree};

/// How long one fetched index serves at most.
pub const FRESH_FOR: Duration = Duration::from_secs(60);
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
];

/// Tags by ARN, as one `GetResources` pass saw them; `None` when the API is not available to
/// this caller (no `tag:GetResources` permission), so every read goes to the services.
type Snapshot = Option<Arc<HashMap<String, IndexMap<String, String>>>>;

/// One region's fetch, shared by the clients that ask while it is fresh.
struct Entry {
    started: Instant,
    cell: Arc<OnceCell<Snapshot>>,
}

/// The per-region indexes of one client pool.
#[derive(Default)]
pub struct TagIndex {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for TagIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagIndex").finish_non_exhaustive()
    }
}

impl TagIndex {
    /// Makes the next read fetch anew: a new observation must see changes made since the last.
    pub fn expire(&self) {
        self.entries.lock().expect("tag index lock").clear();
    }

    /// The cell of `region`'s current fetch, a new one when the last is stale.
    fn cell(&self, region: &str) -> Arc<OnceCell<Snapshot>> {
        let mut entries = self.entries.lock().expect("tag index lock");
        match entries.get(region) {
            Some(e) if e.started.elapsed() < FRESH_FOR => e.cell.clone(),
            _ => {
                let cell = Arc::new(OnceCell::new());
                entries.insert(
                    region.to_string(),
                    Entry {
                        started: Instant::now(),
                        cell: cell.clone(),
                    },
                );
                cell
            }
        }
    }
}

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

/// The index of `region`, fetched once while fresh.
async fn snapshot(pool: &ClientPool, region: &str) -> Result<Snapshot, ProviderError> {
    let cell = pool.tag_index().cell(region);
    cell.get_or_try_init(|| fetch(pool, region)).await.cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(tags: &[(&str, &str)]) -> DesiredResource {
        let mut d = DesiredResource::new("logs.log-group", "x", "eu-west-1", "/x");
        for (k, v) in tags {
            d.tags.insert(k.to_string(), v.to_string());
        }
        d
    }

    fn map(tags: &[(&str, &str)]) -> IndexMap<String, String> {
        tags.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn agreement_needs_every_desired_tag_and_no_stale_managed_key() {
        let d = desired(&[
            (TAG_MANAGED_BY, MANAGED_BY),
            ("reconciler.dev/server", "mc"),
        ]);
        let agrees =
            |d: &DesiredResource, tags: &IndexMap<String, String>| tags_agree(&d.tags, tags);
        assert!(agrees(
            &d,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "mc"),
                ("team", "games")
            ])
        ));
        assert!(!agrees(&d, &map(&[(TAG_MANAGED_BY, MANAGED_BY)])));
        assert!(!agrees(
            &d,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "other")
            ])
        ));
        assert!(!agrees(
            &d,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "mc"),
                ("reconciler.dev/old", "1")
            ])
        ));
    }

    #[test]
    fn a_fresh_fetch_is_shared_and_a_stale_one_replaced() {
        let index = TagIndex::default();
        let a = index.cell("eu-west-1");
        let b = index.cell("eu-west-1");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &index.cell("us-east-1")));
        index
            .entries
            .lock()
            .unwrap()
            .get_mut("eu-west-1")
            .unwrap()
            .started -= FRESH_FOR;
        let c = index.cell("eu-west-1");
        assert!(!Arc::ptr_eq(&a, &c));
        index.expire();
        assert!(!Arc::ptr_eq(&c, &index.cell("eu-west-1")));
    }
}
