//! `ec2.route-table`, found by its `Name` tag. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// A route table with its routes and subnet associations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Its VPC.
    pub vpc_id: Input<String>,
    /// Routes besides the VPC's local route.
    pub routes: Vec<Route>,
    /// Subnets associated with it.
    pub subnet_ids: Vec<Input<String>>,
}

/// A route to an internet gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Where the route goes, `0.0.0.0/0` for the internet.
    pub destination_cidr_block: String,
    /// Through which gateway.
    pub gateway_id: Input<String>,
}

impl Properties for RouteTable {
    const KIND: &'static str = "ec2.route-table";

    fn spec() -> KindSpec {
        KindSpec::new()
            .immutable("/vpcId")
            .unordered("/routes")
            .unordered("/subnetIds")
    }
}
