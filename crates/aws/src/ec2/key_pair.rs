//! `ec2.key-pair` ([`reconciler_kinds::ec2::KeyPair`]): `keyType` (immutable). Outputs `id`,
//! `name`, `privateKeyParameter`. Found by key name with one `DescribeKeyPairs`.
//!
//! AWS hands out the private key once, in the create answer. It is stored at once as the SSM
//! SecureString `/ec2/keypair/<key-pair-id>` (where the console and CloudFormation keep keys
//! they create), tagged like the key pair, so an operator can fetch it later. If storing fails
//! the fresh key pair is deleted again, so the next attempt makes a key whose private half is
//! kept rather than one nobody can use.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{KeyType, ResourceType};
use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ec2::KeyPair;
use serde_json::{json, Value};

use super::{describe_owned, pair_by, tag_map, tag_spec, unless_gone};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// Where a key pair's private key is kept (as an SSM SecureString), after the key pair id.
pub const KEY_PAIR_PARAMETER_PREFIX: &str = "/ec2/keypair/";

/// The client of key pairs.
pub struct KeyPairClient {
    pool: Arc<ClientPool>,
}

impl KeyPairClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        KeyPairClient { pool }
    }

    /// Stores the private key of the new key pair `id`; the parameter's name.
    async fn store_key(
        &self,
        desired: &DesiredResource,
        id: &str,
        material: &str,
    ) -> Result<String, ProviderError> {
        let parameter = key_parameter(id);
        let ssm_tags: Vec<aws_sdk_ssm::types::Tag> = desired
            .tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_ssm::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        self.pool
            .ssm(&desired.region)
            .put_parameter()
            .name(&parameter)
            .description(format!(
                "Private key of EC2 key pair {} ({id})",
                desired.name
            ))
            .value(material)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .set_tags(Some(ssm_tags))
            .send()
            .await
            .map_err(|e| classify(&format!("PutParameter {parameter}"), e))?;
        Ok(parameter)
    }
}

fn key_parameter(key_pair_id: &str) -> String {
    format!("{KEY_PAIR_PARAMETER_PREFIX}{key_pair_id}")
}

async fn delete_key(ec2: &aws_sdk_ec2::Client, name: &str) -> Result<(), ProviderError> {
    // By name: AWS accepts name or id, and the emulator only honours the name.
    ec2.delete_key_pair()
        .key_name(name)
        .send()
        .await
        .map_err(|e| classify(&format!("DeleteKeyPair {name}"), e))?;
    Ok(())
}

#[async_trait]
impl KindClient<KeyPair> for KeyPairClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ec2 = self.pool.ec2(region);
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        // A `key-name` filter, not KeyNames: KeyNames fails when one name is missing.
        let found = describe_owned("DescribeKeyPairs", "key-name", &names, |filters| {
            let call = ec2.describe_key_pairs().set_filters(Some(filters));
            async move { call.send().await.map(|out| out.key_pairs().to_vec()) }
        })
        .await?;
        let pairs = pair_by(
            desired,
            found,
            |d| d.name.as_str(),
            |k| k.key_name().map(str::to_string),
        );
        Ok(pairs
            .into_iter()
            .filter_map(|(d, k)| {
                let id = k.key_pair_id()?;
                Some(util::observed(
                    d,
                    json!({ "keyType": k.key_type().map(|t| t.as_str()) }),
                    [
                        ("id", json!(id)),
                        ("name", json!(k.key_name())),
                        ("privateKeyParameter", json!(key_parameter(id))),
                    ],
                    tag_map(k.tags()),
                ))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &KeyPair,
    ) -> Result<Observed, ProviderError> {
        let ec2 = self.pool.ec2(&desired.region);
        // Key names are unique: a second create answers InvalidKeyPair.Duplicate (conflict).
        let out = ec2
            .create_key_pair()
            .key_name(&desired.name)
            .key_type(KeyType::from(props.key_type.as_str()))
            .tag_specifications(tag_spec(ResourceType::KeyPair, &desired.tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateKeyPair {}", desired.name), e))?;
        let (Some(id), Some(material)) = (out.key_pair_id(), out.key_material()) else {
            let _ = delete_key(&ec2, &desired.name).await;
            return Err(ProviderError::transient(format!(
                "CreateKeyPair {}: the answer has no key id or key material",
                desired.name
            )));
        };
        let parameter = match self.store_key(desired, id, material).await {
            Ok(parameter) => parameter,
            // Without its private half the key is useless: remove it so a retry starts over.
            // If even that fails, the key stays behind and the next create reports it as a
            // conflict; say so, as the key then has to be deleted by hand.
            Err(err) => {
                if let Err(cleanup) = delete_key(&ec2, &desired.name).await {
                    return Err(ProviderError::terminal(format!(
                        "{}; deleting the key pair again failed too ({}): delete key pair {} by hand, its private key is lost",
                        err.message, cleanup.message, desired.name
                    )));
                }
                return Err(err);
            }
        };
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [
                ("id", json!(id)),
                ("name", json!(desired.name)),
                ("privateKeyParameter", json!(parameter)),
            ],
            desired.tags.clone(),
        ))
    }

    // Only tags can change in place (the key type is immutable): the default update.

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let region = desired.region.as_str();
        let id = util::output(desired, observed, "id")?;
        let name = observed
            .output("name")
            .and_then(Value::as_str)
            .unwrap_or(desired.name.as_str());
        // The parameter first: once the key pair is gone a retried delete would find nothing
        // and never come back for the parameter.
        let parameter = key_parameter(&id);
        let deleted = self
            .pool
            .ssm(region)
            .delete_parameter()
            .name(&parameter)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteParameter {parameter}"), e));
        unless_gone(deleted)?;
        delete_key(&self.pool.ec2(region), name).await
    }
}
