//! Reconciling one object: the function kube-rs's controller calls, written against two small
//! traits so that tests can drive it without an API server or AWS.
//!
//! - [`Kube`]: the Kubernetes side (list the namespace's Bases and ContainerSpecs, replace
//!   finalizers, write status, publish events);
//! - [`Aws`]: the AWS side (apply or destroy a server with its Base, or a Base alone). The
//!   `reconciler` command's library implements it with the same functions `apply` and
//!   `destroy` use, so the operator converges exactly what the command would.
//!
//! A reconcile returns an [`Action`] (requeue after the configured interval on success) or an
//! [`Error`], for which [`error_policy`] returns the object's next backoff delay. Status is
//! written in both cases, before returning, so `kubectl get` shows the failure at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use reconciler_spec::{
    ApiVersion, BaseDocument, BaseKind, ContainerSpecDocument, ContainerSpecKind, Metadata,
};

use crate::backoff::Backoff;
use crate::crd::{Base, Condition, ContainerSpec, Object, Runtime, Status, FINALIZER};

/// The reason of the conditions and event of a reconcile refused because AWS resources it
/// would change or delete belong to another owner.
pub const OWNED_BY_OTHER: &str = "OwnedByOther";

/// What the AWS side is asked to converge or delete: a server with its Base, or a Base alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The namespace of the objects (names diagnostics).
    pub namespace: String,
    /// The Base.
    pub base: BaseDocument,
    /// The server; `None` when the Base itself is reconciled.
    pub server: Option<ContainerSpecDocument>,
    /// The Base's other servers (not being deleted): what the Base shows of every server (its
    /// dashboards) is rendered from all of them, while only `server` and the Base are applied.
    pub others: Vec<ContainerSpecDocument>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyOutcome {
    /// Resources created, changed or deleted.
    pub changed: usize,
    /// Resources whose difference was drift (changed in AWS, not in the spec), now corrected.
    pub drifted: Vec<String>,
    /// `resource: error` for each resource that failed or was skipped; empty on success.
    pub errors: Vec<String>,
    /// The server's runtime state after the apply (servers only; `None` when unreadable).
    pub runtime: Option<Runtime>,
}

/// What a destroy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestroyOutcome {
    /// Resources deleted.
    pub deleted: usize,
    /// Resources kept because they hold data (file systems, backup vaults).
    pub retained: Vec<String>,
    /// `resource: error` for each resource that could not be deleted; empty on success.
    pub errors: Vec<String>,
}

/// A failure of the AWS side as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AwsError {
    /// The documents do not validate (the diagnostics, one per line).
    #[error("{0}")]
    Invalid(String),
    /// AWS could not be read or the plan could not be made.
    #[error("{0}")]
    Failed(String),
    /// The plan would change or delete AWS resources another owner made (another namespace's
    /// object, or `reconciler apply`); nothing was changed.
    #[error("{0}")]
    OwnedByOther(String),
}

/// The AWS side.
#[async_trait]
pub trait Aws: Send + Sync + 'static {
    /// Validates, observes, plans and applies `desired`; records the results as `apply` does.
    async fn apply(&self, desired: &Desired) -> Result<ApplyOutcome, AwsError>;
    /// Deletes the server of `desired` (or the Base, when there is no server) under
    /// `destroy`'s retention rules: data is kept unless `allow_data_loss`, and even then what
    /// the spec keeps on delete stays.
    async fn destroy(
        &self,
        desired: &Desired,
        allow_data_loss: bool,
    ) -> Result<DestroyOutcome, AwsError>;
}

/// A failed Kubernetes API call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct KubeError(pub String);

/// Which object a call is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// `ContainerSpec` or `Base`.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (for events).
    pub uid: Option<String>,
}

impl ObjectKey {
    /// The key of `obj`.
    pub fn of<O: Object>(obj: &O) -> Self {
        ObjectKey {
            kind: O::KIND,
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            uid: obj.uid(),
        }
    }

    /// `Kind/namespace/name`: the backoff's key.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The Kubernetes side.
#[async_trait]
pub trait Kube: Send + Sync + 'static {
    /// The Bases of a namespace.
    async fn bases(&self, namespace: &str) -> Result<Vec<Base>, KubeError>;
    /// The ContainerSpecs of a namespace.
    async fn servers(&self, namespace: &str) -> Result<Vec<ContainerSpec>, KubeError>;
    /// Replaces the object's finalizers, failing when its `resourceVersion` is no longer
    /// `resource_version` (someone else changed it meanwhile).
    async fn set_finalizers(
        &self,
        key: &ObjectKey,
        finalizers: Vec<String>,
        resource_version: Option<String>,
    ) -> Result<(), KubeError>;
    /// Replaces the object's status.
    async fn patch_status(&self, key: &ObjectKey, status: &Status) -> Result<(), KubeError>;
    /// Publishes an event about the object; failures are logged, never fatal.
    async fn event(&self, key: &ObjectKey, warning: bool, reason: &str, note: &str);
}

/// How the operator reconciles.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time between reconciles of an object that succeeded (drift is found this often).
    pub requeue: Duration,
    /// The first retry delay after a failure.
    pub retry_min: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// Delete file systems and backup vaults whose spec does not keep them, when a
    /// ContainerSpec is deleted (as `destroy --allow-data-loss`).
    pub allow_data_loss: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            requeue: Duration::from_secs(300),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            allow_data_loss: false,
        }
    }
}

/// Everything a reconcile needs.
pub struct Context<K, A> {
    /// The Kubernetes side.
    pub kube: K,
    /// The AWS side.
    pub aws: A,
    /// Settings.
    pub config: Config,
    /// Per-object failure counts.
    pub backoff: Backoff,
    /// One AWS reconcile at a time: a server's apply also converges its Base's shared
    /// resources, and two of them at once would race to create the same VPC.
    aws_lock: tokio::sync::Mutex<()>,
}

impl<K: Kube, A: Aws> Context<K, A> {
    /// A context with no object backing off.
    pub fn new(kube: K, aws: A, config: Config) -> Self {
        Context {
            kube,
            aws,
            backoff: Backoff::new(config.retry_min, config.retry_max),
            config,
            aws_lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] KubeError),
    /// The server's Base is missing or ambiguous.
    #[error("{0}")]
    Base(String),
    /// The object does not validate.
    #[error("invalid spec: {0}")]
    Invalid(String),
    /// AWS could not be converged (or cleaned up).
    #[error("{0}")]
    Aws(String),
    /// A Base cannot be deleted while servers use it.
    #[error("still used by {0}")]
    InUse(String),
}

/// The one error policy: the object's next exponential backoff delay.
pub fn error_policy<O: Object, K: Kube, A: Aws>(
    obj: Arc<O>,
    error: &Error,
    ctx: Arc<Context<K, A>>,
) -> Action {
    let key = ObjectKey::of(&*obj);
    let wait = ctx.backoff.fail(&key.id());
    tracing::warn!(object = %key, failures = ctx.backoff.failures(&key.id()), retry_in = ?wait, %error, "reconcile failed");
    Action::requeue(wait)
}

/// Reconciles a ContainerSpec: applies it with its Base, or, once it is being deleted,
/// destroys its AWS resources and releases the finalizer.
pub async fn reconcile_server<K: Kube, A: Aws>(
    obj: Arc<ContainerSpec>,
    ctx: Arc<Context<K, A>>,
) -> Result<Action, Error> {
    let key = ObjectKey::of(&*obj);
    let bases = ctx.kube.bases(&key.namespace).await?;
    let base = pick_base(&bases, obj.spec.base_ref.as_deref(), &key.namespace);
    if obj.metadata.deletion_timestamp.is_some() {
        if !has_finalizer(&*obj) {
            ctx.backoff.reset(&key.id());
            return Ok(Action::await_change());
        }
        let Ok(base) = base else {
            // A Base keeps its finalizer while servers use it, so a missing Base means this
            // server was never applied: there is nothing in AWS to delete.
            ctx.kube
                .event(
                    &key,
                    true,
                    "NothingToDelete",
                    "no Base for this server, so it was never applied; nothing deleted in AWS",
                )
                .await;
            return release(&*obj, &key, &ctx).await;
        };
        if let Some(wait) = fresh(&*obj, &ctx, &key) {
            return Ok(Action::requeue(wait));
        }
        let desired = with_others(
            &ctx.kube,
            &key.namespace,
            desired(&key.namespace, base, Some(&*obj)),
        )
        .await?;
        return cleanup(&*obj, &key, desired, &ctx).await;
    }
    ensure_finalizer(&*obj, &key, &ctx).await?;
    if let Some(wait) = fresh(&*obj, &ctx, &key) {
        return Ok(Action::requeue(wait));
    }
    let base = match base {
        Ok(base) => base,
        Err(message) => {
            let status = failed_status(
                obj.status(),
                obj.metadata.generation,
                "BaseNotFound",
                &message,
            );
            write_status(&*ctx, &key, obj.status(), &status).await?;
            return Err(Error::Base(message));
        }
    };
    let desired = with_others(
        &ctx.kube,
        &key.namespace,
        desired(&key.namespace, base, Some(&*obj)),
    )
    .await?;
    converge(&*obj, &key, desired, &ctx).await
}

/// Reconciles a Base: applies its shared resources, or, once it is being deleted and no
/// server of its namespace uses it any more, destroys them and releases the finalizer.
pub async fn reconcile_base<K: Kube, A: Aws>(
    obj: Arc<Base>,
    ctx: Arc<Context<K, A>>,
) -> Result<Action, Error> {
    let key = ObjectKey::of(&*obj);
    let desired = desired(&key.namespace, &obj, None);
    if obj.metadata.deletion_timestamp.is_some() {
        if !has_finalizer(&*obj) {
            ctx.backoff.reset(&key.id());
            return Ok(Action::await_change());
        }
        let bases = ctx.kube.bases(&key.namespace).await?;
        let users: Vec<String> = ctx
            .kube
            .servers(&key.namespace)
            .await?
            .iter()
            .filter(|s| {
                pick_base(&bases, s.spec.base_ref.as_deref(), &key.namespace)
                    .is_ok_and(|b| b.name_any() == key.name)
            })
            .map(|s| s.name_any())
            .collect();
        if !users.is_empty() {
            let message = format!(
                "waiting for the ContainerSpecs that use this Base to be deleted: {}",
                users.join(", ")
            );
            let status = failed_status(obj.status(), obj.metadata.generation, "InUse", &message);
            write_status(&*ctx, &key, obj.status(), &status).await?;
            return Err(Error::InUse(users.join(", ")));
        }
        if let Some(wait) = fresh(&*obj, &ctx, &key) {
            return Ok(Action::requeue(wait));
        }
        return cleanup(&*obj, &key, desired, &ctx).await;
    }
    ensure_finalizer(&*obj, &key, &ctx).await?;
    if let Some(wait) = fresh(&*obj, &ctx, &key) {
        return Ok(Action::requeue(wait));
    }
    let desired = with_others(&ctx.kube, &key.namespace, desired).await?;
    converge(&*obj, &key, desired, &ctx).await
}

/// The Base an object refers to: `spec.baseRef`, or the namespace's only Base.
pub fn pick_base<'a>(
    bases: &'a [Base],
    base_ref: Option<&str>,
    namespace: &str,
) -> Result<&'a Base, String> {
    match base_ref {
        Some(name) => bases
            .iter()
            .find(|b| b.name_any() == name)
            .ok_or_else(|| format!("Base `{name}` not found in namespace `{namespace}`")),
        None => match bases {
            [only] => Ok(only),
            [] => Err(format!("no Base in namespace `{namespace}`")),
            many => Err(format!(
                "spec.baseRef is required: namespace `{namespace}` has several Bases ({})",
                many.iter()
                    .map(|b| b.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
    }
}

/// The documents the AWS side gets: the same shape as the spec files.
fn desired(namespace: &str, base: &Base, server: Option<&ContainerSpec>) -> Desired {
    Desired {
        namespace: namespace.to_string(),
        base: BaseDocument {
            api_version: ApiVersion::V1Alpha1,
            kind: BaseKind::Base,
            metadata: Metadata {
                name: base.name_any(),
            },
            spec: base.spec.clone(),
        },
        server: server.map(document),
        others: Vec::new(),
    }
}

fn document(s: &ContainerSpec) -> ContainerSpecDocument {
    ContainerSpecDocument {
        api_version: ApiVersion::V1Alpha1,
        kind: ContainerSpecKind::ContainerSpec,
        metadata: Metadata { name: s.name_any() },
        spec: s.spec.clone(),
    }
}

/// `desired` with the Base's other servers of the namespace: those that use it, are not being
/// deleted and are not `desired.server`.
async fn with_others<K: Kube>(
    kube: &K,
    namespace: &str,
    mut desired: Desired,
) -> Result<Desired, Error> {
    let bases = kube.bases(namespace).await?;
    let own = desired.server.as_ref().map(|s| s.metadata.name.clone());
    desired.others = kube
        .servers(namespace)
        .await?
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| own.as_deref() != Some(s.name_any().as_str()))
        .filter(|s| {
            pick_base(&bases, s.spec.base_ref.as_deref(), namespace)
                .is_ok_and(|b| b.name_any() == desired.base.metadata.name)
        })
        .map(document)
        .collect();
    Ok(desired)
}

fn has_finalizer<O: Object>(obj: &O) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds the finalizer before anything is created in AWS, so no object can be forgotten by
/// Kubernetes while its resources still exist.
async fn ensure_finalizer<O: Object, K: Kube, A: Aws>(
    obj: &O,
    key: &ObjectKey,
    ctx: &Context<K, A>,
) -> Result<(), Error> {
    if has_finalizer(obj) {
        return Ok(());
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    ctx.kube
        .set_finalizers(key, finalizers, obj.resource_version())
        .await?;
    Ok(())
}

async fn release<O: Object, K: Kube, A: Aws>(
    obj: &O,
    key: &ObjectKey,
    ctx: &Context<K, A>,
) -> Result<Action, Error> {
    let finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    ctx.kube
        .set_finalizers(key, finalizers, obj.resource_version())
        .await?;
    ctx.backoff.reset(&key.id());
    Ok(Action::await_change())
}

async fn cleanup<O: Object, K: Kube, A: Aws>(
    obj: &O,
    key: &ObjectKey,
    desired: Desired,
    ctx: &Context<K, A>,
) -> Result<Action, Error> {
    let outcome = {
        let _one_at_a_time = ctx.aws_lock.lock().await;
        ctx.aws.destroy(&desired, ctx.config.allow_data_loss).await
    };
    let failure = match outcome {
        Ok(out) if out.errors.is_empty() => {
            let mut note = format!("{} AWS resources deleted", out.deleted);
            if !out.retained.is_empty() {
                note.push_str(&format!("; data kept: {}", out.retained.join(", ")));
            }
            tracing::info!(object = %key, deleted = out.deleted, retained = out.retained.len(), "AWS resources deleted");
            ctx.kube.event(key, false, "Deleted", &note).await;
            return release(obj, key, ctx).await;
        }
        Ok(out) => ("DeleteFailed", out.errors.join("; ")),
        Err(AwsError::OwnedByOther(message)) => (OWNED_BY_OTHER, message),
        Err(e) => ("DeleteFailed", e.to_string()),
    };
    let (reason, failure) = failure;
    let status = failed_status(obj.status(), obj.meta().generation, reason, &failure);
    write_status(ctx, key, obj.status(), &status).await?;
    ctx.kube.event(key, true, reason, &failure).await;
    Err(Error::Aws(failure))
}

async fn converge<O: Object, K: Kube, A: Aws>(
    obj: &O,
    key: &ObjectKey,
    desired: Desired,
    ctx: &Context<K, A>,
) -> Result<Action, Error> {
    let generation = obj.meta().generation;
    let outcome = {
        let _one_at_a_time = ctx.aws_lock.lock().await;
        ctx.aws.apply(&desired).await
    };
    let out = match outcome {
        Ok(out) => out,
        Err(AwsError::Invalid(message)) => {
            let status = failed_status(obj.status(), generation, "InvalidSpec", &message);
            write_status(ctx, key, obj.status(), &status).await?;
            ctx.kube.event(key, true, "InvalidSpec", &message).await;
            return Err(Error::Invalid(message));
        }
        Err(AwsError::Failed(message)) => {
            let status = failed_status(obj.status(), generation, "ReconcileError", &message);
            write_status(ctx, key, obj.status(), &status).await?;
            return Err(Error::Aws(message));
        }
        Err(AwsError::OwnedByOther(message)) => {
            let status = failed_status(obj.status(), generation, OWNED_BY_OTHER, &message);
            write_status(ctx, key, obj.status(), &status).await?;
            ctx.kube.event(key, true, OWNED_BY_OTHER, &message).await;
            return Err(Error::Aws(message));
        }
    };
    let previous = obj.status();
    let now = now_rfc3339();
    let ok = out.errors.is_empty();
    let drift = if out.drifted.is_empty() {
        (false, "NoDrift", String::new())
    } else {
        (
            true,
            "DriftCorrected",
            format!(
                "changed outside the spec and set back: {}",
                out.drifted.join(", ")
            ),
        )
    };
    let first_error = out.errors.first().cloned();
    let status = Status {
        observed_generation: generation,
        conditions: conditions(
            previous,
            generation,
            &now,
            &[
                (
                    "Ready",
                    Some(ok),
                    if ok { "Available" } else { "ApplyFailed" },
                    if ok {
                        "every AWS resource exists as specified".to_string()
                    } else {
                        format!(
                            "{} AWS resources failed or wait on a failure",
                            out.errors.len()
                        )
                    },
                ),
                (
                    "Synced",
                    Some(ok),
                    if ok {
                        "ReconcileSuccess"
                    } else {
                        "ApplyFailed"
                    },
                    first_error.clone().unwrap_or_default(),
                ),
                ("Drifted", Some(drift.0), drift.1, drift.2),
            ],
        ),
        last_error: first_error.clone(),
        last_reconcile_time: Some(now),
        changed: Some(u32::try_from(out.changed).unwrap_or(u32::MAX)),
        runtime: out
            .runtime
            .clone()
            .or_else(|| previous.and_then(|p| p.runtime.clone())),
    };
    write_status(ctx, key, obj.status(), &status).await?;
    if out.changed > 0 {
        ctx.kube
            .event(
                key,
                !ok,
                if ok { "Reconciled" } else { "ApplyFailed" },
                &format!("{} AWS resources changed", out.changed),
            )
            .await;
    }
    match first_error {
        Some(error) => Err(Error::Aws(error)),
        None => {
            ctx.backoff.reset(&key.id());
            Ok(Action::requeue(ctx.config.requeue))
        }
    }
}

/// `Some(wait)` when the object's status already describes its generation and was written
/// less than a requeue interval (after a success) or a backoff delay (after a failure) ago.
/// The event that woke the reconcile was then the operator's own status write, and acting on
/// it would defeat both the interval and the backoff. A new generation (a spec change, a
/// deletion) always goes through. A Base waiting for its servers to go is not held back, so
/// that a server's deletion wakes it.
fn fresh<O: Object, K: Kube, A: Aws>(
    obj: &O,
    ctx: &Context<K, A>,
    key: &ObjectKey,
) -> Option<Duration> {
    let status = obj.status()?;
    if status.observed_generation.is_none() || status.observed_generation != obj.meta().generation {
        return None;
    }
    let at =
        k8s_openapi::chrono::DateTime::parse_from_rfc3339(status.last_reconcile_time.as_deref()?)
            .ok()?;
    let synced = status.conditions.iter().find(|c| c.type_ == "Synced")?;
    // A deletion bumps the generation on a real API server; this holds without relying on it.
    let deletion_failed = matches!(synced.reason.as_str(), "DeleteFailed" | OWNED_BY_OTHER);
    if obj.meta().deletion_timestamp.is_some() && !deletion_failed {
        return None;
    }
    let window = match (synced.status.as_str(), synced.reason.as_str()) {
        ("True", _) => ctx.config.requeue,
        (_, "InUse") => return None,
        _ => crate::backoff::delay(
            ctx.config.retry_min,
            ctx.config.retry_max,
            ctx.backoff.failures(&key.id()).max(1),
        ),
    };
    let elapsed = (k8s_openapi::chrono::Utc::now() - at.to_utc())
        .to_std()
        .unwrap_or(Duration::ZERO);
    (elapsed < window).then(|| window - elapsed)
}

/// Writes `status` unless it differs from `previous` only in `lastReconcileTime`: a failure
/// that repeats itself changes nothing a person needs to see, and an unchanged object wakes
/// no watcher.
async fn write_status<K: Kube, A: Aws>(
    ctx: &Context<K, A>,
    key: &ObjectKey,
    previous: Option<&Status>,
    status: &Status,
) -> Result<(), KubeError> {
    if let Some(previous) = previous {
        let mut same = previous.clone();
        same.last_reconcile_time = status.last_reconcile_time.clone();
        if same == *status {
            return Ok(());
        }
    }
    ctx.kube.patch_status(key, status).await
}

/// The status after a failure before (or instead of) an apply: Synced and Ready false with
/// `reason`, the rest kept.
fn failed_status(
    previous: Option<&Status>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
) -> Status {
    let now = now_rfc3339();
    let mut status = previous.cloned().unwrap_or_default();
    let drifted = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == "Drifted"))
        .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()));
    let mut wanted = vec![
        ("Ready", Some(false), reason, message.to_string()),
        ("Synced", Some(false), reason, message.to_string()),
    ];
    let drifted_reason;
    if let Some((value, reason, message)) = drifted {
        drifted_reason = reason;
        wanted.push(("Drifted", Some(value), drifted_reason.as_str(), message));
    }
    status.conditions = conditions(previous, generation, &now, &wanted);
    status.observed_generation = generation;
    status.last_error = Some(message.to_string());
    status.last_reconcile_time = Some(now);
    status
}

/// Conditions with their transition times kept when their status did not change.
fn conditions(
    previous: Option<&Status>,
    generation: Option<i64>,
    now: &str,
    wanted: &[(&str, Option<bool>, &str, String)],
) -> Vec<Condition> {
    wanted
        .iter()
        .map(|(type_, value, reason, message)| {
            let status = match value {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            };
            let since = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == *type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.clone(),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// Now, RFC 3339 in UTC to the second, as Kubernetes writes times.
pub fn now_rfc3339() -> String {
    k8s_openapi::chrono::Utc::now().to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true)
}
