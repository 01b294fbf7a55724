//! `route53.record-set`, named `<name> <type>`; untaggable. When `hostedZoneId` is a
//! reference, observe finds the zone by the record's name.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A record set, with either managed `values` (the NS delegation) or `initialValues`, written
/// at create and then owned by the running system (the A record the state-change Lambda keeps
/// on the instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSet {
    /// The zone.
    pub hosted_zone_id: Input<String>,
    /// The record's name, with the trailing dot.
    pub name: String,
    /// `A`, `NS`, ...
    #[serde(rename = "type")]
    pub record_type: String,
    /// Seconds resolvers may cache it.
    pub ttl: i64,
    /// Managed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Input<Vec<String>>>,
    /// Runtime-owned values: written once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_values: Option<Vec<String>>,
}

impl Properties for RecordSet {
    const KIND: &'static str = "route53.record-set";

    fn spec() -> KindSpec {
        KindSpec::new()
            .runtime_owned("/initialValues")
            .unordered("/values")
            .immutable("/hostedZoneId")
            .immutable("/name")
            .immutable("/type")
    }
}
