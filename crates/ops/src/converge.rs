//! The one converge path of `reconciler apply`, `watch` and the operator: plan (retiring what
//! the specs no longer render and labelling drift), and when something is to change, refuse
//! it if it touches another owner's resources ([`ownership::check`]), take the Bases' locks,
//! plan again under them (another run may have done the work), apply, record each server's
//! result, and release the locks on every path.

use std::time::Duration;

use anyhow::Result;
use reconciler_engine::execute::ApplyEvent;
use reconciler_engine::{ApplyReport, Reconciler};

use crate::deploy::{self, PlanOptions, Planned, Prepared};
use crate::ownership;

/// How a converge runs.
#[derive(Debug, Clone, Copy)]
pub struct ConvergeOptions {
    /// Pruning, and what it may delete.
    pub plan: PlanOptions,
    /// How long to wait for another run's lock before giving up.
    pub lock_wait: Duration,
}

/// What the caller decides and sees along the way. The CLI prints the plan and asks before a
/// prune deletes; `watch` and the operator take the defaults.
pub trait ConvergeHooks: Sync {
    /// The plan that will be applied (made under the locks when it changes anything). `false`
    /// stops here, with nothing changed.
    fn planned(&self, _planned: &Planned) -> Result<bool> {
        Ok(true)
    }

    /// Progress of the apply.
    fn event(&self, _event: ApplyEvent) {}
}

/// The defaults: apply whatever was planned, report no progress.
pub struct Quiet;

impl ConvergeHooks for Quiet {}

/// What a converge did.
#[derive(Debug)]
pub struct Converged {
    /// The plan, each change labelled spec or drift where the records tell.
    pub planned: Planned,
    /// The apply's report; `None` when there was nothing to change or the caller declined.
    pub report: Option<ApplyReport>,
    /// Why the servers' results could not all be recorded; the apply itself stands.
    pub record_error: Option<anyhow::Error>,
}

impl Converged {
    /// Whether everything planned was done and recorded.
    pub fn is_success(&self) -> bool {
        self.record_error.is_none() && self.report.as_ref().is_none_or(ApplyReport::is_success)
    }
}

/// Converges the input of `p`. Errors before the apply (observation, the lock) are returned;
/// failures of single resources are in the report.
pub async fn converge(
    p: &Prepared,
    rec: &Reconciler,
    opts: &ConvergeOptions,
    hooks: &dyn ConvergeHooks,
) -> Result<Converged> {
    let planned = deploy::plan_with(p, rec, opts.plan).await?;
    if planned.plan.is_empty() {
        // Nothing to change: no lock, no mutating call.
        hooks.planned(&planned)?;
        return Ok(Converged {
            planned,
            report: None,
            record_error: None,
        });
    }
    // Another owner's resources are refused before anything is locked or written.
    ownership::check(&planned.plan, &p.session.ownership)?;
    let locks = crate::lock::acquire(p, opts.lock_wait).await?;
    let converged = converge_locked(p, rec, opts, hooks).await;
    locks.release().await;
    converged
}

/// Under the locks: plan again, then apply and record.
async fn converge_locked(
    p: &Prepared,
    rec: &Reconciler,
    opts: &ConvergeOptions,
    hooks: &dyn ConvergeHooks,
) -> Result<Converged> {
    let planned = deploy::plan_with(p, rec, opts.plan).await?;
    ownership::check(&planned.plan, &p.session.ownership)?;
    let proceed = hooks.planned(&planned)?;
    if planned.plan.is_empty() || !proceed {
        return Ok(Converged {
            planned,
            report: None,
            record_error: None,
        });
    }
    let sink = |event: ApplyEvent| hooks.event(event);
    let report = rec.apply(&planned.plan, &sink).await;
    let record_error = deploy::record_results(p, &planned, &report).await.err();
    Ok(Converged {
        planned,
        report: Some(report),
        record_error,
    })
}
