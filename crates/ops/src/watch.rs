//! `reconciler watch`: reconcile forever.
//!
//! Each cycle converges the servers that are not backing off, exactly as `reconciler apply`
//! does (see [`crate::converge`]). A server whose
//! resources failed waits `interval × 2^(failures-1)` (at most `max_backoff`) before it is tried
//! again, so one broken server neither stalls the others nor hammers AWS; a success resets its
//! backoff. The engine already keeps failures inside their branch of the graph, so the other
//! servers converge in the same cycle. Shutdown (SIGTERM, Ctrl-C) is honoured between cycles:
//! an apply in progress finishes its operations first, so nothing is left half-done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use reconciler_engine::Reconciler;
use serde::Serialize;
use tokio::time::Instant;

use crate::converge::{converge, ConvergeOptions, Quiet};
use crate::deploy::{PlanOptions, Prepared};

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
    /// Resources changed outside the reconciler (drift), which this cycle put back.
    pub drifted: Vec<String>,
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

    /// One cycle over the servers of `p` that are not backing off at `now`: the same converge
    /// as `reconciler apply` (retiring what the specs no longer render, drift labels, the
    /// Bases' locks, results recorded), over the graph without the servers that back off.
    pub async fn cycle(
        &mut self,
        p: &Prepared,
        rec: &Reconciler,
        opts: &WatchOptions,
        now: Instant,
    ) -> Result<CycleReport> {
        let mut report = CycleReport::default();
        let mut waiting = BTreeSet::new();
        for server in &p.set.servers {
            let name = &server.doc.metadata.name;
            match self.backoff.get(name) {
                Some(b) if b.until > now => {
                    report.backing_off.push(name.clone());
                    waiting.insert(name.as_str());
                }
                _ => report.reconciled.push(name.clone()),
            }
        }
        let cycle = Prepared {
            graph: crate::deploy::without_servers(&p.graph, &waiting),
            ..p.clone()
        };
        let owners = crate::deploy::server_owners(cycle.graph.iter());
        let converge_opts = ConvergeOptions {
            plan: PlanOptions::default(),
            lock_wait: LOCK_WAIT,
        };
        let converged = converge(&cycle, rec, &converge_opts, &Quiet).await?;
        report.changed = converged
            .planned
            .plan
            .resources()
            .iter()
            .filter(|r| !matches!(r.action, reconciler_engine::Action::NoOp))
            .count();
        report.drifted = converged
            .planned
            .plan
            .drifted()
            .map(|r| r.id.to_string())
            .collect();
        if !report.drifted.is_empty() {
            tracing::warn!(resources = ?report.drifted, "changed outside the reconciler; put back");
        }
        if let Some(error) = &converged.record_error {
            tracing::warn!(error = %format!("{error:#}"), "could not record the cycle's results");
        }
        let failures = converged
            .report
            .iter()
            .flat_map(|r| r.failures())
            .map(|(id, error)| (id.clone(), error.to_string()));
        for (id, error) in failures {
            match owners.get(&id) {
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
