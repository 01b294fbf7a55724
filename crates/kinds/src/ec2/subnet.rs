//! `ec2.subnet`, found by its `Name` tag. Outputs `id`, `availabilityZone`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A subnet in one zone of the region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// Its VPC.
    pub vpc_id: Input<String>,
    /// Its IPv4 block.
    pub cidr_block: String,
    /// The zone: an index into the region's zones in name order (the names differ between
    /// accounts, the order does not), so a spec stays portable.
    pub availability_zone_index: u32,
    /// Whether instances get a public IPv4 address (the servers need one: players connect to
    /// it, and there is no NAT).
    pub map_public_ip_on_launch: bool,
}

impl Properties for Subnet {
    const KIND: &'static str = "ec2.subnet";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/vpcId")
            .immutable("/cidrBlock")
            .immutable("/availabilityZoneIndex")
    }
}
