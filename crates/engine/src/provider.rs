//! The provider interface: one small client per resource kind.
//!
//! A [`ResourceClient`] knows how to observe, create, update and delete one
//! kind of AWS object; the engine is generic over it and owns everything
//! else (ordering, concurrency, retries, diffing). A [`Provider`] is the
//! registry of clients by kind.
//!
//! Clients report failures as a [`ProviderError`] whose [`ErrorClass`] drives
//! the single retry policy of the engine, so the mapping from AWS error codes
//! to classes lives in one place per service, not scattered retry loops.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::diff::FieldChange;
use crate::model::{DesiredResource, Kind, Observed};

/// How a failed call should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Rate limited (`Throttling`, `RequestLimitExceeded`): back off and retry.
    Throttled,
    /// Network errors, 5xx, timeouts: retry.
    Transient,
    /// The world has not caught up yet: an IAM role not yet assumable, a
    /// `DependencyViolation` while dependents are still going away, a newly
    /// created object not yet visible. Retry with longer patience.
    EventualConsistency,
    /// The object changed under us or already exists (another run, an
    /// interrupted run). The engine re-observes and decides again.
    Conflict,
    /// The object does not exist. A delete treats this as success; an
    /// update re-observes; a create treats it as eventual consistency (a
    /// dependency is not visible yet).
    NotFound,
    /// Retrying cannot help: validation errors, access denied, limits.
    Terminal,
}

impl ErrorClass {
    /// Lower-case name used in messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::EventualConsistency => "eventual-consistency",
            ErrorClass::Conflict => "conflict",
            ErrorClass::NotFound => "not-found",
            ErrorClass::Terminal => "terminal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct ProviderError {
    /// How to handle it.
    pub class: ErrorClass,
    /// The service's error code when there is one (`DependencyViolation`).
    pub code: Option<String>,
    /// Human-readable detail.
    pub message: String,
}

impl ProviderError {
    /// An error of `class` with `message` and no code.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError {
            class,
            code: None,
            message: message.into(),
        }
    }

    /// Attaches the service's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// A [`ErrorClass::Throttled`] error.
    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Throttled, message)
    }

    /// A [`ErrorClass::Transient`] error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    /// An [`ErrorClass::EventualConsistency`] error.
    pub fn eventual_consistency(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::EventualConsistency, message)
    }

    /// A [`ErrorClass::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Conflict, message)
    }

    /// A [`ErrorClass::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NotFound, message)
    }

    /// A [`ErrorClass::Terminal`] error.
    pub fn terminal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Terminal, message)
    }
}

/// How a resource whose immutable field changed is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplaceStrategy {
    /// Delete the old object, then create the new one. The default, because
    /// deterministic AWS names usually cannot exist twice.
    #[default]
    DeleteBeforeCreate,
    /// Create the new object, move dependents to it, then delete the old
    /// one. Only for kinds whose client can create a second object while the
    /// first exists (for example by suffixing the AWS name).
    CreateBeforeDelete,
}

/// Static facts about a kind that the engine needs to diff and schedule it.
///
/// Paths are patterns as described in [`crate::path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSpec {
    /// Fields that belong to the running system (ASG desired capacity, the
    /// A record value, alarm state). Set at create, never diffed, never reset.
    pub runtime_owned: Vec<String>,
    /// Fields AWS cannot change in place: a change plans a replacement.
    pub immutable: Vec<String>,
    /// Arrays compared as sets (order is irrelevant), e.g. security group
    /// rules that AWS returns in its own order.
    pub unordered: Vec<String>,
    /// How replacements are carried out.
    pub replace: ReplaceStrategy,
    /// Whether a delete must wait until the resources depending on it are
    /// deleted. True for nearly everything (AWS refuses to delete a VPC with
    /// subnets); false for kinds whose dependents merely point at them
    /// loosely, which lets a destroy go faster.
    pub delete_waits_for_dependents: bool,
}

impl Default for KindSpec {
    fn default() -> Self {
        KindSpec {
            runtime_owned: Vec::new(),
            immutable: Vec::new(),
            unordered: Vec::new(),
            replace: ReplaceStrategy::default(),
            delete_waits_for_dependents: true,
        }
    }
}

impl KindSpec {
    /// The default spec: everything managed and mutable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a runtime-owned path.
    pub fn runtime_owned(mut self, path: impl Into<String>) -> Self {
        self.runtime_owned.push(path.into());
        self
    }

    /// Declares an immutable path.
    pub fn immutable(mut self, path: impl Into<String>) -> Self {
        self.immutable.push(path.into());
        self
    }

    /// Declares an array path compared as a set.
    pub fn unordered(mut self, path: impl Into<String>) -> Self {
        self.unordered.push(path.into());
        self
    }

    /// Sets the replace strategy.
    pub fn replace_strategy(mut self, strategy: ReplaceStrategy) -> Self {
        self.replace = strategy;
        self
    }

    /// Sets whether deletes wait for dependents.
    pub fn delete_waits_for_dependents(mut self, wait: bool) -> Self {
        self.delete_waits_for_dependents = wait;
        self
    }
}

/// The per-kind client: observe, create, update, delete, nothing else.
///
/// Contract:
/// * `observe` is called once per (kind, region) with every desired resource
///   of that kind and region, refs not yet resolved. It lists/describes with
///   filters (deterministic names, ownership tags) and returns an
///   [`Observed`] for each one that exists, with `Observed::id` set to the
///   desired id. Missing resources are simply absent from the result.
/// * `create` and `update` receive the desired resource with every
///   reference resolved. Creates must be idempotent (derive client tokens
///   from the deterministic name) so an interrupted run is finished, not
///   duplicated; a create that finds the object already there returns
///   [`ErrorClass::Conflict`] and the engine re-observes.
/// * `update` receives the field-level changes to make; it must not touch
///   runtime-owned fields, which the engine never lists.
/// * `delete` receives the desired resource (for region and name) and the
///   observation (for AWS ids). A missing object may be reported as
///   [`ErrorClass::NotFound`]; the engine treats that as success.
#[async_trait]
pub trait ResourceClient: Send + Sync {
    /// The kind this client manages.
    fn kind(&self) -> Kind;

    /// Diff and scheduling facts for the kind.
    fn spec(&self) -> KindSpec {
        KindSpec::default()
    }

    /// Reads the current state of `desired` (all of this kind, in `region`)
    /// in as few calls as the service allows.
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError>;

    /// Creates the object and returns it as read back (with outputs).
    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError>;

    /// Applies `changes` to the object and returns it as read back.
    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError>;

    /// Deletes the object.
    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError>;
}

/// Called when an observation of a whole graph begins.
pub type ObservationHook = Arc<dyn Fn() + Send + Sync>;

/// The registry of clients by kind.
#[derive(Clone, Default)]
pub struct Provider {
    clients: HashMap<Kind, (Arc<dyn ResourceClient>, KindSpec)>,
    on_observation: Option<ObservationHook>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<&Kind> = self.clients.keys().collect();
        kinds.sort();
        f.debug_struct("Provider").field("kinds", &kinds).finish()
    }
}

impl Provider {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a client under its kind (replacing any earlier one). The
    /// kind's spec is read once here.
    pub fn register(&mut self, client: Arc<dyn ResourceClient>) -> &mut Self {
        let spec = client.spec();
        self.clients.insert(client.kind(), (client, spec));
        self
    }

    /// Builder form of [`Provider::register`].
    pub fn with(mut self, client: Arc<dyn ResourceClient>) -> Self {
        self.register(client);
        self
    }

    /// The client for `kind`.
    pub fn client(&self, kind: &Kind) -> Option<&Arc<dyn ResourceClient>> {
        self.clients.get(kind).map(|(c, _)| c)
    }

    /// The spec of `kind`.
    pub fn spec(&self, kind: &Kind) -> Option<&KindSpec> {
        self.clients.get(kind).map(|(_, s)| s)
    }

    /// Sets what runs when an observation of a whole graph begins: where clients that share
    /// reads across kinds within one observation (a region's tag index) forget the last one's.
    pub fn on_observation(&mut self, hook: ObservationHook) -> &mut Self {
        self.on_observation = Some(hook);
        self
    }

    /// Announces that an observation of a whole graph begins.
    pub fn observation_started(&self) {
        if let Some(hook) = &self.on_observation {
            hook();
        }
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.clients.keys().cloned().collect();
        kinds.sort();
        kinds
    }
}
