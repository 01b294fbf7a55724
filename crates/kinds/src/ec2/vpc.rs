//! `ec2.vpc`, found by its `Name` tag. Outputs `id`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::Properties;

/// A VPC. The DNS attributes are read and written one call each (`DescribeVpcAttribute`,
/// `ModifyVpcAttribute`): the API has no batch form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vpc {
    /// The IPv4 block; a change replaces the VPC.
    pub cidr_block: String,
    /// Amazon-provided DNS (AWS's default: on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dns_support: Option<bool>,
    /// Public DNS host names for instances (AWS's default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dns_hostnames: Option<bool>,
}

impl Properties for Vpc {
    const KIND: &'static str = "ec2.vpc";

    fn spec() -> KindSpec {
        KindSpec::new().immutable("/cidrBlock")
    }
}
