//! `lambda.function` ([`reconciler_kinds::lambda::Function`]), by function name: found in one
//! paginated `ListFunctions`; tags from the region's tag index. The deployed code is compared
//! with the local package by hash (see the module doc of [`super`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as SdkArchitecture, Environment, FunctionCode, LogFormat, LoggingConfig, Runtime,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::lambda::Function;
use serde_json::{json, Value};

use super::{classify_lambda, readiness, wait_settled, Poll, Progress, SETTLE};
use super::{Architecture, ArtifactLocator};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, touches, updated};

/// The configuration fields `UpdateFunctionConfiguration` changes.
const CONFIG_FIELDS: &[&str] = &[
    "description",
    "runtime",
    "handler",
    "memorySize",
    "timeout",
    "roleArn",
    "environment",
    "logGroup",
];

/// The client of functions.
pub struct FunctionClient {
    pool: Arc<ClientPool>,
    artifacts: ArtifactLocator,
    settle: Poll,
}

impl FunctionClient {
    /// A client that finds artifacts the default way ([`ArtifactLocator::from_process`]).
    pub fn new(pool: Arc<ClientPool>) -> Self {
        Self::with_artifacts(pool, ArtifactLocator::from_process())
    }

    /// A client that finds artifacts with `artifacts` (tests, tools that ship the binary
    /// elsewhere).
    pub fn with_artifacts(pool: Arc<ClientPool>, artifacts: ArtifactLocator) -> Self {
        FunctionClient {
            pool,
            artifacts,
            settle: SETTLE,
        }
    }
}

/// The default log group Lambda writes to when no `LoggingConfig` names another.
fn default_log_group(name: &str) -> String {
    format!("/aws/lambda/{name}")
}

/// The desired function's architecture.
pub(super) fn architecture(
    desired: &DesiredResource,
    props: &Function,
) -> Result<Architecture, ProviderError> {
    let text = props.architecture.as_str();
    Architecture::parse(text).ok_or_else(|| {
        ProviderError::terminal(format!(
            "{}: architecture `{text}` is not one Lambda runs (x86_64, arm64)",
            desired.id
        ))
    })
}

/// The desired environment variables, resolved.
fn environment(props: &Function) -> Result<HashMap<String, String>, ProviderError> {
    props
        .environment
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.get(&format!("environment.{k}"))?.clone())))
        .collect()
}

fn logging_config(props: &Function) -> LoggingConfig {
    LoggingConfig::builder()
        .log_group(&props.log_group)
        .log_format(LogFormat::Text)
        .build()
}

/// What the observation shows as `artifact`: the artifact's name when the deployed code is
/// the local package, otherwise the deployed hash.
fn observed_artifact(artifact: &str, local_sha256: Option<&str>, deployed: Option<&str>) -> String {
    match deployed {
        Some(d) if Some(d) == local_sha256 => artifact.to_string(),
        Some(d) => format!("sha256:{d}"),
        None => "sha256:unknown".to_string(),
    }
}

/// The observed properties of a function, in the desired shape.
fn function_properties(
    config: &aws_sdk_lambda::types::FunctionConfiguration,
    name: &str,
    artifact: String,
) -> Value {
    // Sorted, for stable output: the API returns a hash map.
    let env: BTreeMap<&String, &String> = config
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    json!({
        "description": config.description().unwrap_or_default(),
        "runtime": config.runtime().map(Runtime::as_str),
        "handler": config.handler(),
        // Lambda's default when a function was made without the field.
        "architecture": config.architectures().first().map_or("x86_64", SdkArchitecture::as_str),
        "memorySize": config.memory_size(),
        "timeout": config.timeout(),
        "roleArn": config.role(),
        "artifact": artifact,
        "environment": env,
        // AWS reports `LoggingConfig` for every function; when it is absent the function
        // writes to Lambda's default group.
        "logGroup": config
            .logging_config()
            .and_then(LoggingConfig::log_group)
            .map_or_else(|| default_log_group(name), str::to_string),
    })
}

async fn read_function_tags(
    lambda: aws_sdk_lambda::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = lambda
        .list_tags()
        .resource(&arn)
        .send()
        .await
        .map_err(|e| classify_lambda(&format!("ListTags {arn}"), e))?;
    let sorted: BTreeMap<String, String> = out
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(sorted.into_iter().collect())
}

impl FunctionClient {
    /// The local package's hash per (artifact, architecture), which decides whether the
    /// deployed code is current. Without the artifact (a destroy on a machine that never built
    /// it) the hash is unknown and the deployed one is shown as it is: a plan then reports a
    /// code change, and create/update fail with the locate error. Plan and apply check the
    /// artifacts up front ([`super::check_artifacts`]).
    async fn local_hashes(
        &self,
        wanted: &[(&DesiredResource, Function, Architecture)],
    ) -> HashMap<(String, Architecture), Option<String>> {
        let mut hashes = HashMap::new();
        for (_, props, arch) in wanted {
            let key = (props.artifact.clone(), *arch);
            if hashes.contains_key(&key) {
                continue;
            }
            let hash = match self.artifacts.package_async(&props.artifact, *arch).await {
                Ok(package) => Some(package.code_sha256.clone()),
                Err(e) => {
                    tracing::warn!(artifact = props.artifact, error = %e, "the Lambda artifact is not available; deployed code cannot be compared");
                    None
                }
            };
            hashes.insert(key, hash);
        }
        hashes
    }

    /// Uploads the desired artifact for the desired architecture and waits until the function
    /// has taken it. The architecture belongs to the code: both change with
    /// `UpdateFunctionCode`.
    async fn update_code(
        &self,
        lambda: &aws_sdk_lambda::Client,
        desired: &DesiredResource,
        props: &Function,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        let arch = architecture(desired, props)?;
        let package = self.artifacts.package_async(&props.artifact, arch).await?;
        lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(package.zip.clone()))
            .architectures(SdkArchitecture::from(arch.as_str()))
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("UpdateFunctionCode {name}"), e))?;
        // Lambda takes one update at a time.
        wait_settled(lambda, name, self.settle).await
    }

    /// Sends the changed configuration fields in one `UpdateFunctionConfiguration` and waits
    /// until the function has taken them.
    async fn update_configuration(
        &self,
        lambda: &aws_sdk_lambda::Client,
        desired: &DesiredResource,
        props: &Function,
        changes: &[FieldChange],
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        let mut call = lambda.update_function_configuration().function_name(name);
        if touches(changes, "description") {
            call = call.description(&props.description);
        }
        if touches(changes, "runtime") {
            call = call.runtime(Runtime::from(props.runtime.as_str()));
        }
        if touches(changes, "handler") {
            call = call.handler(&props.handler);
        }
        if touches(changes, "memorySize") {
            call = call.memory_size(props.memory_size);
        }
        if touches(changes, "timeout") {
            call = call.timeout(props.timeout);
        }
        if touches(changes, "roleArn") {
            call = call.role(props.role_arn.get("roleArn")?);
        }
        if touches(changes, "environment") {
            // Lambda replaces the whole set of variables.
            call = call.environment(
                Environment::builder()
                    .set_variables(Some(environment(props)?))
                    .build(),
            );
        }
        if touches(changes, "logGroup") {
            call = call.logging_config(logging_config(props));
        }
        call.send()
            .await
            .map_err(|e| classify_lambda(&format!("UpdateFunctionConfiguration {name}"), e))?;
        wait_settled(lambda, name, self.settle).await
    }
}

#[async_trait]
impl KindClient<Function> for FunctionClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let mut wanted = Vec::with_capacity(desired.len());
        for d in desired {
            let props = reconciler_kinds::read::<Function>(d)?;
            let arch = architecture(d, &props)?;
            wanted.push((d, props, arch));
        }
        let hashes = self.local_hashes(&wanted).await;

        let lambda = self.pool.lambda(region);
        let by_name: HashMap<&str, usize> = wanted
            .iter()
            .enumerate()
            .map(|(i, (d, _, _))| (d.name.as_str(), i))
            .collect();
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let mut functions = lambda.list_functions().into_paginator().items().send();
        while let Some(function) = functions.next().await {
            let function = function.map_err(|e| classify_lambda("ListFunctions", e))?;
            let Some(&i) = function.function_name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            if function.function_arn().is_none() || !seen.insert(i) {
                continue;
            }
            found.push((&wanted[i], function));
            if seen.len() == by_name.len() {
                break;
            }
        }

        let objects: Vec<(&DesiredResource, String)> = found
            .iter()
            .map(|((d, _, _), f)| (*d, f.function_arn().unwrap_or_default().to_string()))
            .collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_function_tags(lambda.clone(), arn)
        })
        .await?;

        Ok(found
            .into_iter()
            .zip(tags)
            .map(|(((d, props, arch), config), tags)| {
                let local = hashes[&(props.artifact.clone(), *arch)].as_deref();
                let shown = observed_artifact(&props.artifact, local, config.code_sha256());
                util::observed(
                    d,
                    function_properties(&config, &d.name, shown),
                    [
                        ("arn", json!(config.function_arn())),
                        ("name", json!(d.name)),
                    ],
                    tags,
                )
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Function,
    ) -> Result<Observed, ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        let name = desired.name.as_str();
        let arch = architecture(desired, props)?;
        let package = self.artifacts.package_async(&props.artifact, arch).await?;
        let tags: HashMap<String, String> = desired
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let out = lambda
            .create_function()
            .function_name(name)
            .description(&props.description)
            .runtime(Runtime::from(props.runtime.as_str()))
            .handler(&props.handler)
            .architectures(SdkArchitecture::from(arch.as_str()))
            .memory_size(props.memory_size)
            .timeout(props.timeout)
            .role(props.role_arn.get("roleArn")?)
            .environment(
                Environment::builder()
                    .set_variables(Some(environment(props)?))
                    .build(),
            )
            .logging_config(logging_config(props))
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(package.zip.clone()))
                    .build(),
            )
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("CreateFunction {name}"), e))?;
        let arn = out.function_arn().map(str::to_string).ok_or_else(|| {
            ProviderError::transient(format!("CreateFunction {name}: no ARN in the answer"))
        })?;
        // A new function is `Pending` until Lambda has prepared it.
        let first = readiness(
            name,
            out.state(),
            out.state_reason(),
            out.last_update_status(),
            out.last_update_status_reason(),
        )?;
        if first != Progress::Done {
            wait_settled(&lambda, name, self.settle).await?;
        }
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("arn", json!(arn)), ("name", json!(name))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Function,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        if touches(changes, "artifact") || touches(changes, "architecture") {
            self.update_code(&lambda, desired, props).await?;
        }
        if CONFIG_FIELDS.iter().any(|f| touches(changes, f)) {
            self.update_configuration(&lambda, desired, props, changes)
                .await?;
        }
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        let name = desired.name.as_str();
        let arn = util::output(desired, observed, "arn")?;
        if !set.is_empty() {
            lambda
                .tag_resource()
                .resource(&arn)
                .set_tags(Some(set.clone().into_iter().collect()))
                .send()
                .await
                .map_err(|e| classify_lambda(&format!("TagResource {name}"), e))?;
        }
        if !remove.is_empty() {
            lambda
                .untag_resource()
                .resource(&arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify_lambda(&format!("UntagResource {name}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        // Deleting a function deletes its resource policy (the permissions) with it.
        self.pool
            .lambda(&desired.region)
            .delete_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("DeleteFunction {name}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_shows_the_deployed_hash_when_it_differs() {
        assert_eq!(observed_artifact("a", Some("h1"), Some("h1")), "a");
        assert_eq!(observed_artifact("a", Some("h1"), Some("h2")), "sha256:h2");
        assert_eq!(observed_artifact("a", None, Some("h1")), "sha256:h1");
    }
}
