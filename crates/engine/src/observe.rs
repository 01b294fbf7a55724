//! Batched observation: one provider call per (kind, region).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use indexmap::IndexMap;
use tokio::sync::Semaphore;

use crate::model::{DesiredGraph, DesiredResource, Kind, Observed, ResourceId};
use crate::provider::{ErrorClass, Provider, ProviderError, ResourceClient};
use crate::retry::RetryPolicy;

/// What exists, keyed by resource id. A desired resource missing here does
/// not exist in AWS.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedState {
    resources: IndexMap<ResourceId, Observed>,
    calls: usize,
}

impl ObservedState {
    /// An empty state (nothing exists).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a state from observations (for tests and tools).
    pub fn from_observed(items: impl IntoIterator<Item = Observed>) -> Self {
        ObservedState {
            resources: items.into_iter().map(|o| (o.id.clone(), o)).collect(),
            calls: 0,
        }
    }

    /// The observation of `id`, if it exists.
    pub fn get(&self, id: &ResourceId) -> Option<&Observed> {
        self.resources.get(id)
    }

    /// Whether `id` exists.
    pub fn exists(&self, id: &ResourceId) -> bool {
        self.resources.contains_key(id)
    }

    /// All observations.
    pub fn iter(&self) -> impl Iterator<Item = &Observed> {
        self.resources.values()
    }

    /// Number of existing resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether nothing exists.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// How many provider `observe` calls (attempts included) produced this
    /// state: a measure of batching.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Records or replaces an observation.
    pub fn insert(&mut self, observed: Observed) {
        self.resources.insert(observed.id.clone(), observed);
    }
}

/// Observation failed; nothing can be planned safely.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObserveError {
    /// No client is registered for a kind used by the graph.
    #[error("no provider client for kind `{kind}` (used by {})", ids.iter().map(ResourceId::as_str).collect::<Vec<_>>().join(", "))]
    UnknownKind {
        /// The kind.
        kind: Kind,
        /// The resources of that kind.
        ids: Vec<ResourceId>,
    },
    /// Reading some (kind, region) groups failed after retries.
    #[error("observing failed: {}", failures.iter().map(|(k, r, e)| format!("{k} in {r}: {e}")).collect::<Vec<_>>().join("; "))]
    Failed {
        /// (kind, region, last error) per failed group.
        failures: Vec<(Kind, String, ProviderError)>,
    },
}

/// Checks that every kind of `graph` has a client.
pub fn check_kinds(provider: &Provider, graph: &DesiredGraph) -> Result<(), ObserveError> {
    let mut missing: IndexMap<Kind, Vec<ResourceId>> = IndexMap::new();
    for r in graph.iter() {
        if provider.client(&r.kind).is_none() {
            missing
                .entry(r.kind.clone())
                .or_default()
                .push(r.id.clone());
        }
    }
    match missing.into_iter().next() {
        Some((kind, ids)) => Err(ObserveError::UnknownKind { kind, ids }),
        None => Ok(()),
    }
}

/// Observes every resource of `graph`: one `observe` call per (kind,
/// region), groups in parallel under `max_concurrency`, each retried per
/// `retry`.
pub async fn observe_graph(
    provider: &Provider,
    graph: &DesiredGraph,
    max_concurrency: usize,
    retry: &RetryPolicy,
    call_timeout: Option<Duration>,
) -> Result<ObservedState, ObserveError> {
    check_kinds(provider, graph)?;
    provider.observation_started();
    let semaphore = Arc::new(Semaphore::new(max_concurrency.max(1)));
    let mut tasks = FuturesUnordered::new();
    for ((kind, region), members) in graph.groups() {
        let client = provider.client(&kind).expect("checked").clone();
        let desired: Vec<DesiredResource> = members.into_iter().cloned().collect();
        let semaphore = semaphore.clone();
        tasks.push(async move {
            let result = observe_group(
                &*client,
                &kind,
                &region,
                &desired,
                &semaphore,
                retry,
                call_timeout,
            )
            .await;
            (kind, region, desired, result)
        });
    }
    let mut state = ObservedState::new();
    let mut failures = Vec::new();
    let mut results = Vec::new();
    while let Some(done) = tasks.next().await {
        results.push(done);
    }
    // Keep the graph's order in the state, whatever order groups finished in.
    let mut by_id: IndexMap<ResourceId, Observed> = IndexMap::new();
    for (kind, region, desired, result) in results {
        match result {
            Ok((observed, calls)) => {
                state.calls += calls;
                for o in observed {
                    if desired.iter().any(|d| d.id == o.id) {
                        by_id.insert(o.id.clone(), o);
                    } else {
                        tracing::warn!(%kind, %region, id = %o.id, "provider returned an observation for a resource it was not asked about; ignored");
                    }
                }
            }
            Err((e, calls)) => {
                state.calls += calls;
                failures.push((kind, region, e));
            }
        }
    }
    if !failures.is_empty() {
        return Err(ObserveError::Failed { failures });
    }
    for id in graph.ids() {
        if let Some(o) = by_id.shift_remove(id) {
            state.insert(o);
        }
    }
    Ok(state)
}

/// Calls `client.observe` with retries; returns the result and the number of
/// calls made.
pub(crate) async fn observe_group(
    client: &dyn ResourceClient,
    kind: &Kind,
    region: &str,
    desired: &[DesiredResource],
    semaphore: &Semaphore,
    retry: &RetryPolicy,
    call_timeout: Option<Duration>,
) -> Result<(Vec<Observed>, usize), (ProviderError, usize)> {
    let mut jitter = retry.jitter(&format!("observe:{kind}:{region}"));
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let result = {
            let _permit = semaphore
                .acquire()
                .await
                .expect("semaphore is never closed");
            with_timeout(call_timeout, client.observe(region, desired)).await
        };
        match result {
            Ok(observed) => return Ok((observed, attempt as usize)),
            Err(e) => {
                let backoff = retry.backoff(e.class);
                let retryable = !matches!(e.class, ErrorClass::Terminal | ErrorClass::NotFound);
                if !retryable || attempt >= backoff.max_attempts {
                    return Err((e, attempt as usize));
                }
                let delay = jitter.delay(&backoff, attempt);
                tracing::debug!(%kind, region, attempt, class = %e.class, ?delay, "observe failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs `fut`, turning an elapsed `limit` into a transient error.
pub(crate) async fn with_timeout<T>(
    limit: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    match limit {
        None => fut.await,
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::transient(format!(
                "call timed out after {limit:?}"
            ))),
        },
    }
}
