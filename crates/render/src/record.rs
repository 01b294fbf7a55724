//! Apply records: one SSM parameter per server (and one per Base) written after every
//! successful apply of it, as the last step, holding what was applied. With it, AWS alone
//! answers two questions a state file answers elsewhere:
//!
//! * **What was applied?** The server's spec (environment values left out), so
//!   `apply --prune` can render and delete a server whose spec is gone from the input.
//! * **Did the specs change this resource?** A fingerprint of each resource as last applied;
//!   a plan that finds a difference on a resource whose fingerprint is unchanged reports it
//!   as drift.
//!
//! The record depends on every resource it lists, so it is written only once they all
//! succeeded: a failed apply leaves the previous record, and its unapplied changes keep
//! showing as spec changes.
//!
//! The fingerprints are stored salted ([`salt_value`]): a fingerprint covers a task
//! definition's environment values, and a plain hash of a short secret can be guessed by
//! hashing candidates. Whoever reads a record sees a random salt and salted fingerprints;
//! the reconciler compares them by salting its own ([`unsalt_value`]).

use std::collections::BTreeMap;

use reconciler_engine::model::DesiredResource;
use reconciler_spec::{BaseDocument, ContainerSpecDocument, EnvValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::base::tagged;
use crate::kinds;
use crate::naming::{BaseNames, ServerNames, MANAGED_BY};

/// Version of the record's layout.
pub const RECORD_FORMAT: u32 = 1;

/// The SSM path under which a Base's server records live.
pub fn servers_prefix(base: &str) -> String {
    format!("/reconciler/{base}/servers/")
}

/// The SSM parameter name of a server's record.
pub fn server_record_name(base: &str, server: &str) -> String {
    format!("{}{server}", servers_prefix(base))
}

/// The SSM parameter name of a Base's record.
pub fn base_record_name(base: &str) -> String {
    format!("/reconciler/{base}/base")
}

/// What an apply record holds (the parameter's value, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRecord {
    /// Always `reconciler`: the value says whose it is even where tags are not read.
    pub managed_by: String,
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The server's spec as applied, environment values blanked; `None` in a Base's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ContainerSpecDocument>,
    /// Resource id to [`DesiredResource::fingerprint`] as applied.
    pub resources: BTreeMap<String, String>,
}

impl ApplyRecord {
    /// Reads a record from an observed parameter's `value` property.
    pub fn from_value(value: &serde_json::Value) -> Option<ApplyRecord> {
        let record: ApplyRecord = serde_json::from_value(value.clone()).ok()?;
        (record.managed_by == MANAGED_BY).then_some(record)
    }
}

fn record_resource(
    local: &str,
    region: &str,
    name: String,
    record: ApplyRecord,
    covered: &[DesiredResource],
    tags: indexmap::IndexMap<String, String>,
) -> DesiredResource {
    let mut r =
        DesiredResource::new(kinds::PARAMETER, local, region, name).with_properties(json!({
            "value": serde_json::to_value(record).expect("records serialize"),
        }));
    for c in covered {
        r = r.with_dependency(c.id.clone());
    }
    tagged(r, tags)
}

/// The record of one server, covering `resources` (everything the server renders).
pub fn server_record(
    base: &BaseDocument,
    server: &ContainerSpecDocument,
    resources: &[DesiredResource],
) -> DesiredResource {
    let names = ServerNames::new(&base.metadata.name, &server.metadata.name);
    let mut spec = server.clone();
    // Environment values may be sensitive and are not needed to find or delete anything.
    for value in spec.spec.container.environment.values_mut() {
        *value = EnvValue::String(String::new());
    }
    let record = ApplyRecord {
        managed_by: MANAGED_BY.into(),
        format: RECORD_FORMAT,
        spec: Some(spec),
        resources: fingerprints(resources),
    };
    record_resource(
        &format!("{}.record", server.metadata.name),
        &base.spec.region,
        server_record_name(&base.metadata.name, &server.metadata.name),
        record,
        resources,
        names.tags("record"),
    )
}

/// The record of a Base, covering `resources` (everything the Base renders).
pub fn base_record(base: &BaseDocument, resources: &[DesiredResource]) -> DesiredResource {
    let names = BaseNames::new(&base.metadata.name);
    let record = ApplyRecord {
        managed_by: MANAGED_BY.into(),
        format: RECORD_FORMAT,
        spec: None,
        resources: fingerprints(resources),
    };
    record_resource(
        &format!("{}.base-record", base.metadata.name),
        &base.spec.region,
        base_record_name(&base.metadata.name),
        record,
        resources,
        names.tags("record"),
    )
}

fn fingerprints(resources: &[DesiredResource]) -> BTreeMap<String, String> {
    resources
        .iter()
        .map(|r| (r.id.to_string(), r.fingerprint()))
        .collect()
}

/// The key of a stored record's salt. A record read without one predates salting.
const SALT: &str = "salt";

/// Marks a record stored before salting, so that the next apply rewrites it salted.
const UNSALTED: &str = "unsalted";

/// Whether `value` is an apply record's (the only parameters whose fingerprints are salted).
fn is_record(value: &Value) -> bool {
    value.get("managedBy").and_then(Value::as_str) == Some(MANAGED_BY)
        && value.get("resources").is_some_and(Value::is_object)
}

/// `fingerprint` salted with `salt`: 16 hex digits of SHA-256 over both.
fn salted(salt: &str, fingerprint: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(b":")
        .chain_update(fingerprint.as_bytes())
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The record `value` as stored: its fingerprints salted with `salt` (fresh random hex for
/// each write). A value that is not a record is stored as it is.
pub fn salt_value(value: &Value, salt: &str) -> Value {
    let mut stored = value.clone();
    if !is_record(value) {
        return stored;
    }
    if let Some(resources) = stored["resources"].as_object_mut() {
        for fingerprint in resources.values_mut() {
            if let Some(plain) = fingerprint.as_str() {
                *fingerprint = Value::String(salted(salt, plain));
            }
        }
    }
    stored[SALT] = Value::String(salt.to_string());
    stored
}

/// A stored record as the reconciler compares it with the `desired` one: each salted
/// fingerprint that matches the desired fingerprint salted alike reads as that fingerprint,
/// any other stays salted (so it differs), and the salt is dropped. A record stored unsalted
/// is marked so that it differs and is rewritten. A value that is not a record is returned
/// as it is.
pub fn unsalt_value(stored: &Value, desired: &Value) -> Value {
    let mut out = stored.clone();
    if !is_record(stored) {
        return out;
    }
    let Some(salt) = stored.get(SALT).and_then(Value::as_str).map(str::to_string) else {
        out[UNSALTED] = Value::Bool(true);
        return out;
    };
    if let Some(object) = out.as_object_mut() {
        object.remove(SALT);
    }
    let wanted = desired.get("resources").and_then(Value::as_object);
    if let (Some(resources), Some(wanted)) = (out["resources"].as_object_mut(), wanted) {
        for (id, fingerprint) in resources.iter_mut() {
            let plain = wanted.get(id).and_then(Value::as_str);
            if let Some(plain) = plain.filter(|p| fingerprint.as_str() == Some(&salted(&salt, p))) {
                *fingerprint = Value::String(plain.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(resources: Value) -> Value {
        json!({"managedBy": MANAGED_BY, "format": RECORD_FORMAT, "resources": resources})
    }

    #[test]
    fn stored_fingerprints_are_salted_and_compare_as_the_plain_ones() {
        let desired = record(json!({"a": "00112233aabbccdd", "b": "ffeeddccbbaa9988"}));
        let stored = salt_value(&desired, "5a17");
        assert_eq!(stored["salt"], "5a17");
        for id in ["a", "b"] {
            assert_ne!(stored["resources"][id], desired["resources"][id], "{id}");
        }
        // Another salt, other stored fingerprints: nothing to compare across records.
        assert_ne!(
            salt_value(&desired, "0ther")["resources"],
            stored["resources"]
        );
        assert_eq!(unsalt_value(&stored, &desired), desired);
    }

    #[test]
    fn a_changed_resource_keeps_differing() {
        let applied = record(json!({"a": "00112233aabbccdd", "b": "ffeeddccbbaa9988"}));
        let stored = salt_value(&applied, "5a17");
        let desired = record(json!({"a": "00112233aabbccdd", "b": "1111111111111111"}));
        let seen = unsalt_value(&stored, &desired);
        assert_eq!(seen["resources"]["a"], "00112233aabbccdd");
        assert_ne!(seen["resources"]["b"], desired["resources"]["b"]);
        assert_ne!(seen, desired);
    }

    #[test]
    fn an_unsalted_record_differs_and_other_values_pass_through() {
        let plain = record(json!({"a": "00112233aabbccdd"}));
        let seen = unsalt_value(&plain, &plain);
        assert_ne!(seen, plain, "rewritten salted by the next apply");
        assert_eq!(
            ApplyRecord::from_value(&seen).unwrap().resources["a"],
            "00112233aabbccdd"
        );
        let other = json!({"state": "free"});
        assert_eq!(salt_value(&other, "5a17"), other);
        assert_eq!(unsalt_value(&other, &other), other);
    }
}
