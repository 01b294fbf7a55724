//! One apply at a time per Base: a lock held in AWS (an SSM parameter per Base,
//! `/reconciler/<base>/lock`), so two copies of the reconciler (two CI jobs, a laptop and a
//! `watch`) never race to create the same objects. Some AWS creates have no idempotency key
//! (a VPC, a subnet): two runs that both find nothing would both create one.
//!
//! The lock is taken only when there is something to change, so a converged reconcile makes
//! no mutating call. Its holder refreshes it while working; a lock whose holder stopped
//! refreshing for [`STALE_AFTER`] (a killed process) is taken over, and on the same machine a
//! lock whose process is gone is taken over at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use anyhow::{bail, Result};
use reconciler_aws::ClientPool;
use reconciler_engine::{retrying, RetryPolicy};
use reconciler_render::naming::BaseNames;
use serde::{Deserialize, Serialize};

use crate::deploy::Prepared;

/// A lock not refreshed for this long is abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// How often the holder refreshes its lock.
const REFRESH_EVERY: Duration = Duration::from_secs(30);
/// How often a waiting run looks again.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The SSM parameter name of a Base's lock.
pub fn lock_name(base: &str) -> String {
    format!("/reconciler/{base}/lock")
}

/// Who holds a lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// A token unique to the holding run.
    pub token: String,
    /// When the lock was last refreshed (seconds since the epoch).
    pub refreshed: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Holder {
    /// A holder for a new run: this host and process, and a token of its own, so two runs in
    /// one process (two reconciles in the operator) are two holders.
    fn new_run() -> Holder {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Holder {
            host: host(),
            pid: std::process::id(),
            token: format!("{nanos:x}-{:x}-{run}", std::process::id()),
            refreshed: now(),
        }
    }

    /// Whether the holder is certainly gone: it stopped refreshing, or it ran on this machine
    /// and its process no longer exists.
    fn is_abandoned(&self) -> bool {
        if now().saturating_sub(self.refreshed) > STALE_AFTER.as_secs() {
            return true;
        }
        self.host == host()
            && self.pid != std::process::id()
            && cfg!(target_os = "linux")
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// The locks a run holds, with a task refreshing them. Release it with
/// [`LockGuard::release`] on every path; a guard dropped unreleased (an error or a cancelled
/// future between acquiring and releasing) releases in the background, and a process that
/// dies leaves its locks to go stale.
pub struct LockGuard {
    pool: Arc<ClientPool>,
    retry: RetryPolicy,
    held: Vec<(String, String)>,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

/// Takes the lock of every Base of the input, waiting up to `wait` for other runs.
pub async fn acquire(p: &Prepared, wait: Duration) -> Result<LockGuard> {
    let started = std::time::Instant::now();
    let me = Holder::new_run();
    let mut guard = LockGuard {
        pool: p.session.pool.clone(),
        retry: p.session.retry.clone(),
        held: Vec::new(),
        refresher: None,
    };
    let mut bases: Vec<(String, String)> = p
        .set
        .bases
        .iter()
        .map(|b| (b.doc.metadata.name.clone(), b.doc.spec.region.clone()))
        .collect();
    bases.sort();
    for (base, region) in bases {
        let name = lock_name(&base);
        let tags = BaseNames::new(&base).tags("lock");
        loop {
            let value = serde_json::to_value(Holder {
                refreshed: now(),
                ..me.clone()
            })?;
            let created = retrying(&guard.retry, &name, || {
                reconciler_aws::ssm::create_value(&guard.pool, &region, &name, &value, &tags)
            })
            .await
            .map_err(|e| anyhow::anyhow!("taking the lock of Base {base}: {e}"))?;
            if created {
                guard.held.push((region.clone(), name.clone()));
                break;
            }
            let current = retrying(&guard.retry, &name, || {
                reconciler_aws::ssm::get_values(&guard.pool, &region, std::slice::from_ref(&name))
            })
            .await
            .map_err(|e| anyhow::anyhow!("reading the lock of Base {base}: {e}"))?
            .remove(&name)
            .and_then(|v| serde_json::from_value::<Holder>(v).ok());
            match current {
                Some(holder) if holder.token == me.token => {
                    guard.held.push((region.clone(), name.clone()));
                    break;
                }
                Some(holder) if !holder.is_abandoned() => {
                    if started.elapsed() >= wait {
                        guard.release().await;
                        bail!(
                            "another run holds the lock of Base {base} (process {} on {}); \
                             waited {}s; try again later or raise --lock-timeout",
                            holder.pid,
                            holder.host,
                            wait.as_secs()
                        );
                    }
                    tracing::info!(base, holder = ?holder, "waiting for another run to finish");
                    tokio::time::sleep(POLL_EVERY).await;
                }
                // Abandoned, unreadable, or deleted meanwhile: clear it and try again.
                _ => {
                    tracing::warn!(base, "taking over an abandoned lock");
                    retrying(&guard.retry, &name, || {
                        reconciler_aws::ssm::delete_value(&guard.pool, &region, &name)
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("clearing the lock of Base {base}: {e}"))?;
                }
            }
        }
    }
    guard.refresher = Some(tokio::spawn(refresh(
        guard.pool.clone(),
        guard.held.clone(),
        me,
    )));
    Ok(guard)
}

/// Refreshes `held` every [`REFRESH_EVERY`] until aborted.
async fn refresh(pool: Arc<ClientPool>, held: Vec<(String, String)>, me: Holder) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        for (region, name) in &held {
            let value = serde_json::to_value(Holder {
                refreshed: now(),
                ..me.clone()
            })
            .unwrap_or_default();
            if let Err(e) =
                reconciler_aws::ssm::put_value(&pool, region, name, &value, &Default::default())
                    .await
            {
                tracing::warn!(lock = name, error = %e, "could not refresh the lock");
            }
        }
    }
}

async fn release_all(pool: &ClientPool, retry: &RetryPolicy, held: &[(String, String)]) {
    for (region, name) in held {
        let released = retrying(retry, name, || {
            reconciler_aws::ssm::delete_value(pool, region, name)
        })
        .await;
        if let Err(e) = released {
            tracing::warn!(lock = name, error = %e, "could not release the lock; it goes stale");
        }
    }
}

impl LockGuard {
    /// Stops refreshing and deletes every lock held.
    pub async fn release(mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        let held = std::mem::take(&mut self.held);
        release_all(&self.pool, &self.retry, &held).await;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return;
        }
        // Dropped without `release`: let the runtime finish the job, if there is one.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, retry) = (self.pool.clone(), self.retry.clone());
            runtime.spawn(async move { release_all(&pool, &retry, &held).await });
        }
    }
}
