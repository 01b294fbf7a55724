//! Running a plan over the dependency DAG.
//!
//! Each resource's action expands into operations:
//!
//! | action  | operations |
//! |---------|------------|
//! | create  | `Create` |
//! | update  | `Update` |
//! | delete  | `Delete` |
//! | replace | `DeleteReplaced` then `CreateReplacement` (delete-before-create), or the reverse (create-before-delete) |
//!
//! and the operations are ordered by these edges:
//!
//! * a create/update runs after the create/update of each dependency (so
//!   the dependency's outputs are known when references are resolved);
//! * a delete runs after the delete of each dependent (unless the kind says
//!   deletes need not wait), so deletes go in reverse dependency order;
//! * the old object of a create-before-delete replacement is deleted only
//!   after its dependents were created/updated (moved to the new object).
//!
//! Ready operations run concurrently; a semaphore bounds the number of
//! provider calls in flight (`max_concurrency`). A permit is held only for
//! the duration of a call, not during backoff sleeps, so a resource waiting
//! for IAM propagation does not hold up others. Everything runs on the
//! caller's task: concurrency comes from async I/O, not threads.
//!
//! A failed operation marks every operation that depends on it, directly or
//! not, as skipped, naming the failed resources; unrelated branches go on.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use indexmap::IndexSet;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::diff::{self, FieldChange};
use crate::model::{resolve_refs, DesiredResource, Kind, Observed, ResourceId};
use crate::observe::with_timeout;
use crate::plan::{self, Action, Plan};
use crate::provider::{
    ErrorClass, KindSpec, Provider, ProviderError, ReplaceStrategy, ResourceClient,
};
use crate::reconciler::Options;

/// One provider-level step of a resource's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Create a missing resource.
    Create,
    /// Update an existing resource in place.
    Update,
    /// Delete a resource that should not exist.
    Delete,
    /// Create the new object of a replacement.
    CreateReplacement,
    /// Delete the old object of a replacement.
    DeleteReplaced,
}

impl Operation {
    /// Short verb for progress output.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::CreateReplacement => "create replacement",
            Operation::DeleteReplaced => "delete replaced",
        }
    }

    fn is_delete(self) -> bool {
        matches!(self, Operation::Delete | Operation::DeleteReplaced)
    }
}

/// A progress event, so a CLI can print per-resource progress as it
/// happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyEvent {
    /// The resource.
    pub id: ResourceId,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum EventKind {
    /// The first call of an operation is about to be made.
    Started {
        /// The operation.
        operation: Operation,
    },
    /// A call failed with a retryable error; the next attempt follows after
    /// `delay`.
    Retrying {
        /// The operation.
        operation: Operation,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Its error class.
        class: ErrorClass,
        /// The wait before the next attempt.
        delay: Duration,
        /// The error message.
        message: String,
    },
    /// The operation completed.
    Succeeded {
        /// The operation.
        operation: Operation,
        /// Provider calls it took (0 when nothing was left to do).
        attempts: u32,
    },
    /// The operation failed for good.
    Failed {
        /// The operation.
        operation: Operation,
        /// The last error.
        error: ProviderError,
        /// Provider calls it took.
        attempts: u32,
    },
    /// The resource was not touched because something it needs failed.
    /// Sent when the run ends, so `blocked_by` names every failed resource
    /// it waited for.
    Skipped {
        /// The failed resources it (transitively) waits for.
        blocked_by: Vec<ResourceId>,
    },
}

/// Receives progress events. Implemented for closures and for unbounded
/// tokio channels.
pub trait EventSink: Send + Sync {
    /// Handles one event; must not block.
    fn emit(&self, event: ApplyEvent);
}

impl<F: Fn(ApplyEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: ApplyEvent) {
        self(event)
    }
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<ApplyEvent> {
    fn emit(&self, event: ApplyEvent) {
        // A receiver that went away only means nobody is listening.
        let _ = self.send(event);
    }
}

/// An [`EventSink`] that drops events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: ApplyEvent) {}
}

/// How a resource fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// Nothing needed doing.
    Unchanged,
    /// The planned action was carried out.
    Succeeded,
    /// An operation failed; the error is the last one seen.
    Failed {
        /// The error.
        error: ProviderError,
    },
    /// Not attempted because a resource it depends on failed.
    Skipped {
        /// The failed resources it (transitively) waits for.
        blocked_by: Vec<ResourceId>,
    },
    /// Kept although it is to be deleted.
    Retained,
    /// A replacement was refused because the resource is retained.
    Blocked,
}

/// The result for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceReport {
    /// Resource id.
    pub id: ResourceId,
    /// Resource kind.
    pub kind: Kind,
    /// The planned action.
    pub action: Action,
    /// What happened.
    pub outcome: Outcome,
    /// Provider calls made for it (retries included, refreshes excluded).
    pub attempts: u32,
    /// The state after apply (`None` when it no longer exists or is
    /// unknown).
    pub observed: Option<Observed>,
}

/// Outcome counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplyCounts {
    /// Carried out.
    pub succeeded: usize,
    /// Nothing to do.
    pub unchanged: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped because of a failure upstream.
    pub skipped: usize,
    /// Retained on delete.
    pub retained: usize,
    /// Replacement refused by retention.
    pub blocked: usize,
}

/// The outcome of an apply: one entry per plan entry, in plan order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    resources: Vec<ResourceReport>,
}

impl ApplyReport {
    /// Per-resource results in plan order.
    pub fn resources(&self) -> &[ResourceReport] {
        &self.resources
    }

    /// The result for `id`.
    pub fn get(&self, id: &ResourceId) -> Option<&ResourceReport> {
        self.resources.iter().find(|r| &r.id == id)
    }

    /// The outcome for `id`.
    pub fn outcome(&self, id: &ResourceId) -> Option<&Outcome> {
        self.get(id).map(|r| &r.outcome)
    }

    /// Counts per outcome.
    pub fn counts(&self) -> ApplyCounts {
        let mut c = ApplyCounts::default();
        for r in &self.resources {
            match r.outcome {
                Outcome::Unchanged => c.unchanged += 1,
                Outcome::Succeeded => c.succeeded += 1,
                Outcome::Failed { .. } => c.failed += 1,
                Outcome::Skipped { .. } => c.skipped += 1,
                Outcome::Retained => c.retained += 1,
                Outcome::Blocked => c.blocked += 1,
            }
        }
        c
    }

    /// Provider calls made in total.
    pub fn total_attempts(&self) -> u32 {
        self.resources.iter().map(|r| r.attempts).sum()
    }

    /// True when nothing failed or was skipped.
    pub fn is_success(&self) -> bool {
        let c = self.counts();
        c.failed == 0 && c.skipped == 0
    }

    /// Failed resources with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&ResourceId, &ProviderError)> {
        self.resources.iter().filter_map(|r| match &r.outcome {
            Outcome::Failed { error } => Some((&r.id, error)),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum OpState {
    Waiting,
    Running,
    Done { called: bool },
    Failed(ProviderError),
    Skipped,
}

struct OpNode {
    res: usize,
    op: Operation,
    dependents: Vec<usize>,
    pending: usize,
    state: OpState,
    attempts: u32,
    blocked_by: IndexSet<ResourceId>,
}

struct OpInput {
    node: usize,
    id: ResourceId,
    op: Operation,
    client: Arc<dyn ResourceClient>,
    spec: KindSpec,
    raw: DesiredResource,
    desired: DesiredResource,
    observed: Option<Observed>,
}

struct OpDone {
    node: usize,
    result: Result<Option<Observed>, ProviderError>,
    attempts: u32,
    called: bool,
}

struct Ctx<'a> {
    options: &'a Options,
    semaphore: Semaphore,
    events: &'a dyn EventSink,
}

impl Ctx<'_> {
    fn emit(&self, id: &ResourceId, kind: EventKind) {
        self.events.emit(ApplyEvent {
            id: id.clone(),
            kind,
        });
    }
}

/// Runs `plan`. Never panics on provider errors and never aborts the whole
/// run for one resource: see the module docs for ordering and failure
/// isolation.
pub async fn execute(
    plan: &Plan,
    provider: &Provider,
    options: &Options,
    events: &dyn EventSink,
) -> ApplyReport {
    let entries = plan.resources();
    let index = plan::index(plan);
    let ctx = Ctx {
        options,
        semaphore: Semaphore::new(options.max_concurrency.max(1)),
        events,
    };

    let mut nodes = build_nodes(entries, &index, provider);

    let mut current: Vec<Option<Observed>> = entries.iter().map(|r| r.observed.clone()).collect();
    let mut ready: BTreeSet<usize> = (0..nodes.len())
        .filter(|&n| nodes[n].pending == 0)
        .collect();

    // Defensive: operations on an ordering cycle can never become ready.
    for n in cycle_members(&nodes) {
        let id = entries[nodes[n].res].id.clone();
        let err = ProviderError::terminal("internal error: operations are ordered in a cycle");
        fail(&mut nodes, &mut ready, entries, n, err, &id);
    }

    let mut running = FuturesUnordered::new();
    loop {
        while let Some(n) = ready.pop_first() {
            if nodes[n].state != OpState::Waiting {
                continue;
            }
            let r = &entries[nodes[n].res];
            match prepare(provider, entries, &index, &current, &nodes[n], n) {
                Ok(input) => {
                    nodes[n].state = OpState::Running;
                    running.push(run_op(&ctx, input));
                }
                Err(err) => {
                    ctx.emit(
                        &r.id,
                        EventKind::Failed {
                            operation: nodes[n].op,
                            error: err.clone(),
                            attempts: 0,
                        },
                    );
                    let id = r.id.clone();
                    fail(&mut nodes, &mut ready, entries, n, err, &id);
                }
            }
        }
        let Some(done) = running.next().await else {
            break;
        };
        let n = done.node;
        nodes[n].attempts += done.attempts;
        let res = nodes[n].res;
        match done.result {
            Ok(observed) => {
                let old_gone = match nodes[n].op {
                    Operation::Delete => true,
                    // Delete-before-create: nothing exists until the
                    // replacement is created. Create-before-delete: the
                    // replacement is current already.
                    Operation::DeleteReplaced => {
                        entries[res].replace_strategy != Some(ReplaceStrategy::CreateBeforeDelete)
                    }
                    _ => false,
                };
                if old_gone {
                    current[res] = None;
                } else if !nodes[n].op.is_delete() {
                    current[res] = observed;
                }
                nodes[n].state = OpState::Done {
                    called: done.called,
                };
                for d in nodes[n].dependents.clone() {
                    nodes[d].pending -= 1;
                    if nodes[d].pending == 0 && nodes[d].state == OpState::Waiting {
                        ready.insert(d);
                    }
                }
            }
            Err(err) => {
                let id = entries[res].id.clone();
                fail(&mut nodes, &mut ready, entries, n, err, &id);
            }
        }
    }

    // Assemble per-resource outcomes.
    let mut reports = Vec::with_capacity(entries.len());
    for (i, r) in entries.iter().enumerate() {
        let ops: Vec<&OpNode> = nodes.iter().filter(|n| n.res == i).collect();
        let attempts = ops.iter().map(|n| n.attempts).sum();
        let outcome = match r.action {
            Action::NoOp => Outcome::Unchanged,
            Action::Retain => Outcome::Retained,
            Action::Blocked => Outcome::Blocked,
            _ => {
                if let Some(err) = ops.iter().find_map(|n| match &n.state {
                    OpState::Failed(e) => Some(e.clone()),
                    _ => None,
                }) {
                    Outcome::Failed { error: err }
                } else if ops.iter().any(|n| n.state == OpState::Skipped) {
                    let mut blocked: IndexSet<ResourceId> = IndexSet::new();
                    for n in &ops {
                        blocked.extend(n.blocked_by.iter().cloned());
                    }
                    let blocked_by: Vec<ResourceId> = blocked.into_iter().collect();
                    ctx.emit(
                        &r.id,
                        EventKind::Skipped {
                            blocked_by: blocked_by.clone(),
                        },
                    );
                    Outcome::Skipped { blocked_by }
                } else if ops
                    .iter()
                    .all(|n| n.state == OpState::Done { called: false })
                {
                    Outcome::Unchanged
                } else {
                    Outcome::Succeeded
                }
            }
        };
        reports.push(ResourceReport {
            id: r.id.clone(),
            kind: r.kind.clone(),
            action: r.action,
            outcome,
            attempts,
            observed: current[i].clone(),
        });
    }
    ApplyReport { resources: reports }
}

/// Expands plan entries into operation nodes and orders them (see the
/// module docs for the edges).
fn build_nodes(
    entries: &[plan::ResourcePlan],
    index: &indexmap::IndexMap<ResourceId, usize>,
    provider: &Provider,
) -> Vec<OpNode> {
    let mut nodes: Vec<OpNode> = Vec::new();
    let mut apply_op: Vec<Option<usize>> = vec![None; entries.len()];
    let mut delete_op: Vec<Option<usize>> = vec![None; entries.len()];
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let push = |nodes: &mut Vec<OpNode>, res: usize, op: Operation| {
        nodes.push(OpNode {
            res,
            op,
            dependents: Vec::new(),
            pending: 0,
            state: OpState::Waiting,
            attempts: 0,
            blocked_by: IndexSet::new(),
        });
        nodes.len() - 1
    };
    for (i, r) in entries.iter().enumerate() {
        match r.action {
            Action::Create => apply_op[i] = Some(push(&mut nodes, i, Operation::Create)),
            Action::Update => apply_op[i] = Some(push(&mut nodes, i, Operation::Update)),
            Action::Delete => delete_op[i] = Some(push(&mut nodes, i, Operation::Delete)),
            Action::Replace => {
                let d = push(&mut nodes, i, Operation::DeleteReplaced);
                let c = push(&mut nodes, i, Operation::CreateReplacement);
                if r.replace_strategy == Some(ReplaceStrategy::CreateBeforeDelete) {
                    edges.push((c, d));
                } else {
                    edges.push((d, c));
                }
                apply_op[i] = Some(c);
                delete_op[i] = Some(d);
            }
            Action::NoOp | Action::Retain | Action::Blocked => {}
        }
    }
    for (i, r) in entries.iter().enumerate() {
        for dep in &r.depends_on {
            let Some(&j) = index.get(dep) else {
                continue;
            };
            if let (Some(a_i), Some(a_j)) = (apply_op[i], apply_op[j]) {
                edges.push((a_j, a_i));
            }
            if let (Some(d_i), Some(d_j)) = (delete_op[i], delete_op[j]) {
                let waits = provider
                    .spec(&entries[j].kind)
                    .is_none_or(|s| s.delete_waits_for_dependents);
                if waits {
                    edges.push((d_i, d_j));
                }
            }
            if let (Some(d_j), Some(a_i)) = (delete_op[j], apply_op[i]) {
                if entries[j].replace_strategy == Some(ReplaceStrategy::CreateBeforeDelete) {
                    edges.push((a_i, d_j));
                }
            }
        }
    }
    for &(before, after) in &edges {
        nodes[before].dependents.push(after);
        nodes[after].pending += 1;
    }

    nodes
}

/// Marks `n` failed and every operation downstream of it skipped.
fn fail(
    nodes: &mut [OpNode],
    ready: &mut BTreeSet<usize>,
    entries: &[plan::ResourcePlan],
    n: usize,
    err: ProviderError,
    id: &ResourceId,
) {
    tracing::warn!(%id, operation = nodes[n].op.as_str(), error = %err, "operation failed");
    nodes[n].state = OpState::Failed(err);
    let mut stack = nodes[n].dependents.clone();
    while let Some(d) = stack.pop() {
        ready.remove(&d);
        let newly = nodes[d].blocked_by.insert(id.clone());
        if nodes[d].state == OpState::Waiting {
            nodes[d].state = OpState::Skipped;
            tracing::info!(id = %entries[nodes[d].res].id, blocked_by = %id, "skipped");
        }
        if newly {
            stack.extend(nodes[d].dependents.iter().copied());
        }
    }
}

fn cycle_members(nodes: &[OpNode]) -> Vec<usize> {
    let mut pending: Vec<usize> = nodes.iter().map(|n| n.pending).collect();
    let mut queue: Vec<usize> = (0..nodes.len()).filter(|&n| pending[n] == 0).collect();
    let mut seen = vec![false; nodes.len()];
    while let Some(n) = queue.pop() {
        seen[n] = true;
        for &d in &nodes[n].dependents {
            pending[d] -= 1;
            if pending[d] == 0 {
                queue.push(d);
            }
        }
    }
    (0..nodes.len()).filter(|&n| !seen[n]).collect()
}

/// Resolves references for a create/update from the outputs known now.
fn prepare(
    provider: &Provider,
    entries: &[plan::ResourcePlan],
    index: &indexmap::IndexMap<ResourceId, usize>,
    current: &[Option<Observed>],
    node: &OpNode,
    n: usize,
) -> Result<OpInput, ProviderError> {
    let r = &entries[node.res];
    let client = provider
        .client(&r.kind)
        .ok_or_else(|| {
            ProviderError::terminal(format!("no provider client for kind `{}`", r.kind))
        })?
        .clone();
    let spec = provider.spec(&r.kind).cloned().unwrap_or_default();
    let mut desired = r.desired.clone();
    let observed = match node.op {
        Operation::Create | Operation::CreateReplacement => None,
        Operation::Update => current[node.res].clone(),
        // The old object, even if a create-before-delete replacement already
        // recorded the new one as current.
        Operation::Delete | Operation::DeleteReplaced => r.observed.clone(),
    };
    if !node.op.is_delete() {
        let lookup = |reference: &crate::model::Reference| {
            index
                .get(&reference.id)
                .and_then(|&j| current[j].as_ref())
                .and_then(|o| o.output(&reference.attr))
                .cloned()
        };
        let unresolved = resolve_refs(&mut desired.properties, &lookup);
        if let Some(first) = unresolved.first() {
            return Err(ProviderError::terminal(format!(
                "reference to `{}` attribute `{}` cannot be resolved: the resource has no such output",
                first.id, first.attr
            )));
        }
    }
    Ok(OpInput {
        node: n,
        id: r.id.clone(),
        op: node.op,
        client,
        spec,
        raw: r.desired.clone(),
        desired,
        observed,
    })
}

/// What the operation has to do next; a refresh after a conflict may change
/// it.
enum Step {
    Create,
    Update(Observed, Vec<FieldChange>),
    Delete(Observed),
}

/// What to do given a fresh observation.
enum Decision {
    /// Make this call.
    Call(Step),
    /// Nothing left to do; this is the resulting state.
    Finished(Option<Observed>),
}

/// Decides the next step of an operation from a fresh observation: a
/// delete of something gone is done, a create of something that exists
/// becomes an update or nothing, an update of something gone becomes a
/// create.
fn decide(input: &OpInput, observed: Option<Observed>) -> Result<Decision, ProviderError> {
    if input.op.is_delete() {
        return Ok(match observed {
            Some(o) => Decision::Call(Step::Delete(o)),
            None => Decision::Finished(None),
        });
    }
    let Some(o) = observed else {
        return Ok(Decision::Call(Step::Create));
    };
    let d = diff::diff(
        &input.desired.properties,
        &input.desired.tags,
        &o,
        &input.spec,
    );
    if d.is_empty() {
        return Ok(Decision::Finished(Some(o)));
    }
    if d.requires_replacement() {
        let fields: Vec<&str> = d
            .changes
            .iter()
            .filter(|c| c.forces_replacement)
            .map(|c| c.path.as_str())
            .collect();
        return Err(ProviderError::terminal(format!(
            "the existing object differs in immutable field(s) {}; run plan again to replace it",
            fields.join(", ")
        )));
    }
    Ok(Decision::Call(Step::Update(o, d.changes)))
}

async fn run_op(ctx: &Ctx<'_>, input: OpInput) -> OpDone {
    let id = input.id.clone();
    let op = input.op;
    let done = |result, attempts, called| OpDone {
        node: input.node,
        result,
        attempts,
        called,
    };

    // Initial step. An update re-diffs with references now resolved: the
    // plan may have shown "(known after apply)" values that turn out equal.
    let mut step = match op {
        Operation::Create | Operation::CreateReplacement => Step::Create,
        Operation::Delete | Operation::DeleteReplaced => match input.observed.clone() {
            Some(o) => Step::Delete(o),
            None => {
                ctx.emit(
                    &id,
                    EventKind::Succeeded {
                        operation: op,
                        attempts: 0,
                    },
                );
                return done(Ok(None), 0, false);
            }
        },
        Operation::Update => match decide(&input, input.observed.clone()) {
            Ok(Decision::Call(step)) => step,
            Ok(Decision::Finished(unchanged)) => {
                ctx.emit(
                    &id,
                    EventKind::Succeeded {
                        operation: op,
                        attempts: 0,
                    },
                );
                return done(Ok(unchanged), 0, false);
            }
            Err(e) => {
                ctx.emit(
                    &id,
                    EventKind::Failed {
                        operation: op,
                        error: e.clone(),
                        attempts: 0,
                    },
                );
                return done(Err(e), 0, false);
            }
        },
    };
    let retry = &ctx.options.retry;
    let mut jitter = retry.jitter(&format!("{id}:{}", op.as_str()));
    let mut attempts: u32 = 0;
    let mut failures_by_class: HashMap<ErrorClass, u32> = HashMap::new();
    loop {
        attempts += 1;
        let result = {
            let _permit = ctx
                .semaphore
                .acquire()
                .await
                .expect("semaphore is never closed");
            // Started once the first call really starts: waiting for a slot is not work.
            if attempts == 1 {
                ctx.emit(&id, EventKind::Started { operation: op });
                tracing::info!(%id, operation = op.as_str(), "started");
            }
            let client = &input.client;
            let timeout = ctx.options.call_timeout;
            match &step {
                Step::Create => with_timeout(timeout, client.create(&input.desired))
                    .await
                    .map(Some),
                Step::Update(o, changes) => {
                    with_timeout(timeout, client.update(&input.desired, o, changes))
                        .await
                        .map(Some)
                }
                Step::Delete(o) => with_timeout(timeout, client.delete(&input.raw, o))
                    .await
                    .map(|()| None),
            }
        };
        let err = match result {
            Ok(observed) => {
                tracing::info!(%id, operation = op.as_str(), attempts, "succeeded");
                ctx.emit(
                    &id,
                    EventKind::Succeeded {
                        operation: op,
                        attempts,
                    },
                );
                return done(Ok(observed), attempts, true);
            }
            Err(e) => e,
        };
        let is_delete = matches!(step, Step::Delete(_));
        if is_delete && err.class == ErrorClass::NotFound {
            ctx.emit(
                &id,
                EventKind::Succeeded {
                    operation: op,
                    attempts,
                },
            );
            return done(Ok(None), attempts, true);
        }
        let effective = match (err.class, &step) {
            (ErrorClass::NotFound, Step::Create) => ErrorClass::EventualConsistency,
            (class, _) => class,
        };
        // Each class spends its own budget: a conflict met after a throttle and a reset (the
        // reset's create having gone through) still gets its refresh, so the total is bounded
        // by the sum of the budgets, not by whichever class happens to come last.
        let backoff = retry.backoff(effective);
        let class_failures = {
            let n = failures_by_class.entry(effective).or_insert(0);
            *n += 1;
            *n
        };
        if effective == ErrorClass::Terminal || class_failures >= backoff.max_attempts {
            let err = if attempts > 1 {
                ProviderError {
                    message: format!("{} (gave up after {attempts} attempts)", err.message),
                    ..err
                }
            } else {
                err
            };
            ctx.emit(
                &id,
                EventKind::Failed {
                    operation: op,
                    error: err.clone(),
                    attempts,
                },
            );
            return done(Err(err), attempts, true);
        }
        let delay = jitter.delay(&backoff, class_failures);
        tracing::debug!(%id, operation = op.as_str(), attempts, class = %err.class, ?delay, "retrying");
        ctx.emit(
            &id,
            EventKind::Retrying {
                operation: op,
                attempt: attempts,
                class: err.class,
                delay,
                message: err.message.clone(),
            },
        );
        tokio::time::sleep(delay).await;

        let refresh = matches!(
            op,
            Operation::Create | Operation::Update | Operation::Delete
        ) && (effective == ErrorClass::Conflict
            || (err.class == ErrorClass::NotFound && matches!(step, Step::Update(..))));
        if refresh {
            match refresh_one(ctx, &input, retry, &mut jitter).await {
                Ok(fresh) => match decide(&input, fresh) {
                    Ok(Decision::Call(next)) => step = next,
                    Ok(Decision::Finished(state)) => {
                        // Already as desired (or already gone): adopt it.
                        ctx.emit(
                            &id,
                            EventKind::Succeeded {
                                operation: op,
                                attempts,
                            },
                        );
                        return done(Ok(state), attempts, true);
                    }
                    Err(e) => {
                        ctx.emit(
                            &id,
                            EventKind::Failed {
                                operation: op,
                                error: e.clone(),
                                attempts,
                            },
                        );
                        return done(Err(e), attempts, true);
                    }
                },
                Err(e) => {
                    tracing::debug!(%id, error = %e, "refresh failed; retrying the same call");
                }
            }
        }
    }
}

/// Re-observes one resource after a conflict, retrying a failed read by its own error class:
/// issuing the write again instead would only meet the same conflict and spend its budget.
async fn refresh_one(
    ctx: &Ctx<'_>,
    input: &OpInput,
    retry: &crate::retry::RetryPolicy,
    jitter: &mut crate::retry::Jitter,
) -> Result<Option<Observed>, ProviderError> {
    let mut reads = 0;
    loop {
        reads += 1;
        match observe_one(ctx, input).await {
            Ok(found) => return Ok(found),
            Err(e) => {
                let backoff = retry.backoff(e.class);
                if e.class == ErrorClass::Terminal || reads >= backoff.max_attempts {
                    return Err(e);
                }
                tracing::debug!(id = %input.id, error = %e, "refresh failed; reading again");
                tokio::time::sleep(jitter.delay(&backoff, reads)).await;
            }
        }
    }
}

/// Re-observes one resource (used after a conflict).
async fn observe_one(ctx: &Ctx<'_>, input: &OpInput) -> Result<Option<Observed>, ProviderError> {
    let _permit = ctx
        .semaphore
        .acquire()
        .await
        .expect("semaphore is never closed");
    let found = with_timeout(
        ctx.options.call_timeout,
        input
            .client
            .observe(&input.raw.region, std::slice::from_ref(&input.raw)),
    )
    .await?;
    Ok(found.into_iter().find(|o| o.id == input.id))
}
