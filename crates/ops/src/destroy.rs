//! The destroy path of `reconciler destroy` and the operator: refuse a deletion of another
//! owner's resources, then under the Bases' locks plan the deletion, let the caller see it
//! (and decline), delete, and forget the destroyed servers' last results. Data is kept as
//! [`crate::deploy::destroy_graph`] marked it.

use std::time::Duration;

use anyhow::Result;
use reconciler_engine::execute::ApplyEvent;
use reconciler_engine::model::{DesiredGraph, ResourceId};
use reconciler_engine::{ApplyReport, Plan, Reconciler};

use crate::converge::ConvergeHooks;
use crate::deploy::{self, Planned, Prepared};
use crate::ownership;

/// What a destroy did.
#[derive(Debug)]
pub struct Destroyed {
    /// The deletion plan.
    pub plan: Plan,
    /// The apply's report; `None` when the caller declined.
    pub report: Option<ApplyReport>,
    /// Why the destroyed servers' last results could not be forgotten.
    pub forget_error: Option<anyhow::Error>,
}

/// Deletes what `target` names, under the locks of the input's Bases. A deletion that would
/// touch another owner's resources is refused before the locks ([`ownership::check`]).
pub async fn destroy(
    p: &Prepared,
    rec: &Reconciler,
    target: &DestroyTarget<'_>,
    lock_wait: Duration,
    hooks: &dyn ConvergeHooks,
) -> Result<Destroyed> {
    let plan = deploy::plan_destroy(rec, target.graph, target.ids).await?;
    ownership::check(&plan, &p.session.ownership)?;
    let locks = crate::lock::acquire(p, lock_wait).await?;
    let destroyed = destroy_locked(p, rec, target, hooks).await;
    locks.release().await;
    destroyed
}

/// What to delete.
#[derive(Debug, Clone, Copy)]
pub struct DestroyTarget<'a> {
    /// The rendered graph the deletions are planned over.
    pub graph: &'a DesiredGraph,
    /// The resources to delete.
    pub ids: &'a [ResourceId],
    /// The servers destroyed (all of the input when empty).
    pub servers: &'a [String],
}

async fn destroy_locked(
    p: &Prepared,
    rec: &Reconciler,
    target: &DestroyTarget<'_>,
    hooks: &dyn ConvergeHooks,
) -> Result<Destroyed> {
    let plan = deploy::plan_destroy(rec, target.graph, target.ids).await?;
    ownership::check(&plan, &p.session.ownership)?;
    let planned = Planned::of(plan, target.graph.len());
    if !hooks.planned(&planned)? {
        return Ok(Destroyed {
            plan: planned.plan,
            report: None,
            forget_error: None,
        });
    }
    let sink = |event: ApplyEvent| hooks.event(event);
    let report = rec.apply(&planned.plan, &sink).await;
    let forget_error = if report.is_success() {
        deploy::forget_results(p, target.servers).await.err()
    } else {
        None
    };
    Ok(Destroyed {
        plan: planned.plan,
        report: Some(report),
        forget_error,
    })
}
