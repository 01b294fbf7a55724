//! `ec2.launch-template`, by name; each change is a new version. Outputs `id`,
//! `latestVersion`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::{Input, Properties};

/// What a server's instance is launched with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchTemplate {
    /// The public SSM parameter naming the AMI (the ECS-optimized Amazon Linux image), read
    /// at each apply so a new image is a new version.
    pub image_parameter: String,
    /// The instance type.
    pub instance_type: String,
    /// `on-demand` or `spot`; always stated, so switching back to on-demand is a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_market_type: Option<String>,
    /// The instance profile.
    pub iam_instance_profile_arn: Input<String>,
    /// The instance's security groups.
    pub security_group_ids: Vec<Input<String>>,
    /// Instance metadata service settings.
    pub metadata_options: MetadataOptions,
    /// Detailed (one-minute) monitoring, which the idle alarm reads.
    pub monitoring: bool,
    /// The root volume.
    pub block_device_mappings: Vec<BlockDevice>,
    /// The boot script, plain text (base64-encoded by the client).
    pub user_data: Input<String>,
    /// Tags the instance and its volumes get.
    pub instance_tags: IndexMap<String, String>,
    /// The key pair; an explicit null removes one set earlier or out of band.
    pub key_name: Option<String>,
}

/// Instance metadata service settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataOptions {
    /// `required`: IMDSv2 only.
    pub http_tokens: String,
    /// `enabled` (the ECS agent needs it).
    pub http_endpoint: String,
    /// Network hops a metadata answer may travel.
    pub http_put_response_hop_limit: i32,
}

/// A block device of the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDevice {
    /// `/dev/xvda` for the root volume.
    pub device_name: String,
    /// The EBS volume.
    pub ebs: Ebs,
}

/// An EBS volume's settings (its size comes from the image unless given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ebs {
    /// Encrypted at rest.
    pub encrypted: bool,
    /// `gp3`.
    pub volume_type: String,
    /// Deleted with the instance.
    pub delete_on_termination: bool,
    /// Size in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i32>,
}

impl Properties for LaunchTemplate {
    const KIND: &'static str = "ec2.launch-template";

    fn spec() -> reconciler_engine::provider::KindSpec {
        reconciler_engine::provider::KindSpec::new()
            .unordered("/securityGroupIds")
            .unordered("/blockDeviceMappings")
    }
}
