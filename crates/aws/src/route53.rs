//! Route 53: public hosted zones, record sets and query logging configs.
//!
//! Route 53 is a global service whose API lives in `us-east-1`, the region of these desired
//! resources. Observation cost, per kind:
//! - hosted zones: one paginated `ListHostedZones`, one `ListTagsForResources` per ten zones
//!   found, and one `GetHostedZone` per zone found, because only that call returns a zone's
//!   delegation set (its name servers) and it has no batch form;
//! - record sets: one paginated `ListHostedZones` (only when some record's zone is a reference
//!   to be found by name), then one `ListResourceRecordSets` per zone involved (narrowed with
//!   `StartRecordName`/`StartRecordType` when one record of the zone is wanted); the API has no
//!   read across zones;
//! - query logging configs: one paginated `ListHostedZones` (only when some config's zone is a
//!   reference to be found by name) and one paginated `ListQueryLoggingConfigs` for the whole
//!   account. A config on a zone given by id (a shared wake zone's root zone) counts as the
//!   reconciler's only when it logs to one of its query log groups.
//!
//! Zones are found by name. AWS lets several public zones share a name; the reconciler then
//! uses the one tagged as its own and logs a warning. Finding the zone of a record or logging
//! config whose zone is a reference reads zone tags only when the zone's caller reference does
//! not show the reconciler created it (see [`HostedZoneClient`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HostedZoneConfig, QueryLoggingConfig, ResourceRecord,
    ResourceRecordSet, RrType, Tag, TagResourceType,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, is_managed, tag_delta, tags_agree};
use crate::util;
use crate::util::{read_all, updated};
use crate::util::{touches, touches_tags};

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(HostedZoneClient {
            pool: pool.clone(),
            references: CallerReferences::default(),
        }),
        Arc::new(RecordSetClient { pool: pool.clone() }),
        Arc::new(QueryLoggingConfigClient { pool: pool.clone() }),
    ]
}

/// The prefix AWS puts before a zone id in some answers (`/hostedzone/Z123`).
const ZONE_ID_PREFIX: &str = "/hostedzone/";
/// How many resource ids `ListTagsForResources` accepts per call.
const TAG_BATCH: usize = 10;
/// The start of every caller reference the reconciler sends, which marks a zone as created by
/// it even before its tags are written.
const REFERENCE_MARKER: &str = "reconciler/";
/// The longest caller reference AWS accepts.
const REFERENCE_MAX: usize = 128;

/// A zone id without the `/hostedzone/` prefix.
pub fn bare_zone_id(id: &str) -> String {
    id.trim_start_matches(ZONE_ID_PREFIX).to_string()
}

/// A DNS name in the form used for comparison: lower case, with the octal escapes Route 53
/// uses in answers (`\052` for `*`) decoded, and with the trailing dot.
pub fn normalise_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|s| u8::from_str_radix(s, 8).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let mut s = String::from_utf8_lossy(&out).to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// A record value in the form used for comparison. Values that are (or end in) host names
/// lose a trailing dot, since `ns-1.awsdns-01.org` and `ns-1.awsdns-01.org.` name the same
/// server and AWS shows either form depending on where the value comes from (a zone's
/// delegation set has no dot, record values keep what was written). This is also the form of
/// a hosted zone's `nameServers` output, so a delegation built from it diffs empty.
pub fn normalise_value(record_type: &str, value: &str) -> String {
    match record_type {
        "NS" | "CNAME" | "PTR" | "MX" | "SRV" | "A" | "AAAA" => {
            value.strip_suffix('.').unwrap_or(value).to_string()
        }
        _ => value.to_string(),
    }
}

/// The zone, among `zones` (names), whose name is the longest suffix of `record` on a label
/// boundary: the A record of `mc.example.com.` lives in zone `mc.example.com.` when that zone
/// exists, not in `example.com.`.
pub fn longest_suffix_zone<'a>(
    record: &str,
    zones: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let record = normalise_name(record);
    zones
        .into_iter()
        .filter(|zone| {
            let zone = normalise_name(zone);
            record == zone || record.ends_with(&format!(".{zone}"))
        })
        .max_by_key(|zone| normalise_name(zone).len())
}

/// A public hosted zone as listed.
#[derive(Debug, Clone)]
struct Zone {
    /// The bare id.
    id: String,
    /// The normalised name.
    name: String,
    comment: Option<String>,
    caller_reference: String,
}

/// Every public hosted zone of the account (one paginated `ListHostedZones`). Private zones
/// never hold what the reconciler manages and are left out.
async fn list_zones(r53: &aws_sdk_route53::Client) -> Result<Vec<Zone>, ProviderError> {
    let zones = r53
        .list_hosted_zones()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListHostedZones", e))?;
    Ok(zones
        .into_iter()
        .filter(|z| !z.config().is_some_and(|c| c.private_zone()))
        .map(|z| Zone {
            id: bare_zone_id(z.id()),
            name: normalise_name(z.name()),
            comment: z.config().and_then(|c| c.comment()).map(str::to_string),
            caller_reference: z.caller_reference().to_string(),
        })
        .collect())
}

/// Tags of zones by bare id, ten ids per `ListTagsForResources` call.
async fn zone_tags(
    r53: &aws_sdk_route53::Client,
    ids: &[String],
) -> Result<HashMap<String, IndexMap<String, String>>, ProviderError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(TAG_BATCH) {
        let answer = r53
            .list_tags_for_resources()
            .resource_type(TagResourceType::Hostedzone)
            .set_resource_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify(&format!("ListTagsForResources {}", chunk.join(",")), e))?;
        for set in answer.resource_tag_sets() {
            let Some(id) = set.resource_id() else {
                continue;
            };
            // Sorted, for stable output.
            let tags: BTreeMap<String, String> = set
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            out.insert(bare_zone_id(id), tags.into_iter().collect());
        }
    }
    Ok(out)
}

/// A zone's ARN, as the tag index names it.
fn zone_arn(id: &str) -> String {
    format!("arn:aws:route53:::hostedzone/{id}")
}

/// Whether the reconciler created the zone (its caller reference carries the marker).
fn created_by_reconciler(caller_reference: &str) -> bool {
    caller_reference.starts_with(REFERENCE_MARKER)
}

/// One zone among several of the same name: the one tagged as ours, else the one the
/// reconciler created, else the first. Warns, since AWS then serves only one of them.
fn choose<'a>(
    name: &str,
    candidates: &[&'a Zone],
    tags: &HashMap<String, IndexMap<String, String>>,
) -> &'a Zone {
    let tagged = |z: &&&Zone| tags.get(&z.id).is_some_and(is_managed);
    let pick = candidates
        .iter()
        .find(tagged)
        .or_else(|| {
            candidates
                .iter()
                .find(|z| created_by_reconciler(&z.caller_reference))
        })
        .unwrap_or(&candidates[0]);
    if candidates.len() > 1 {
        let ids: Vec<&str> = candidates.iter().map(|z| z.id.as_str()).collect();
        tracing::warn!(
            zone = name,
            ids = ?ids,
            chosen = %pick.id,
            "several public hosted zones share this name; using the one tagged as the reconciler's"
        );
    }
    pick
}

/// The zones of the account grouped by name.
struct ZoneIndex {
    by_name: BTreeMap<String, Vec<Zone>>,
}

impl ZoneIndex {
    /// The account's zones, listed once per observation for the zone, record and logging
    /// config clients alike.
    async fn load(pool: &ClientPool, r53: &aws_sdk_route53::Client) -> Result<Self, ProviderError> {
        let zones = pool
            .shared_read("route53:ListHostedZones", || list_zones(r53))
            .await?;
        let mut by_name: BTreeMap<String, Vec<Zone>> = BTreeMap::new();
        for zone in zones.iter() {
            by_name
                .entry(zone.name.clone())
                .or_default()
                .push(zone.clone());
        }
        Ok(ZoneIndex { by_name })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The reconciler's own zone for each of `names`, where there is one: a zone its caller
    /// reference or its ownership tag marks as the reconciler's, the tagged one first when
    /// several share the name (as [`HostedZoneClient`] chooses). Records and logging configs
    /// whose zone is a reference live in such a zone only; a record of the same name in
    /// somebody else's zone (say, an old A record in the parent zone before the server's zone
    /// exists) is not theirs to adopt or replace. Tags are read only where the caller
    /// reference does not settle it: a shared name, or a zone not created by the reconciler.
    async fn owned(
        &self,
        r53: &aws_sdk_route53::Client,
        names: &HashSet<String>,
    ) -> Result<HashMap<String, Zone>, ProviderError> {
        let unsettled: Vec<String> = names
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .filter(|zones| zones.len() > 1 || !created_by_reconciler(&zones[0].caller_reference))
            .flat_map(|zones| zones.iter().map(|z| z.id.clone()))
            .collect();
        let tags = if unsettled.is_empty() {
            HashMap::new()
        } else {
            zone_tags(r53, &unsettled).await?
        };
        Ok(names
            .iter()
            .filter_map(|n| {
                let owned: Vec<&Zone> = self
                    .by_name
                    .get(n)?
                    .iter()
                    .filter(|z| {
                        created_by_reconciler(&z.caller_reference)
                            || tags.get(&z.id).is_some_and(is_managed)
                    })
                    .collect();
                if owned.is_empty() {
                    return None;
                }
                Some((n.clone(), choose(n, &owned, &tags).clone()))
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Hosted zones.
// ---------------------------------------------------------------------------------------------

/// `route53.hosted-zone`: a public zone named `desired.name` (`<dns name>.`) with `comment`.
/// Outputs `id` (bare, without `/hostedzone/`) and `nameServers` (sorted).
///
/// Creation needs a caller reference that AWS never accepts twice, not even after the zone is
/// deleted. The reference is `reconciler/<process nonce>.<sequence>/<name>`: a retry of the
/// same create (after a timeout whose outcome is unknown, or a failed tagging) reuses it, so
/// AWS answers `HostedZoneAlreadyExists` instead of making a second zone, and the engine
/// re-observes and adopts the zone; once the zone is created and tagged (or observed), a later
/// create of the same name (after a destroy) gets a new reference, and a later process always
/// does. The marker also proves that an untagged zone is the reconciler's own when a run
/// stopped between creating and tagging it, so the next run can finish the tagging (or delete
/// it).
pub struct HostedZoneClient {
    pool: Arc<ClientPool>,
    references: CallerReferences,
}

/// Caller references handed out by this process, per zone name.
#[derive(Debug, Default)]
struct CallerReferences {
    pending: Mutex<HashMap<String, PendingReference>>,
}

#[derive(Debug, Clone)]
struct PendingReference {
    reference: String,
    /// AWS already answered `HostedZoneAlreadyExists` once for it.
    conflicted: bool,
}

/// A per-process nonce: the process start time and id, made once.
fn process_nonce() -> &'static str {
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{millis:x}-{:x}", std::process::id())
    })
}

/// A caller reference, at most [`REFERENCE_MAX`] characters (the name is cut when needed; the
/// sequence number alone keeps references distinct).
fn caller_reference(nonce: &str, sequence: u64, name: &str) -> String {
    let mut reference = format!("{REFERENCE_MARKER}{nonce}.{sequence}/{name}");
    if reference.len() > REFERENCE_MAX {
        let mut cut = REFERENCE_MAX;
        while !reference.is_char_boundary(cut) {
            cut -= 1;
        }
        reference.truncate(cut);
    }
    reference
}

impl CallerReferences {
    /// The reference for the next create of `name`: the pending one, or a new one.
    fn for_name(&self, name: &str) -> String {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let mut pending = self.pending.lock().expect("caller references lock");
        pending
            .entry(name.to_string())
            .or_insert_with(|| PendingReference {
                reference: caller_reference(
                    process_nonce(),
                    SEQUENCE.fetch_add(1, Ordering::Relaxed),
                    name,
                ),
                conflicted: false,
            })
            .reference
            .clone()
    }

    /// The zone made with the pending reference exists (created and tagged, or found by an
    /// observation): the reference is spent.
    fn settled(&self, name: &str, reference: &str) {
        let mut pending = self.pending.lock().expect("caller references lock");
        if pending.get(name).is_some_and(|p| p.reference == reference) {
            pending.remove(name);
        }
    }

    /// AWS answered `HostedZoneAlreadyExists`. The first time, the zone made by an earlier
    /// attempt is there to adopt; a second time means it was deleted since, and only a new
    /// reference can create the zone again.
    fn already_exists(&self, name: &str) {
        let mut pending = self.pending.lock().expect("caller references lock");
        if let Some(p) = pending.get_mut(name) {
            if p.conflicted {
                pending.remove(name);
            } else {
                p.conflicted = true;
            }
        }
    }
}

fn zone_properties(comment: Option<&str>) -> Value {
    json!({ "comment": comment })
}

fn name_servers(servers: &[String]) -> Value {
    let mut out: Vec<String> = servers.iter().map(|s| normalise_value("NS", s)).collect();
    out.sort();
    json!(out)
}

fn zone_observed(
    desired: &DesiredResource,
    id: &str,
    comment: Option<&str>,
    caller_reference: &str,
    servers: &[String],
    tags: IndexMap<String, String>,
) -> Observed {
    let mut properties = zone_properties(comment);
    // Not managed (the diff ignores it); read by the ownership check.
    properties["callerReference"] = json!(caller_reference);
    util::observed(
        desired,
        properties,
        [("id", json!(id)), ("nameServers", name_servers(servers))],
        tags,
    )
}

fn zone_id(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::terminal(format!("{}: observed without a zone id", desired.id))
        })
}

/// Reads one zone's delegation set. `None` when the zone went away since the listing.
async fn read_name_servers(
    r53: aws_sdk_route53::Client,
    id: String,
) -> Result<Option<Vec<String>>, ProviderError> {
    match r53.get_hosted_zone().id(&id).send().await {
        Ok(out) => Ok(Some(
            out.delegation_set()
                .map(|d| d.name_servers().to_vec())
                .unwrap_or_default(),
        )),
        Err(e) => {
            let err = classify(&format!("GetHostedZone {id}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// The ownership check of zones: the ownership tag, or a caller reference showing the
/// reconciler created the zone (a run that stopped between creating and tagging it).
fn ensure_zone_owned(
    desired: &DesiredResource,
    observed: &Observed,
    action: &str,
) -> Result<(), ProviderError> {
    let created = observed
        .properties
        .get("callerReference")
        .and_then(Value::as_str)
        .is_some_and(created_by_reconciler);
    if created {
        return Ok(());
    }
    ensure_managed(desired, observed, action)
}

fn route53_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

#[async_trait]
impl ResourceClient for HostedZoneClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::HOSTED_ZONE)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let r53 = self.pool.route53(region);
        let index = ZoneIndex::load(&self.pool, &r53).await?;
        let wanted: Vec<(&DesiredResource, &Vec<Zone>)> = desired
            .iter()
            .filter_map(|d| Some((d, index.by_name.get(&normalise_name(&d.name))?)))
            .collect();
        // Every candidate's tags: they are part of the observation, and they decide between
        // zones that share a name. From the tag index where it shows what the desired zone
        // wants, otherwise read ten zones a call.
        let candidates: Vec<(&DesiredResource, &str)> = wanted
            .iter()
            .flat_map(|(d, zones)| zones.iter().map(|z| (*d, z.id.as_str())))
            .collect();
        let arns: Vec<String> = candidates.iter().map(|(_, id)| zone_arn(id)).collect();
        let index = tagging::indexed_tags(&self.pool, region, &arns).await?;
        let mut tags: HashMap<String, IndexMap<String, String>> = HashMap::new();
        let mut unread = Vec::new();
        for ((d, id), found) in candidates.into_iter().zip(index) {
            match found {
                Some(found) if tags_agree(&d.tags, &found) => {
                    tags.insert(id.to_string(), found);
                }
                _ => unread.push(id.to_string()),
            }
        }
        tags.extend(zone_tags(&r53, &unread).await?);
        let chosen: Vec<(&DesiredResource, Zone)> = wanted
            .into_iter()
            .map(|(d, zones)| {
                let candidates: Vec<&Zone> = zones.iter().collect();
                (d, choose(&d.name, &candidates, &tags).clone())
            })
            .collect();
        // The delegation set is only in `GetHostedZone`, one zone per call; the reconciler's
        // own zones show it in their apex NS record, read once for this client and the records.
        let servers = read_all(
            chosen
                .iter()
                .map(|(_, z)| {
                    let (pool, r53, zone) = (self.pool.clone(), r53.clone(), z.clone());
                    async move {
                        if created_by_reconciler(&zone.caller_reference) {
                            own_zone_name_servers(&pool, r53, &zone).await
                        } else {
                            read_name_servers(r53, zone.id).await
                        }
                    }
                })
                .collect(),
        )
        .await?;
        Ok(chosen
            .into_iter()
            .zip(servers)
            .filter_map(|((d, zone), servers)| {
                let servers = servers?;
                self.references.settled(&d.name, &zone.caller_reference);
                Some(zone_observed(
                    d,
                    &zone.id,
                    zone.comment.as_deref(),
                    &zone.caller_reference,
                    &servers,
                    tags.get(&zone.id).cloned().unwrap_or_default(),
                ))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let name = desired.name.as_str();
        let comment = util::opt_str(desired, "comment");
        let reference = self.references.for_name(name);
        let created = r53
            .create_hosted_zone()
            .name(name)
            .caller_reference(&reference)
            .hosted_zone_config(
                HostedZoneConfig::builder()
                    .set_comment(comment.map(str::to_string))
                    .private_zone(false)
                    .build(),
            )
            .send()
            .await;
        let out = match created {
            Ok(out) => out,
            Err(e) => {
                let err = classify(&format!("CreateHostedZone {name}"), e);
                if err.code.as_deref() == Some("HostedZoneAlreadyExists") {
                    self.references.already_exists(name);
                }
                return Err(err);
            }
        };
        let zone = out.hosted_zone().ok_or_else(|| {
            ProviderError::transient(format!("CreateHostedZone {name}: no zone in the answer"))
        })?;
        let id = bare_zone_id(zone.id());
        let servers = out
            .delegation_set()
            .map(|d| d.name_servers().to_vec())
            .unwrap_or_default();
        // CreateHostedZone takes no tags. If this fails, the reference stays pending: the
        // retry meets `HostedZoneAlreadyExists` (or the next run finds the zone), and the
        // update that follows adds the tags, the caller reference showing the zone is ours.
        if !desired.tags.is_empty() {
            r53.change_tags_for_resource()
                .resource_type(TagResourceType::Hostedzone)
                .resource_id(&id)
                .set_add_tags(Some(route53_tags(&desired.tags)))
                .send()
                .await
                .map_err(|e| classify(&format!("ChangeTagsForResource {name}"), e))?;
        }
        self.references.settled(name, &reference);
        Ok(zone_observed(
            desired,
            &id,
            comment,
            &reference,
            &servers,
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_zone_owned(desired, observed, "change")?;
        let r53 = self.pool.route53(&desired.region);
        let id = zone_id(desired, observed)?;
        let name = desired.name.as_str();
        if touches(changes, "comment") {
            r53.update_hosted_zone_comment()
                .id(&id)
                .comment(util::opt_str(desired, "comment").unwrap_or_default())
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateHostedZoneComment {name}"), e))?;
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() || !remove.is_empty() {
                r53.change_tags_for_resource()
                    .resource_type(TagResourceType::Hostedzone)
                    .resource_id(&id)
                    .set_add_tags((!set.is_empty()).then(|| route53_tags(&set)))
                    .set_remove_tag_keys((!remove.is_empty()).then_some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("ChangeTagsForResource {name}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_zone_owned(desired, observed, "delete")?;
        let r53 = self.pool.route53(&desired.region);
        let id = zone_id(desired, observed)?;
        // `HostedZoneNotEmpty` while the zone's records are still being deleted is an
        // eventual-consistency error: the engine retries.
        r53.delete_hosted_zone()
            .id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteHostedZone {} ({id})", desired.name), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Record sets.
// ---------------------------------------------------------------------------------------------

/// `route53.record-set`: `hostedZoneId`, `name`, `type`, `ttl`, and either `values` (managed)
/// or `initialValues` (runtime-owned: written by the create, then owned by the running system,
/// as the A record is).
///
/// Records are written with `UPSERT`, never `CREATE`, except the first write of a
/// runtime-owned record: `CREATE` fails on AWS when the record exists, so a value written by
/// the running system is never overwritten. A `DELETE` must name the record's exact current
/// values, so deletes read the record first.
pub struct RecordSetClient {
    pool: Arc<ClientPool>,
}

/// The property holding a record's values: `initialValues` when they are runtime-owned.
fn values_key(desired: &DesiredResource) -> &'static str {
    if desired.properties.get("initialValues").is_some() {
        "initialValues"
    } else {
        "values"
    }
}

/// What identifies a record inside its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RecordKey {
    name: String,
    record_type: String,
}

fn record_key(desired: &DesiredResource) -> Result<RecordKey, ProviderError> {
    Ok(RecordKey {
        name: normalise_name(util::str_prop(desired, "name")?),
        record_type: util::str_prop(desired, "type")?.to_ascii_uppercase(),
    })
}

fn key_of(set: &ResourceRecordSet) -> RecordKey {
    RecordKey {
        name: normalise_name(set.name()),
        record_type: set.r#type().as_str().to_string(),
    }
}

/// The values of a record set as compared: normalised and sorted.
fn values_of(set: &ResourceRecordSet) -> Vec<String> {
    let t = set.r#type().as_str();
    let mut values: Vec<String> = set
        .resource_records()
        .iter()
        .map(|r| normalise_value(t, r.value()))
        .collect();
    values.sort();
    values
}

fn record_properties(
    desired: &DesiredResource,
    zone_id: &str,
    ttl: Option<i64>,
    values: Vec<String>,
) -> Value {
    let mut properties = json!({
        "hostedZoneId": zone_id,
        // The desired spelling: the name is matched without regard to case or trailing dot.
        "name": desired.properties.get("name").cloned().unwrap_or(Value::Null),
        "type": desired.properties.get("type").cloned().unwrap_or(Value::Null),
        "ttl": ttl,
    });
    properties[values_key(desired)] = json!(values);
    properties
}

fn record_observed(desired: &DesiredResource, zone_id: &str, set: &ResourceRecordSet) -> Observed {
    util::observed(
        desired,
        record_properties(desired, zone_id, set.ttl(), values_of(set)),
        [],
        IndexMap::new(),
    )
}

/// Every record of one of the reconciler's own zones (a handful each), read once per
/// observation for the zone client (the apex NS record gives the name servers) and the record
/// client alike. `None` when the zone does not exist.
async fn own_zone_records(
    pool: &ClientPool,
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
) -> Result<Arc<Option<Vec<ResourceRecordSet>>>, ProviderError> {
    pool.shared_read(&format!("route53:ListResourceRecordSets:{zone_id}"), || {
        list_zone(r53, zone_id, None)
    })
    .await
}

/// The name servers of one of the reconciler's own zones, from its apex NS record (which AWS
/// fills with the zone's delegation set), so observing the zone shares the read of its records.
/// Falls back to `GetHostedZone` when the apex record is missing.
async fn own_zone_name_servers(
    pool: &ClientPool,
    r53: aws_sdk_route53::Client,
    zone: &Zone,
) -> Result<Option<Vec<String>>, ProviderError> {
    let Some(records) = own_zone_records(pool, &r53, &zone.id)
        .await?
        .as_ref()
        .clone()
    else {
        return Ok(None);
    };
    let apex = records.iter().find(|set| {
        set.r#type() == &RrType::Ns
            && set.set_identifier().is_none()
            && normalise_name(set.name()) == zone.name
    });
    match apex {
        Some(set) => Ok(Some(values_of(set))),
        None => read_name_servers(r53, zone.id.clone()).await,
    }
}

/// The records of one zone: every page, or with `first` (a name and type) only the first
/// record from there, in one narrowed call. `None` when the zone does not exist.
async fn list_zone(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    first: Option<(String, RrType)>,
) -> Result<Option<Vec<ResourceRecordSet>>, ProviderError> {
    let single = first.is_some();
    let mut start = first;
    let mut out = Vec::new();
    loop {
        let mut call = r53.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, record_type)) = start.take() {
            call = call.start_record_name(name).start_record_type(record_type);
        }
        if single {
            call = call.max_items(1);
        }
        let page = match call.send().await {
            Ok(page) => page,
            Err(e) => {
                let err = classify(&format!("ListResourceRecordSets {zone_id}"), e);
                if err.class == ErrorClass::NotFound {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        out.extend(page.resource_record_sets().iter().cloned());
        match (
            page.is_truncated() && !single,
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(name), Some(record_type)) => {
                start = Some((name.to_string(), record_type.clone()));
            }
            _ => return Ok(Some(out)),
        }
    }
}

/// The sets among `sets` that `keys` name. Records with a set identifier (weighted, latency,
/// ...) are never the reconciler's.
fn pick(sets: &[ResourceRecordSet], keys: &[RecordKey]) -> HashMap<RecordKey, ResourceRecordSet> {
    let wanted: HashSet<&RecordKey> = keys.iter().collect();
    let mut found = HashMap::new();
    for set in sets.iter().filter(|s| s.set_identifier().is_none()) {
        let key = key_of(set);
        if wanted.contains(&key) {
            found.entry(key).or_insert_with(|| set.clone());
        }
    }
    found
}

/// Reads the records of one zone that `keys` name: one narrowed call for a single record,
/// else the whole zone, page by page. A zone that does not exist holds nothing.
async fn read_records(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    keys: &[RecordKey],
) -> Result<HashMap<RecordKey, ResourceRecordSet>, ProviderError> {
    let first = match keys {
        [only] => Some((only.name.clone(), RrType::from(only.record_type.as_str()))),
        _ => None,
    };
    let sets = list_zone(r53, zone_id, first).await?.unwrap_or_default();
    Ok(pick(&sets, keys))
}

/// Reads one record as it is now (for a delete, which must name its exact values, and for a
/// runtime-owned update, which must keep them).
async fn read_record(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    key: &RecordKey,
) -> Result<Option<ResourceRecordSet>, ProviderError> {
    Ok(read_records(r53, zone_id, std::slice::from_ref(key))
        .await?
        .remove(key))
}

/// Sends one change. `InvalidChangeBatch` carries several meanings, told apart by message:
/// "already exists" is a conflict (the engine re-observes), "not found" means gone, and values
/// that "do not match" changed under us (re-observe and try again).
async fn change_record(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
    action: ChangeAction,
    set: ResourceRecordSet,
) -> Result<(), ProviderError> {
    let what = format!(
        "ChangeResourceRecordSets {} {} {} in {zone_id}",
        action.as_str(),
        set.name(),
        set.r#type().as_str()
    );
    let change = Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(|e| ProviderError::terminal(format!("{what}: {e}")))?;
    let batch = ChangeBatch::builder()
        .changes(change)
        .build()
        .map_err(|e| ProviderError::terminal(format!("{what}: {e}")))?;
    // Route 53 answers PENDING and applies the change within seconds; later calls (reads,
    // deletes) already see it, so there is no wait for INSYNC.
    r53.change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| change_error(classify(&what, e)))?;
    Ok(())
}

fn change_error(mut err: ProviderError) -> ProviderError {
    if err.code.as_deref() == Some("InvalidChangeBatch") {
        let m = err.message.to_ascii_lowercase();
        if m.contains("conflicting rrset") {
            // A record at a name another record set excludes: when a Base switches to a shared
            // wake zone, the server's A record joins the root zone while the delegation NS
            // record of its old zone is still being deleted by the same apply. Waits for it.
            err.class = ErrorClass::EventualConsistency;
        } else if m.contains("already exists") {
            err.class = ErrorClass::Conflict;
        } else if m.contains("not found") {
            err.class = ErrorClass::NotFound;
        } else if m.contains("do not match") {
            err.class = ErrorClass::Conflict;
        }
    }
    err
}

/// A record set to send.
fn record_set(
    name: &str,
    record_type: &str,
    ttl: i64,
    values: &[String],
) -> Result<ResourceRecordSet, ProviderError> {
    let records = values
        .iter()
        .map(|v| {
            ResourceRecord::builder()
                .value(v)
                .build()
                .map_err(|e| ProviderError::terminal(format!("record {name} {record_type}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::from(record_type))
        .ttl(ttl)
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| ProviderError::terminal(format!("record {name} {record_type}: {e}")))
}

/// The same record with another TTL and the values as they are.
fn with_ttl(current: &ResourceRecordSet, ttl: i64) -> Result<ResourceRecordSet, ProviderError> {
    ResourceRecordSet::builder()
        .name(current.name())
        .r#type(current.r#type().clone())
        .ttl(ttl)
        .set_resource_records(Some(current.resource_records().to_vec()))
        .build()
        .map_err(|e| ProviderError::terminal(format!("record {}: {e}", current.name())))
}

fn observed_zone_id(
    desired: &DesiredResource,
    observed: &Observed,
) -> Result<String, ProviderError> {
    observed
        .properties
        .get("hostedZoneId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::terminal(format!("{}: observed without a hosted zone id", desired.id))
        })
}

#[async_trait]
impl ResourceClient for RecordSetClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::RECORD_SET)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .runtime_owned("/initialValues")
            .unordered("/values")
            .immutable("/hostedZoneId")
            .immutable("/name")
            .immutable("/type")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let r53 = self.pool.route53(region);
        let mut keyed = Vec::with_capacity(desired.len());
        for d in desired {
            let zone = d.properties.get("hostedZoneId").and_then(Value::as_str);
            keyed.push((d, record_key(d)?, zone.map(bare_zone_id)));
        }
        // Records whose zone is a reference (not created yet, or its id not resolved in
        // observe) are looked for in the zone whose name is their name's longest suffix, when
        // that zone is the reconciler's own.
        // The reconciler's own zones among them, whose records are read once per observation
        // with the zone client (see `own_zone_records`).
        let mut own_zones: HashSet<String> = HashSet::new();
        if keyed.iter().any(|(_, _, zone)| zone.is_none()) {
            let index = ZoneIndex::load(&self.pool, &r53).await?;
            let mut names: HashMap<usize, String> = HashMap::new();
            for (i, (_, key, zone)) in keyed.iter().enumerate() {
                if zone.is_none() {
                    if let Some(z) = longest_suffix_zone(&key.name, index.names()) {
                        names.insert(i, z.to_string());
                    }
                }
            }
            let zones = index
                .owned(&r53, &names.values().cloned().collect())
                .await?;
            for (i, name) in names {
                keyed[i].2 = zones.get(&name).map(|z| z.id.clone());
            }
            own_zones.extend(
                zones
                    .values()
                    .filter(|z| created_by_reconciler(&z.caller_reference))
                    .map(|z| z.id.clone()),
            );
        }
        let mut by_zone: BTreeMap<String, Vec<RecordKey>> = BTreeMap::new();
        for (_, key, zone) in &keyed {
            if let Some(zone) = zone {
                by_zone.entry(zone.clone()).or_default().push(key.clone());
            }
        }
        let zones: Vec<String> = by_zone.keys().cloned().collect();
        let reads = by_zone
            .into_iter()
            .map(|(zone, keys)| {
                let (pool, r53, own) = (self.pool.clone(), r53.clone(), own_zones.contains(&zone));
                async move {
                    if !own {
                        return read_records(&r53, &zone, &keys).await;
                    }
                    let sets = own_zone_records(&pool, &r53, &zone).await?;
                    Ok(pick(sets.as_deref().unwrap_or_default(), &keys))
                }
            })
            .collect();
        let records: HashMap<String, HashMap<RecordKey, ResourceRecordSet>> =
            zones.into_iter().zip(read_all(reads).await?).collect();
        Ok(keyed
            .into_iter()
            .filter_map(|(d, key, zone)| {
                let zone = zone?;
                let set = records.get(&zone)?.get(&key)?;
                Some(record_observed(d, &zone, set))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let zone_id = bare_zone_id(util::str_prop(desired, "hostedZoneId")?);
        let name = util::str_prop(desired, "name")?;
        let record_type = util::str_prop(desired, "type")?.to_ascii_uppercase();
        let ttl = util::i64_prop(desired, "ttl")?;
        let key = values_key(desired);
        let values = util::str_list(desired, key);
        let set = record_set(name, &record_type, ttl, &values)?;
        if key == "initialValues" {
            // The running system owns the value once the record exists: an existing record
            // (an interrupted run, or the system already wrote it) is adopted, never reset.
            // The read also keeps the emulator, which stores a second record for a CREATE of
            // an existing name, from doing so; on AWS the CREATE itself refuses.
            let record_key = record_key(desired)?;
            if read_record(&r53, &zone_id, &record_key).await?.is_some() {
                return Err(ProviderError::conflict(format!(
                    "{}: record {name} {record_type} already exists; its value belongs to the \
                     running system and is kept",
                    desired.id
                )));
            }
            change_record(&r53, &zone_id, ChangeAction::Create, set).await?;
        } else {
            change_record(&r53, &zone_id, ChangeAction::Upsert, set).await?;
        }
        let mut normalised: Vec<String> = values
            .iter()
            .map(|v| normalise_value(&record_type, v))
            .collect();
        normalised.sort();
        Ok(util::observed(
            desired,
            record_properties(desired, &zone_id, Some(ttl), normalised),
            [],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let r53 = self.pool.route53(&desired.region);
        let zone_id = observed_zone_id(desired, observed)?;
        let name = util::str_prop(desired, "name")?;
        let record_type = util::str_prop(desired, "type")?.to_ascii_uppercase();
        let ttl = util::i64_prop(desired, "ttl")?;
        if values_key(desired) == "initialValues" {
            if !touches(changes, "ttl") {
                return Ok(observed.clone());
            }
            // Only the TTL is ours: the values are written back as they are now (read
            // fresh, since the running system may have changed them since the observation).
            let key = record_key(desired)?;
            let current = read_record(&r53, &zone_id, &key).await?.ok_or_else(|| {
                ProviderError::not_found(format!(
                    "{}: record {name} {record_type} is gone",
                    desired.id
                ))
            })?;
            let set = with_ttl(&current, ttl)?;
            change_record(&r53, &zone_id, ChangeAction::Upsert, set.clone()).await?;
            return Ok(record_observed(desired, &zone_id, &set));
        }
        if touches(changes, "ttl") || touches(changes, "values") {
            let values = util::str_list(desired, "values");
            let set = record_set(name, &record_type, ttl, &values)?;
            change_record(&r53, &zone_id, ChangeAction::Upsert, set).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let r53 = self.pool.route53(&desired.region);
        let zone_id = observed_zone_id(desired, observed)?;
        let key = record_key(desired)?;
        // A DELETE must carry the exact current values (a runtime-owned value may have changed
        // since the observation): read them now.
        let Some(current) = read_record(&r53, &zone_id, &key).await? else {
            return Ok(());
        };
        change_record(&r53, &zone_id, ChangeAction::Delete, current).await
    }
}

// ---------------------------------------------------------------------------------------------
// Query logging configs.
// ---------------------------------------------------------------------------------------------

/// `route53.query-logging-config`, named by its zone's name: `hostedZoneId`,
/// `cloudWatchLogsLogGroupArn` (a log group in `us-east-1`). Outputs `id`. AWS cannot change a
/// config: any change replaces it.
pub struct QueryLoggingConfigClient {
    pool: Arc<ClientPool>,
}

/// A log group ARN without the `:*` some APIs append, the form of the log group's `arn`
/// output.
fn bare_log_group_arn(arn: &str) -> String {
    arn.strip_suffix(":*").unwrap_or(arn).to_string()
}

fn config_observed(desired: &DesiredResource, id: &str, zone_id: &str, arn: &str) -> Observed {
    util::observed(
        desired,
        json!({
            "hostedZoneId": zone_id,
            "cloudWatchLogsLogGroupArn": bare_log_group_arn(arn),
        }),
        [("id", json!(id))],
        IndexMap::new(),
    )
}

/// The zone id of a config whose `hostedZoneId` is written out (not a reference).
fn literal_zone_id(desired: &DesiredResource) -> Option<String> {
    desired
        .properties
        .get("hostedZoneId")
        .and_then(Value::as_str)
        .map(bare_zone_id)
}

/// Every query logging config of the account. (The `HostedZoneId` filter would cost a call
/// per zone; the emulator even rejects it with `NoSuchHostedZone` for a zone that exists.)
async fn list_query_logging_configs(
    r53: &aws_sdk_route53::Client,
) -> Result<Vec<QueryLoggingConfig>, ProviderError> {
    r53.list_query_logging_configs()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListQueryLoggingConfigs", e))
}

/// Whether a config logs to one of the reconciler's query log groups.
fn is_own_query_log(arn: &str) -> bool {
    arn.split_once(":log-group:")
        .is_some_and(|(_, group)| group.starts_with(reconciler_render::wake::QUERY_LOG_PREFIX))
}

#[async_trait]
impl ResourceClient for QueryLoggingConfigClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::QUERY_LOGGING_CONFIG)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/hostedZoneId")
            .immutable("/cloudWatchLogsLogGroupArn")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let r53 = self.pool.route53(region);
        // A config whose zone is a reference lives in the reconciler's own zone of that name; a
        // config on a zone given by id (a Base's root zone, shared by its servers) is found by
        // that id.
        let by_name: Vec<&DesiredResource> = desired
            .iter()
            .filter(|d| literal_zone_id(d).is_none())
            .collect();
        let zones = if by_name.is_empty() {
            HashMap::new()
        } else {
            let index = ZoneIndex::load(&self.pool, &r53).await?;
            let names: HashSet<String> = by_name.iter().map(|d| normalise_name(&d.name)).collect();
            index.owned(&r53, &names).await?
        };
        // One listing of every config of the account, filtered here.
        let configs = list_query_logging_configs(&r53).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let zone_id = match literal_zone_id(d) {
                    Some(id) => id,
                    None => zones.get(&normalise_name(&d.name))?.id.clone(),
                };
                let config = configs
                    .iter()
                    .find(|c| bare_zone_id(c.hosted_zone_id()) == zone_id)?;
                let arn = config.cloud_watch_logs_log_group_arn();
                if !is_own_query_log(arn) {
                    // Somebody else's logging of a zone the reconciler does not own (AWS allows
                    // one config per zone): not ours to replace. The create then fails with
                    // an error that says so.
                    return None;
                }
                Some(config_observed(d, config.id(), &zone_id, arn))
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let zone_id = bare_zone_id(util::str_prop(desired, "hostedZoneId")?);
        let arn = bare_log_group_arn(util::str_prop(desired, "cloudWatchLogsLogGroupArn")?);
        // Sent in the form `DescribeLogGroups` shows (`...:log-group:<name>:*`), which AWS
        // documents as accepted (the emulator accepts only that form).
        let out = match r53
            .create_query_logging_config()
            .hosted_zone_id(&zone_id)
            .cloud_watch_logs_log_group_arn(format!("{arn}:*"))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let mut err = classify(&format!("CreateQueryLoggingConfig {}", desired.name), e);
                if err.code.as_deref() != Some("QueryLoggingConfigAlreadyExists") {
                    return Err(err);
                }
                // An earlier attempt whose answer was lost may have made exactly this config:
                // that one is ours.
                let configs = list_query_logging_configs(&r53).await?;
                if let Some(config) = configs.iter().find(|c| {
                    bare_zone_id(c.hosted_zone_id()) == zone_id
                        && bare_log_group_arn(c.cloud_watch_logs_log_group_arn()) == arn
                }) {
                    return Ok(config_observed(desired, config.id(), &zone_id, &arn));
                }
                // Somebody else's config on the zone: waiting or re-observing cannot help.
                err.class = ErrorClass::Terminal;
                err.message = format!(
                    "{}; the zone {zone_id} already logs its queries elsewhere and AWS allows \
                     one query logging config per zone: delete that config, or use \
                     `spec.domain.wakeZone: perServer`",
                    err.message
                );
                return Err(err);
            }
        };
        let config = out.query_logging_config().ok_or_else(|| {
            ProviderError::transient(format!(
                "CreateQueryLoggingConfig {}: no config in the answer",
                desired.name
            ))
        })?;
        Ok(config_observed(desired, config.id(), &zone_id, &arn))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        // Every managed field is immutable (a change is a replacement) and the kind has no
        // tags: nothing to do in place.
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let r53 = self.pool.route53(&desired.region);
        let id = observed
            .output("id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProviderError::terminal(format!("{}: observed without a config id", desired.id))
            })?;
        r53.delete_query_logging_config()
            .id(id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("DeleteQueryLoggingConfig {} ({id})", desired.name),
                    e,
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_suffix_wins_on_label_boundaries() {
        let zones = [
            "example.com.",
            "mc.example.com.",
            "c.example.com.",
            "other.org.",
        ];
        assert_eq!(
            longest_suffix_zone("mc.example.com.", zones),
            Some("mc.example.com.")
        );
        assert_eq!(
            longest_suffix_zone("x.mc.example.com", zones),
            Some("mc.example.com.")
        );
        assert_eq!(
            longest_suffix_zone("valheim.example.com.", zones),
            Some("example.com."),
            "c.example.com. is not a label suffix of valheim.example.com."
        );
        assert_eq!(
            longest_suffix_zone("MC.Example.COM.", zones),
            Some("mc.example.com.")
        );
        assert_eq!(longest_suffix_zone("example.net.", zones), None);
        assert_eq!(longest_suffix_zone("mc.example.com.", []), None);
    }

    #[test]
    fn names_and_values_normalise() {
        assert_eq!(normalise_name("MC.Example.com"), "mc.example.com.");
        assert_eq!(normalise_name("\\052.example.com."), "*.example.com.");
        assert_eq!(normalise_name("a\\05"), "a\\05.");
        assert_eq!(
            normalise_value("NS", "ns-1.awsdns-01.org."),
            "ns-1.awsdns-01.org"
        );
        assert_eq!(normalise_value("A", "1.2.3.4"), "1.2.3.4");
        assert_eq!(normalise_value("TXT", "\"x.\""), "\"x.\"");
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
        assert_eq!(
            bare_log_group_arn("arn:aws:logs:us-east-1:1:log-group:/aws/route53/x:*"),
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/x"
        );
    }

    #[test]
    fn conflicting_record_sets_wait_and_duplicates_conflict() {
        let err = |message: &str| {
            let mut e = ProviderError::terminal(message);
            e.code = Some("InvalidChangeBatch".into());
            change_error(e).class
        };
        assert_eq!(
            err(
                "RRSet of type A with DNS name mc.example.com. is not permitted because a \
                 conflicting RRSet of type NS with the same DNS name already exists in zone \
                 example.com."
            ),
            ErrorClass::EventualConsistency
        );
        assert_eq!(
            err("Tried to create resource record set [name='mc.example.com.', type='A'] but it already exists"),
            ErrorClass::Conflict
        );
        assert!(is_own_query_log(
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/rc-main/queries:*"
        ));
        assert!(!is_own_query_log(
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/example.com"
        ));
    }

    #[test]
    fn caller_references_are_reused_until_spent() {
        let refs = CallerReferences::default();
        let first = refs.for_name("mc.example.com.");
        assert!(created_by_reconciler(&first));
        assert!(first.ends_with("/mc.example.com."));
        assert_eq!(refs.for_name("mc.example.com."), first, "a retry reuses it");
        refs.already_exists("mc.example.com.");
        assert_eq!(
            refs.for_name("mc.example.com."),
            first,
            "the first conflict adopts"
        );
        refs.already_exists("mc.example.com.");
        let second = refs.for_name("mc.example.com.");
        assert_ne!(second, first, "a repeated conflict means the zone is gone");
        refs.settled("mc.example.com.", "another reference");
        assert_eq!(refs.for_name("mc.example.com."), second, "not that zone's");
        refs.settled("mc.example.com.", &second);
        assert_ne!(
            refs.for_name("mc.example.com."),
            second,
            "spent once created"
        );
        let long = "a".repeat(300);
        assert_eq!(refs.for_name(&long).len(), REFERENCE_MAX);
    }
}
