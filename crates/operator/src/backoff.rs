//! Per-object exponential backoff, reset on success.
//!
//! kube-rs's `error_policy` hears about failures only, so the failure count lives here: the
//! reconcile function resets an object's count when it succeeds and the error policy grows
//! it. The delay is `min × 2^(failures-1)`, at most `max`: the same shape as `reconciler
//! watch`'s per-server backoff, starting lower because a Kubernetes object usually fails on
//! something a person fixes right away (a missing Base, a typo).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Failure counts by object.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more failure of `key` and returns how long to wait before the next try.
    pub fn fail(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        delay(self.min, self.max, *n)
    }

    /// Forgets the failures of `key` (it reconciled, or it is gone).
    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }

    /// Failures of `key` since its last success.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .expect("backoff lock")
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// `min × 2^(failures-1)`, at most `max`.
pub fn delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_limit_and_resets() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
        let waits: Vec<u64> = (0..8).map(|_| b.fail("ns/a").as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.fail("ns/b"), Duration::from_secs(5), "per object");
        b.reset("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
        assert_eq!(b.fail("ns/a"), Duration::from_secs(5));
        assert_eq!(
            delay(Duration::from_secs(5), Duration::MAX, 200),
            Duration::from_secs(5 << 16)
        );
    }
}
