//! `route53.hosted-zone` ([`reconciler_kinds::route53::HostedZone`]): a public zone named
//! `desired.name` (`<dns name>.`), found in the shared zone listing. Outputs `id` (bare, without
//! `/hostedzone/`) and `nameServers` (sorted).
//!
//! Creation needs a caller reference that AWS never accepts twice, not even after the zone is
//! deleted. The reference is `reconciler/<process nonce>.<sequence>/<name>`: a retry of the
//! same create (after a timeout whose outcome is unknown, or a failed tagging) reuses it, so
//! AWS answers `HostedZoneAlreadyExists` instead of making a second zone, and the engine
//! re-observes and adopts the zone; once the zone is created and tagged (or observed), a later
//! create of the same name (after a destroy) gets a new reference, and a later process always
//! does. The marker also proves that an untagged zone is the reconciler's own when a run
//! stopped between creating and tagging it, so the next run can finish the tagging (or delete
//! it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZoneConfig, RrType, Tag, TagResourceType};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::route53::HostedZone;
use serde_json::{json, Value};

use super::{
    bare_zone_id, choose, created_by_reconciler, normalise_name, normalise_value, own_zone_records,
    values_of, zone_tags, Zone, ZoneIndex, REFERENCE_MARKER,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, tags_agree};
use crate::util::{self, read_all, touches, updated};

/// The longest caller reference AWS accepts.
const REFERENCE_MAX: usize = 128;

/// The client of hosted zones.
pub struct HostedZoneClient {
    pool: Arc<ClientPool>,
    references: CallerReferences,
}

impl HostedZoneClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        HostedZoneClient {
            pool,
            references: CallerReferences::default(),
        }
    }
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

/// A zone's ARN, as the tag index names it.
fn zone_arn(id: &str) -> String {
    format!("arn:aws:route53:::hostedzone/{id}")
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

fn route53_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

impl HostedZoneClient {
    /// The tags of every zone named like a desired one: they are part of the observation, and
    /// they decide between zones that share a name. From the tag index where it shows what the
    /// desired zone wants, otherwise read ten zones a call.
    async fn candidate_tags(
        &self,
        r53: &aws_sdk_route53::Client,
        region: &str,
        wanted: &[(&DesiredResource, &Vec<Zone>)],
    ) -> Result<HashMap<String, IndexMap<String, String>>, ProviderError> {
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
        tags.extend(zone_tags(r53, &unread).await?);
        Ok(tags)
    }
}

#[async_trait]
impl KindClient<HostedZone> for HostedZoneClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let r53 = self.pool.route53(region);
        let index = ZoneIndex::load(&self.pool, &r53).await?;
        let wanted: Vec<(&DesiredResource, &Vec<Zone>)> = desired
            .iter()
            .filter_map(|d| Some((d, index.by_name.get(&normalise_name(&d.name))?)))
            .collect();
        let tags = self.candidate_tags(&r53, region, &wanted).await?;
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &HostedZone,
    ) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let name = desired.name.as_str();
        let reference = self.references.for_name(name);
        let created = r53
            .create_hosted_zone()
            .name(name)
            .caller_reference(&reference)
            .hosted_zone_config(
                HostedZoneConfig::builder()
                    .comment(&props.comment)
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
        write_zone_tags(&r53, desired, &id, &desired.tags, &[]).await?;
        self.references.settled(name, &reference);
        Ok(zone_observed(
            desired,
            &id,
            Some(&props.comment),
            &reference,
            &servers,
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &HostedZone,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        if touches(changes, "comment") {
            let id = util::output(desired, observed, "id")?;
            let name = desired.name.as_str();
            self.pool
                .route53(&desired.region)
                .update_hosted_zone_comment()
                .id(&id)
                .comment(&props.comment)
                .send()
                .await
                .map_err(|e| classify(&format!("UpdateHostedZoneComment {name}"), e))?;
        }
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let id = util::output(desired, observed, "id")?;
        write_zone_tags(&r53, desired, &id, set, remove).await
    }

    /// The ownership tag, or a caller reference showing the reconciler created the zone (a run
    /// that stopped between creating and tagging it).
    fn ensure_owned(
        &self,
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

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = util::output(desired, observed, "id")?;
        // `HostedZoneNotEmpty` while the zone's records are still being deleted is an
        // eventual-consistency error: the engine retries.
        self.pool
            .route53(&desired.region)
            .delete_hosted_zone()
            .id(&id)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteHostedZone {} ({id})", desired.name), e))?;
        Ok(())
    }
}

/// Sets the tags `set` and removes the keys `remove` on zone `id`, in one
/// `ChangeTagsForResource` (none when there is nothing to change).
async fn write_zone_tags(
    r53: &aws_sdk_route53::Client,
    desired: &DesiredResource,
    id: &str,
    set: &IndexMap<String, String>,
    remove: &[String],
) -> Result<(), ProviderError> {
    if set.is_empty() && remove.is_empty() {
        return Ok(());
    }
    r53.change_tags_for_resource()
        .resource_type(TagResourceType::Hostedzone)
        .resource_id(id)
        .set_add_tags((!set.is_empty()).then(|| route53_tags(set)))
        .set_remove_tag_keys((!remove.is_empty()).then(|| remove.to_vec()))
        .send()
        .await
        .map_err(|e| classify(&format!("ChangeTagsForResource {}", desired.name), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
