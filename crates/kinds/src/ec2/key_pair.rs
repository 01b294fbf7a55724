//! `ec2.key-pair`, by name. Outputs `id`, `name`.

use reconciler_engine::provider::KindSpec;
use serde::{Deserialize, Serialize};

use crate::Properties;

/// A key pair EC2 creates; its private key goes to the SSM SecureString
/// `/ec2/keypair/<key-pair-id>`, as EC2 itself stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPair {
    /// `ed25519` or `rsa`.
    pub key_type: String,
}

impl Properties for KeyPair {
    const KIND: &'static str = "ec2.key-pair";

    fn spec() -> KindSpec {
        KindSpec::new().immutable("/keyType")
    }
}
