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

use std::collections::BTreeMap;

use reconciler_engine::model::DesiredResource;
use reconciler_spec::{BaseDocument, ContainerSpecDocument, EnvValue};
use serde::{Deserialize, Serialize};
use serde_json::json;

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
