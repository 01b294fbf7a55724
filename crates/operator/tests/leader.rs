//! Leader election against an in-memory Lease store that enforces resource versions as the
//! API server does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use reconciler_operator::leader::{Elector, LeaseStore, LeaseWriteError};
use reconciler_operator::KubeError;
use tokio::time::Instant;

#[derive(Clone, Default)]
struct Store(Arc<Mutex<(Option<Lease>, u64)>>);

#[async_trait]
impl LeaseStore for Store {
    async fn get(&self) -> Result<Option<Lease>, KubeError> {
        Ok(self.0.lock().unwrap().0.clone())
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, LeaseWriteError> {
        let mut s = self.0.lock().unwrap();
        if s.0.is_some() {
            return Err(LeaseWriteError::Conflict);
        }
        s.1 += 1;
        let mut lease = lease.clone();
        lease.metadata.resource_version = Some(s.1.to_string());
        s.0 = Some(lease.clone());
        Ok(lease)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseWriteError> {
        let mut s = self.0.lock().unwrap();
        let current = s.0.as_ref().map(|l| l.metadata.resource_version.clone());
        if current != Some(lease.metadata.resource_version.clone()) {
            return Err(LeaseWriteError::Conflict);
        }
        s.1 += 1;
        let mut lease = lease.clone();
        lease.metadata.resource_version = Some(s.1.to_string());
        s.0 = Some(lease.clone());
        Ok(lease)
    }
}

impl Store {
    fn holder(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .0
            .as_ref()
            .and_then(|l| l.spec.as_ref()?.holder_identity.clone())
    }

    fn transitions(&self) -> i32 {
        self.0
            .lock()
            .unwrap()
            .0
            .as_ref()
            .and_then(|l| l.spec.as_ref()?.lease_transitions)
            .unwrap_or(-1)
    }
}

const LEASE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn one_leader_at_a_time_and_a_standby_takes_over_an_expired_lease() {
    let store = Store::default();
    let mut a = Elector::new(store.clone(), "reconciler-operator", "pod-a", LEASE);
    let mut b = Elector::new(store.clone(), "reconciler-operator", "pod-b", LEASE);
    let t0 = Instant::now();

    assert!(
        a.try_acquire_or_renew(t0).await.unwrap(),
        "a creates the lease"
    );
    assert!(!b.try_acquire_or_renew(t0).await.unwrap(), "b stands by");
    assert_eq!(store.holder().as_deref(), Some("pod-a"));
    assert_eq!(store.transitions(), 0);

    // a renews; b, seeing the record change, keeps waiting even past the first 15 s.
    assert!(a
        .try_acquire_or_renew(t0 + Duration::from_secs(10))
        .await
        .unwrap());
    assert!(!b
        .try_acquire_or_renew(t0 + Duration::from_secs(11))
        .await
        .unwrap());
    assert!(!b
        .try_acquire_or_renew(t0 + Duration::from_secs(20))
        .await
        .unwrap());

    // a stops renewing: 15 s after b last saw a change, b takes over.
    assert!(!b
        .try_acquire_or_renew(t0 + Duration::from_secs(25))
        .await
        .unwrap());
    assert!(b
        .try_acquire_or_renew(t0 + Duration::from_secs(27))
        .await
        .unwrap());
    assert_eq!(store.holder().as_deref(), Some("pod-b"));
    assert_eq!(store.transitions(), 1);

    // a comes back and finds b leading.
    assert!(!a
        .try_acquire_or_renew(t0 + Duration::from_secs(28))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let store = Store::default();
    let mut a = Elector::new(store.clone(), "l", "pod-a", LEASE);
    let mut b = Elector::new(store.clone(), "l", "pod-b", LEASE);
    let t0 = Instant::now();
    assert!(a.try_acquire_or_renew(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    a.release().await.unwrap();
    assert_eq!(store.holder(), None);
    assert!(b
        .try_acquire_or_renew(t0 + Duration::from_secs(1))
        .await
        .unwrap());
    assert_eq!(store.holder().as_deref(), Some("pod-b"));
    // Releasing a lease one does not hold changes nothing.
    a.release().await.unwrap();
    assert_eq!(store.holder().as_deref(), Some("pod-b"));
}

#[tokio::test]
async fn two_candidates_racing_for_an_expired_lease_cannot_both_win() {
    let store = Store::default();
    let mut a = Elector::new(store.clone(), "l", "pod-a", LEASE);
    let mut b = Elector::new(store.clone(), "l", "pod-b", LEASE);
    let mut c = Elector::new(store.clone(), "l", "pod-c", LEASE);
    let t0 = Instant::now();
    assert!(c.try_acquire_or_renew(t0).await.unwrap());
    assert!(!a.try_acquire_or_renew(t0).await.unwrap());
    assert!(!b.try_acquire_or_renew(t0).await.unwrap());
    // Both read the expired lease, then write: the second write carries a stale version.
    let late = t0 + Duration::from_secs(16);
    let lease_before = store.0.lock().unwrap().0.clone();
    assert!(a.try_acquire_or_renew(late).await.unwrap());
    // Put b's view back in time by racing on the same read: replay its write against the
    // version it would have read.
    let stale = lease_before.unwrap();
    let mut attempt = stale.clone();
    attempt.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    assert_eq!(
        store.replace(&attempt).await,
        Err(LeaseWriteError::Conflict)
    );
    assert!(
        !b.try_acquire_or_renew(late).await.unwrap(),
        "b sees a's fresh record"
    );
    assert_eq!(store.holder().as_deref(), Some("pod-a"));
}
