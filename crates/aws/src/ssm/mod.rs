//! SSM Parameter Store: JSON-valued parameters, the apply records of
//! [`reconciler_render::record`], and the helpers the use cases call for the lock and the last
//! results ([`put_value`], [`create_value`], [`get_values`], [`delete_value`], [`list_by_path`]).
//!
//! Observation cost, per region:
//! - parameters: names that share their parent path with others are read with one paged
//!   `GetParametersByPath` per path, shared with the search for servers missing from the input
//!   (see [`list_by_path`]); the rest by name, `GetParameters` ten names a call. Tags from the
//!   region's tag index (see [`crate::tagging`]), `ListTagsForResource` per parameter only where
//!   it disagrees.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::sync::Arc;

use aws_sdk_ssm::operation::put_parameter::builders::PutParameterFluentBuilder;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType, ResourceTypeForTagging, Tag};
use base64::Engine as _;
use indexmap::IndexMap;
use reconciler_engine::provider::{ErrorClass, ProviderError, ResourceClient};
use serde_json::Value;

use crate::error::classify;
use crate::managed::Managed;
use crate::pool::ClientPool;
use crate::tagging;

mod parameter;

pub use parameter::ParameterClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(Managed::new(ParameterClient::new(pool.clone())))]
}

/// The most characters a standard-tier parameter holds; larger values are stored deflated.
const STANDARD_LIMIT: usize = 4096;
/// Marks a value stored deflated and base64-encoded.
const DEFLATED: &str = "deflate:";
/// GetParameters takes at most this many names per call.
const NAMES_PER_CALL: usize = 10;

/// The text stored for a JSON value: compact JSON, or deflated when it would not fit the
/// free standard tier (advanced parameters cost money every month).
pub fn encode_value(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= STANDARD_LIMIT {
        return text;
    }
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(text.as_bytes())
        .expect("writing to memory");
    let bytes = encoder.finish().expect("writing to memory");
    format!(
        "{DEFLATED}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The JSON value of a stored text; `None` when it is not one [`encode_value`] wrote.
pub fn decode_value(text: &str) -> Option<Value> {
    match text.strip_prefix(DEFLATED) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let mut json = String::new();
            flate2::read::DeflateDecoder::new(bytes.as_slice())
                .read_to_string(&mut json)
                .ok()?;
            serde_json::from_str(&json).ok()
        }
        None => serde_json::from_str(text).ok(),
    }
}

/// Reads the tags of one parameter.
pub async fn read_tags(
    ssm: aws_sdk_ssm::Client,
    name: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(&name)
        .send()
        .await
        .map_err(|e| classify(&format!("ListTagsForResource {name}"), e))?;
    let mut tags: Vec<(String, String)> = out
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    Ok(tags.into_iter().collect())
}

/// [`read_tags`] for the tag index's lookups, which go by ARN while the API takes the
/// parameter's name: `names` maps one to the other.
fn read_tags_by_arn(
    ssm: &aws_sdk_ssm::Client,
    names: &HashMap<&str, &str>,
    arn: &str,
) -> impl Future<Output = Result<IndexMap<String, String>, ProviderError>> + Send + 'static {
    let name = names.get(arn).copied().unwrap_or_default();
    read_tags(ssm.clone(), name.to_string())
}

/// Tags as the SSM SDK takes them.
fn sdk_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// A `PutParameter` of `value` as every parameter here is stored: a standard-tier String
/// holding [`encode_value`]'s text. The caller adds creation or overwrite.
fn put_request(ssm: &aws_sdk_ssm::Client, name: &str, value: &Value) -> PutParameterFluentBuilder {
    ssm.put_parameter()
        .name(name)
        .value(encode_value(value))
        .r#type(ParameterType::String)
        .tier(ParameterTier::Standard)
}

/// The parameters called `names` that exist, in calls of ten names.
async fn get_parameters(
    ssm: &aws_sdk_ssm::Client,
    names: &[String],
) -> Result<Vec<Parameter>, ProviderError> {
    let mut parameters = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let out = ssm
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("GetParameters", e))?;
        parameters.extend(out.parameters().iter().cloned());
    }
    Ok(parameters)
}

/// One parameter read by path: name, JSON value (`None` when not JSON we wrote) and tags.
#[derive(Debug, Clone)]
pub struct StoredParameter {
    /// Full name.
    pub name: String,
    /// The decoded value.
    pub value: Option<Value>,
    /// Its tags.
    pub tags: IndexMap<String, String>,
}

/// Every parameter directly under `path`, read once per observation (ten a page, the API's
/// maximum) for the parameter client and the search for servers missing from the input.
async fn parameters_under(
    pool: &ClientPool,
    region: &str,
    path: &str,
) -> Result<Arc<Vec<Parameter>>, ProviderError> {
    let path = path.trim_end_matches('/').to_string();
    let ssm = pool.ssm(region);
    pool.shared_read(
        &format!("ssm:GetParametersByPath:{region}:{path}"),
        || async move {
            let pages: Vec<
                aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput,
            > = ssm
                .get_parameters_by_path()
                .path(&path)
                .recursive(false)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify(&format!("GetParametersByPath {path}"), e))?;
            Ok(pages
                .iter()
                .flat_map(|p| p.parameters().iter().cloned())
                .collect::<Vec<Parameter>>())
        },
    )
    .await
}

/// Every parameter directly under `path` (which ends in `/`), with its tags. One paged call
/// for the values and one per parameter for the tags.
pub async fn list_by_path(
    pool: &ClientPool,
    region: &str,
    path: &str,
) -> Result<Vec<StoredParameter>, ProviderError> {
    let ssm = pool.ssm(region);
    let params = parameters_under(pool, region, path).await?;
    let found: Vec<(String, Option<Value>, String)> = params
        .iter()
        .filter_map(|p| {
            Some((
                p.name()?.to_string(),
                p.value().and_then(decode_value),
                p.arn().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let arns: Vec<&str> = found.iter().map(|(_, _, arn)| arn.as_str()).collect();
    let names: HashMap<&str, &str> = found
        .iter()
        .map(|(name, _, arn)| (arn.as_str(), name.as_str()))
        .collect();
    let tags = tagging::owned_tags_of(pool, region, &arns, |arn| {
        read_tags_by_arn(&ssm, &names, &arn)
    })
    .await?;
    Ok(found
        .into_iter()
        .zip(tags)
        .map(|((name, value, _), tags)| StoredParameter { name, value, tags })
        .collect())
}

/// The JSON values of `names` that exist, by name, in calls of ten names.
pub async fn get_values(
    pool: &ClientPool,
    region: &str,
    names: &[String],
) -> Result<HashMap<String, Value>, ProviderError> {
    let parameters = get_parameters(&pool.ssm(region), names).await?;
    Ok(parameters
        .iter()
        .filter_map(|p| Some((p.name()?.to_string(), p.value().and_then(decode_value)?)))
        .collect())
}

/// Writes a JSON value, creating the parameter with `tags` the first time. Safe to repeat
/// after any failure: the first write is a create that carries its tags (so no retry can leave
/// a parameter untagged), and only a parameter that exists is overwritten.
pub async fn put_value(
    pool: &ClientPool,
    region: &str,
    name: &str,
    value: &Value,
    tags: &IndexMap<String, String>,
) -> Result<(), ProviderError> {
    if create_value(pool, region, name, value, tags).await? {
        return Ok(());
    }
    put_request(&pool.ssm(region), name, value)
        .overwrite(true)
        .send()
        .await
        .map_err(|e| classify(&format!("PutParameter {name}"), e))?;
    Ok(())
}

/// Deletes a parameter; a missing one is fine.
pub async fn delete_value(
    pool: &ClientPool,
    region: &str,
    name: &str,
) -> Result<(), ProviderError> {
    match pool.ssm(region).delete_parameter().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let err = classify(&format!("DeleteParameter {name}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

/// Creates a parameter holding `value` only if the name is free: `Ok(true)` when this call
/// created it, `Ok(false)` when it exists already (the atomic step of a lock).
pub async fn create_value(
    pool: &ClientPool,
    region: &str,
    name: &str,
    value: &Value,
    tags: &IndexMap<String, String>,
) -> Result<bool, ProviderError> {
    let created = put_request(&pool.ssm(region), name, value)
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) => {
            let err = classify(&format!("PutParameter {name}"), e);
            if err.class == ErrorClass::Conflict {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn small_values_are_plain_json_and_large_ones_deflated() {
        let small = json!({"a": 1});
        assert_eq!(encode_value(&small), r#"{"a":1}"#);
        assert_eq!(decode_value(&encode_value(&small)), Some(small));
        let large = json!({ "text": "x".repeat(10_000) });
        let text = encode_value(&large);
        assert!(text.starts_with(DEFLATED) && text.len() <= STANDARD_LIMIT);
        assert_eq!(decode_value(&text), Some(large));
        assert_eq!(decode_value("not json"), None);
        assert_eq!(decode_value("deflate:!!"), None);
    }
}
