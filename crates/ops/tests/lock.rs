//! The per-Base lock against the emulator: contenders behind injected latency hold it one at a
//! time and create an unprotected object once; a holder that stalls past the stale time is
//! taken over, learns that it lost, and leaves the new holder alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use reconciler_aws::ClientPool;
use reconciler_engine::RetryPolicy;
use reconciler_ops::lock::{acquire_with, holder, LockTiming};
use reconciler_testkit::proxy::{FaultPlan, Proxy};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use tokio::sync::Barrier;

const REGION: &str = "eu-west-1";
const CONTENDERS: usize = 8;

/// A pool whose every call waits `latency` in a proxy before it reaches the emulator, in a
/// fresh account.
fn pool_behind(proxy: &Proxy, account: &str) -> Arc<ClientPool> {
    Arc::new(ClientPool::new(sdk_config(proxy.url(), REGION, account)))
}

fn latency(ms: u64) -> Proxy {
    Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            latency: Duration::from_millis(ms),
            ..FaultPlan::default()
        },
    )
}

/// The check-then-create a run makes for an object without an idempotency key: a VPC found by
/// its `Name` tag, created when missing. With `between`, the run waits there after its check,
/// as a slow run would.
async fn ensure_vpc(ec2: &aws_sdk_ec2::Client, name: &str, between: Option<&Barrier>) {
    let found = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .unwrap();
    if let Some(barrier) = between {
        barrier.wait().await;
    }
    if !found.vpcs().is_empty() {
        return;
    }
    ec2.create_vpc()
        .cidr_block("10.9.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key("Name").value(name).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn vpcs_named(ec2: &aws_sdk_ec2::Client, name: &str) -> usize {
    ec2.describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .unwrap()
        .vpcs()
        .len()
}

fn base() -> Vec<(String, String)> {
    vec![("arena".to_string(), REGION.to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contenders_hold_the_lock_one_at_a_time_and_create_once() {
    let proxy = latency(20);
    let pool = pool_behind(&proxy, &fresh_account_id());
    let ec2 = pool.ec2(REGION);

    // Without the lock, contenders that all check before any creates all create: the check
    // below can fail. (The barrier makes that interleaving certain; the lock must exclude it.)
    let checked = Arc::new(Barrier::new(CONTENDERS));
    let unguarded: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let (ec2, checked) = (ec2.clone(), checked.clone());
            tokio::spawn(async move { ensure_vpc(&ec2, "unguarded", Some(&checked)).await })
        })
        .collect();
    for task in unguarded {
        task.await.unwrap();
    }
    assert!(vpcs_named(&ec2, "unguarded").await > 1, "the race is real");

    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let timing = LockTiming {
        poll_every: Duration::from_millis(50),
        ..LockTiming::default()
    };
    let contenders: Vec<_> = (0..CONTENDERS)
        .map(|_| {
            let (pool, holding, most) = (pool.clone(), holding.clone(), most.clone());
            tokio::spawn(async move {
                let retry = RetryPolicy::default();
                let guard = acquire_with(&pool, &retry, &base(), Duration::from_secs(120), timing)
                    .await
                    .unwrap();
                most.fetch_max(holding.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                ensure_vpc(&pool.ec2(REGION), "guarded", None).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
                holding.fetch_sub(1, Ordering::SeqCst);
                assert!(!guard.lost());
                guard.release().await;
            })
        })
        .collect();
    for task in contenders {
        task.await.unwrap();
    }

    assert_eq!(most.load(Ordering::SeqCst), 1, "never two holders at once");
    assert_eq!(vpcs_named(&ec2, "guarded").await, 1, "created once");
    let now = holder(&pool, &RetryPolicy::default(), "arena", REGION)
        .await
        .unwrap();
    assert_eq!(now, None, "free after the last release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_holder_is_taken_over_and_puts_nothing_back() {
    let proxy = latency(5);
    let pool = pool_behind(&proxy, &fresh_account_id());
    let retry = RetryPolicy::default();
    let stale_after = Duration::from_secs(2);
    // The first run stalls: it refreshes long after its lock went stale.
    let started = Instant::now();
    let stalled = acquire_with(
        &pool,
        &retry,
        &base(),
        Duration::ZERO,
        LockTiming {
            stale_after,
            refresh_every: Duration::from_secs(8),
            poll_every: Duration::from_millis(100),
        },
    )
    .await
    .unwrap();
    let next = acquire_with(
        &pool,
        &retry,
        &base(),
        Duration::from_secs(30),
        LockTiming {
            stale_after,
            refresh_every: Duration::from_secs(1),
            poll_every: Duration::from_millis(100),
        },
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() >= stale_after,
        "taken over only once stale: {:?}",
        started.elapsed()
    );
    let current = || async {
        holder(&pool, &retry, "arena", REGION)
            .await
            .unwrap()
            .map(|h| h.token)
    };
    assert_eq!(current().await.as_deref(), Some(next.token()));

    // The stalled run's refresh finds its lock taken over and writes nothing of its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stalled.lost() {
        assert!(Instant::now() < deadline, "the stalled run never noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(current().await.as_deref(), Some(next.token()));
    stalled.release().await;
    assert_eq!(
        current().await.as_deref(),
        Some(next.token()),
        "the stalled run's release leaves the new holder alone"
    );

    next.release().await;
    assert_eq!(current().await, None);
}
