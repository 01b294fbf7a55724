//! Failure isolation, retries by error class, bounded attempts and backoff.

mod common;

use std::time::Duration;

use common::*;
use reconciler_engine::testing::{Failure, FakeCloud, Verb};
use reconciler_engine::{
    Backoff, ErrorClass, EventKind, NoEvents, Operation, Options, Outcome, RetryPolicy,
};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn a_terminal_failure_blocks_only_its_dependents() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    cloud.inject(
        Failure::on_resource("ec2.subnet/a")
            .verb(Verb::Create)
            .class(ErrorClass::Terminal)
            .message("InvalidSubnet.Range"),
    );
    let events = Recorder::default();
    let (_, report) = r.reconcile(&graph, &[], &events).await.unwrap();

    assert!(!report.is_success());
    let subnet = report.get(&id("ec2.subnet/a")).unwrap();
    assert!(
        matches!(&subnet.outcome, Outcome::Failed { error } if error.class == ErrorClass::Terminal)
    );
    assert_eq!(subnet.attempts, 1, "terminal errors are not retried");
    assert_eq!(cloud.calls_for(&id("ec2.subnet/a"), Verb::Create), 1);

    // Dependents of subnet a are skipped and name it.
    for dependent in ["autoscaling.group/server", "efs.mount-target/data-a"] {
        assert_eq!(
            report.outcome(&id(dependent)),
            Some(&Outcome::Skipped {
                blocked_by: vec![id("ec2.subnet/a")]
            }),
            "{dependent}"
        );
        assert_eq!(cloud.calls_for(&id(dependent), Verb::Create), 0);
        assert_eq!(
            events.for_id(&id(dependent)),
            vec![EventKind::Skipped {
                blocked_by: vec![id("ec2.subnet/a")]
            }]
        );
    }
    // Unrelated branches completed.
    for done in [
        "ec2.vpc/main",
        "ec2.subnet/b",
        "ec2.security-group/server",
        "ec2.launch-template/server",
        "efs.file-system/data",
    ] {
        assert_eq!(
            report.outcome(&id(done)),
            Some(&Outcome::Succeeded),
            "{done}"
        );
        cloud.assert_exists(&id(done));
    }
    let c = report.counts();
    assert_eq!((c.succeeded, c.failed, c.skipped), (5, 1, 2));
    assert_eq!(report.failures().count(), 1);

    // The next run finishes the job.
    let (plan, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert_eq!(plan.summary().add, 3);
    assert!(report.is_success(), "{report:#?}");
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_until_success() {
    for class in [
        ErrorClass::Throttled,
        ErrorClass::Transient,
        ErrorClass::EventualConsistency,
        ErrorClass::NotFound,
    ] {
        let cloud = FakeCloud::new();
        let r = reconciler(&cloud, options());
        let graph = graph();
        cloud.inject(
            Failure::on_kind("ec2.launch-template")
                .verb(Verb::Create)
                .class(class)
                .times(2),
        );
        let events = Recorder::default();
        let (_, report) = r.reconcile(&graph, &[], &events).await.unwrap();
        assert!(report.is_success(), "{class}: {report:#?}");
        let lt = report.get(&id("ec2.launch-template/server")).unwrap();
        assert_eq!(lt.attempts, 3, "{class}");
        assert_eq!(
            report.total_attempts(),
            10,
            "{class}: 8 creates + 2 retries"
        );
        let kinds = events.for_id(&id("ec2.launch-template/server"));
        let retries: Vec<(u32, ErrorClass)> = kinds
            .iter()
            .filter_map(|k| match k {
                EventKind::Retrying { attempt, class, .. } => Some((*attempt, *class)),
                _ => None,
            })
            .collect();
        assert_eq!(retries, vec![(1, class), (2, class)]);
        assert_eq!(
            kinds.first(),
            Some(&EventKind::Started {
                operation: Operation::Create
            })
        );
        assert_eq!(
            kinds.last(),
            Some(&EventKind::Succeeded {
                operation: Operation::Create,
                attempts: 3
            })
        );
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_are_bounded_per_class() {
    let cloud = FakeCloud::new();
    let retry = RetryPolicy {
        throttled: Backoff::new(4, Duration::from_millis(100), Duration::from_secs(1)),
        ..RetryPolicy::default().with_seed(3)
    };
    let r = reconciler(&cloud, options().with_retry(retry));
    cloud.inject(
        Failure::on_kind("ec2.vpc")
            .verb(Verb::Create)
            .class(ErrorClass::Throttled)
            .times(usize::MAX),
    );
    let graph = graph();
    let (_, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    let vpc = report.get(&id("ec2.vpc/main")).unwrap();
    assert_eq!(vpc.attempts, 4);
    assert_eq!(cloud.calls_for(&id("ec2.vpc/main"), Verb::Create), 4);
    match &vpc.outcome {
        Outcome::Failed { error } => {
            assert_eq!(error.class, ErrorClass::Throttled);
            assert!(
                error.message.contains("gave up after 4 attempts"),
                "{}",
                error.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Everything in the VPC is skipped; EFS file system is independent.
    assert_eq!(report.counts().skipped, 6);
    assert_eq!(
        report.outcome(&id("efs.file-system/data")),
        Some(&Outcome::Succeeded)
    );

    // Conflict is not retried when its budget is 1.
    let cloud = FakeCloud::new();
    let retry = RetryPolicy {
        conflict: Backoff::never(),
        ..RetryPolicy::default()
    };
    let r = reconciler(&cloud, Options::default().with_retry(retry));
    cloud.inject(
        Failure::on_kind("ec2.vpc")
            .verb(Verb::Create)
            .class(ErrorClass::Conflict),
    );
    let (_, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert_eq!(report.get(&id("ec2.vpc/main")).unwrap().attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_with_jitter_and_is_reproducible_with_a_seed() {
    let backoff = Backoff::new(6, Duration::from_millis(200), Duration::from_secs(5));
    let run = |seed: u64| async move {
        let cloud = FakeCloud::new();
        let retry = RetryPolicy {
            transient: backoff,
            ..RetryPolicy::default().with_seed(seed)
        };
        let r = reconciler(&cloud, options().with_retry(retry));
        cloud.inject(
            Failure::on_kind("ec2.vpc")
                .verb(Verb::Create)
                .class(ErrorClass::Transient)
                .times(5),
        );
        let graph = graph();
        let observed = r.observe(&graph).await.unwrap();
        let plan = r.plan(&graph, &observed, &[]).unwrap();
        let events = Recorder::default();
        let start = tokio::time::Instant::now();
        let report = r.apply(&plan, &events).await;
        let elapsed = start.elapsed();
        assert!(report.is_success());
        (events.retry_delays(&id("ec2.vpc/main")), elapsed)
    };

    let (delays, elapsed) = run(1).await;
    assert_eq!(delays.len(), 5);
    for (n, d) in delays.iter().enumerate() {
        let cap = backoff.cap(n as u32 + 1);
        assert!(
            *d >= cap / 2 && *d <= cap,
            "retry {}: {d:?} not in [{:?}, {cap:?}]",
            n + 1,
            cap / 2
        );
    }
    assert!(
        delays.windows(2).all(|w| w[0] <= w[1]),
        "delays grow: {delays:?}"
    );
    assert!(delays[4] > delays[0] * 4, "exponential: {delays:?}");
    // The run really waited: the virtual clock advanced by the delays.
    let waited: Duration = delays.iter().sum();
    assert!(elapsed >= waited, "{elapsed:?} < {waited:?}");

    let (again, _) = run(1).await;
    assert_eq!(delays, again, "same seed, same delays");
    let (other, _) = run(2).await;
    assert_ne!(delays, other, "another seed jitters differently");
}

#[tokio::test(start_paused = true)]
async fn conflicts_on_update_refresh_and_retry() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;
    let sg = id("ec2.security-group/server");
    cloud.set_property(&sg, "/description", json!("edited by hand"));
    cloud.inject(
        Failure::on_resource(sg.clone())
            .verb(Verb::Update)
            .class(ErrorClass::Conflict),
    );
    let (plan, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert_eq!(plan.summary().change, 1);
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.get(&sg).unwrap().attempts, 2);
    assert_eq!(
        cloud.property(&sg, "/description"),
        Some(json!("game server"))
    );
    // The refresh was one extra observe of that resource: the batched one
    // of the run, plus one.
    assert_eq!(cloud.calls("ec2.security-group", Verb::Observe), 2);
    assert_eq!(cloud.calls("ec2.vpc", Verb::Observe), 1);

    // An update whose object vanished meanwhile becomes a create.
    let lt = id("ec2.launch-template/server");
    cloud.set_property(&lt, "/instanceType", json!("t3.small"));
    let plan = r
        .plan(&graph, &r.observe(&graph).await.unwrap(), &[])
        .unwrap();
    assert_eq!(plan.action(&lt), Some(reconciler_engine::Action::Update));
    cloud.delete_out_of_band(&lt);
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    cloud.assert_exists(&lt);
    assert_eq!(
        cloud.property(&lt, "/instanceType"),
        Some(json!("t3.medium"))
    );
    assert_eq!(cloud.calls_for(&lt, Verb::Create), 1);
    cloud.assert_no_violations();
}

#[tokio::test(start_paused = true)]
async fn not_found_on_delete_is_success() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan_destroy(&graph, &observed).unwrap();
    // Someone deletes the launch template first.
    cloud.delete_out_of_band(&id("ec2.launch-template/server"));
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(
        report.outcome(&id("ec2.launch-template/server")),
        Some(&Outcome::Succeeded)
    );
    assert_eq!(
        report
            .get(&id("ec2.launch-template/server"))
            .unwrap()
            .attempts,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn observe_errors_are_retried_then_reported() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    cloud.inject(
        Failure::on_kind("ec2.subnet")
            .verb(Verb::Observe)
            .class(ErrorClass::Throttled)
            .times(2),
    );
    let observed = r.observe(&graph).await.unwrap();
    assert_eq!(observed.calls(), 9, "7 groups, 2 retries");

    cloud.inject(
        Failure::on_kind("ec2.subnet")
            .verb(Verb::Observe)
            .message("AccessDenied"),
    );
    let err = r.observe(&graph).await.unwrap_err();
    assert!(err.to_string().contains("ec2.subnet in us-east-1"), "{err}");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn call_timeouts_count_as_transient() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_secs(30));
    let retry = RetryPolicy {
        transient: Backoff::new(2, Duration::from_millis(10), Duration::from_millis(10)),
        ..RetryPolicy::default()
    };
    let r = reconciler(
        &cloud,
        Options::default()
            .with_retry(retry)
            .with_call_timeout(Duration::from_secs(1)),
    );
    let err = r.observe(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn each_class_spends_its_own_budget() {
    // Two throttles and then a conflict (the create went through on an earlier attempt whose
    // answer was lost): the conflict still gets its refresh although the attempts so far
    // exceed the conflict budget.
    let cloud = FakeCloud::new();
    let retry = RetryPolicy {
        throttled: Backoff::new(3, Duration::from_millis(10), Duration::from_millis(50)),
        conflict: Backoff::new(2, Duration::from_millis(10), Duration::from_millis(50)),
        ..RetryPolicy::default().with_seed(5)
    };
    let r = reconciler(&cloud, options().with_retry(retry));
    cloud.inject(
        Failure::on_kind("ec2.vpc")
            .verb(Verb::Create)
            .class(ErrorClass::Throttled)
            .times(2),
    );
    cloud.inject(
        Failure::on_kind("ec2.vpc")
            .verb(Verb::Create)
            .class(ErrorClass::Conflict)
            .times(1),
    );
    let graph = graph();
    let (_, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    let vpc = report.get(&id("ec2.vpc/main")).unwrap();
    assert_eq!(vpc.outcome, Outcome::Succeeded, "{vpc:?}");
    assert_eq!(vpc.attempts, 4);
}
