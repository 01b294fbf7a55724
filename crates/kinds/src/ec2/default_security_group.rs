//! `ec2.default-security-group`: the default security group AWS makes with every VPC, found
//! by the `Name` tag the reconciler gives it when it adopts it. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use super::Rule;
use crate::{Input, Properties};

/// The rules a VPC's default security group keeps. AWS gives it an inbound rule admitting its
/// own members and an outbound allow-all rule; the CIS AWS Foundations Benchmark (and AWS
/// Security Hub control EC2.2) asks that it allow no traffic, so render wants both lists empty
/// and a rule added back later is drift. The group is never created or deleted: AWS makes it
/// with the VPC and removes it with the VPC, so a create adopts and strips it and a delete
/// leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultSecurityGroup {
    /// The VPC whose default group it is (another VPC's group is another object).
    pub vpc_id: Input<String>,
    /// Inbound rules.
    pub ingress: Vec<Rule>,
    /// Outbound rules.
    pub egress: Vec<Rule>,
}

impl Properties for DefaultSecurityGroup {
    const KIND: &'static str = "ec2.default-security-group";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/vpcId")
            .unordered("/ingress")
            .unordered("/egress")
    }
}
