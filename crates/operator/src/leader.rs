//! Leader election over a `coordination.k8s.io/v1` Lease, so several replicas can run and
//! only one reconciles.
//!
//! The algorithm is client-go's: a candidate takes the Lease when it does not exist, when it
//! names no holder, or when its record has not changed for `leaseDurationSeconds` *as seen by
//! this candidate's own clock* (so clock skew between nodes does not matter). The holder
//! renews by writing a new `renewTime`. Every write carries the `resourceVersion` that was
//! read, so two candidates racing for an expired Lease cannot both win: the API server
//! rejects the second write with a conflict. A holder that shuts down releases the Lease
//! (clears the holder) so a standby takes over at once instead of after the lease duration.

use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::time::Instant;

use crate::reconcile::KubeError;

/// Why a Lease write failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LeaseWriteError {
    /// The Lease changed (or appeared) since it was read: another candidate wrote first.
    #[error("conflict")]
    Conflict,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Where the Lease lives.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// The Lease, if it exists.
    async fn get(&self) -> Result<Option<Lease>, KubeError>;
    /// Creates it; [`LeaseWriteError::Conflict`] when it already exists.
    async fn create(&self, lease: &Lease) -> Result<Lease, LeaseWriteError>;
    /// Replaces it; [`LeaseWriteError::Conflict`] when its `resourceVersion` is stale.
    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseWriteError>;
}

/// One candidate.
pub struct Elector<S> {
    store: S,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The Lease spec last seen, and when (by this candidate's clock).
    observed: Option<(LeaseSpec, Instant)>,
}

impl<S: LeaseStore> Elector<S> {
    /// A candidate named `identity` for the Lease `name`.
    pub fn new(store: S, name: &str, identity: &str, lease_duration: Duration) -> Self {
        Elector {
            store,
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One round: takes or renews the Lease when allowed. `true` when this candidate holds
    /// it afterwards.
    pub async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, KubeError> {
        let Some(lease) = self.store.get().await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None, 0)),
            };
            return self.write(self.store.create(&lease).await, now);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(s, _)| s) != Some(&spec) {
            self.observed = Some((spec.clone(), now));
        }
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let mine = holder == Some(self.identity.as_str());
        if let Some(_other) = holder.filter(|_| !mine) {
            let duration = spec
                .lease_duration_seconds
                .map_or(
                    self.lease_duration,
                    |s| Duration::from_secs(s.max(0) as u64),
                );
            let seen_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
            if seen_at + duration > now {
                return Ok(false);
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        let mut next = lease.clone();
        next.spec = Some(self.record(acquired, transitions));
        self.write(self.store.replace(&next).await, now)
    }

    /// Gives the Lease up if this candidate holds it, so another can take it at once.
    pub async fn release(&mut self) -> Result<(), KubeError> {
        let Some(mut lease) = self.store.get().await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::chrono::Utc::now()));
        match self.store.replace(&lease).await {
            Ok(_) | Err(LeaseWriteError::Conflict) => Ok(()),
            Err(LeaseWriteError::Other(e)) => Err(KubeError(e)),
        }
    }

    fn record(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(k8s_openapi::chrono::Utc::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn write(
        &mut self,
        result: Result<Lease, LeaseWriteError>,
        now: Instant,
    ) -> Result<bool, KubeError> {
        match result {
            Ok(lease) => {
                self.observed = Some((lease.spec.unwrap_or_default(), now));
                Ok(true)
            }
            Err(LeaseWriteError::Conflict) => Ok(false),
            Err(LeaseWriteError::Other(e)) => Err(KubeError(e)),
        }
    }
}

/// Timing of the election, client-go's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// The holder gives up leading when it could not renew for this long (shorter than the
    /// lease duration, so it stops before anyone else may start).
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Waits until this candidate leads; `false` when `stop` came first.
pub async fn acquire<S: LeaseStore>(
    elector: &mut Elector<S>,
    timing: Timing,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        match elector.try_acquire_or_renew(Instant::now()).await {
            Ok(true) => return true,
            Ok(false) => tracing::debug!("another replica leads; standing by"),
            Err(error) => tracing::warn!(%error, "could not read or write the lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(timing.retry_period) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
    }
}

/// Renews the Lease every retry period; returns when it could not be renewed for the renew
/// deadline (leadership is lost).
pub async fn keep<S: LeaseStore>(elector: &mut Elector<S>, timing: Timing) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(timing.retry_period).await;
        let now = Instant::now();
        match elector.try_acquire_or_renew(now).await {
            Ok(true) => renewed = now,
            Ok(false) => {
                tracing::error!("another replica took the lease");
                return;
            }
            Err(error) => tracing::warn!(%error, "could not renew the lease"),
        }
        if now.duration_since(renewed) >= timing.renew_deadline {
            tracing::error!("could not renew the lease before the deadline");
            return;
        }
    }
}
