//! Reads shared by the clients of one observation.
//!
//! Some reads serve several kinds at once: a region's tag index, the account's IAM
//! authorization details, listings such as the account's hosted zones (see
//! `ClientPool::shared_read`). The first client to ask fetches, the others wait for that fetch
//! and share its answer. The engine announces each observation of a graph (the provider's
//! observation hook expires every memo), so the next plan, `watch` round or re-plan under the
//! lock reads anew; the client pool expires every memo after any call that writes; and an
//! answer also expires after [`FRESH_FOR`], for reads outside an observation (the refresh after
//! a conflict).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reconciler_engine::provider::ProviderError;
use tokio::sync::OnceCell;

/// How long one answer serves at most.
pub const FRESH_FOR: Duration = Duration::from_secs(60);

/// One key's fetch, shared by the clients that ask while it is fresh.
struct Entry<T> {
    started: Instant,
    cell: Arc<OnceCell<T>>,
}

/// Answers by key (a region, or one key for a global read), each fetched once per observation.
pub struct ObservationMemo<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for ObservationMemo<T> {
    fn default() -> Self {
        ObservationMemo {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> std::fmt::Debug for ObservationMemo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservationMemo").finish_non_exhaustive()
    }
}

impl<T: Clone> ObservationMemo<T> {
    /// Makes the next read fetch anew: a new observation must see changes made since the last.
    pub fn expire(&self) {
        self.entries.lock().expect("memo lock").clear();
    }

    /// The answer for `key`: the current one while fresh, else what `fetch` returns. A failed
    /// fetch is not kept, so the next caller tries again.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<T, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let cell = self.cell(key);
        cell.get_or_try_init(fetch).await.cloned()
    }

    /// The cell of `key`'s current fetch, a new one when the last is stale.
    fn cell(&self, key: &str) -> Arc<OnceCell<T>> {
        let mut entries = self.entries.lock().expect("memo lock");
        match entries.get(key) {
            Some(e) if e.started.elapsed() < FRESH_FOR => e.cell.clone(),
            _ => {
                let cell = Arc::new(OnceCell::new());
                entries.insert(
                    key.to_string(),
                    Entry {
                        started: Instant::now(),
                        cell: cell.clone(),
                    },
                );
                cell
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_fetch_is_shared_and_a_stale_or_expired_one_replaced() {
        let memo: ObservationMemo<u32> = ObservationMemo::default();
        let a = memo.cell("eu-west-1");
        let b = memo.cell("eu-west-1");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &memo.cell("us-east-1")));
        memo.entries
            .lock()
            .unwrap()
            .get_mut("eu-west-1")
            .unwrap()
            .started -= FRESH_FOR;
        let c = memo.cell("eu-west-1");
        assert!(!Arc::ptr_eq(&a, &c));
        memo.expire();
        assert!(!Arc::ptr_eq(&c, &memo.cell("eu-west-1")));
    }

    #[tokio::test]
    async fn one_fetch_serves_until_expired_and_failures_are_not_kept() {
        let memo: ObservationMemo<u32> = ObservationMemo::default();
        let failed = memo
            .get("k", || async { Err(ProviderError::transient("down")) })
            .await;
        assert!(failed.is_err());
        assert_eq!(memo.get("k", || async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(memo.get("k", || async { Ok(2) }).await.unwrap(), 1);
        memo.expire();
        assert_eq!(memo.get("k", || async { Ok(3) }).await.unwrap(), 3);
    }
}
