//! The plan as a person reads it (Display) and as tools read it (JSON).

use reconciler_engine::testing::{FakeCloud, FakeKind};
use reconciler_engine::{
    reference, DesiredGraph, DesiredResource, KindSpec, Options, Plan, Reconciler, ResourceId,
};
use serde_json::json;

fn res(kind: &str, local: &str) -> DesiredResource {
    DesiredResource::new(kind, local, "us-east-1", format!("demo-{local}"))
}

async fn mixed_plan() -> Plan {
    let cloud = FakeCloud::new();
    let r = Reconciler::new(
        cloud.provider([
            FakeKind::new("ec2.vpc").spec(KindSpec::new().immutable("/cidrBlock")),
            FakeKind::new("ec2.subnet")
                .spec(KindSpec::new().immutable("/cidrBlock").immutable("/vpcId")),
            FakeKind::new("ec2.security-group"),
            FakeKind::new("ec2.instance"),
            FakeKind::new("ecs.cluster"),
            FakeKind::new("efs.file-system"),
        ]),
        Options::default(),
    );
    let vpc = res("ec2.vpc", "main").with_properties(json!({"cidrBlock": "10.0.0.0/16"}));
    let sg = res("ec2.security-group", "web").with_properties(json!({
        "vpcId": reference("ec2.vpc/main", "id"),
        "description": "web",
    }));
    let subnet_a = res("ec2.subnet", "a").with_properties(json!({
        "vpcId": reference("ec2.vpc/main", "id"),
        "cidrBlock": "10.0.1.0/24",
    }));
    let subnet_b = res("ec2.subnet", "b").with_properties(json!({
        "vpcId": reference("ec2.vpc/main", "id"),
        "cidrBlock": "10.0.2.0/24",
    }));
    let instance = res("ec2.instance", "x")
        .with_properties(json!({"subnetId": reference("ec2.subnet/a", "id"), "type": "t3.micro"}))
        .with_tag("Name", "x");
    let cluster = res("ecs.cluster", "old");
    let fs = res("efs.file-system", "data").retained();

    // What exists: the VPC, a security group with an edited description, a
    // subnet on another block, an old cluster and a retained file system.
    cloud.create_out_of_band(&vpc);
    let mut seen = sg.clone();
    seen.properties = json!({"vpcId": "vpc-000001", "description": "old"});
    cloud.create_out_of_band(&seen);
    let mut seen = subnet_b.clone();
    seen.properties = json!({"vpcId": "vpc-000001", "cidrBlock": "10.0.20.0/24"});
    cloud.create_out_of_band(&seen);
    cloud.create_out_of_band(&cluster);
    cloud.create_out_of_band(&fs);

    let graph = DesiredGraph::new([vpc, sg, subnet_a, subnet_b, instance, cluster, fs]).unwrap();
    let observed = r.observe(&graph).await.unwrap();
    r.plan(
        &graph,
        &observed,
        &[
            ResourceId::from("ecs.cluster/old"),
            ResourceId::from("efs.file-system/data"),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn plan_text_lists_changes_per_resource_and_a_summary() {
    let plan = mixed_plan().await;
    let expected = r#"~ update ec2.security-group/web (us-east-1, demo-web)
    /description: "old" -> "web"
+ create ec2.subnet/a (us-east-1, demo-a)
    /vpcId: "vpc-000001"
    /cidrBlock: "10.0.1.0/24"
-/+ replace ec2.subnet/b (us-east-1, demo-b)
    /cidrBlock: "10.0.20.0/24" -> "10.0.2.0/24" (forces replacement)
+ create ec2.instance/x (us-east-1, demo-x)
    /subnetId: (known after apply)
    /type: "t3.micro"
    /tags/Name: "x"
= retain efs.file-system/data (us-east-1, demo-data): retained on delete, not deleted
- delete ecs.cluster/old (us-east-1, demo-old)

Plan: 3 to add, 1 to change, 2 to destroy, 1 to retain.
"#;
    assert_eq!(plan.to_string(), expected);
    assert!(!plan.is_empty());
}

#[tokio::test]
async fn plan_json_is_machine_readable() {
    let plan = mixed_plan().await;
    let v = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        v["summary"],
        json!({"add": 3, "change": 1, "destroy": 2, "retain": 1, "blocked": 0, "unchanged": 1})
    );
    assert_eq!(v["has_changes"], json!(true));
    let resources = v["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 7);
    assert_eq!(resources[0]["id"], json!("ec2.vpc/main"));
    assert_eq!(resources[0]["action"], json!("no-op"));
    assert_eq!(
        resources[1],
        json!({
            "id": "ec2.security-group/web",
            "kind": "ec2.security-group",
            "region": "us-east-1",
            "name": "demo-web",
            "action": "update",
            "changes": [{
                "path": "/description",
                "before": "old",
                "after": "web",
                "after_unknown": false,
                "forces_replacement": false
            }],
            "depends_on": ["ec2.vpc/main"],
            "retain_on_delete": false
        })
    );
    assert_eq!(
        resources[3]["replace_strategy"],
        json!("delete-before-create")
    );
    assert_eq!(resources[4]["changes"][0]["after_unknown"], json!(true));
    assert_eq!(resources[5]["action"], json!("retain"));
    assert_eq!(resources[6]["action"], json!("delete"));
}
