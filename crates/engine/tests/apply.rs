//! Applying from nothing, idempotence, references, ordering, batching and
//! finishing interrupted runs.

mod common;

use std::time::Duration;

use common::*;
use reconciler_engine::testing::{FakeCloud, Verb};
use reconciler_engine::{
    reference, Action, DesiredGraph, DesiredResource, EventKind, NoEvents, Outcome,
};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn apply_from_nothing_creates_everything_then_converges() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_millis(50));
    let r = reconciler(&cloud, options());
    let graph = graph();

    let observed = r.observe(&graph).await.unwrap();
    assert!(observed.is_empty());
    // One observe call per (kind, region): 7 kinds, one region.
    assert_eq!(observed.calls(), 7);
    assert_eq!(cloud.calls_of(Verb::Observe), 7);

    let plan = r.plan(&graph, &observed, &[]).unwrap();
    assert_eq!(plan.summary().add, 8);
    assert!(plan.resources().iter().all(|p| p.action == Action::Create));

    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.counts().succeeded, 8);
    assert_eq!(report.total_attempts(), 8);
    assert_eq!(cloud.calls_of(Verb::Create), 8);
    assert_eq!(cloud.len(), 8);
    for res in graph.iter() {
        cloud.assert_exists(&res.id);
    }
    cloud.assert_no_violations();

    // Second round: nothing to do, and not a single mutating call.
    cloud.reset_calls();
    let observed = r.observe(&graph).await.unwrap();
    assert_eq!(observed.len(), 8);
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(plan.summary().unchanged, 8);
    assert_eq!(
        plan.to_string(),
        "No changes. AWS matches the desired state.\n"
    );
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    assert_eq!(report.counts().unchanged, 8);
    assert_eq!(report.total_attempts(), 0);
    cloud.assert_mutating_calls(0);
    assert_eq!(
        cloud.calls_of(Verb::Observe),
        7,
        "still one observe per kind"
    );
}

#[tokio::test(start_paused = true)]
async fn references_resolve_to_generated_ids_and_dependencies_come_first() {
    let cloud = FakeCloud::new();
    cloud.set_latency(Duration::from_millis(20));
    let r = reconciler(&cloud, options());
    let graph = graph();
    let (_, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert!(report.is_success(), "{report:#?}");

    let vpc = cloud.object(&id("ec2.vpc/main")).unwrap();
    let sg = cloud.object(&id("ec2.security-group/server")).unwrap();
    let subnet_a = cloud.object(&id("ec2.subnet/a")).unwrap();
    let subnet_b = cloud.object(&id("ec2.subnet/b")).unwrap();
    let lt = cloud.object(&id("ec2.launch-template/server")).unwrap();
    assert!(vpc.aws_id.starts_with("vpc-"));
    assert_eq!(
        cloud.property(&id("ec2.subnet/a"), "/vpcId"),
        Some(json!(vpc.aws_id))
    );
    assert_eq!(
        cloud.property(&id("ec2.security-group/server"), "/vpcId"),
        Some(json!(vpc.aws_id))
    );
    assert_eq!(
        cloud.property(&id("ec2.launch-template/server"), "/securityGroupIds"),
        Some(json!([sg.aws_id]))
    );
    assert_eq!(
        cloud.property(&id("autoscaling.group/server"), "/subnetIds"),
        Some(json!([subnet_a.aws_id, subnet_b.aws_id]))
    );
    assert_eq!(
        cloud.property(&id("autoscaling.group/server"), "/launchTemplateId"),
        Some(json!(lt.aws_id))
    );
    cloud.assert_created_after_dependencies(&graph);

    // The report carries the final state with outputs.
    let asg = report.get(&id("autoscaling.group/server")).unwrap();
    assert_eq!(asg.outcome, Outcome::Succeeded);
    assert!(asg.observed.as_ref().unwrap().output("arn").is_some());

    // The VPC was created first, the ASG (deepest) after its four inputs.
    let order = cloud.completed(Verb::Create);
    assert_eq!(order.first(), Some(&id("ec2.vpc/main")));
    let pos = |s: &str| order.iter().position(|x| x == &id(s)).unwrap();
    for dep in [
        "ec2.launch-template/server",
        "ec2.subnet/a",
        "ec2.subnet/b",
        "ec2.security-group/server",
    ] {
        assert!(
            pos(dep) < pos("autoscaling.group/server"),
            "{dep} before the ASG"
        );
    }
    assert!(pos("ec2.security-group/server") < pos("ec2.launch-template/server"));
    assert!(pos("efs.file-system/data") < pos("efs.mount-target/data-a"));
}

#[tokio::test(start_paused = true)]
async fn plan_marks_references_to_new_resources_known_after_apply() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let subnet = plan.get(&id("ec2.subnet/a")).unwrap();
    let vpc_id = subnet.changes.iter().find(|c| c.path == "/vpcId").unwrap();
    assert!(vpc_id.after_unknown());

    // Once the VPC exists, a new subnet's reference resolves in the plan.
    converge(&cloud, &r, &graph).await;
    let mut more = common::system();
    more.push(
        DesiredResource::new("ec2.subnet", "c", REGION, "mc-c").with_properties(json!({
            "vpcId": reference("ec2.vpc/main", "id"),
            "cidrBlock": "10.0.3.0/24",
        })),
    );
    let graph = DesiredGraph::new(more).unwrap();
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let vpc = cloud.object(&id("ec2.vpc/main")).unwrap();
    let c = plan.get(&id("ec2.subnet/c")).unwrap();
    assert_eq!(c.action, Action::Create);
    let vpc_id = c.changes.iter().find(|c| c.path == "/vpcId").unwrap();
    assert_eq!(
        vpc_id.after.as_ref().unwrap().known(),
        Some(&json!(vpc.aws_id))
    );
    assert_eq!(plan.summary().add, 1);
    assert_eq!(plan.summary().unchanged, 8);
}

#[tokio::test(start_paused = true)]
async fn observation_is_batched_per_kind_and_region() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let mut resources = Vec::new();
    for region in ["us-east-1", "eu-west-1"] {
        for n in 0..3 {
            resources.push(
                DesiredResource::new(
                    "ec2.vpc",
                    &format!("{region}-{n}"),
                    region,
                    format!("vpc-{n}"),
                )
                .with_properties(json!({"cidrBlock": format!("10.{n}.0.0/16")})),
            );
        }
    }
    let graph = DesiredGraph::new(resources).unwrap();
    let observed = r.observe(&graph).await.unwrap();
    assert_eq!(observed.calls(), 2);
    let log = cloud.call_log();
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|c| c.verb == Verb::Observe && c.ids.len() == 3));
    let mut regions: Vec<&str> = log.iter().map(|c| c.region.as_str()).collect();
    regions.sort();
    assert_eq!(regions, vec!["eu-west-1", "us-east-1"]);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_is_finished_without_duplicates() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    assert_eq!(plan.action(&id("ec2.vpc/main")), Some(Action::Create));

    // Between plan and apply, another run creates the VPC (same
    // deterministic name). The create conflicts; the engine re-observes and
    // adopts the existing VPC instead of making a second one.
    let vpc_desired = graph.get(&id("ec2.vpc/main")).unwrap();
    let existing = cloud.create_out_of_band(vpc_desired);

    let events = Recorder::default();
    let report = r.apply(&plan, &events).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(cloud.calls_for(&id("ec2.vpc/main"), Verb::Create), 1);
    assert_eq!(
        cloud.object(&id("ec2.vpc/main")).unwrap().aws_id,
        existing.aws_id
    );
    assert_eq!(cloud.len(), 8, "no duplicate");
    assert_eq!(
        cloud.property(&id("ec2.subnet/a"), "/vpcId"),
        Some(json!(existing.aws_id)),
        "children reference the adopted VPC"
    );
    assert!(events.for_id(&id("ec2.vpc/main")).iter().any(|e| matches!(
        e,
        EventKind::Retrying {
            class: reconciler_engine::ErrorClass::Conflict,
            ..
        }
    )));

    // The adopted object differed in a mutable field: the retry updates it.
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let mut stale = graph.get(&id("ec2.security-group/server")).unwrap().clone();
    let vpc = cloud.create_out_of_band(graph.get(&id("ec2.vpc/main")).unwrap());
    stale.properties["vpcId"] = json!(vpc.aws_id);
    stale.properties["description"] = json!("old text");
    cloud.create_out_of_band(&stale);
    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(
        cloud.property(&id("ec2.security-group/server"), "/description"),
        Some(json!("game server"))
    );
    assert_eq!(
        cloud.calls_for(&id("ec2.security-group/server"), Verb::Update),
        1
    );
    assert_eq!(cloud.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn progress_events_reach_a_channel() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (_, report) = r.reconcile(&graph, &[], &tx).await.unwrap();
    assert!(report.is_success());
    drop(tx);
    let mut started = 0;
    let mut succeeded = 0;
    while let Some(event) = rx.recv().await {
        match event.kind {
            EventKind::Started { .. } => started += 1,
            EventKind::Succeeded { .. } => succeeded += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((started, succeeded), (8, 8));
}

#[test]
fn reconcile_futures_are_send() {
    // The operator spawns reconciles on a multi-threaded runtime.
    fn is_send<T: Send>(_: &T) {}
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    let fut = r.reconcile(&graph, &[], &NoEvents);
    is_send(&fut);
    let fut = r.destroy(&graph, &NoEvents);
    is_send(&fut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_multi_threaded_runtime() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    let handle = tokio::spawn({
        let r = r.clone();
        let graph = graph.clone();
        async move { r.reconcile(&graph, &[], &NoEvents).await }
    });
    let (_, report) = handle.await.unwrap().unwrap();
    assert!(report.is_success());
    cloud.assert_created_after_dependencies(&graph);
}
