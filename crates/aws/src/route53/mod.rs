//! Route 53: public hosted zones, record sets and query logging configs, one file each; the
//! zone listing and the records of the reconciler's own zones, which several kinds read, are
//! here.
//!
//! Route 53 is a global service whose API lives in `us-east-1`, the region of these desired
//! resources. Observation cost, per kind:
//! - hosted zones: one paginated `ListHostedZones`, made once per observation for the
//!   three kinds; tags from the region's tag index where it shows what the desired zone
//!   wants, otherwise one `ListTagsForResources` per ten zones found; the name servers of a
//!   zone the reconciler created from its apex NS record (the zone's records, read once per
//!   observation for the zone and record clients alike), of any other zone from one
//!   `GetHostedZone`, because only that call returns a zone's delegation set and it has no
//!   batch form;
//! - record sets: the shared `ListHostedZones` (only when some record's zone is a reference
//!   to be found by name), then one `ListResourceRecordSets` per zone involved (narrowed with
//!   `StartRecordName`/`StartRecordType` when one record of the zone is wanted, shared with the
//!   zone client for the reconciler's own zones); the API has no read across zones;
//! - query logging configs: the shared `ListHostedZones` (only when some config's zone is a
//!   reference to be found by name) and one paginated `ListQueryLoggingConfigs` for the whole
//!   account. A config on a zone given by id (a shared wake zone's root zone) counts as the
//!   reconciler's only when it logs to one of its query log groups.
//!
//! Zones are found by name. AWS lets several public zones share a name; the reconciler then
//! uses the one tagged as its own and logs a warning. Finding the zone of a record or logging
//! config whose zone is a reference reads zone tags only when the zone's caller reference does
//! not show the reconciler created it (see [`HostedZoneClient`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_route53::types::{ResourceRecordSet, RrType, TagResourceType};
use indexmap::IndexMap;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::tags::is_managed;

mod hosted_zone;
mod query_logging_config;
mod record_set;

pub use hosted_zone::HostedZoneClient;
pub use query_logging_config::QueryLoggingConfigClient;
pub use record_set::RecordSetClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(HostedZoneClient::new(pool.clone()))),
        Arc::new(Managed::new(RecordSetClient::new(pool.clone()))),
        Arc::new(Managed::new(QueryLoggingConfigClient::new(pool.clone()))),
    ]
}

/// The prefix AWS puts before a zone id in some answers (`/hostedzone/Z123`).
const ZONE_ID_PREFIX: &str = "/hostedzone/";
/// How many resource ids `ListTagsForResources` accepts per call.
const TAG_BATCH: usize = 10;
/// The start of every caller reference the reconciler sends, which marks a zone as created by
/// it even before its tags are written.
const REFERENCE_MARKER: &str = "reconciler/";

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
    }
}
