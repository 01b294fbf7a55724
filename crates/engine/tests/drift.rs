//! Drift: runtime-owned fields, managed fields, tags, immutable fields and
//! replacements.

mod common;

use common::*;
use reconciler_engine::testing::{FakeCloud, FakeKind, Verb};
use reconciler_engine::{
    Action, DesiredGraph, DesiredResource, FieldChange, KindSpec, NoEvents, Options, Outcome,
    PlannedValue, Reconciler, ReplaceStrategy,
};
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn runtime_owned_fields_are_never_drift() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;

    // The watchdog scaled the group up: that belongs to the running system.
    let asg = id("autoscaling.group/server");
    cloud.set_property(&asg, "/desiredCapacity", json!(1));
    // AWS added fields and tags nobody manages.
    cloud.set_property(&asg, "/status", json!("InService"));
    cloud.set_tag(&asg, "aws:autoscaling:groupName", "mc-server");

    let (plan, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert!(report.is_success());
    cloud.assert_mutating_calls(0);
    assert_eq!(
        cloud.property(&asg, "/desiredCapacity"),
        Some(json!(1)),
        "not reset"
    );
}

#[tokio::test(start_paused = true)]
async fn a_managed_field_changed_out_of_band_is_updated() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    let graph = graph();
    converge(&cloud, &r, &graph).await;

    let lt = id("ec2.launch-template/server");
    let sg = id("ec2.security-group/server");
    cloud.set_property(&lt, "/instanceType", json!("t3.large"));
    cloud.set_tag(&sg, "spec", "someone-else");
    // Reordered rules are not drift: ingress is declared unordered.
    cloud.set_property(
        &sg,
        "/ingress",
        json!([{"port": 22, "protocol": "tcp"}, {"port": 25565, "protocol": "tcp"}]),
    );

    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let s = plan.summary();
    assert_eq!((s.add, s.change, s.destroy), (0, 2, 0));
    let lt_plan = plan.get(&lt).unwrap();
    assert_eq!(lt_plan.action, Action::Update);
    assert_eq!(
        lt_plan.changes,
        vec![FieldChange {
            path: "/instanceType".into(),
            before: Some(json!("t3.large")),
            after: Some(PlannedValue::Known(json!("t3.medium"))),
            forces_replacement: false,
        }]
    );
    let sg_plan = plan.get(&sg).unwrap();
    assert_eq!(sg_plan.changes.len(), 1);
    assert_eq!(sg_plan.changes[0].path, "/tags/spec");
    assert_eq!(sg_plan.changes[0].before, Some(json!("someone-else")));

    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(
        cloud.property(&lt, "/instanceType"),
        Some(json!("t3.medium"))
    );
    assert_eq!(cloud.object(&sg).unwrap().tags["spec"], "minecraft");
    assert_eq!(cloud.mutating_calls(), 2);
    assert_eq!(cloud.calls_of(Verb::Update), 2);
    cloud.assert_no_violations();

    cloud.reset_calls();
    let (plan, _) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    cloud.assert_mutating_calls(0);
}

#[tokio::test(start_paused = true)]
async fn an_immutable_change_replaces_the_resource_and_its_dependents() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    // Only the mount target (immutable subnetId) uses subnet a here. (A
    // mutable reference to a resource replaced delete-before-create would
    // keep the old object in use; such kinds declare create-before-delete,
    // tested below.)
    let mut resources = common::system();
    resources[5].properties["subnetIds"] =
        json!([reconciler_engine::reference("ec2.subnet/b", "id")]);
    let before = DesiredGraph::new(resources.clone()).unwrap();
    converge(&cloud, &r, &before).await;
    let old_subnet = cloud.object(&id("ec2.subnet/a")).unwrap();
    let old_mt = cloud.object(&id("efs.mount-target/data-a")).unwrap();

    // The spec moves subnet a to another CIDR block.
    resources[1].properties["cidrBlock"] = json!("10.0.9.0/24");
    let graph = DesiredGraph::new(resources).unwrap();

    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let subnet = plan.get(&id("ec2.subnet/a")).unwrap();
    assert_eq!(subnet.action, Action::Replace);
    assert_eq!(
        subnet.replace_strategy,
        Some(ReplaceStrategy::DeleteBeforeCreate)
    );
    assert!(subnet
        .changes
        .iter()
        .any(|c| c.path == "/cidrBlock" && c.forces_replacement));
    // The mount target's subnetId (immutable) will change: replaced too.
    let mt = plan.get(&id("efs.mount-target/data-a")).unwrap();
    assert_eq!(mt.action, Action::Replace);
    assert!(mt
        .changes
        .iter()
        .all(|c| c.path == "/subnetId" && c.after_unknown()));
    let s = plan.summary();
    assert_eq!((s.add, s.change, s.destroy, s.unchanged), (2, 0, 2, 6));

    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    let new_subnet = cloud.object(&id("ec2.subnet/a")).unwrap();
    let new_mt = cloud.object(&id("efs.mount-target/data-a")).unwrap();
    assert_ne!(new_subnet.aws_id, old_subnet.aws_id);
    assert_ne!(new_mt.aws_id, old_mt.aws_id);
    assert_eq!(new_subnet.properties["cidrBlock"], json!("10.0.9.0/24"));
    assert_eq!(new_mt.properties["subnetId"], json!(new_subnet.aws_id));
    // Delete before create, and the mount target goes before its subnet.
    let log = cloud.call_log();
    let at = |verb: Verb, s: &str| {
        log.iter()
            .position(|c| c.verb == verb && c.ok && c.ids == vec![id(s)])
            .unwrap_or_else(|| panic!("{verb:?} {s}"))
    };
    assert!(at(Verb::Delete, "efs.mount-target/data-a") < at(Verb::Delete, "ec2.subnet/a"));
    assert!(at(Verb::Delete, "ec2.subnet/a") < at(Verb::Create, "ec2.subnet/a"));
    assert!(at(Verb::Create, "ec2.subnet/a") < at(Verb::Create, "efs.mount-target/data-a"));
    assert_eq!(cloud.len(), 8);
    cloud.assert_no_violations();

    cloud.reset_calls();
    let (plan, _) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
}

#[tokio::test(start_paused = true)]
async fn create_before_delete_moves_dependents_before_deleting_the_old_object() {
    let cloud = FakeCloud::new();
    let r = Reconciler::new(
        cloud.provider([
            FakeKind::new("ec2.launch-template").spec(
                KindSpec::new()
                    .immutable("/imageId")
                    .replace_strategy(ReplaceStrategy::CreateBeforeDelete),
            ),
            FakeKind::new("autoscaling.group"),
        ]),
        Options::default(),
    );
    let build = |image: &str| {
        DesiredGraph::new([
            DesiredResource::new("ec2.launch-template", "server", REGION, "mc-server")
                .with_properties(json!({"imageId": image})),
            DesiredResource::new("autoscaling.group", "server", REGION, "mc-server")
                .with_properties(json!({
                    "launchTemplateId": reconciler_engine::reference("ec2.launch-template/server", "id")
                })),
        ])
        .unwrap()
    };
    converge(&cloud, &r, &build("ami-1")).await;
    let old = cloud.object(&id("ec2.launch-template/server")).unwrap();

    let graph = build("ami-2");
    let observed = r.observe(&graph).await.unwrap();
    let plan = r.plan(&graph, &observed, &[]).unwrap();
    let lt = plan.get(&id("ec2.launch-template/server")).unwrap();
    assert_eq!(
        lt.replace_strategy,
        Some(ReplaceStrategy::CreateBeforeDelete)
    );
    assert!(plan
        .to_string()
        .contains("+/- replace ec2.launch-template/server"));

    let report = r.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{report:#?}");
    let new = cloud.object(&id("ec2.launch-template/server")).unwrap();
    assert_ne!(new.aws_id, old.aws_id);
    assert_eq!(cloud.len(), 2, "the old template is gone");
    // Order: create new, move the ASG, delete the old. The fake would have
    // refused the delete (DependencyViolation) while the ASG used it.
    let log: Vec<(Verb, String)> = cloud
        .call_log()
        .into_iter()
        .filter(|c| c.verb.is_mutating())
        .map(|c| (c.verb, c.ids[0].to_string()))
        .collect();
    assert_eq!(
        log,
        vec![
            (Verb::Create, "ec2.launch-template/server".to_owned()),
            (Verb::Update, "autoscaling.group/server".to_owned()),
            (Verb::Delete, "ec2.launch-template/server".to_owned()),
        ]
    );
    assert_eq!(
        cloud.property(&id("autoscaling.group/server"), "/launchTemplateId"),
        Some(json!(new.aws_id))
    );
}

#[tokio::test(start_paused = true)]
async fn a_retained_resource_is_never_replaced() {
    let cloud = FakeCloud::new();
    let r = reconciler(&cloud, options());
    converge(&cloud, &r, &graph()).await;
    let mut resources = common::system();
    resources[6].properties["performanceMode"] = json!("maxIO");
    let graph = DesiredGraph::new(resources).unwrap();
    let (plan, report) = r.reconcile(&graph, &[], &NoEvents).await.unwrap();
    assert_eq!(
        plan.action(&id("efs.file-system/data")),
        Some(Action::Blocked)
    );
    assert!(!plan.is_empty(), "a blocked replacement is drift");
    assert_eq!(plan.summary().blocked, 1);
    assert!(plan
        .to_string()
        .contains("! blocked efs.file-system/data (us-east-1, mc-data): needs replacement"));
    assert_eq!(
        report.outcome(&id("efs.file-system/data")),
        Some(&Outcome::Blocked)
    );
    assert_eq!(
        report.outcome(&id("efs.mount-target/data-a")),
        Some(&Outcome::Unchanged),
        "dependents keep using the retained object"
    );
    cloud.assert_mutating_calls(0);
}
