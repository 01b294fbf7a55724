//! The compute part of a server (Auto Scaling group, ECS cluster, capacity provider, cluster
//! association, task definition, daemon service) reconciled against the emulator.
//!
//! The prerequisites other kinds own (VPC, subnets, security group, launch template, IAM role,
//! log group, SNS topics) are created directly with the SDK; their ids go into hand-built
//! desired resources whose properties are those render emits for a server (see the render
//! snapshot), references between the compute kinds kept as references.
//!
//! Emulator gaps (moto 5.2.5) met by these tests; everywhere the provider keeps the AWS
//! behaviour:
//! - Every delete is immediate: a deleted group never shows "Delete in progress", a capacity
//!   provider never DELETE_IN_PROGRESS, a service never DRAINING (INACTIVE at once). The bounded
//!   waits in the delete paths therefore end on their first read here.
//! - `CreateAutoScalingGroup`, `CreateCluster` and `CreateCapacityProvider` for an existing name
//!   silently replace the object (AWS: `AlreadyExists`, the existing cluster, `ClientException`);
//!   the provider never calls create for something observation found, so nothing here relies on
//!   either answer.
//! - A DAEMON service keeps `runningCount` 0 (instances never register as container
//!   instances) and DAEMON is accepted with options AWS refuses: no task is ever placed.
//! - `DeleteCapacityProvider` of a missing provider answers HTTP 500 (AWS: `ClientException`);
//!   the provider only deletes what it observed.
//! - `DescribeTaskDefinition` with a family answers the latest revision whatever its status
//!   (AWS: the latest ACTIVE one) and `ListTaskDefinitionFamilies` ignores `status`; the
//!   provider checks the revision's status itself, which the destroy step exercises.
//! - Auto Scaling notification configurations are served by the emulator launcher's patch.
//! - `CreateService` drops `deploymentConfiguration` and `enableECSManagedTags` (AWS stores
//!   both); `UpdateService` stores them, so the first look after creating plans one update.
//! - `RegisterTaskDefinition` with `requiresCompatibilities: ["EC2"]` requires a hard `memory`
//!   limit on each container (AWS: `memoryReservation` alone is enough), so the test graphs ask
//!   for no compatibility (an empty list, which AWS accepts too).

mod common;

use std::sync::{Arc, Mutex};

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::{autoscaling, ecs, CallCounter, ClientPool};
use reconciler_engine::execute::{ApplyEvent, EventKind, Operation};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::plan::{Action, Plan};
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler, ResourceId};
use reconciler_render::kinds;
use reconciler_render::naming::ServerNames;
use reconciler_testkit::proxy::{Fault, FaultPlan, Proxy, ScriptedFault};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use serde_json::{json, Value};

const REGION: &str = "eu-west-1";
const NOTIFY: [&str; 2] = [
    "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
    "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
];

/// One account in the emulator, a pool counting calls, and a reconciler over the compute
/// clients only.
struct Env {
    cfg: SdkConfig,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Env {
    fn new() -> Env {
        Env::at(Emulator::shared().sdk_config(REGION, &fresh_account_id()))
    }

    /// An environment whose reconciler talks through a proxy playing `plan` (direct SDK calls
    /// go straight to the emulator); keep the proxy alive as long as the environment.
    fn through(plan: FaultPlan) -> (Env, Proxy) {
        let account = fresh_account_id();
        let proxy = Proxy::start(Emulator::shared().url(), plan);
        let mut env = Env::at(sdk_config(proxy.url(), REGION, &account));
        env.cfg = Emulator::shared().sdk_config(REGION, &account);
        (env, proxy)
    }

    fn at(cfg: SdkConfig) -> Env {
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(cfg.clone()).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        let mut provider = Provider::new();
        provider.on_observation(reconciler_aws::observation_hook(&pool));
        for client in autoscaling::clients(&pool)
            .into_iter()
            .chain(ecs::clients(&pool))
        {
            provider.register(client);
        }
        Env {
            cfg,
            counter,
            reconciler: Reconciler::new(provider, Options::default()),
        }
    }

    fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.cfg)
    }

    fn asg(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.cfg)
    }

    fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.cfg)
    }

    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.reconciler, graph).await
    }

    /// Observes, plans and applies; panics on any failure. Returns the plan and the events.
    async fn apply(&self, graph: &DesiredGraph) -> (Plan, Vec<ApplyEvent>) {
        let plan = self.plan(graph).await;
        let events = self.run(&plan).await;
        (plan, events)
    }

    async fn destroy(&self, graph: &DesiredGraph) -> (Plan, Vec<ApplyEvent>) {
        let plan = common::plan_destroy(&self.reconciler, graph).await;
        let events = self.run(&plan).await;
        (plan, events)
    }

    async fn run(&self, plan: &Plan) -> Vec<ApplyEvent> {
        let events = Mutex::new(Vec::new());
        let sink = |e: ApplyEvent| events.lock().unwrap().push(e);
        let report = self.reconciler.apply(plan, &sink).await;
        let failures: Vec<String> = report
            .failures()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        assert!(
            report.is_success(),
            "apply failed: {failures:#?}\nplan:\n{plan}"
        );
        events.into_inner().unwrap()
    }
}

/// What the server's compute needs from other kinds, created directly.
struct Prereqs {
    subnets: Vec<String>,
    launch_template: String,
    execution_role: String,
    topics: Vec<String>,
}

async fn prerequisites(env: &Env, server: &str) -> Prereqs {
    let ec2 = env.ec2();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let mut subnets = Vec::new();
    for (i, zone) in ["a", "b"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{}.0/20", i * 16))
            .availability_zone(format!("{REGION}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet.unwrap().subnet_id.unwrap());
    }
    let sg = ec2
        .create_security_group()
        .group_name(format!("rc-{server}-instance"))
        .description("game traffic")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images
        .unwrap_or_default()
        .into_iter()
        .find_map(|i| i.image_id)
        .expect("the emulator lists an AMI");
    let launch_template = ec2
        .create_launch_template()
        .launch_template_name(format!("rc-{server}"))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type("t3.medium".into())
                .security_group_ids(sg)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template
        .unwrap()
        .launch_template_id
        .unwrap();
    let iam = aws_sdk_iam::Client::new(&env.cfg);
    let execution_role = iam
        .create_role()
        .role_name(format!("rc-{server}-task-execution"))
        .assume_role_policy_document(
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "ecs-tasks.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn;
    aws_sdk_cloudwatchlogs::Client::new(&env.cfg)
        .create_log_group()
        .log_group_name(format!("/reconciler/{server}/container"))
        .send()
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&env.cfg);
    let mut topics = Vec::new();
    for name in ["rc-main-admin".to_string(), format!("rc-{server}-alerts")] {
        topics.push(
            sns.create_topic()
                .name(name)
                .send()
                .await
                .unwrap()
                .topic_arn
                .unwrap(),
        );
    }
    Prereqs {
        subnets,
        launch_template,
        execution_role,
        topics,
    }
}

fn tagged(mut r: DesiredResource, names: &ServerNames) -> DesiredResource {
    for (k, v) in names.tags("compute") {
        r = r.with_tag(k, v);
    }
    r
}

/// The image of the server's container; changing it makes a new task definition revision.
fn container(server: &str, image: &str) -> Value {
    json!({
        "name": server,
        "image": image,
        "essential": true,
        "memoryReservation": 3072,
        "portMappings": [
            { "containerPort": 25565, "hostPort": 25565, "protocol": "tcp" },
            { "containerPort": 19132, "hostPort": 19132, "protocol": "udp" }
        ],
        "environment": [
            { "name": "EULA", "value": "TRUE" },
            { "name": "TYPE", "value": "PAPER" },
            { "name": "UID", "value": "1000" }
        ],
        "secrets": [{ "name": "RCON_PASSWORD", "valueFrom": "/games/minecraft/rcon-password" }],
        "mountPoints": [{ "sourceVolume": "Data-0", "containerPath": "/data", "readOnly": false }],
        "privileged": false,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": format!("/reconciler/{server}/container"),
                "awslogs-region": REGION,
                "awslogs-stream-prefix": "container"
            }
        }
    })
}

/// The compute resources render emits for a server, references to the other kinds replaced
/// by the prerequisites' real ids.
fn compute_graph(server: &str, p: &Prereqs, image: &str) -> DesiredGraph {
    let names = ServerNames::new("main", server);
    let name = names.name("");
    let asg = DesiredResource::new(kinds::AUTO_SCALING_GROUP, server, REGION, &name)
        .with_properties(json!({
            "launchTemplateId": p.launch_template,
            "launchTemplateVersion": "$Latest",
            "minSize": 0,
            "maxSize": 1,
            "vpcZoneIdentifier": p.subnets,
            "healthCheckType": "EC2",
            "newInstancesProtectedFromScaleIn": false,
            "notifications": [
                { "topicArn": p.topics[0], "types": NOTIFY },
                { "topicArn": p.topics[1], "types": NOTIFY }
            ]
        }))
        .with_tag("Name", name.clone());
    let cluster = DesiredResource::new(kinds::CLUSTER, server, REGION, names.cluster())
        .with_properties(json!({ "containerInsights": "disabled" }));
    let cp = DesiredResource::new(kinds::CAPACITY_PROVIDER, server, REGION, &name).with_properties(
        json!({
            "autoScalingGroupArn": reference(asg.id.clone(), "arn"),
            "managedDraining": "ENABLED",
            "managedTerminationProtection": "DISABLED"
        }),
    );
    let association = DesiredResource::new(
        kinds::CLUSTER_CAPACITY_PROVIDERS,
        server,
        REGION,
        names.cluster(),
    )
    .with_properties(json!({
        "cluster": reference(cluster.id.clone(), "name"),
        "capacityProviders": [reference(cp.id.clone(), "name")],
        "defaultCapacityProviderStrategy": []
    }));
    // Render sets `"requiresCompatibilities": ["EC2"]`. The emulator then demands a hard
    // `memory` limit per container, which AWS does not (a `memoryReservation` is enough for EC2),
    // so the list is empty here; the unit tests cover the field's shape.
    let task = DesiredResource::new(kinds::TASK_DEFINITION, server, REGION, &name).with_properties(
        json!({
            "family": name,
            "networkMode": "host",
            "requiresCompatibilities": [],
            "executionRoleArn": p.execution_role,
            "containerDefinitions": [container(server, image)],
            "volumes": [{ "name": "Data-0", "host": { "sourcePath": "/mnt/efs/Data/data" } }]
        }),
    );
    let service =
        DesiredResource::new(kinds::SERVICE, server, REGION, &name).with_properties(json!({
            "cluster": reference(cluster.id.clone(), "arn"),
            "taskDefinition": reference(task.id.clone(), "arn"),
            "launchType": "EC2",
            "schedulingStrategy": "DAEMON",
            "deploymentConfiguration": { "maximumPercent": 100, "minimumHealthyPercent": 0 },
            "enableEcsManagedTags": true,
            "propagateTags": "SERVICE"
        }));
    DesiredGraph::new([
        tagged(asg, &names),
        tagged(cluster, &names),
        tagged(cp, &names),
        association,
        tagged(task, &names),
        tagged(service, &names),
    ])
    .expect("a valid graph")
}

fn id(kind: &str, local: &str) -> ResourceId {
    ResourceId::from(format!("{kind}/{local}"))
}

/// Where in the event stream a resource's delete succeeded.
fn deleted_at(events: &[ApplyEvent], id: &ResourceId) -> usize {
    events
        .iter()
        .position(|e| {
            &e.id == id
                && matches!(
                    e.kind,
                    EventKind::Succeeded {
                        operation: Operation::Delete,
                        ..
                    }
                )
        })
        .unwrap_or_else(|| panic!("{id} was not deleted"))
}

fn changed_paths(plan: &Plan, id: &ResourceId) -> Vec<String> {
    plan.get(id)
        .map(|r| r.changes.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_lifecycle_with_runtime_owned_capacity_and_new_revisions() {
    let env = Env::new();
    let server = "mc";
    let p = prerequisites(&env, server).await;
    let graph = compute_graph(server, &p, "itzg/minecraft-server:2024");
    let group = id(kinds::AUTO_SCALING_GROUP, server);
    let cluster = id(kinds::CLUSTER, server);
    let provider = id(kinds::CAPACITY_PROVIDER, server);
    let association = id(kinds::CLUSTER_CAPACITY_PROVIDERS, server);
    let task = id(kinds::TASK_DEFINITION, server);
    let service = id(kinds::SERVICE, server);

    // Apply from nothing creates all six.
    let (plan, _) = env.apply(&graph).await;
    assert_eq!(plan.with_action(Action::Create).count(), 6, "{plan}");

    let asg = env.asg();
    let describe_group = || async {
        asg.describe_auto_scaling_groups()
            .auto_scaling_group_names("rc-mc")
            .send()
            .await
            .unwrap()
            .auto_scaling_groups
            .unwrap_or_default()
            .into_iter()
            .next()
            .expect("the group exists")
    };
    let g = describe_group().await;
    assert_eq!(
        (g.min_size, g.max_size, g.desired_capacity),
        (Some(0), Some(1), Some(0))
    );
    assert!(g.tags().iter().all(|t| t.propagate_at_launch == Some(true)));
    let ecs = env.ecs();
    let c = ecs
        .describe_clusters()
        .clusters("rc-mc")
        .send()
        .await
        .unwrap()
        .clusters
        .unwrap()
        .remove(0);
    assert_eq!(c.capacity_providers(), ["rc-mc".to_string()]);
    let td = ecs
        .describe_task_definition()
        .task_definition("rc-mc")
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    assert_eq!(td.revision, 1);
    let svc = ecs
        .describe_services()
        .cluster("rc-mc")
        .services("rc-mc")
        .send()
        .await
        .unwrap()
        .services
        .unwrap()
        .remove(0);
    assert_eq!(svc.task_definition(), td.task_definition_arn());

    // Emulator gap: `CreateService` drops `deploymentConfiguration` and `enableECSManagedTags`
    // (AWS stores both), so the first look after creating shows them as an update; the update
    // stores them.
    let plan = env.plan(&graph).await;
    assert!(
        plan.resources()
            .iter()
            .all(|r| r.action == Action::NoOp || r.id == service),
        "{plan}"
    );
    env.apply(&graph).await;

    // A second look finds nothing to do, and applying it makes no mutating call.
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");
    env.counter.reset();
    env.apply(&graph).await;
    let counts = env.counter.snapshot();
    assert_eq!(counts.mutations, 0, "{:?}", counts.mutating_operations());
    // Observation is batched: one describe per kind (the clusters are described three times:
    // for the cluster, for its association, and to find the managed clusters that hold
    // services), the notification configurations of all groups in one call, one family
    // listing plus one describe per family (ECS has no batch form), one `DescribeServices` per
    // managed cluster.
    let expected: Vec<(&str, u64)> = vec![
        ("Auto Scaling.DescribeAutoScalingGroups", 1),
        ("Auto Scaling.DescribeNotificationConfigurations", 1),
        ("ECS.DescribeCapacityProviders", 1),
        ("ECS.DescribeClusters", 2),
        ("ECS.DescribeServices", 1),
        ("ECS.DescribeTaskDefinition", 1),
        ("ECS.ListClusters", 1),
    ];
    let actual: Vec<(&str, u64)> = counts
        .by_operation
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(actual, expected);

    // The running system wakes the server: desired capacity 1 is not drift.
    asg.set_desired_capacity()
        .auto_scaling_group_name("rc-mc")
        .desired_capacity(1)
        .send()
        .await
        .unwrap();
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");
    env.apply(&graph).await;
    assert_eq!(describe_group().await.desired_capacity, Some(1));

    // Someone raises the maximum by hand: the plan shows it and apply puts it back, without
    // touching the capacity.
    asg.update_auto_scaling_group()
        .auto_scaling_group_name("rc-mc")
        .max_size(3)
        .send()
        .await
        .unwrap();
    let plan = env.plan(&graph).await;
    assert_eq!(plan.action(&group), Some(Action::Update), "{plan}");
    assert_eq!(changed_paths(&plan, &group), vec!["/maxSize".to_string()]);
    env.apply(&graph).await;
    let g = describe_group().await;
    assert_eq!((g.max_size, g.desired_capacity), (Some(1), Some(1)));

    // A lost notification configuration and a lost tag come back.
    asg.delete_notification_configuration()
        .auto_scaling_group_name("rc-mc")
        .topic_arn(&p.topics[1])
        .send()
        .await
        .unwrap();
    let cluster_arn = c.cluster_arn().unwrap().to_string();
    ecs.untag_resource()
        .resource_arn(&cluster_arn)
        .tag_keys("reconciler.dev/component")
        .send()
        .await
        .unwrap();
    let revision_arn = td.task_definition_arn().unwrap().to_string();
    ecs.untag_resource()
        .resource_arn(&revision_arn)
        .tag_keys("reconciler.dev/server")
        .send()
        .await
        .unwrap();
    let plan = env.plan(&graph).await;
    assert_eq!(
        changed_paths(&plan, &group),
        vec!["/notifications".to_string()]
    );
    // A tag is fixed on the revision in place, without registering a new one.
    assert_eq!(plan.action(&task), Some(Action::Update), "{plan}");
    assert_eq!(
        changed_paths(&plan, &task),
        vec!["/tags/reconciler.dev~1server".to_string()]
    );
    assert_eq!(
        changed_paths(&plan, &cluster),
        vec!["/tags/reconciler.dev~1component".to_string()]
    );
    env.apply(&graph).await;
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");

    // A new image: a new revision replaces the old one and the service moves to it.
    let graph = compute_graph(server, &p, "itzg/minecraft-server:2025");
    let plan = env.plan(&graph).await;
    assert_eq!(plan.action(&task), Some(Action::Replace), "{plan}");
    assert_eq!(plan.action(&service), Some(Action::Update), "{plan}");
    assert_eq!(plan.summary().change + plan.summary().add, 2, "{plan}");
    env.apply(&graph).await;
    let td = ecs
        .describe_task_definition()
        .task_definition("rc-mc")
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    assert_eq!(td.revision, 2);
    assert_eq!(
        td.container_definitions()[0].image(),
        Some("itzg/minecraft-server:2025")
    );
    let old = ecs
        .describe_task_definition()
        .task_definition("rc-mc:1")
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    assert_eq!(old.status, Some(TaskDefinitionStatus::Inactive));
    let svc = ecs
        .describe_services()
        .cluster("rc-mc")
        .services("rc-mc")
        .send()
        .await
        .unwrap()
        .services
        .unwrap()
        .remove(0);
    assert_eq!(svc.task_definition(), td.task_definition_arn());
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");

    // Destroy: dependents first.
    let (plan, events) = env.destroy(&graph).await;
    assert_eq!(plan.with_action(Action::Delete).count(), 6, "{plan}");
    assert!(deleted_at(&events, &service) < deleted_at(&events, &cluster));
    assert!(deleted_at(&events, &association) < deleted_at(&events, &cluster));
    assert!(deleted_at(&events, &association) < deleted_at(&events, &provider));
    assert!(deleted_at(&events, &provider) < deleted_at(&events, &group));
    // Deleted clusters, services and revisions linger INACTIVE in ECS: all count as absent.
    let observed = env.reconciler.observe(&graph).await.unwrap();
    assert!(observed.is_empty(), "{observed:?}");
    let groups = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("rc-mc")
        .send()
        .await
        .unwrap();
    assert!(groups.auto_scaling_groups().is_empty());
    let active = ecs
        .list_task_definitions()
        .family_prefix("rc-mc")
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert!(active.task_definition_arns().is_empty());
}

/// An object with the deterministic name but without the ownership tag is shown in the plan
/// (its tags differ) and never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_without_the_ownership_tag_are_not_touched() {
    let env = Env::new();
    env.ecs()
        .create_cluster()
        .cluster_name("rc-foreign")
        .send()
        .await
        .unwrap();
    let names = ServerNames::new("main", "foreign");
    let graph = DesiredGraph::new([tagged(
        DesiredResource::new(kinds::CLUSTER, "foreign", REGION, names.cluster())
            .with_properties(json!({ "containerInsights": "enabled" })),
        &names,
    )])
    .unwrap();
    let plan = env.plan(&graph).await;
    let cluster = id(kinds::CLUSTER, "foreign");
    assert_eq!(plan.action(&cluster), Some(Action::Update), "{plan}");
    env.counter.reset();
    let report = env
        .reconciler
        .apply(&plan, &reconciler_engine::NoEvents)
        .await;
    let (_, err) = report.failures().next().expect("the update is refused");
    assert!(err.message.contains("is not ours to change"), "{err}");
    assert_eq!(env.counter.snapshot().mutations, 0);
}

/// Out-of-band changes of the group's template version and zones are repaired by an update that
/// leaves the (runtime-owned) capacity as the running system set it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_update_never_sends_the_capacity() {
    let env = Env::new();
    let p = prerequisites(&env, "vh").await;
    let graph = compute_graph("vh", &p, "lloesche/valheim-server");
    let only_group = DesiredGraph::new(
        graph
            .iter()
            .filter(|r| r.kind.as_str() == kinds::AUTO_SCALING_GROUP)
            .cloned(),
    )
    .unwrap();
    env.apply(&only_group).await;
    let asg = env.asg();
    // Out of band: capacity 1 and a different template version and zones.
    asg.update_auto_scaling_group()
        .auto_scaling_group_name("rc-vh")
        .desired_capacity(1)
        .vpc_zone_identifier(p.subnets[0].clone())
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&p.launch_template)
                .version("1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let plan = env.plan(&only_group).await;
    let group = id(kinds::AUTO_SCALING_GROUP, "vh");
    let mut paths = changed_paths(&plan, &group);
    paths.sort();
    assert_eq!(paths, vec!["/launchTemplateVersion", "/vpcZoneIdentifier"]);
    env.apply(&only_group).await;
    let g = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("rc-vh")
        .send()
        .await
        .unwrap()
        .auto_scaling_groups
        .unwrap()
        .remove(0);
    assert_eq!(g.desired_capacity, Some(1));
    assert_eq!(
        g.launch_template.and_then(|t| t.version),
        Some("$Latest".to_string())
    );
    assert!(env.plan(&only_group).await.is_empty());
    let (_, _) = env.destroy(&only_group).await;
}

/// Task definitions of several families: a no-op describes none of them, because each latest
/// revision carries the digest of its own ARN and the desired definition (one listing and the
/// tag index vouch for them). A revision registered out of band with the tags copied (as a
/// describe-then-register script does) carries another ARN's digest, so it is described and
/// its different image planned back.
#[tokio::test]
async fn task_definitions_vouched_by_their_digest_are_not_described() {
    let env = Env::new();
    let family = |i: usize| format!("rc-digest-{i}");
    let graph = DesiredGraph::new(
        (0..3).map(|i| task_definition("digest", &format!("t{i}"), &family(i), "nginx:1")),
    )
    .unwrap();
    env.apply(&graph).await;

    env.counter.reset();
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");
    let calls = env.counter.snapshot();
    assert_eq!(
        calls.by_operation.get("ECS.DescribeTaskDefinition"),
        None,
        "{:?}",
        calls.by_operation
    );
    assert_eq!(calls.by_operation.get("ECS.ListTaskDefinitions"), Some(&1));

    // Out of band: a new revision of family 1 with another image and the old tags, the digest
    // included.
    let ecs = env.ecs();
    let current = ecs
        .describe_task_definition()
        .task_definition(family(1))
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert!(
        current
            .tags()
            .iter()
            .any(|t| t.key() == Some("reconciler.dev/content")),
        "the registered revision carries its digest"
    );
    let td = current.task_definition().unwrap();
    let mut containers = td.container_definitions().to_vec();
    containers[0].image = Some("nginx:2".into());
    ecs.register_task_definition()
        .family(family(1))
        .set_network_mode(td.network_mode().cloned())
        .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
        .set_container_definitions(Some(containers))
        .set_tags(Some(current.tags().to_vec()))
        .send()
        .await
        .unwrap();

    env.counter.reset();
    let plan = env.plan(&graph).await;
    assert_eq!(
        plan.action(&id(kinds::TASK_DEFINITION, "t1")),
        Some(Action::Replace),
        "{plan}"
    );
    assert_eq!(plan.with_action(Action::NoOp).count(), 2, "{plan}");
    let calls = env.counter.snapshot();
    assert_eq!(
        calls.by_operation.get("ECS.DescribeTaskDefinition"),
        Some(&1),
        "only the copied revision is described: {:?}",
        calls.by_operation
    );
    env.apply(&graph).await;
    assert!(env.plan(&graph).await.is_empty());
}

/// A task definition of `server` alone, as render shapes it (host network, one container).
fn task_definition(server: &str, local: &str, family: &str, image: &str) -> DesiredResource {
    let task = DesiredResource::new(kinds::TASK_DEFINITION, local, REGION, family)
        .with_properties(json!({
            "family": family,
            "networkMode": "host",
            "requiresCompatibilities": [],
            "executionRoleArn": format!("arn:aws:iam::123456789012:role/rc-{server}-task-execution"),
            "containerDefinitions": [container(server, image)],
            "volumes": []
        }));
    tagged(task, &ServerNames::new("main", server))
}

/// `RegisterTaskDefinition` has no idempotency token. When its answer is lost (the connection
/// reset after ECS registered), the engine's retry adopts the revision that call made instead
/// of registering a second one.
#[tokio::test]
async fn a_register_whose_answer_was_lost_is_not_repeated() {
    let (env, proxy) = Env::through(FaultPlan {
        faults: vec![ScriptedFault {
            operation: "RegisterTaskDefinition".into(),
            times: 1,
            fault: Fault::ResetAfterSend,
        }],
        ..FaultPlan::default()
    });
    let graph = DesiredGraph::new([task_definition("lost", "t", "rc-lost", "nginx:1")]).unwrap();
    env.apply(&graph).await;

    let stats = proxy.stats();
    assert_eq!(stats.injected.get("reset-after"), Some(&1), "{stats:?}");
    assert_eq!(
        stats.operations["ecs:RegisterTaskDefinition"], 1,
        "{stats:?}"
    );
    let active = env
        .ecs()
        .list_task_definitions()
        .family_prefix("rc-lost")
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(active.task_definition_arns().len(), 1, "{active:?}");
    assert!(env.plan(&graph).await.is_empty());
}

/// In a region holding many other revisions, listing them all would cost more than describing
/// the few families wanted: observation stops after as many pages as it would describe
/// families, and describes them instead.
#[tokio::test]
async fn a_long_listing_of_other_revisions_is_cut_short() {
    let env = Env::new();
    let ecs = env.ecs();
    for _ in 0..101 {
        ecs.register_task_definition()
            .family("somebody-elses")
            .container_definitions(
                aws_sdk_ecs::types::ContainerDefinition::builder()
                    .name("app")
                    .image("busybox")
                    .memory_reservation(64)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let names = ServerNames::new("main", "cut");
    let graph = DesiredGraph::new((0..2).map(|i| {
        let family = format!("rc-cut-{i}");
        let task = DesiredResource::new(kinds::TASK_DEFINITION, &format!("t{i}"), REGION, &family)
            .with_properties(json!({
                "family": family,
                "networkMode": "host",
                "requiresCompatibilities": [],
                "executionRoleArn": "arn:aws:iam::123456789012:role/rc-cut-task-execution",
                "containerDefinitions": [container("cut", "nginx:1")],
                "volumes": []
            }));
        tagged(task, &names)
    }))
    .unwrap();
    env.apply(&graph).await;

    env.counter.reset();
    assert!(env.plan(&graph).await.is_empty());
    let calls = env.counter.snapshot();
    assert_eq!(
        (
            calls.by_operation.get("ECS.ListTaskDefinitions").copied(),
            calls
                .by_operation
                .get("ECS.DescribeTaskDefinition")
                .copied()
        ),
        (Some(1), Some(2)),
        "one page of the listing (as many calls as families, less one), then a describe each: {:?}",
        calls.by_operation
    );
}
