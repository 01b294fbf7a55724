//! `ec2.security-group`, found by group name in its VPC. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A security group and its complete rule sets: rules found in AWS and not listed here are
/// removed, so a rule added out of band is drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    /// The group's name.
    pub group_name: String,
    /// Its description (AWS cannot change it: a change replaces the group).
    pub description: String,
    /// Its VPC.
    pub vpc_id: Input<String>,
    /// Inbound rules.
    pub ingress: Vec<Rule>,
    /// Outbound rules; empty means none (AWS's default allow-all is removed).
    pub egress: Vec<Rule>,
}

/// One rule: a protocol and port range from (or to) an IPv4 block or another group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `tcp`, `udp`, or `-1` for all.
    pub ip_protocol: String,
    /// First port (absent for all protocols).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// Last port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    /// The peer IPv4 block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_ipv4: Option<String>,
    /// The peer security group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_security_group_id: Option<Input<String>>,
    /// What the rule is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Properties for SecurityGroup {
    const KIND: &'static str = "ec2.security-group";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/groupName")
            .immutable("/description")
            .immutable("/vpcId")
            .unordered("/ingress")
            .unordered("/egress")
    }
}
