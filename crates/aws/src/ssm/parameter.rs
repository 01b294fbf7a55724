//! `ssm.parameter` ([`reconciler_kinds::ssm::Parameter`]): a String parameter whose `value` is
//! JSON, by name. Outputs `name`, `version`.
//!
//! A value that is not JSON observes as `null`, so it is rewritten. An apply record's
//! fingerprints are written salted with a fresh random salt and read back against the desired
//! ones ([`reconciler_render::record`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{Parameter as SdkParameter, ResourceTypeForTagging};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ssm::Parameter;
use reconciler_render::record::{salt_value, unsalt_value};
use serde_json::{json, Value};

use super::{
    decode_value, get_parameters, parameters_under, put_request, read_tags_by_arn, sdk_tags,
};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, updated};

/// The client of parameters.
pub struct ParameterClient {
    pool: Arc<ClientPool>,
}

impl ParameterClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ParameterClient { pool }
    }

    /// The desired parameters that exist. Names that share their parent path with others are
    /// read with the path's listing, which the search for servers missing from the input makes
    /// anyway (both share it); the rest by name, ten a call.
    async fn read(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<SdkParameter>, ProviderError> {
        let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in desired {
            let parent = d.name.rsplit_once('/').map_or("", |(p, _)| p);
            by_parent.entry(parent).or_default().push(d.name.as_str());
        }
        let mut parameters: Vec<SdkParameter> = Vec::new();
        let mut single: Vec<String> = Vec::new();
        for (parent, names) in by_parent {
            if names.len() > 1 && !parent.is_empty() {
                let listed = parameters_under(&self.pool, region, parent).await?;
                parameters.extend(listed.iter().cloned());
            } else {
                single.extend(names.into_iter().map(str::to_string));
            }
        }
        parameters.extend(get_parameters(&self.pool.ssm(region), &single).await?);
        Ok(parameters)
    }
}

/// Writes the desired value: a create carries the tags (SSM takes tags on creation only), an
/// overwrite leaves them to [`KindClient::write_tags`]. Returns the new version.
async fn put(
    ssm: &aws_sdk_ssm::Client,
    desired: &DesiredResource,
    props: &Parameter,
    overwrite: bool,
) -> Result<i64, ProviderError> {
    let name = desired.name.as_str();
    let salt = format!("{:032x}", rand::random::<u128>());
    let stored = salt_value(&props.value, &salt);
    let mut request = put_request(ssm, name, &stored).description("Managed by reconciler");
    if overwrite {
        request = request.overwrite(true);
    } else {
        request = request.set_tags(Some(sdk_tags(&desired.tags)));
    }
    let out = request
        .send()
        .await
        .map_err(|e| classify(&format!("PutParameter {name}"), e))?;
    Ok(out.version())
}

#[async_trait]
impl KindClient<Parameter> for ParameterClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let ssm = self.pool.ssm(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut found = Vec::new();
        for p in &self.read(region, desired).await? {
            let Some(d) = p.name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            let value = p
                .value()
                .and_then(decode_value)
                .map_or(Value::Null, |v| unsalt_value(&v, &d.properties["value"]));
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
            read_tags_by_arn(&ssm, &names, &arn)
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

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Parameter,
    ) -> Result<Observed, ProviderError> {
        let version = put(&self.pool.ssm(&desired.region), desired, props, false).await?;
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
        props: &Parameter,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The value is the only property.
        let version = put(&self.pool.ssm(&desired.region), desired, props, true).await?;
        let mut out = updated(observed, desired);
        out.outputs.insert("version".into(), json!(version));
        Ok(out)
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let ssm = self.pool.ssm(&desired.region);
        let name = desired.name.as_str();
        if !set.is_empty() {
            ssm.add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tags(Some(sdk_tags(set)))
                .send()
                .await
                .map_err(|e| classify(&format!("AddTagsToResource {name}"), e))?;
        }
        if !remove.is_empty() {
            ssm.remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(name)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("RemoveTagsFromResource {name}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        super::delete_value(&self.pool, &desired.region, &desired.name).await
    }
}
