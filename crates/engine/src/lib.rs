//! The reconciler's engine: generic observe -> diff -> plan -> execute over a
//! dependency DAG, knowing nothing about AWS services.
//!
//! # Shape
//!
//! ```text
//!  render (pure)         engine                                   provider
//!  ─────────────         ──────                                   ────────
//!  DesiredGraph ──► observe ── one call per (kind, region) ──► ResourceClient::observe
//!                     │
//!                     ▼
//!                   diff  (managed fields only; runtime-owned skipped;
//!                     │    immutable ⇒ replace; refs ⇒ known after apply)
//!                     ▼
//!                   plan  (Display = human text, Serialize = -o json)
//!                     │
//!                     ▼
//!                  execute ── DAG, bounded concurrency, retries ──► create/update/delete
//!                     │
//!                     ▼
//!                 ApplyReport + progress events
//! ```
//!
//! * [`model`]: [`ResourceId`], [`Kind`], [`DesiredResource`] (with
//!   `{"$ref": id, "attr": name}` references between resources),
//!   [`DesiredGraph`] (validated: unique ids and names, known references, no
//!   cycles), [`Observed`].
//! * [`provider`]: the per-kind [`ResourceClient`] (observe / create /
//!   update / delete), its static [`KindSpec`] (runtime-owned, immutable and
//!   unordered fields; replace strategy; delete ordering), the classified
//!   [`ProviderError`], and the [`Provider`] registry.
//! * [`diff`]: field-level comparison producing [`FieldChange`]s.
//! * [`plan`]: per-resource [`Action`]s with changes and summary counts.
//! * [`execute`]: runs a plan; reports [`ApplyEvent`]s and an
//!   [`ApplyReport`].
//! * [`retry`]: the single retry policy, by [`ErrorClass`].
//! * [`reconciler`]: [`Reconciler`], the entry point.
//! * `testing` (feature `testing`): an in-memory cloud for tests.
//!
//! # Principles, and how the engine keeps them
//!
//! * **AWS is the state.** Nothing is persisted between runs. Observation
//!   finds objects by deterministic name (and the client's ownership
//!   filters). A create that finds its object already there (an interrupted
//!   or concurrent run) answers [`ErrorClass::Conflict`]; the engine
//!   re-observes and adopts, updates or retries instead of duplicating.
//! * **Observation is batched.** `observe` is called once per (kind,
//!   region) with every resource of that group; groups run in parallel.
//! * **Runtime-owned fields are never drift.** Paths a [`KindSpec`] declares
//!   runtime-owned are set at create and never compared nor reset.
//! * **Only what is declared is managed.** Fields and tags present in the
//!   observation but absent from the desired properties are ignored, so AWS
//!   defaults never show up as changes.
//! * **Data survives by default.** A resource with `retain_on_delete` is
//!   never deleted: a delete becomes [`Action::Retain`] (listed in every
//!   plan and report) and a needed replacement becomes [`Action::Blocked`].
//! * **One error policy.** Every provider call goes through the same retry
//!   loop, keyed by [`ErrorClass`]: throttled, transient and
//!   eventual-consistency errors back off exponentially with jitter;
//!   conflicts re-observe and decide again; not-found on delete is success;
//!   terminal errors fail at once. A failure blocks only what depends on the
//!   failed resource; unrelated branches go on, and the run never panics or
//!   aborts as a whole.
//!
//! # Ordering
//!
//! Creates and updates run after their dependencies (explicit
//! `depends_on` and references), deletes after their dependents (reverse
//! order). Independent branches run concurrently; at most
//! [`Options::max_concurrency`] provider calls are in flight, and a permit
//! is held only during a call, not during backoff. Replacements are
//! delete-before-create unless the kind declares create-before-delete (a
//! create-before-delete kind whose dependency is itself replaced
//! delete-before-create falls back to delete-before-create, which is the
//! only order that can work).
//!
//! # References
//!
//! A reference is resolved from the outputs of the referenced resource: at
//! plan time from its observation, unless the plan creates or replaces it
//! (then the field is `(known after apply)`); at apply time from the outputs
//! its create/update returned. An update re-diffs once its references are
//! resolved, so a "(known after apply)" value that turns out unchanged costs
//! no call. A reference on an immutable field of an existing resource whose
//! target is replaced makes that resource a replacement too.
//!
//! # Limits
//!
//! * An update's outputs are assumed to keep the ids other resources refer
//!   to (AWS updates do not change ids); only creates and replacements make
//!   outputs unknown.
//! * Delete-before-create replacement of a resource that a mutable field of
//!   another resource points at deletes the old object first; AWS may
//!   refuse with `DependencyViolation` until the retries run out. Kinds
//!   where this matters should declare create-before-delete.
//! * A resource that is retained on delete but depends on one being deleted
//!   keeps pointing at it; the dependency's delete may then fail.
//! * Observation failures stop the run before planning (nothing is changed
//!   on a partial view).

#![warn(missing_docs)]

pub mod diff;
pub mod execute;
pub mod model;
pub mod observe;
pub mod path;
pub mod plan;
pub mod provider;
pub mod reconciler;
pub mod retry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use diff::{Diff, FieldChange, PlannedValue};
pub use execute::{
    ApplyCounts, ApplyEvent, ApplyReport, EventKind, EventSink, NoEvents, Operation, Outcome,
    ResourceReport,
};
pub use model::{
    reference, DesiredGraph, DesiredResource, GraphError, GraphErrors, Kind, Observed, Reference,
    ResourceId,
};
pub use observe::{ObserveError, ObservedState};
pub use plan::{Action, ChangeCause, Plan, PlanError, PlanSummary, ResourcePlan};
pub use provider::{
    ErrorClass, KindSpec, Provider, ProviderError, ReplaceStrategy, ResourceClient,
};
pub use reconciler::{Options, ReconcileError, Reconciler};
pub use retry::{retrying, Backoff, RetryPolicy};
