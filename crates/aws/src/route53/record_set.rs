//! `route53.record-set` ([`reconciler_kinds::route53::RecordSet`]), named `<name> <type>` in
//! its zone; untaggable. When `hostedZoneId` is a reference, observe finds the zone by the
//! record's name among the reconciler's own zones.
//!
//! Records have either `values` (managed) or `initialValues` (runtime-owned: written by the
//! create, then owned by the running system, as the A record is). They are written with
//! `UPSERT`, never `CREATE`, except the first write of a runtime-owned record: `CREATE` fails
//! on AWS when the record exists, so a value written by the running system is never
//! overwritten. A `DELETE` must name the record's exact current values, so deletes read the
//! record first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::route53::RecordSet;
use serde_json::{json, Value};

use super::{
    bare_zone_id, created_by_reconciler, list_zone, longest_suffix_zone, normalise_name,
    normalise_value, own_zone_records, values_of, ZoneIndex,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all, touches, updated};

/// The client of record sets.
pub struct RecordSetClient {
    pool: Arc<ClientPool>,
}

impl RecordSetClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        RecordSetClient { pool }
    }
}

/// The property holding a record's values: `initialValues` when they are runtime-owned.
fn values_key(props: &RecordSet) -> &'static str {
    if props.initial_values.is_some() {
        "initialValues"
    } else {
        "values"
    }
}

/// The desired values: the initial ones of a runtime-owned record, else the managed ones.
fn desired_values(props: &RecordSet) -> Result<Vec<String>, ProviderError> {
    match (&props.initial_values, &props.values) {
        (Some(initial), _) => Ok(initial.clone()),
        (None, Some(values)) => Ok(values.get("values")?.clone()),
        (None, None) => Ok(Vec::new()),
    }
}

/// What identifies a record inside its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RecordKey {
    name: String,
    record_type: String,
}

fn record_key(props: &RecordSet) -> RecordKey {
    RecordKey {
        name: normalise_name(&props.name),
        record_type: props.record_type.to_ascii_uppercase(),
    }
}

fn key_of(set: &ResourceRecordSet) -> RecordKey {
    RecordKey {
        name: normalise_name(set.name()),
        record_type: set.r#type().as_str().to_string(),
    }
}

fn record_properties(
    props: &RecordSet,
    zone_id: &str,
    ttl: Option<i64>,
    values: Vec<String>,
) -> Value {
    let mut properties = json!({
        "hostedZoneId": zone_id,
        // The desired spelling: the name is matched without regard to case or trailing dot.
        "name": props.name,
        "type": props.record_type,
        "ttl": ttl,
    });
    properties[values_key(props)] = json!(values);
    properties
}

fn record_observed(
    desired: &DesiredResource,
    props: &RecordSet,
    zone_id: &str,
    set: &ResourceRecordSet,
) -> Observed {
    util::observed(
        desired,
        record_properties(props, zone_id, set.ttl(), values_of(set)),
        [],
        IndexMap::new(),
    )
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

/// A desired record with its key and its zone's bare id, when known.
type Keyed<'a> = (&'a DesiredResource, RecordSet, RecordKey, Option<String>);

impl RecordSetClient {
    /// Fills in the zone of records whose zone is a reference (not created yet, or its id not
    /// resolved in observe): the zone whose name is their name's longest suffix, when that
    /// zone is the reconciler's own. Returns the reconciler's own zones among them, whose
    /// records are read once per observation with the zone client (see `own_zone_records`).
    async fn find_zones(
        &self,
        r53: &aws_sdk_route53::Client,
        keyed: &mut [Keyed<'_>],
    ) -> Result<HashSet<String>, ProviderError> {
        if keyed.iter().all(|(_, _, _, zone)| zone.is_some()) {
            return Ok(HashSet::new());
        }
        let index = ZoneIndex::load(&self.pool, r53).await?;
        let mut names: HashMap<usize, String> = HashMap::new();
        for (i, (_, _, key, zone)) in keyed.iter().enumerate() {
            if zone.is_none() {
                if let Some(z) = longest_suffix_zone(&key.name, index.names()) {
                    names.insert(i, z.to_string());
                }
            }
        }
        let zones = index.owned(r53, &names.values().cloned().collect()).await?;
        for (i, name) in names {
            keyed[i].3 = zones.get(&name).map(|z| z.id.clone());
        }
        Ok(zones
            .values()
            .filter(|z| created_by_reconciler(&z.caller_reference))
            .map(|z| z.id.clone())
            .collect())
    }
}

#[async_trait]
impl KindClient<RecordSet> for RecordSetClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let r53 = self.pool.route53(region);
        let mut keyed: Vec<Keyed> = Vec::with_capacity(desired.len());
        for d in desired {
            let props = reconciler_kinds::read::<RecordSet>(d)?;
            let zone = props.hosted_zone_id.known().map(|z| bare_zone_id(z));
            let key = record_key(&props);
            keyed.push((d, props, key, zone));
        }
        let own_zones = self.find_zones(&r53, &mut keyed).await?;
        let mut by_zone: BTreeMap<String, Vec<RecordKey>> = BTreeMap::new();
        for (_, _, key, zone) in &keyed {
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
            .filter_map(|(d, props, key, zone)| {
                let zone = zone?;
                let set = records.get(&zone)?.get(&key)?;
                Some(record_observed(d, &props, &zone, set))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &RecordSet,
    ) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let zone_id = bare_zone_id(props.hosted_zone_id.get("hostedZoneId")?);
        let name = props.name.as_str();
        let record_type = props.record_type.to_ascii_uppercase();
        let values = desired_values(props)?;
        let set = record_set(name, &record_type, props.ttl, &values)?;
        if props.initial_values.is_some() {
            // The running system owns the value once the record exists: an existing record
            // (an interrupted run, or the system already wrote it) is adopted, never reset.
            // The read also keeps the emulator, which stores a second record for a CREATE of
            // an existing name, from doing so; on AWS the CREATE itself refuses.
            if read_record(&r53, &zone_id, &record_key(props))
                .await?
                .is_some()
            {
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
            record_properties(props, &zone_id, Some(props.ttl), normalised),
            [],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &RecordSet,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let zone_id = observed_zone_id(desired, observed)?;
        let name = props.name.as_str();
        let record_type = props.record_type.to_ascii_uppercase();
        if props.initial_values.is_some() {
            if !touches(changes, "ttl") {
                return Ok(observed.clone());
            }
            // Only the TTL is ours: the values are written back as they are now (read
            // fresh, since the running system may have changed them since the observation).
            let current = read_record(&r53, &zone_id, &record_key(props))
                .await?
                .ok_or_else(|| {
                    ProviderError::not_found(format!(
                        "{}: record {name} {record_type} is gone",
                        desired.id
                    ))
                })?;
            let set = with_ttl(&current, props.ttl)?;
            change_record(&r53, &zone_id, ChangeAction::Upsert, set.clone()).await?;
            return Ok(record_observed(desired, props, &zone_id, &set));
        }
        if touches(changes, "ttl") || touches(changes, "values") {
            let values = desired_values(props)?;
            let set = record_set(name, &record_type, props.ttl, &values)?;
            change_record(&r53, &zone_id, ChangeAction::Upsert, set).await?;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let props = reconciler_kinds::read::<RecordSet>(desired)?;
        let r53 = self.pool.route53(&desired.region);
        let zone_id = observed_zone_id(desired, observed)?;
        // A DELETE must carry the exact current values (a runtime-owned value may have changed
        // since the observation): read them now.
        let Some(current) = read_record(&r53, &zone_id, &record_key(&props)).await? else {
            return Ok(());
        };
        change_record(&r53, &zone_id, ChangeAction::Delete, current).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
