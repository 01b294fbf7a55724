//! Destroy and prune: reverse dependency order, retention, failure
//! isolation.

mod common;

use std::time::Duration;

use common::*;
use reconciler_engine::testing::{Failure, FakeCloud, FakeKind, Verb};
use reconciler_engine::{
    Action, DesiredGraph, DesiredResource, ErrorClass, EventKind, KindSpec, NoEvents, Options,
    Outcome, PlanError, Reconciler,
};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn destroy_deletes_dependents_first_and_keeps_retained_data() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_millis(10));
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;

    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan_destroy(&graph, &observed).unwrap();
    let s = plan.summary();
    assert_eq!((s.destroy, s.retain, s.add, s.change), (7, 1, 0, 0));
    assert!(!plan.is_empty());
    assert_eq!(
        plan.action(&id("efs.file-system/data")),
        Some(Action::Retain)
    );
    let retained: Vec<_> = plan.retained().map(|p| p.id.clone()).collect();
    assert_eq!(retained, vec![id("efs.file-system/data")]);
    let text = plan.to_string();
    assert!(
        text.contains(
            "= retain efs.file-system/data (us-east-1, mc-data): retained on delete, not deleted"
        ),
        "{text}"
    );
    // Plan order is the execution order: children before parents.
    let order: Vec<_> = plan.resources().iter().map(|p| p.id.clone()).collect();
    let pos = |s: &str| order.iter().position(|x| x == &id(s)).unwrap();
    assert!(pos("autoscaling.group/server") < pos("ec2.launch-template/server"));
    assert!(pos("ec2.subnet/a") < pos("ec2.vpc/main"));

    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.counts().succeeded, 7);
    assert_eq!(report.counts().retained, 1);
    assert_eq!(
        report.outcome(&id("efs.file-system/data")),
        Some(&Outcome::Retained)
    );
    // The fake refuses to delete anything still referenced
    // (DependencyViolation); ordering makes that never happen.
    assert_eq!(
        cloud.calls_of(Verb::Delete),
        7,
        "no delete had to be retried"
    );
    cloud.assert_deleted_after_dependents(&graph);
    assert_eq!(cloud.len(), 1);
    cloud.assert_exists(&id("efs.file-system/data"));
    let deleted = cloud.completed(Verb::Delete);
    assert_eq!(deleted.last(), Some(&id("ec2.vpc/main")));

    // Destroying again: nothing left but the retained data, still listed.
    let (plan, report) = r.destroy(&graph, &NoEvents).await.unwrap();
    assert!(plan.is_empty());
    assert_eq!(plan.summary().retain, 1);
    assert_eq!(
        plan.to_string(),
        "= retain efs.file-system/data (us-east-1, mc-data): retained on delete, not deleted\n\
         \n\
         Plan: 0 to add, 0 to change, 0 to destroy, 1 to retain.\n"
    );
    assert!(report.is_success());
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_keeps_its_dependencies() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;
    cloud.inject(
        Failure::on_resource("ec2.security-group/server")
            .verb(Verb::Delete)
            .class(ErrorClass::Terminal)
            .message("UnauthorizedOperation"),
    );
    let (_, report) = r.destroy(&graph, &NoEvents).await.unwrap();
    assert!(matches!(
        report.outcome(&id("ec2.security-group/server")),
        Some(Outcome::Failed { .. })
    ));
    // The VPC waits for the security group: skipped, still there.
    assert_eq!(
        report.outcome(&id("ec2.vpc/main")),
        Some(&Outcome::Skipped {
            blocked_by: vec![id("ec2.security-group/server")]
        })
    );
    cloud.assert_exists(&id("ec2.vpc/main"));
    // Everything else went.
    for gone in [
        "autoscaling.group/server",
        "ec2.launch-template/server",
        "efs.mount-target/data-a",
        "ec2.subnet/a",
        "ec2.subnet/b",
    ] {
        cloud.assert_absent(&id(gone));
    }
}

#[tokio::test(start_paused = true)]
async fn dependency_violations_are_retried() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;
    cloud.inject(
        Failure::on_resource("ec2.vpc/main")
            .verb(Verb::Delete)
            .class(ErrorClass::EventualConsistency)
            .code("DependencyViolation")
            .times(2),
    );
    let events = Recorder::default();
    let (_, report) = r.destroy(&graph, &events).await.unwrap();
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.get(&id("ec2.vpc/main")).unwrap().attempts, 3);
    assert_eq!(events.retry_delays(&id("ec2.vpc/main")).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn prune_deletes_listed_resources_only() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;

    // The mount target and subnet b are no longer wanted.
    let delete = [id("efs.mount-target/data-a"), id("ec2.subnet/b")];
    // Subnet b is still used by the ASG in this graph: refused.
    let observed = r.observe(&graph).await.unwrap();
    let err = r.plan(&graph, &observed, &delete).unwrap_err();
    assert_eq!(
        err,
        PlanError::DependsOnDeleted {
            id: id("autoscaling.group/server"),
            dependency: id("ec2.subnet/b")
        }
    );
    let err = r
        .plan(&graph, &observed, &[id("ec2.subnet/zzz")])
        .unwrap_err();
    assert!(matches!(err, PlanError::UnknownDeleteTarget { .. }));

    let delete = [id("efs.mount-target/data-a")];
    let (plan, report) = r.reconcile(&graph, &delete, &NoEvents).await.unwrap();
    assert_eq!(plan.summary().destroy, 1);
    assert_eq!(plan.summary().unchanged, 7);
    assert!(report.is_success());
    cloud.assert_absent(&id("efs.mount-target/data-a"));
    assert_eq!(cloud.len(), 7);
    assert_eq!(cloud.mutating_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn deletes_may_skip_waiting_when_the_kind_says_so() {
    // Alarms merely point at a topic: the topic's delete need not wait.
    let run = |wait: bool| async move {
        let cloud = FakeCloud::new();
        cloud.set_latency(Duration::from_millis(100));
        let r = Reconciler::new(
            cloud.provider([
                FakeKind::new("sns.topic").spec(KindSpec::new().delete_waits_for_dependents(wait)),
                FakeKind::new("cloudwatch.alarm"),
            ]),
            Options::default(),
        );
        let graph = DesiredGraph::new([
            DesiredResource::new("sns.topic", "admin", REGION, "admin"),
            DesiredResource::new("cloudwatch.alarm", "idle", REGION, "idle")
                .with_properties(json!({"threshold": 1}))
                .with_dependency("sns.topic/admin"),
        ])
        .unwrap();
        converge(&cloud, &r, &graph).await;
        let start = tokio::time::Instant::now();
        let (_, report) = r.destroy(&graph, &NoEvents).await.unwrap();
        assert!(report.is_success());
        // Observe (100 ms) plus the deletes.
        start.elapsed()
    };
    assert_eq!(run(true).await, Duration::from_millis(300));
    assert_eq!(run(false).await, Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn delete_events_are_reported() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;
    let events = Recorder::default();
    r.destroy(&graph, &events).await.unwrap();
    assert_eq!(
        events.for_id(&id("ec2.vpc/main")),
        vec![
            EventKind::Started {
                operation: reconciler_engine::Operation::Delete
            },
            EventKind::Succeeded {
                operation: reconciler_engine::Operation::Delete,
                attempts: 1
            }
        ]
    );
    assert!(events.for_id(&id("efs.file-system/data")).is_empty());
}
