//! SSM Parameter Store: JSON-valued parameters (the apply records of
//! [`reconciler_render::record`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{Parameter, ParameterTier, ParameterType, ResourceTypeForTagging, Tag};
use base64::Engine as _;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, tag_delta};
use crate::util::updated;
use crate::util::{self, touches, touches_tags};

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(ParameterClient { pool: pool.clone() })]
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

/// `ssm.parameter`: a String parameter whose `value` is JSON. Outputs `name`, `version`.
///
/// Observation reads values in batches of ten names and the tags of each parameter found.
/// A value that is not JSON observes as `null`, so it is rewritten.
pub struct ParameterClient {
    pool: Arc<ClientPool>,
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

fn ssm_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn desired_value(desired: &DesiredResource) -> Result<&Value, ProviderError> {
    desired
        .properties
        .get("value")
        .ok_or_else(|| util::missing(desired, "value"))
}

async fn put(
    ssm: &aws_sdk_ssm::Client,
    desired: &DesiredResource,
    overwrite: bool,
) -> Result<i64, ProviderError> {
    let name = desired.name.as_str();
    let text = encode_value(desired_value(desired)?);
    let mut request = ssm
        .put_parameter()
        .name(name)
        .value(text)
        .r#type(ParameterType::String)
        .tier(ParameterTier::Standard)
        .description("Managed by reconciler");
    if overwrite {
        request = request.overwrite(true);
    } else {
        // Tags may only be given on creation.
        request = request.set_tags(Some(ssm_tags(&desired.tags)));
    }
    let out = request
        .send()
        .await
        .map_err(|e| classify(&format!("PutParameter {name}"), e))?;
    Ok(out.version())
}

#[async_trait]
impl ResourceClient for ParameterClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::PARAMETER)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ssm = self.pool.ssm(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        // Names that share their parent path with others are read with the path's listing,
        // which the search for servers missing from the input makes anyway (both share it);
        // the rest by name, ten a call.
        let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in desired {
            let parent = d.name.rsplit_once('/').map_or("", |(p, _)| p);
            by_parent.entry(parent).or_default().push(d.name.as_str());
        }
        let mut parameters: Vec<Parameter> = Vec::new();
        let mut single: Vec<&str> = Vec::new();
        for (parent, names) in by_parent {
            if names.len() > 1 && !parent.is_empty() {
                parameters.extend(
                    parameters_under(&self.pool, region, parent)
                        .await?
                        .iter()
                        .cloned(),
                );
            } else {
                single.extend(names);
            }
        }
        for chunk in single.chunks(NAMES_PER_CALL) {
            let out = ssm
                .get_parameters()
                .set_names(Some(chunk.iter().map(|n| n.to_string()).collect()))
                .send()
                .await
                .map_err(|e| classify("GetParameters", e))?;
            parameters.extend(out.parameters().iter().cloned());
        }
        let mut found = Vec::new();
        for p in &parameters {
            let Some(d) = p.name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            let value = p.value().and_then(decode_value).unwrap_or(Value::Null);
            found.push((
                *d,
                value,
                p.version(),
                p.arn().unwrap_or_default().to_string(),
            ));
        }
        let objects: Vec<(&DesiredResource, String)> = found
            .iter()
            .map(|(d, _, _, arn)| (*d, arn.clone()))
            .collect();
        let names: HashMap<&str, &str> = found
            .iter()
            .map(|(d, _, _, arn)| (arn.as_str(), d.name.as_str()))
            .collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_tags(
                ssm.clone(),
                names
                    .get(arn.as_str())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .await?;
        Ok(found
            .into_iter()
            .zip(tags)
            .map(|((d, value, version, _), tags)| {
                util::observed(
                    d,
                    json!({ "value": value }),
                    [("name", json!(d.name)), ("version", json!(version))],
                    tags,
                )
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let version = put(&self.pool.ssm(&desired.region), desired, false).await?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("name", json!(desired.name)), ("version", json!(version))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let ssm = self.pool.ssm(&desired.region);
        let name = desired.name.as_str();
        let mut out = updated(observed, desired);
        if touches(changes, "value") {
            let version = put(&ssm, desired, true).await?;
            out.outputs.insert("version".into(), json!(version));
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                ssm.add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tags(Some(ssm_tags(&set)))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("AddTagsToResource {name}"), e))?;
            }
            if !remove.is_empty() {
                ssm.remove_tags_from_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(name)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("RemoveTagsFromResource {name}"), e))?;
            }
        }
        Ok(out)
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        delete_value(&self.pool, &desired.region, &desired.name).await
    }
}

#[cfg(test)]
mod tests {
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
        read_tags(
            ssm.clone(),
            names
                .get(arn.as_str())
                .copied()
                .unwrap_or_default()
                .to_string(),
        )
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
    let ssm = pool.ssm(region);
    let mut values = HashMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let out = ssm
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| classify("GetParameters", e))?;
        for p in out.parameters() {
            if let (Some(name), Some(value)) = (p.name(), p.value().and_then(decode_value)) {
                values.insert(name.to_string(), value);
            }
        }
    }
    Ok(values)
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
    pool.ssm(region)
        .put_parameter()
        .name(name)
        .value(encode_value(value))
        .r#type(ParameterType::String)
        .tier(ParameterTier::Standard)
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
            if err.class == reconciler_engine::provider::ErrorClass::NotFound {
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
    let created = pool
        .ssm(region)
        .put_parameter()
        .name(name)
        .value(encode_value(value))
        .r#type(ParameterType::String)
        .tier(ParameterTier::Standard)
        .set_tags(Some(ssm_tags(tags)))
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) => {
            let err = classify(&format!("PutParameter {name}"), e);
            if err.class == reconciler_engine::provider::ErrorClass::Conflict {
                Ok(false)
            } else {
                Err(err)
            }
        }
    }
}
