//! A small server system (VPC, subnets, security group, launch template,
//! Auto Scaling group, EFS) shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use reconciler_engine::testing::{FakeCloud, FakeKind};
use reconciler_engine::{
    reference, ApplyEvent, DesiredGraph, DesiredResource, EventKind, EventSink, KindSpec, Options,
    Reconciler, ResourceId, RetryPolicy,
};
use serde_json::json;

pub const REGION: &str = "us-east-1";

pub fn id(s: &str) -> ResourceId {
    ResourceId::from(s)
}

pub fn kinds() -> Vec<FakeKind> {
    vec![
        FakeKind::new("ec2.vpc")
            .id_prefix("vpc")
            .spec(KindSpec::new().immutable("/cidrBlock"))
            .read_back_extra(json!({"state": "available", "isDefault": false})),
        FakeKind::new("ec2.subnet")
            .id_prefix("subnet")
            .spec(KindSpec::new().immutable("/vpcId").immutable("/cidrBlock")),
        FakeKind::new("ec2.security-group")
            .id_prefix("sg")
            .spec(KindSpec::new().immutable("/vpcId").unordered("/ingress")),
        FakeKind::new("ec2.launch-template").id_prefix("lt"),
        FakeKind::new("autoscaling.group")
            .id_prefix("asg")
            .spec(KindSpec::new().runtime_owned("/desiredCapacity")),
        FakeKind::new("efs.file-system")
            .id_prefix("fs")
            .spec(KindSpec::new().immutable("/performanceMode")),
        FakeKind::new("efs.mount-target").id_prefix("fsmt").spec(
            KindSpec::new()
                .immutable("/fileSystemId")
                .immutable("/subnetId"),
        ),
    ]
}

fn res(kind: &str, local: &str) -> DesiredResource {
    DesiredResource::new(kind, local, REGION, format!("mc-{local}"))
        .with_tag("managed-by", "reconciler")
        .with_tag("spec", "minecraft")
}

/// The resources, parents before children.
pub fn system() -> Vec<DesiredResource> {
    vec![
        res("ec2.vpc", "main").with_properties(json!({"cidrBlock": "10.0.0.0/16"})),
        res("ec2.subnet", "a").with_properties(json!({
            "vpcId": reference("ec2.vpc/main", "id"),
            "cidrBlock": "10.0.1.0/24",
            "availabilityZone": "us-east-1a",
        })),
        res("ec2.subnet", "b").with_properties(json!({
            "vpcId": reference("ec2.vpc/main", "id"),
            "cidrBlock": "10.0.2.0/24",
            "availabilityZone": "us-east-1b",
        })),
        res("ec2.security-group", "server").with_properties(json!({
            "vpcId": reference("ec2.vpc/main", "id"),
            "description": "game server",
            "ingress": [{"port": 25565, "protocol": "tcp"}, {"port": 22, "protocol": "tcp"}],
        })),
        res("ec2.launch-template", "server").with_properties(json!({
            "instanceType": "t3.medium",
            "securityGroupIds": [reference("ec2.security-group/server", "id")],
        })),
        res("autoscaling.group", "server").with_properties(json!({
            "launchTemplateId": reference("ec2.launch-template/server", "id"),
            "subnetIds": [reference("ec2.subnet/a", "id"), reference("ec2.subnet/b", "id")],
            "minSize": 0,
            "maxSize": 1,
            "desiredCapacity": 0,
        })),
        res("efs.file-system", "data")
            .with_properties(json!({"performanceMode": "generalPurpose"}))
            .retained(),
        res("efs.mount-target", "data-a").with_properties(json!({
            "fileSystemId": reference("efs.file-system/data", "id"),
            "subnetId": reference("ec2.subnet/a", "id"),
            "securityGroups": [reference("ec2.security-group/server", "id")],
        })),
    ]
}

pub fn graph() -> DesiredGraph {
    DesiredGraph::new(system()).expect("valid graph")
}

pub fn options() -> Options {
    Options::default().with_retry(RetryPolicy::default().with_seed(42))
}

pub fn reconciler(cloud: &FakeCloud, options: Options) -> Reconciler {
    Reconciler::new(cloud.provider(kinds()), options)
}

/// Creates everything in `graph` and resets the call log.
pub async fn converge(cloud: &FakeCloud, r: &Reconciler, graph: &DesiredGraph) {
    let (_, report) = r
        .reconcile(graph, &[], &reconciler_engine::NoEvents)
        .await
        .expect("observe and plan");
    assert!(report.is_success(), "{report:#?}");
    cloud.reset_calls();
}

/// Collects progress events.
#[derive(Default, Clone)]
pub struct Recorder(Arc<Mutex<Vec<ApplyEvent>>>);

impl EventSink for Recorder {
    fn emit(&self, event: ApplyEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<ApplyEvent> {
        self.0.lock().unwrap().clone()
    }

    pub fn for_id(&self, id: &ResourceId) -> Vec<EventKind> {
        self.events()
            .into_iter()
            .filter(|e| &e.id == id)
            .map(|e| e.kind)
            .collect()
    }

    pub fn retry_delays(&self, id: &ResourceId) -> Vec<std::time::Duration> {
        self.for_id(id)
            .into_iter()
            .filter_map(|k| match k {
                EventKind::Retrying { delay, .. } => Some(delay),
                _ => None,
            })
            .collect()
    }
}
