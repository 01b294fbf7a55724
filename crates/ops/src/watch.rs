//! `reconciler watch`: reconcile forever.
//!
//! Each cycle observes, plans and applies the servers that are not backing off. A server whose
//! resources failed waits `interval × 2^(failures-1)` (at most `max_backoff`) before it is tried
//! again, so one broken server neither stalls the others nor hammers AWS; a success resets its
//! backoff. The engine already keeps failures inside their branch of the graph, so the other
//! servers converge in the same cycle. Shutdown (SIGTERM, Ctrl-C) is honoured between cycles:
//! an apply in progress finishes its operations first, so nothing is left half-done.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use reconciler_engine::model::DesiredGraph;
use reconciler_engine::{NoEvents, Reconciler};
use reconciler_render::render_resources;
use reconciler_spec::SpecSet;
use serde::Serialize;
use tokio::time::Instant;

use crate::deploy::Prepared;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Time between cycles.
    pub interval: Duration,
    /// The longest a failing server waits.
    pub max_backoff: Duration,
    /// Stop after this many cycles (tests, one-shot runs); forever when `None`.
    pub cycles: Option<u64>,
}

/// A failing server's backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backoff {
    failures: u32,
    until: Instant,
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    /// Servers reconciled this cycle.
    pub reconciled: Vec<String>,
    /// Servers skipped because they are backing off.
    pub backing_off: Vec<String>,
    /// Servers with at least one failed resource, with the first error.
    pub failed: BTreeMap<String, String>,
    /// Resources changed.
    pub changed: usize,
    /// Failures not attributable to one server (the Base's resources), with their errors.
    pub base_failures: Vec<String>,
}

/// How long a cycle waits for another run's lock before it gives up until the next cycle.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The loop's state across cycles.
#[derive(Debug, Default)]
pub struct Watcher {
    backoff: BTreeMap<String, Backoff>,
}

impl Watcher {
    /// A watcher with no server backing off.
    pub fn new() -> Self {
        Self::default()
    }

    /// One cycle over the servers of `p` that are not backing off at `now`.
    pub async fn cycle(
        &mut self,
        p: &Prepared,
        rec: &Reconciler,
        opts: &WatchOptions,
        now: Instant,
    ) -> Result<CycleReport> {
        let mut report = CycleReport::default();
        let mut set: SpecSet = p.set.clone();
        set.servers.retain(|s| {
            let name = &s.doc.metadata.name;
            match self.backoff.get(name) {
                Some(b) if b.until > now => {
                    report.backing_off.push(name.clone());
                    false
                }
                _ => {
                    report.reconciled.push(name.clone());
                    true
                }
            }
        });
        let cx = &p.session.context;
        let graph = DesiredGraph::new(render_resources(cx, &set, &p.catalog)?)?;
        let owners = crate::deploy::server_owners(graph.iter());

        let observed = rec.observe(&graph).await?;
        let mut plan = rec.plan(&graph, &observed, &[])?;
        // Something to change: take the Bases' lock (another run may be applying), and plan
        // again under it. Nothing to change: no lock, no mutating call.
        let mut locks = None;
        if !plan.is_empty() {
            match crate::lock::acquire(p, LOCK_WAIT).await {
                Ok(held) => {
                    locks = Some(held);
                    let observed = rec.observe(&graph).await?;
                    plan = rec.plan(&graph, &observed, &[])?;
                }
                Err(error) => {
                    tracing::warn!(%error, "another run holds the lock; this cycle changes nothing");
                    report.base_failures.push(format!("{error:#}"));
                    return Ok(report);
                }
            }
        }
        report.changed = plan
            .resources()
            .iter()
            .filter(|r| !matches!(r.action, reconciler_engine::Action::NoOp))
            .count();
        let applied = rec.apply(&plan, &NoEvents).await;
        if let Some(locks) = locks {
            locks.release(p).await;
        }
        let results = crate::results::summarize(
            plan.resources().iter().map(|r| r.desired()),
            &applied,
            &crate::results::now_rfc3339(),
        );
        if let Err(error) = crate::results::write(p, &results).await {
            tracing::warn!(%error, "could not record the cycle's results");
        }
        for (id, error) in applied.failures() {
            match owners.get(id) {
                Some(server) => {
                    report
                        .failed
                        .entry(server.clone())
                        .or_insert_with(|| format!("{id}: {error}"));
                }
                None => report.base_failures.push(format!("{id}: {error}")),
            }
        }
        for server in &report.reconciled {
            match report.failed.get(server) {
                Some(error) => {
                    let failures = self.backoff.get(server).map_or(0, |b| b.failures) + 1;
                    let wait = backoff_delay(opts, failures);
                    tracing::warn!(server, failures, retry_in = ?wait, %error, "server failed to reconcile; backing off");
                    self.backoff.insert(
                        server.clone(),
                        Backoff {
                            failures,
                            until: now + wait,
                        },
                    );
                }
                None => {
                    if self.backoff.remove(server).is_some() {
                        tracing::info!(server, "server reconciled again; backoff reset");
                    }
                }
            }
        }
        tracing::info!(
            reconciled = report.reconciled.len(),
            backing_off = report.backing_off.len(),
            failed = report.failed.len(),
            changed = report.changed,
            "cycle done"
        );
        Ok(report)
    }

    /// Whether `server` is backing off at `now`.
    pub fn is_backing_off(&self, server: &str, now: Instant) -> bool {
        self.backoff.get(server).is_some_and(|b| b.until > now)
    }
}

/// `interval × 2^(failures-1)`, at most `max_backoff`.
fn backoff_delay(opts: &WatchOptions, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    opts.interval.saturating_mul(factor).min(opts.max_backoff)
}

/// Runs cycles every `interval` until `shutdown` resolves (checked between cycles and while
/// waiting) or `opts.cycles` are done. A cycle that fails as a whole (observation failed, the
/// network is down) is logged and retried at the next tick.
pub async fn run(
    p: &Prepared,
    rec: &Reconciler,
    opts: &WatchOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Vec<CycleReport> {
    tokio::pin!(shutdown);
    let mut watcher = Watcher::new();
    let mut reports = Vec::new();
    let mut cycle: u64 = 0;
    loop {
        cycle += 1;
        let started = Instant::now();
        tracing::info!(cycle, "reconciling");
        match watcher.cycle(p, rec, opts, started).await {
            Ok(report) => reports.push(report),
            Err(e) => {
                tracing::error!(cycle, error = %format!("{e:#}"), "cycle failed; retrying at the next tick")
            }
        }
        if opts.cycles.is_some_and(|n| cycle >= n) {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down between cycles");
                break;
            }
            _ = tokio::time::sleep_until(started + opts.interval) => {}
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let opts = WatchOptions {
            interval: Duration::from_secs(300),
            max_backoff: Duration::from_secs(3600),
            cycles: None,
        };
        assert_eq!(backoff_delay(&opts, 1), Duration::from_secs(300));
        assert_eq!(backoff_delay(&opts, 2), Duration::from_secs(600));
        assert_eq!(backoff_delay(&opts, 3), Duration::from_secs(1200));
        assert_eq!(backoff_delay(&opts, 5), Duration::from_secs(3600));
        assert_eq!(backoff_delay(&opts, 40), Duration::from_secs(3600));
    }
}
