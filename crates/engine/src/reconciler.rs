//! The entry point tying observe, plan and execute together.

use std::time::Duration;

use indexmap::IndexSet;

use crate::execute::{self, ApplyReport, EventSink};
use crate::model::{DesiredGraph, ResourceId};
use crate::observe::{self, ObserveError, ObservedState};
use crate::plan::{self, Plan, PlanError};
use crate::provider::Provider;
use crate::retry::RetryPolicy;

/// Knobs shared by observation and execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Maximum provider calls in flight at once (at least 1). AWS throttles
    /// per account and API, so a handful is plenty.
    pub max_concurrency: usize,
    /// Retry budgets per error class.
    pub retry: RetryPolicy,
    /// Limit on a single provider call; an elapsed call counts as a
    /// transient error. `None` (the default) leaves timeouts to the clients,
    /// whose creates may legitimately wait for an object to become
    /// available.
    pub call_timeout: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            call_timeout: None,
        }
    }
}

impl Options {
    /// Sets `max_concurrency`.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the per-call timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }
}

/// Observing or planning failed; nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReconcileError {
    /// Observation failed.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// The reconcile loop: observe -> diff -> plan -> execute.
///
/// ```text
/// let reconciler = Reconciler::new(provider, Options::default());
/// let observed = reconciler.observe(&graph).await?;
/// let plan = reconciler.plan(&graph, &observed, &[])?;
/// print!("{plan}");
/// let report = reconciler.apply(&plan, &events).await;
/// ```
#[derive(Debug, Clone)]
pub struct Reconciler {
    provider: Provider,
    options: Options,
}

impl Reconciler {
    /// A reconciler over `provider`.
    pub fn new(provider: Provider, options: Options) -> Self {
        Reconciler { provider, options }
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Reads what exists for every resource of `graph`, one provider call
    /// per (kind, region). Resources meant for deletion are part of the
    /// graph, so they are observed the same way.
    pub async fn observe(&self, graph: &DesiredGraph) -> Result<ObservedState, ObserveError> {
        observe::observe_graph(
            &self.provider,
            graph,
            self.options.max_concurrency,
            &self.options.retry,
            self.options.call_timeout,
        )
        .await
    }

    /// Plans the changes that make AWS match `graph`, where the resources
    /// listed in `delete` should not exist (prune: render the removed specs
    /// into the graph and list their ids here).
    pub fn plan(
        &self,
        graph: &DesiredGraph,
        observed: &ObservedState,
        delete: &[ResourceId],
    ) -> Result<Plan, PlanError> {
        let delete: IndexSet<ResourceId> = delete.iter().cloned().collect();
        plan::plan(graph, observed, &delete, &self.provider)
    }

    /// Plans the deletion of everything in `graph` that exists, dependents
    /// first; resources retained on delete are listed as retained.
    pub fn plan_destroy(
        &self,
        graph: &DesiredGraph,
        observed: &ObservedState,
    ) -> Result<Plan, PlanError> {
        let delete: IndexSet<ResourceId> = graph.ids().cloned().collect();
        plan::plan(graph, observed, &delete, &self.provider)
    }

    /// Executes `plan`, reporting progress to `events`.
    pub async fn apply(&self, plan: &Plan, events: &dyn EventSink) -> ApplyReport {
        execute::execute(plan, &self.provider, &self.options, events).await
    }

    /// Observe, plan and apply in one go.
    pub async fn reconcile(
        &self,
        graph: &DesiredGraph,
        delete: &[ResourceId],
        events: &dyn EventSink,
    ) -> Result<(Plan, ApplyReport), ReconcileError> {
        let observed = self.observe(graph).await?;
        let plan = self.plan(graph, &observed, delete)?;
        let report = self.apply(&plan, events).await;
        Ok((plan, report))
    }

    /// Observe, plan the destroy, and apply it.
    pub async fn destroy(
        &self,
        graph: &DesiredGraph,
        events: &dyn EventSink,
    ) -> Result<(Plan, ApplyReport), ReconcileError> {
        let observed = self.observe(graph).await?;
        let plan = self.plan_destroy(graph, &observed)?;
        let report = self.apply(&plan, events).await;
        Ok((plan, report))
    }
}
