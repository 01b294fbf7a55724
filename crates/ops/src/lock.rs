//! One apply at a time per Base: a lock held in AWS, so two copies of the reconciler (two CI
//! jobs, a laptop and a `watch`, two reconciles in one operator) never race to create the same
//! objects. Some AWS creates have no idempotency key (a VPC, a subnet): two runs that both find
//! nothing would both create one.
//!
//! The lock is a sequence of generations, one SSM parameter each
//! (`/reconciler/<base>/locks/<generation>`), whose value says who holds the lock (or that it is
//! free) and when the holder last refreshed it; the highest generation is the lock's state.
//! Every change of state (take, refresh, take over, release) is the creation of the next
//! generation with `PutParameter` without `Overwrite`, which AWS performs atomically and
//! refuses with `ParameterAlreadyExists` when the name is taken: a compare-and-set on the
//! generation number. Of two runs that saw the same state, exactly one moves it on; the other
//! reads again. A holder that stalled and was taken over finds its next generation taken when
//! it refreshes or releases, learns that it lost, and writes nothing back.
//!
//! The lock is taken only when there is something to change, so a converged reconcile makes
//! no mutating call. A lock whose holder stopped refreshing for [`LockTiming::stale_after`] (a
//! killed process) is taken over, and on the same machine a lock whose process is gone is
//! taken over at once. Generations more than one below the current one are deleted by the
//! run that moves the lock on; the current generation always stays, so a released Base keeps
//! one small parameter saying the lock is free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use reconciler_aws::ClientPool;
use reconciler_engine::provider::ProviderError;
use reconciler_engine::{retrying, RetryPolicy};
use reconciler_render::naming::BaseNames;
use serde::{Deserialize, Serialize};

use crate::deploy::Prepared;

/// How long locks wait and live.
#[derive(Debug, Clone, Copy)]
pub struct LockTiming {
    /// A lock not refreshed for this long is abandoned.
    pub stale_after: Duration,
    /// How often the holder refreshes its lock.
    pub refresh_every: Duration,
    /// How often a waiting run looks again.
    pub poll_every: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            stale_after: Duration::from_secs(120),
            refresh_every: Duration::from_secs(30),
            poll_every: Duration::from_secs(2),
        }
    }
}

/// The SSM path under which a Base's lock generations live.
pub fn lock_path(base: &str) -> String {
    format!("/reconciler/{base}/locks")
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

/// One generation's value: the lock held by someone, or free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum LockState {
    Held(Holder),
    Free,
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
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
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

    /// This holder, refreshed now.
    fn fresh(&self) -> LockState {
        LockState::Held(Holder {
            refreshed: now(),
            ..self.clone()
        })
    }

    /// Whether the holder is certainly gone: it stopped refreshing, or it ran on this machine
    /// and its process no longer exists.
    fn is_abandoned(&self, stale_after: Duration) -> bool {
        if now().saturating_sub(self.refreshed) > stale_after.as_secs() {
            return true;
        }
        self.host == host()
            && self.pid != std::process::id()
            && cfg!(target_os = "linux")
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// One generation as read: its number and its value (`None` when it is not a value we wrote).
#[derive(Debug)]
struct Generation {
    number: u64,
    state: Option<LockState>,
}

/// One Base's lock, and the calls that read and move it.
struct BaseLock {
    base: String,
    region: String,
    pool: Arc<ClientPool>,
    retry: RetryPolicy,
}

impl BaseLock {
    fn name(&self, number: u64) -> String {
        format!("{}/{number:020}", lock_path(&self.base))
    }

    /// Every generation, lowest first, read fresh (never from an observation's shared reads).
    async fn read(&self) -> Result<Vec<Generation>> {
        let path = lock_path(&self.base);
        let found = retrying(&self.retry, &path, || {
            list_values(&self.pool, &self.region, &path)
        })
        .await
        .map_err(|e| anyhow!("reading the lock of Base {}: {e}", self.base))?;
        let mut generations: Vec<Generation> = found
            .into_iter()
            .filter_map(|(name, value)| {
                let number = name.rsplit('/').next()?.parse().ok()?;
                let state = value.and_then(|v| serde_json::from_value(v).ok());
                Some(Generation { number, state })
            })
            .collect();
        generations.sort_by_key(|g| g.number);
        Ok(generations)
    }

    /// Creates generation `number` holding `state`: `false` when another run created it first.
    async fn create(&self, number: u64, state: &LockState) -> Result<bool> {
        let name = self.name(number);
        let value = serde_json::to_value(state)?;
        let tags: IndexMap<String, String> = BaseNames::new(&self.base).tags("lock");
        retrying(&self.retry, &name, || {
            reconciler_aws::ssm::create_value(&self.pool, &self.region, &name, &value, &tags)
        })
        .await
        .map_err(|e| anyhow!("writing the lock of Base {}: {e}", self.base))
    }

    /// Deletes the generations more than one below `current`, from the listing `seen`. Best
    /// effort: a generation left behind is only a stale record.
    async fn forget_below(&self, seen: &[Generation], current: u64) {
        for g in seen.iter().filter(|g| g.number + 1 < current) {
            let name = self.name(g.number);
            let deleted = retrying(&self.retry, &name, || {
                reconciler_aws::ssm::delete_value(&self.pool, &self.region, &name)
            })
            .await;
            if let Err(e) = deleted {
                tracing::debug!(lock = name, error = %e, "could not delete an old lock generation");
            }
        }
    }

    /// Moves the lock from the state `seen` (whose highest generation is `top`) to `state`.
    /// `Some(generation)` when this call made it the current one, `None` when another run
    /// moved the lock first.
    async fn advance(&self, top: u64, state: &LockState) -> Result<Option<u64>> {
        let next = top + 1;
        if !self.create(next, state).await? {
            return Ok(None);
        }
        // A run that read before an old generation was deleted could create it again; the
        // highest generation decides, so confirm that ours is it.
        let seen = self.read().await?;
        if seen.last().map(|g| g.number) != Some(next) {
            return Ok(None);
        }
        self.forget_below(&seen, next).await;
        Ok(Some(next))
    }
}

/// What one attempt to take a lock found.
enum Attempt {
    Held(u64),
    Busy(Holder),
    Again,
}

/// One attempt to take `lock` for `me`.
async fn try_take(lock: &BaseLock, me: &Holder, timing: LockTiming) -> Result<Attempt> {
    let seen = lock.read().await?;
    let top = seen.last();
    match top.and_then(|g| g.state.as_ref()) {
        // Ours already: a create whose answer was lost.
        Some(LockState::Held(h)) if h.token == me.token => {
            return Ok(Attempt::Held(top.map_or(0, |g| g.number)));
        }
        Some(LockState::Held(h)) if !h.is_abandoned(timing.stale_after) => {
            return Ok(Attempt::Busy(h.clone()));
        }
        Some(LockState::Held(h)) => {
            tracing::warn!(base = lock.base, holder = ?h, "taking over an abandoned lock")
        }
        // Free, never taken, or not a value we wrote.
        _ => {}
    }
    let top = top.map_or(0, |g| g.number);
    Ok(match lock.advance(top, &me.fresh()).await? {
        Some(generation) => Attempt::Held(generation),
        None => Attempt::Again,
    })
}

/// Takes `lock` for `me`, waiting up to `wait` from `started` for another run to finish.
async fn take(
    lock: &BaseLock,
    me: &Holder,
    timing: LockTiming,
    started: std::time::Instant,
    wait: Duration,
) -> Result<u64> {
    loop {
        match try_take(lock, me, timing).await? {
            Attempt::Held(generation) => return Ok(generation),
            Attempt::Again => continue,
            Attempt::Busy(holder) if started.elapsed() >= wait => bail!(
                "another run holds the lock of Base {} (process {} on {}); waited {}s; try \
                 again later or raise --lock-timeout",
                lock.base,
                holder.pid,
                holder.host,
                wait.as_secs()
            ),
            Attempt::Busy(holder) => {
                tracing::info!(
                    base = lock.base,
                    ?holder,
                    "waiting for another run to finish"
                );
                tokio::time::sleep(timing.poll_every).await;
            }
        }
    }
}

/// After generation `held` of `lock` was ours: the generation now holding `me`'s state, or
/// `None` when another run took the lock over.
async fn still_ours(lock: &BaseLock, me: &Holder) -> Result<Option<u64>> {
    let seen = lock.read().await?;
    Ok(seen.last().and_then(|g| match &g.state {
        Some(LockState::Held(h)) if h.token == me.token => Some(g.number),
        _ => None,
    }))
}

/// Refreshes `lock`, held at generation `held`: the new generation, or `None` when the lock
/// was taken over (then nothing is written).
async fn refresh_one(lock: &BaseLock, me: &Holder, held: u64) -> Result<Option<u64>> {
    if let Some(generation) = lock.advance(held, &me.fresh()).await? {
        return Ok(Some(generation));
    }
    still_ours(lock, me).await
}

/// Releases `lock` if `me` still holds it; a lock taken over is left to its new holder.
async fn release_one(lock: &BaseLock, me: &Holder) -> Result<()> {
    // Bounded: each round either frees the lock or finds it moved on, by us (a refresh whose
    // answer came late) or by another run.
    for _ in 0..3 {
        let Some(held) = still_ours(lock, me).await? else {
            return Ok(());
        };
        if lock.advance(held, &LockState::Free).await?.is_some() {
            return Ok(());
        }
    }
    bail!(
        "the lock of Base {} kept moving while it was released",
        lock.base
    )
}

/// The locks a run holds, with a task refreshing them. Release it with
/// [`LockGuard::release`] on every path; a guard dropped unreleased (an error or a cancelled
/// future between acquiring and releasing) releases in the background, and a process that
/// dies leaves its locks to go stale.
pub struct LockGuard {
    me: Holder,
    held: Arc<Vec<(BaseLock, std::sync::Mutex<u64>)>>,
    lost: Arc<AtomicBool>,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

/// Takes the lock of every Base of the input, waiting up to `wait` for other runs.
pub async fn acquire(p: &Prepared, wait: Duration) -> Result<LockGuard> {
    let bases: Vec<(String, String)> = p
        .set
        .bases
        .iter()
        .map(|b| (b.doc.metadata.name.clone(), b.doc.spec.region.clone()))
        .collect();
    acquire_with(
        &p.session.pool,
        &p.session.retry,
        &bases,
        wait,
        LockTiming::default(),
    )
    .await
}

/// Takes the locks of `bases` (name, region), in name order so that two runs never wait for
/// each other crosswise.
pub async fn acquire_with(
    pool: &Arc<ClientPool>,
    retry: &RetryPolicy,
    bases: &[(String, String)],
    wait: Duration,
    timing: LockTiming,
) -> Result<LockGuard> {
    let started = std::time::Instant::now();
    let me = Holder::new_run();
    let mut bases = bases.to_vec();
    bases.sort();
    let mut held = Vec::new();
    for (base, region) in bases {
        let lock = BaseLock {
            base,
            region,
            pool: pool.clone(),
            retry: retry.clone(),
        };
        match take(&lock, &me, timing, started, wait).await {
            Ok(generation) => held.push((lock, std::sync::Mutex::new(generation))),
            Err(e) => {
                release_all(&held, &me).await;
                return Err(e);
            }
        }
    }
    let held = Arc::new(held);
    let lost = Arc::new(AtomicBool::new(false));
    let refresher = tokio::spawn(refresh(held.clone(), me.clone(), lost.clone(), timing));
    Ok(LockGuard {
        me,
        held,
        lost,
        refresher: Some(refresher),
    })
}

/// Refreshes every held lock every [`LockTiming::refresh_every`] until aborted; a lock found
/// taken over is no longer refreshed, and `lost` tells the run.
async fn refresh(
    held: Arc<Vec<(BaseLock, std::sync::Mutex<u64>)>>,
    me: Holder,
    lost: Arc<AtomicBool>,
    timing: LockTiming,
) {
    let mut live: Vec<bool> = vec![true; held.len()];
    loop {
        tokio::time::sleep(timing.refresh_every).await;
        for (i, (lock, generation)) in held.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let at = *generation.lock().expect("generation");
            match refresh_one(lock, &me, at).await {
                Ok(Some(next)) => *generation.lock().expect("generation") = next,
                Ok(None) => {
                    live[i] = false;
                    lost.store(true, Ordering::SeqCst);
                    tracing::error!(
                        base = lock.base,
                        "the lock was taken over by another run after this run stalled; \
                         another apply may be changing the same resources"
                    );
                }
                Err(e) => {
                    tracing::warn!(base = lock.base, error = %e, "could not refresh the lock")
                }
            }
        }
    }
}

async fn release_all(held: &[(BaseLock, std::sync::Mutex<u64>)], me: &Holder) {
    for (lock, _) in held {
        if let Err(e) = release_one(lock, me).await {
            tracing::warn!(base = lock.base, error = %e, "could not release the lock; it goes stale");
        }
    }
}

impl LockGuard {
    /// The token that marks this run's locks.
    pub fn token(&self) -> &str {
        &self.me.token
    }

    /// Whether another run took over one of the locks after this run stalled.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops refreshing and frees every lock this run still holds.
    pub async fn release(mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        let held = std::mem::take(&mut self.held);
        release_all(&held, &self.me).await;
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
            let me = self.me.clone();
            runtime.spawn(async move { release_all(&held, &me).await });
        }
    }
}

/// Who holds the lock of `base` now (`None`: free or never taken).
pub async fn holder(
    pool: &Arc<ClientPool>,
    retry: &RetryPolicy,
    base: &str,
    region: &str,
) -> Result<Option<Holder>> {
    let lock = BaseLock {
        base: base.to_string(),
        region: region.to_string(),
        pool: pool.clone(),
        retry: retry.clone(),
    };
    let seen = lock.read().await?;
    Ok(seen.into_iter().last().and_then(|g| match g.state {
        Some(LockState::Held(h)) => Some(h),
        _ => None,
    }))
}

/// Every parameter directly under `path`, by name, with its JSON value; paged, uncached.
async fn list_values(
    pool: &ClientPool,
    region: &str,
    path: &str,
) -> Result<Vec<(String, Option<serde_json::Value>)>, ProviderError> {
    let pages: Vec<_> = pool
        .ssm(region)
        .get_parameters_by_path()
        .path(path)
        .recursive(false)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(|e| reconciler_aws::error::classify(&format!("GetParametersByPath {path}"), e))?;
    Ok(pages
        .iter()
        .flat_map(|p| p.parameters())
        .filter_map(|p| {
            let value = p.value().and_then(reconciler_aws::ssm::decode_value);
            Some((p.name()?.to_string(), value))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_generations_sort_as_numbers() {
        let held = Holder::new_run().fresh();
        let text = serde_json::to_string(&held).unwrap();
        assert!(text.contains(r#""state":"held""#), "{text}");
        assert_eq!(serde_json::from_str::<LockState>(&text).unwrap(), held);
        assert_eq!(
            serde_json::from_str::<LockState>(r#"{"state":"free"}"#).unwrap(),
            LockState::Free
        );
        // Zero-padded, so a path listing in name order is also generation order.
        assert!(format!("{:020}", 9u64) < format!("{:020}", 10u64));
    }

    #[test]
    fn a_holder_that_stopped_refreshing_is_abandoned() {
        let mut h = Holder::new_run();
        assert!(!h.is_abandoned(Duration::from_secs(120)));
        h.refreshed -= 121;
        assert!(h.is_abandoned(Duration::from_secs(120)));
        let mut gone = Holder::new_run();
        gone.pid = u32::MAX;
        assert!(gone.is_abandoned(Duration::from_secs(120)) == cfg!(target_os = "linux"));
    }
}
