//! Lambda: functions (packaged from the `reconciler-lambda` artifact) and permissions.
//!
//! Observation cost, per region: one paginated `ListFunctions` finds every desired function by
//! name (the API has no name filter; the listing stops once every desired name was seen), plus
//! one `ListTags` per existing function, because Lambda has no batch tag read. Permissions cost
//! one `GetPolicy` per distinct function, because a function's resource policy can only be read
//! whole, one function at a time.
//!
//! **Code changes** are found without any state: the artifact is packaged deterministically
//! (see [`package`]), so its `CodeSha256` is known before anything is uploaded and is compared
//! with the one Lambda reports. The observed `artifact` is the desired artifact name when the
//! two match and `sha256:<deployed hash>` when they do not, which the diff shows as a change of
//! `/artifact`. Because observe packages the artifact, a plan fails at once with a clear error
//! when the binary is missing or built for the wrong architecture.
//!
//! **Life cycle**: a new function is `Pending` until Lambda has prepared it, and a function
//! accepts one update at a time (`LastUpdateStatus` `InProgress`). Updates, permissions and
//! invocations fail meanwhile, so create and update wait (bounded) until the function is
//! settled before returning. A just-created IAM role is often not yet assumable by Lambda
//! (`InvalidParameterValueException: The role defined for the function cannot be assumed by
//! Lambda`); [`crate::error`] classifies that as eventual consistency, so the create is retried.

pub mod package;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as SdkArchitecture, Environment, FunctionCode, LastUpdateStatus, LogFormat,
    LoggingConfig, Runtime, State,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{
    ErrorClass, KindSpec, ProviderError, ReplaceStrategy, ResourceClient,
};
use reconciler_render::kinds;
use serde_json::{json, Map, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, tag_delta};
use crate::util::{self, touches, touches_tags};
use crate::util::{read_all, updated};

pub use package::{Architecture, ArtifactLocator, Package};

/// Locates and packages every artifact the functions in `desired` need, so that plan and
/// apply stop before any AWS call when one is missing or wrong (a terminal error saying where
/// it was looked for and how to build it). The packages stay cached for observe and create.
pub async fn check_artifacts<'a>(
    locator: &ArtifactLocator,
    desired: impl IntoIterator<Item = &'a DesiredResource>,
) -> Result<(), ProviderError> {
    let mut seen = HashSet::new();
    for d in desired {
        if d.kind.as_str() != kinds::FUNCTION {
            continue;
        }
        let artifact = util::str_prop(d, "artifact")?.to_string();
        let arch = architecture(d)?;
        if seen.insert((artifact.clone(), arch)) {
            locator.package_async(&artifact, arch).await?;
        }
    }
    Ok(())
}

/// The clients of this service. Functions find their artifact the default way (see
/// [`ArtifactLocator::from_process`]).
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(FunctionClient::new(pool.clone())),
        Arc::new(PermissionClient::new(pool.clone())),
    ]
}

// ---------------------------------------------------------------------------------------------
// Errors and waiting.
// ---------------------------------------------------------------------------------------------

/// Lambda's own reading of two codes the shared table leaves terminal:
/// `ResourceConflictException` means "already exists" (a function name, a permission's
/// statement id) except when Lambda is busy with the function ("The operation cannot be
/// performed at this time. An update is in progress for resource: ...", or the function is
/// still `Pending`), which passes by itself; `ResourceNotReadyException` (the function is not
/// active yet) passes too.
fn reclassify(mut err: ProviderError) -> ProviderError {
    match err.code.as_deref() {
        Some("ResourceConflictException") => {
            let m = err.message.to_ascii_lowercase();
            err.class = if m.contains("in progress")
                || m.contains("cannot be performed at this time")
                || m.contains("currently in the following state")
            {
                ErrorClass::EventualConsistency
            } else {
                ErrorClass::Conflict
            };
        }
        Some("ResourceNotReadyException") => err.class = ErrorClass::EventualConsistency,
        _ => {}
    }
    err
}

/// [`classify`] with Lambda's reading of its conflict codes.
fn classify_lambda<E>(what: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    reclassify(classify(what, err))
}

/// Bounded polling with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Poll {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
    /// Give up once this much time has passed.
    pub limit: Duration,
}

/// Lambda usually settles within seconds; five minutes covers a slow region.
const SETTLE: Poll = Poll {
    first: Duration::from_secs(1),
    max: Duration::from_secs(5),
    limit: Duration::from_secs(300),
};

/// One look at something being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Settled.
    Done,
    /// Not yet; the text names the state, for the timeout message.
    Waiting(String),
}

/// Calls `check` until it reports [`Progress::Done`], pausing `first`, then twice as long each
/// time up to `max`. Errors from `check` end the wait; running past `limit` is an
/// eventual-consistency error, so the engine tries again later.
pub(crate) async fn poll_until<F, Fut>(
    what: &str,
    poll: Poll,
    mut check: F,
) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress, ProviderError>>,
{
    let start = Instant::now();
    let mut pause = poll.first;
    loop {
        let state = match check().await? {
            Progress::Done => return Ok(()),
            Progress::Waiting(state) => state,
        };
        if start.elapsed() + pause > poll.limit {
            return Err(ProviderError::eventual_consistency(format!(
                "{what}: still {state} after {}s",
                start.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll.max);
    }
}

/// Whether a function can take the next call, from its `State` and `LastUpdateStatus`.
fn readiness(
    name: &str,
    state: Option<&State>,
    state_reason: Option<&str>,
    update: Option<&LastUpdateStatus>,
    update_reason: Option<&str>,
) -> Result<Progress, ProviderError> {
    match state {
        Some(State::Pending | State::Deactivating | State::Deleting) => {
            return Ok(Progress::Waiting(
                state.map_or("", State::as_str).to_string(),
            ));
        }
        Some(State::Failed) => {
            return Err(ProviderError::terminal(format!(
                "Lambda function {name} failed to become active: {}",
                state_reason.unwrap_or("no reason given")
            )));
        }
        _ => {}
    }
    match update {
        Some(LastUpdateStatus::InProgress) => Ok(Progress::Waiting("updating".into())),
        Some(LastUpdateStatus::Failed) => Err(ProviderError::terminal(format!(
            "the last update of Lambda function {name} failed: {}",
            update_reason.unwrap_or("no reason given")
        ))),
        _ => Ok(Progress::Done),
    }
}

/// Waits until the function is active and no update is in progress.
async fn wait_settled(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    poll: Poll,
) -> Result<(), ProviderError> {
    poll_until(&format!("Lambda function {name}"), poll, || {
        let lambda = lambda.clone();
        let name = name.to_string();
        async move {
            let out = lambda
                .get_function_configuration()
                .function_name(&name)
                .send()
                .await
                .map_err(|e| classify_lambda(&format!("GetFunctionConfiguration {name}"), e))?;
            readiness(
                &name,
                out.state(),
                out.state_reason(),
                out.last_update_status(),
                out.last_update_status_reason(),
            )
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Functions.
// ---------------------------------------------------------------------------------------------

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

/// `lambda.function`, by function name: `description`, `runtime`, `handler`, `architecture`,
/// `memorySize`, `timeout`, `roleArn`, `artifact`, `environment`, `logGroup`. Outputs `arn`,
/// `name`.
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
fn architecture(desired: &DesiredResource) -> Result<Architecture, ProviderError> {
    let text = util::str_prop(desired, "architecture")?;
    Architecture::parse(text).ok_or_else(|| {
        ProviderError::terminal(format!(
            "{}: architecture `{text}` is not one Lambda runs (x86_64, arm64)",
            desired.id
        ))
    })
}

/// An integer property that fits the API's 32-bit field.
fn i32_prop(desired: &DesiredResource, key: &str) -> Result<i32, ProviderError> {
    let value = util::i64_prop(desired, key)?;
    i32::try_from(value).map_err(|_| {
        ProviderError::terminal(format!("{}: `{key}` {value} is out of range", desired.id))
    })
}

/// The desired environment variables (all values must be strings by now).
fn environment(desired: &DesiredResource) -> Result<HashMap<String, String>, ProviderError> {
    let Some(vars) = desired.properties.get("environment") else {
        return Ok(HashMap::new());
    };
    let Some(vars) = vars.as_object() else {
        return Err(util::missing(desired, "environment"));
    };
    vars.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => Err(ProviderError::terminal(format!(
                "{}: environment variable `{k}` is not a string",
                desired.id
            ))),
        })
        .collect()
}

fn log_group(desired: &DesiredResource) -> String {
    util::opt_str(desired, "logGroup")
        .map(str::to_string)
        .unwrap_or_else(|| default_log_group(&desired.name))
}

fn logging_config(desired: &DesiredResource) -> LoggingConfig {
    LoggingConfig::builder()
        .log_group(log_group(desired))
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

fn function_arn(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("arn")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an ARN", desired.id)))
}

#[async_trait]
impl ResourceClient for FunctionClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::FUNCTION)
    }

    fn spec(&self) -> KindSpec {
        // Everything changes in place: the architecture with the code, the rest with the
        // configuration.
        KindSpec::new()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        // The local package's hash decides whether the deployed code is current. Without the
        // artifact (a destroy on a machine that never built it) the deployed hash is shown as
        // it is: a plan then reports a code change, and create/update fail with the locate
        // error. Plan and apply check the artifacts up front (`check_artifacts`).
        let mut hashes: HashMap<(String, Architecture), Option<String>> = HashMap::new();
        for d in desired {
            let artifact = util::str_prop(d, "artifact")?.to_string();
            let arch = architecture(d)?;
            if !hashes.contains_key(&(artifact.clone(), arch)) {
                let hash = match self.artifacts.package_async(&artifact, arch).await {
                    Ok(package) => Some(package.code_sha256.clone()),
                    Err(e) => {
                        tracing::warn!(artifact, error = %e, "the Lambda artifact is not available; deployed code cannot be compared");
                        None
                    }
                };
                hashes.insert((artifact, arch), hash);
            }
        }

        let lambda = self.pool.lambda(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        let mut functions = lambda.list_functions().into_paginator().items().send();
        while let Some(function) = functions.next().await {
            let function = function.map_err(|e| classify_lambda("ListFunctions", e))?;
            let Some(d) = function.function_name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            if function.function_arn().is_none() || !seen.insert(d.name.as_str()) {
                continue;
            }
            found.push((*d, function));
            if seen.len() == by_name.len() {
                break;
            }
        }

        let objects: Vec<(&DesiredResource, String)> = found
            .iter()
            .map(|(d, f)| (*d, f.function_arn().unwrap_or_default().to_string()))
            .collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_function_tags(lambda.clone(), arn)
        })
        .await?;

        let mut out = Vec::new();
        for ((d, config), tags) in found.into_iter().zip(tags) {
            let artifact = util::str_prop(d, "artifact")?;
            let local = hashes[&(artifact.to_string(), architecture(d)?)].as_deref();
            let shown = observed_artifact(artifact, local, config.code_sha256());
            out.push(util::observed(
                d,
                function_properties(&config, &d.name, shown),
                [
                    ("arn", json!(config.function_arn())),
                    ("name", json!(d.name)),
                ],
                tags,
            ));
        }
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        let name = desired.name.as_str();
        let arch = architecture(desired)?;
        let artifact = util::str_prop(desired, "artifact")?;
        let package = self.artifacts.package_async(artifact, arch).await?;
        let tags: HashMap<String, String> = desired
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let out = lambda
            .create_function()
            .function_name(name)
            .description(util::opt_str(desired, "description").unwrap_or_default())
            .runtime(Runtime::from(util::str_prop(desired, "runtime")?))
            .handler(util::str_prop(desired, "handler")?)
            .architectures(SdkArchitecture::from(arch.as_str()))
            .memory_size(i32_prop(desired, "memorySize")?)
            .timeout(i32_prop(desired, "timeout")?)
            .role(util::str_prop(desired, "roleArn")?)
            .environment(
                Environment::builder()
                    .set_variables(Some(environment(desired)?))
                    .build(),
            )
            .logging_config(logging_config(desired))
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
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let lambda = self.pool.lambda(&desired.region);
        let name = desired.name.as_str();

        // The architecture belongs to the code: both change with `UpdateFunctionCode`.
        if touches(changes, "artifact") || touches(changes, "architecture") {
            let arch = architecture(desired)?;
            let package = self
                .artifacts
                .package_async(util::str_prop(desired, "artifact")?, arch)
                .await?;
            lambda
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(package.zip.clone()))
                .architectures(SdkArchitecture::from(arch.as_str()))
                .send()
                .await
                .map_err(|e| classify_lambda(&format!("UpdateFunctionCode {name}"), e))?;
            // Lambda takes one update at a time.
            wait_settled(&lambda, name, self.settle).await?;
        }

        if CONFIG_FIELDS.iter().any(|f| touches(changes, f)) {
            let mut call = lambda.update_function_configuration().function_name(name);
            if touches(changes, "description") {
                call = call.description(util::opt_str(desired, "description").unwrap_or_default());
            }
            if touches(changes, "runtime") {
                call = call.runtime(Runtime::from(util::str_prop(desired, "runtime")?));
            }
            if touches(changes, "handler") {
                call = call.handler(util::str_prop(desired, "handler")?);
            }
            if touches(changes, "memorySize") {
                call = call.memory_size(i32_prop(desired, "memorySize")?);
            }
            if touches(changes, "timeout") {
                call = call.timeout(i32_prop(desired, "timeout")?);
            }
            if touches(changes, "roleArn") {
                call = call.role(util::str_prop(desired, "roleArn")?);
            }
            if touches(changes, "environment") {
                // Lambda replaces the whole set of variables.
                call = call.environment(
                    Environment::builder()
                        .set_variables(Some(environment(desired)?))
                        .build(),
                );
            }
            if touches(changes, "logGroup") {
                call = call.logging_config(logging_config(desired));
            }
            call.send()
                .await
                .map_err(|e| classify_lambda(&format!("UpdateFunctionConfiguration {name}"), e))?;
            wait_settled(&lambda, name, self.settle).await?;
        }

        if touches_tags(changes) {
            let arn = function_arn(desired, observed)?;
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                lambda
                    .tag_resource()
                    .resource(&arn)
                    .set_tags(Some(set.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| classify_lambda(&format!("TagResource {name}"), e))?;
            }
            if !remove.is_empty() {
                lambda
                    .untag_resource()
                    .resource(&arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify_lambda(&format!("UntagResource {name}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let lambda = self.pool.lambda(&desired.region);
        let name = desired.name.as_str();
        // Deleting a function deletes its resource policy (the permissions) with it.
        lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("DeleteFunction {name}"), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Permissions.
// ---------------------------------------------------------------------------------------------

/// `lambda.permission`, by statement id: `functionName` (a literal name), `action`,
/// `principal`, `sourceArn`. A statement of a function's resource policy cannot be edited, so
/// every field is immutable (a change replaces it: remove, then add). Untaggable; no outputs.
pub struct PermissionClient {
    pool: Arc<ClientPool>,
}

impl PermissionClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        PermissionClient { pool }
    }
}

/// The function a permission belongs to, which must be a literal (render writes the
/// deterministic name) so observe can read its policy before anything is resolved.
fn permission_function(desired: &DesiredResource) -> Result<&str, ProviderError> {
    desired
        .properties
        .get("functionName")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::terminal(format!(
                "{}: `functionName` must be the function's literal name",
                desired.id
            ))
        })
}

/// A function's resource policy, or `None` when the function or its policy does not exist.
async fn read_policy(
    lambda: aws_sdk_lambda::Client,
    function: String,
) -> Result<Option<Value>, ProviderError> {
    match lambda.get_policy().function_name(&function).send().await {
        Ok(out) => Ok(out.policy().map(util::parse_policy)),
        Err(e) => {
            let err = classify_lambda(&format!("GetPolicy {function}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// A value under `key`, ignoring the key's case (policy condition keys are case-insensitive).
fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The statement `sid` of `policy` in the desired shape.
fn statement_properties(policy: &Value, sid: &str, function: &str) -> Option<Value> {
    let statement = policy
        .get("Statement")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))?;
    let one = |v: &Value| match v {
        Value::Array(items) if items.len() == 1 => items[0].clone(),
        other => other.clone(),
    };
    let action = statement.get("Action").map(one).unwrap_or(Value::Null);
    let principal = match statement.get("Principal") {
        Some(Value::Object(p)) => p
            .get("Service")
            .or_else(|| p.get("AWS"))
            .map(one)
            .unwrap_or_else(|| Value::Object(p.clone())),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    let source_arn = statement
        .get("Condition")
        .and_then(Value::as_object)
        .and_then(|c| get_ignore_case(c, "ArnLike"))
        .and_then(Value::as_object)
        .and_then(|a| get_ignore_case(a, "AWS:SourceArn"))
        .map(one)
        .unwrap_or(Value::Null);
    Some(json!({
        "functionName": function,
        "action": action,
        "principal": principal,
        "sourceArn": source_arn,
    }))
}

#[async_trait]
impl ResourceClient for PermissionClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::LAMBDA_PERMISSION)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new()
            .immutable("/functionName")
            .immutable("/action")
            .immutable("/principal")
            .immutable("/sourceArn")
            // Same statement id: the old statement must go before the new one is added.
            .replace_strategy(ReplaceStrategy::DeleteBeforeCreate)
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let lambda = self.pool.lambda(region);
        let mut functions: Vec<String> = Vec::new();
        for d in desired {
            let f = permission_function(d)?;
            if !functions.iter().any(|x| x == f) {
                functions.push(f.to_string());
            }
        }
        // No batch form: one `GetPolicy` per function.
        let policies = read_all(
            functions
                .iter()
                .map(|f| read_policy(lambda.clone(), f.clone()))
                .collect(),
        )
        .await?;
        let by_function: HashMap<&str, &Value> = functions
            .iter()
            .zip(&policies)
            .filter_map(|(f, p)| p.as_ref().map(|p| (f.as_str(), p)))
            .collect();
        let mut out = Vec::new();
        for d in desired {
            let function = permission_function(d)?;
            let Some(policy) = by_function.get(function) else {
                continue;
            };
            if let Some(properties) = statement_properties(policy, &d.name, function) {
                out.push(util::observed(d, properties, [], IndexMap::new()));
            }
        }
        Ok(out)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        let function = permission_function(desired)?;
        let sid = desired.name.as_str();
        lambda
            .add_permission()
            .function_name(function)
            .statement_id(sid)
            .action(util::str_prop(desired, "action")?)
            .principal(util::str_prop(desired, "principal")?)
            .set_source_arn(util::opt_str(desired, "sourceArn").map(str::to_string))
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("AddPermission {function} {sid}"), e))?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // Every field is immutable and there are no tags, so the engine replaces instead.
        if let Some(change) = changes.first() {
            return Err(ProviderError::terminal(format!(
                "{}: a Lambda permission cannot be changed in place (`{}`); it is replaced",
                desired.id, change.path
            )));
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let lambda = self.pool.lambda(&desired.region);
        let function = permission_function(desired)?;
        let sid = desired.name.as_str();
        lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("RemovePermission {function} {sid}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::classify_code;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    fn coded(code: &str, message: &str) -> ProviderError {
        ProviderError::new(classify_code(code, message), format!("Op x: {message}")).with_code(code)
    }

    #[test]
    fn lambda_errors_are_classified_for_retry() {
        // A just-created role is not yet assumable: retry, do not fail.
        let e = reclassify(coded(
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded(
            "InvalidParameterValueException",
            "Runtime python9 is not supported",
        ));
        assert_eq!(e.class, ErrorClass::Terminal);
        // Busy with an update or still pending: retry.
        let e = reclassify(coded(
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for \
             resource: arn:aws:lambda:us-east-1:123456789012:function:rc-x",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded(
            "ResourceConflictException",
            "The operation cannot be performed at this time. The function is currently in the \
             following state: Pending",
        ));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        // Already there: re-observe and adopt.
        let e = reclassify(coded(
            "ResourceConflictException",
            "Function already exist: rc-x",
        ));
        assert_eq!(e.class, ErrorClass::Conflict);
        let e = reclassify(coded(
            "ResourceConflictException",
            "The statement id (rc-x-invoke) provided already exists. Please provide a new \
             statement id, or remove the existing statement.",
        ));
        assert_eq!(e.class, ErrorClass::Conflict);
        let e = reclassify(coded("ResourceNotReadyException", "not active"));
        assert_eq!(e.class, ErrorClass::EventualConsistency);
        let e = reclassify(coded("ResourceNotFoundException", "Function not found"));
        assert_eq!(e.class, ErrorClass::NotFound);
    }

    const QUICK: Poll = Poll {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        limit: Duration::from_secs(5),
    };

    /// Polls over a scripted sequence of (State, LastUpdateStatus), counting the looks.
    async fn settle_over(
        states: Vec<(Option<State>, Option<LastUpdateStatus>)>,
        poll: Poll,
    ) -> (Result<(), ProviderError>, usize) {
        let script = Mutex::new(VecDeque::from(states));
        let looks = Mutex::new(0usize);
        let result = poll_until("Lambda function f", poll, || {
            *looks.lock().unwrap() += 1;
            let next = script.lock().unwrap().pop_front();
            async move {
                let (state, update) = next.expect("polled past the script");
                readiness(
                    "f",
                    state.as_ref(),
                    Some("why"),
                    update.as_ref(),
                    Some("why"),
                )
            }
        })
        .await;
        let n = *looks.lock().unwrap();
        (result, n)
    }

    #[tokio::test]
    async fn waits_from_pending_to_active() {
        let (result, looks) = settle_over(
            vec![
                (Some(State::Pending), None),
                (Some(State::Pending), Some(LastUpdateStatus::InProgress)),
                (Some(State::Active), Some(LastUpdateStatus::InProgress)),
                (Some(State::Active), Some(LastUpdateStatus::Successful)),
            ],
            QUICK,
        )
        .await;
        result.unwrap();
        assert_eq!(looks, 4);
        // Moto's answer: active at once, no update status.
        let (result, looks) = settle_over(vec![(Some(State::Active), None)], QUICK).await;
        result.unwrap();
        assert_eq!(looks, 1);
    }

    #[tokio::test]
    async fn failures_end_the_wait_and_timeouts_retry_later() {
        let (result, _) = settle_over(
            vec![(Some(State::Pending), None), (Some(State::Failed), None)],
            QUICK,
        )
        .await;
        assert_eq!(result.unwrap_err().class, ErrorClass::Terminal);
        let (result, _) = settle_over(
            vec![(Some(State::Active), Some(LastUpdateStatus::Failed))],
            QUICK,
        )
        .await;
        assert_eq!(result.unwrap_err().class, ErrorClass::Terminal);
        let never = Poll {
            first: Duration::from_millis(5),
            max: Duration::from_millis(5),
            limit: Duration::from_millis(12),
        };
        let (result, looks) = settle_over(vec![(Some(State::Pending), None); 10], never).await;
        let err = result.unwrap_err();
        assert_eq!(err.class, ErrorClass::EventualConsistency);
        assert!(err.message.contains("Pending"), "{err}");
        assert!((2..10).contains(&looks), "{looks} looks");
    }

    #[test]
    fn artifact_shows_the_deployed_hash_when_it_differs() {
        assert_eq!(observed_artifact("a", Some("h1"), Some("h1")), "a");
        assert_eq!(observed_artifact("a", Some("h1"), Some("h2")), "sha256:h2");
        assert_eq!(observed_artifact("a", None, Some("h1")), "sha256:h1");
    }

    #[test]
    fn statements_map_back_to_the_desired_shape() {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Sid": "other", "Action": "lambda:InvokeFunction", "Principal": "*" },
                {
                    "Sid": "rc-mc-crash-loop-invoke",
                    "Effect": "Allow",
                    "Principal": { "Service": "events.amazonaws.com" },
                    "Action": "lambda:InvokeFunction",
                    "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                    "Condition": { "ArnLike": { "AWS:SourceArn": "arn:aws:events:us-east-1:1:rule/r" } }
                }
            ]
        });
        assert_eq!(
            statement_properties(&policy, "rc-mc-crash-loop-invoke", "f").unwrap(),
            json!({
                "functionName": "f",
                "action": "lambda:InvokeFunction",
                "principal": "events.amazonaws.com",
                "sourceArn": "arn:aws:events:us-east-1:1:rule/r"
            })
        );
        assert_eq!(
            statement_properties(&policy, "other", "f").unwrap()["sourceArn"],
            Value::Null
        );
        assert!(statement_properties(&policy, "missing", "f").is_none());
    }
}
