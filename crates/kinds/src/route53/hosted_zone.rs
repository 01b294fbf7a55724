//! `route53.hosted-zone`, a public zone by name (`<dns name>.`); a zone interrupted before it
//! was tagged is recognised by its `reconciler/` caller reference. Outputs `id`,
//! `nameServers`.

use serde::{Deserialize, Serialize};

use crate::Properties;

/// A public hosted zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedZone {
    /// Its comment (at most 256 characters).
    pub comment: String,
}

impl Properties for HostedZone {
    const KIND: &'static str = "route53.hosted-zone";
}
