//! The one retry policy: bounded attempts and jittered exponential backoff
//! chosen by [`ErrorClass`].
//!
//! The delay before retry `n` (the first retry is `n = 1`) is drawn
//! uniformly from `[cap / 2, cap]` where `cap = min(max_delay, base_delay *
//! 2^(n-1))` ("equal jitter"). Half of the delay is guaranteed, so waits
//! grow monotonically with the attempt number; the other half is random, so
//! parallel actions that were throttled together do not retry in lockstep.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::provider::ErrorClass;

/// Attempt budget and delays for one error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Total attempts including the first call; `1` disables retries.
    pub max_attempts: u32,
    /// Cap of the first retry's delay.
    pub base_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
}

impl Backoff {
    /// A budget of `max_attempts` with the given delays.
    pub const fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Backoff {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// No retry.
    pub const fn never() -> Self {
        Backoff::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The upper bound of the delay before retry `retry` (1-based).
    pub fn cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Per-class retry budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// For [`ErrorClass::Throttled`].
    pub throttled: Backoff,
    /// For [`ErrorClass::Transient`].
    pub transient: Backoff,
    /// For [`ErrorClass::EventualConsistency`], and for
    /// [`ErrorClass::NotFound`] answered to a create (a dependency that is
    /// not visible yet).
    pub eventual_consistency: Backoff,
    /// For [`ErrorClass::Conflict`]: each retry first re-observes the
    /// resource and decides again, so an object created by an interrupted or
    /// concurrent run is adopted instead of duplicated.
    pub conflict: Backoff,
    /// Seed for the jitter; `None` draws from the thread RNG. A seed makes
    /// delays reproducible (per resource and operation, whatever the
    /// scheduling order).
    pub seed: Option<u64>,
}

impl Default for RetryPolicy {
    /// Budgets sized for AWS: throttling and IAM propagation can take tens
    /// of seconds, validation errors never heal.
    fn default() -> Self {
        RetryPolicy {
            throttled: Backoff::new(8, Duration::from_millis(500), Duration::from_secs(20)),
            transient: Backoff::new(5, Duration::from_millis(500), Duration::from_secs(10)),
            eventual_consistency: Backoff::new(12, Duration::from_secs(1), Duration::from_secs(15)),
            conflict: Backoff::new(3, Duration::from_millis(200), Duration::from_secs(2)),
            seed: None,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            throttled: Backoff::never(),
            transient: Backoff::never(),
            eventual_consistency: Backoff::never(),
            conflict: Backoff::never(),
            seed: None,
        }
    }

    /// Sets the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The budget for `class`; [`ErrorClass::Terminal`] never retries.
    /// [`ErrorClass::NotFound`] uses the eventual-consistency budget (the
    /// engine decides per operation what a not-found means).
    pub fn backoff(&self, class: ErrorClass) -> Backoff {
        match class {
            ErrorClass::Throttled => self.throttled,
            ErrorClass::Transient => self.transient,
            ErrorClass::EventualConsistency | ErrorClass::NotFound => self.eventual_consistency,
            ErrorClass::Conflict => self.conflict,
            ErrorClass::Terminal => Backoff::never(),
        }
    }

    /// A jitter source for one operation; with a seed it depends only on
    /// the seed and `key`.
    pub fn jitter(&self, key: &str) -> Jitter {
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed ^ fnv1a(key)),
            None => StdRng::seed_from_u64(rand::rng().random()),
        };
        Jitter { rng }
    }
}

/// Random source for backoff delays of one operation.
#[derive(Debug)]
pub struct Jitter {
    rng: StdRng,
}

impl Jitter {
    /// The delay before retry `retry` (1-based) under `backoff`.
    pub fn delay(&mut self, backoff: &Backoff, retry: u32) -> Duration {
        let cap = backoff.cap(retry);
        let half = cap / 2;
        let spread = (cap - half).as_nanos() as f64;
        let extra = Duration::from_nanos((self.rng.random::<f64>() * spread) as u64);
        half + extra
    }
}

/// Calls `op` until it succeeds or the budget of its error's class is spent, each class
/// counted apart as for the engine's own operations, sleeping with jitter in between.
///
/// For the AWS calls a use case makes outside the graph (locks, last results, wake and sleep):
/// they meet the same throttling and faults as graph operations and get the same patience.
/// Throttled, transient and eventual-consistency errors are retried; a conflict, a not-found
/// or a terminal error is the caller's to interpret and returns at once.
pub async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    key: &str,
    mut op: F,
) -> Result<T, crate::provider::ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::provider::ProviderError>>,
{
    let mut jitter = policy.jitter(key);
    let mut failures: std::collections::HashMap<ErrorClass, u32> = Default::default();
    loop {
        let err = match op().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let retryable = matches!(
            err.class,
            ErrorClass::Throttled | ErrorClass::Transient | ErrorClass::EventualConsistency
        );
        let backoff = policy.backoff(err.class);
        let count = failures.entry(err.class).or_insert(0);
        *count += 1;
        if !retryable || *count >= backoff.max_attempts {
            return Err(err);
        }
        let delay = jitter.delay(&backoff, *count);
        tracing::debug!(key, class = %err.class, attempt = *count, ?delay, error = %err.message, "retrying");
        tokio::time::sleep(delay).await;
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_until_max() {
        let b = Backoff::new(10, Duration::from_millis(100), Duration::from_secs(1));
        let caps: Vec<u128> = (1..=6).map(|n| b.cap(n).as_millis()).collect();
        assert_eq!(caps, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.cap(200), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn delays_grow_stay_in_range_and_are_jittered() {
        let b = Backoff::new(10, Duration::from_millis(100), Duration::from_secs(10));
        let policy = RetryPolicy::default().with_seed(7);
        let mut j = policy.jitter("ec2.vpc/main:create");
        let delays: Vec<Duration> = (1..=6).map(|n| j.delay(&b, n)).collect();
        for (n, d) in delays.iter().enumerate() {
            let cap = b.cap(n as u32 + 1);
            assert!(
                *d >= cap / 2 && *d <= cap,
                "retry {} delay {d:?} cap {cap:?}",
                n + 1
            );
        }
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        // Same seed and key: same delays. Other key: other delays.
        let mut again = policy.jitter("ec2.vpc/main:create");
        let repeat: Vec<Duration> = (1..=6).map(|n| again.delay(&b, n)).collect();
        assert_eq!(delays, repeat);
        let mut other = policy.jitter("ec2.vpc/other:create");
        let different: Vec<Duration> = (1..=6).map(|n| other.delay(&b, n)).collect();
        assert_ne!(delays, different);
        // Not all at the cap: there is jitter.
        assert!(delays
            .iter()
            .enumerate()
            .any(|(n, d)| *d != b.cap(n as u32 + 1)));
    }

    #[tokio::test(start_paused = true)]
    async fn retrying_spends_each_class_budget_apart_and_stops_on_final_errors() {
        use crate::provider::ProviderError;
        let policy = RetryPolicy::default().with_seed(1);
        // Two throttles, then a transient error, then success: all within budget.
        let mut script = vec![
            Err(ProviderError::throttled("slow down")),
            Err(ProviderError::throttled("slow down")),
            Err(ProviderError::transient("reset")),
            Ok(7),
        ]
        .into_iter();
        let calls = std::cell::Cell::new(0);
        let got = retrying(&policy, "k", || {
            calls.set(calls.get() + 1);
            let next = script.next().expect("no more than scripted");
            async move { next }
        })
        .await;
        assert_eq!(got, Ok(7));
        assert_eq!(calls.get(), 4);
        // A conflict is the caller's answer: one call.
        let calls = std::cell::Cell::new(0);
        let got: Result<(), _> = retrying(&policy, "k", || {
            calls.set(calls.get() + 1);
            async { Err(ProviderError::conflict("exists")) }
        })
        .await;
        assert_eq!(got.unwrap_err().class, ErrorClass::Conflict);
        assert_eq!(calls.get(), 1);
        // Throttling without end gives up after the class's attempts.
        let calls = std::cell::Cell::new(0);
        let got: Result<(), _> = retrying(&policy, "k", || {
            calls.set(calls.get() + 1);
            async { Err(ProviderError::throttled("slow down")) }
        })
        .await;
        assert_eq!(got.unwrap_err().class, ErrorClass::Throttled);
        assert_eq!(calls.get(), policy.throttled.max_attempts);
    }

    #[test]
    fn class_budgets() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(ErrorClass::Terminal).max_attempts, 1);
        assert!(p.backoff(ErrorClass::Throttled).max_attempts > 1);
        assert_eq!(p.backoff(ErrorClass::NotFound), p.eventual_consistency);
        assert_eq!(
            RetryPolicy::none()
                .backoff(ErrorClass::Throttled)
                .max_attempts,
            1
        );
    }
}
