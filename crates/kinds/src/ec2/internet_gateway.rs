//! `ec2.internet-gateway`, found by its `Name` tag. Outputs `id`.

use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// An internet gateway attached to a VPC; moving it detaches and attaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternetGateway {
    /// The VPC it is attached to.
    pub vpc_id: Input<String>,
}

impl Properties for InternetGateway {
    const KIND: &'static str = "ec2.internet-gateway";
}
