//! Bounded concurrency: never more than `max_concurrency` calls in flight,
//! and independent resources really run at the same time.

mod common;

use std::time::Duration;

use common::*;
use reconciler_engine::testing::{Failure, FakeCloud, FakeKind, Verb};
use reconciler_engine::{
    Backoff, DesiredGraph, DesiredResource, ErrorClass, NoEvents, Options, Reconciler, RetryPolicy,
};
use serde_json::json;

fn independent(n: usize) -> DesiredGraph {
    DesiredGraph::new((0..n).map(|i| {
        DesiredResource::new("logs.group", &format!("g{i}"), REGION, format!("/mc/g{i}"))
            .with_properties(json!({"retentionDays": 7}))
    }))
    .unwrap()
}

async fn timed_apply(max: usize, n: usize) -> (usize, Duration) {
    let cloud = FakeCloud::new();
    let r = Reconciler::new(
        cloud.provider([FakeKind::new("logs.group").latency(Duration::from_millis(100))]),
        Options::default().with_max_concurrency(max),
    );
    let graph = independent(n);
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    cloud.reset_calls();
    let start = tokio::time::Instant::now();
    let report = r.apply(&plan, &NoEvents).await;
    let elapsed = start.elapsed();
    assert!(report.is_success());
    assert_eq!(cloud.calls_of(Verb::Create), n);
    (cloud.max_in_flight(), elapsed)
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_used() {
    // 10 independent creates of 100 ms each.
    let (peak, elapsed) = timed_apply(3, 10).await;
    assert_eq!(peak, 3, "never more than 3, and 3 at once");
    assert_eq!(elapsed, Duration::from_millis(400), "ceil(10 / 3) rounds");

    let (peak, elapsed) = timed_apply(1, 4).await;
    assert_eq!(peak, 1);
    assert_eq!(elapsed, Duration::from_millis(400), "strictly sequential");

    let (peak, elapsed) = timed_apply(16, 10).await;
    assert_eq!(peak, 10, "all independent creates in parallel");
    assert_eq!(elapsed, Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn dependency_chains_limit_parallelism_not_the_semaphore() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_millis(100));
    let r = reconciler(&cloud, options().with_max_concurrency(8));
    let graph = graph();
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    cloud.reset_calls();
    let start = tokio::time::Instant::now();
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    // Longest chain: vpc -> sg -> launch template -> asg = 4 rounds.
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    // vpc and the EFS file system start together; then subnets and SG.
    assert!(cloud.max_in_flight() >= 3, "peak {}", cloud.max_in_flight());
    assert!(cloud.max_in_flight() <= 8);
    cloud.assert_created_after_dependencies(&graph);
}

#[tokio::test(start_paused = true)]
async fn backoff_does_not_hold_a_concurrency_slot() {
    // One resource keeps failing with eventual consistency (long waits);
    // with a single slot, the others still complete meanwhile.
    let cloud = FakeCloud::new();
    let retry = RetryPolicy {
        eventual_consistency: Backoff::new(3, Duration::from_secs(10), Duration::from_secs(10)),
        ..RetryPolicy::default().with_seed(9)
    };
    let r = Reconciler::new(
        cloud.provider([FakeKind::new("logs.group").latency(Duration::from_millis(100))]),
        Options::default().with_max_concurrency(1).with_retry(retry),
    );
    let graph = independent(5);
    cloud.inject(
        Failure::on_resource("logs.group/g0")
            .verb(Verb::Create)
            .class(ErrorClass::EventualConsistency)
            .times(1),
    );
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let start = tokio::time::Instant::now();
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    assert_eq!(cloud.max_in_flight(), 1);
    // g0 fails at 100 ms, waits 5..10 s; the other four run meanwhile, so
    // the total is g0's path only, not 5 x 100 ms on top of it.
    let elapsed = start.elapsed();
    assert!(elapsed <= Duration::from_millis(10_200), "{elapsed:?}");
    let order = cloud.completed(Verb::Create);
    assert_eq!(order.last(), Some(&id("logs.group/g0")), "{order:?}");
}

/// An operation starts when its call gets a concurrency slot, not when it begins to wait for
/// one: with one slot and 100 ms calls, the starts are 100 ms apart.
#[tokio::test(start_paused = true)]
async fn an_operation_starts_when_its_call_gets_a_slot() {
    use reconciler_engine::execute::{ApplyEvent, EventKind};
    use std::sync::{Arc, Mutex};

    let cloud = FakeCloud::new();
    let r = Reconciler::new(
        cloud.provider([FakeKind::new("logs.group").latency(Duration::from_millis(100))]),
        Options::default().with_max_concurrency(1),
    );
    let graph = independent(3);
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let origin = tokio::time::Instant::now();
    let starts: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let sink_starts = starts.clone();
    let sink = move |event: ApplyEvent| {
        if matches!(event.kind, EventKind::Started { .. }) {
            sink_starts.lock().unwrap().push(origin.elapsed());
        }
    };
    assert!(r.apply(&plan, &sink).await.is_success());
    let starts = starts.lock().unwrap().clone();
    assert_eq!(
        starts,
        vec![
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(200)
        ]
    );
}
