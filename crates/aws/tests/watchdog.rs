//! The watchdog of a server (scale-to-zero policy, idle and left-up alarms, dashboard,
//! crash-loop rule) reconciled against the emulator.
//!
//! The prerequisites other kinds own (the Auto Scaling group with its launch template, the
//! admin SNS topic, the crash-loop Lambda and its role) are created directly with the SDK;
//! their names and ARNs go into hand-built desired resources whose properties are those render
//! emits for a server (see `crates/render/src/wake.rs`), the alarm's reference to the policy's
//! ARN kept as a reference.
//!
//! Emulator gaps (moto 5.2.5) met by these tests; everywhere the provider keeps the AWS
//! behaviour:
//! - `PutMetricAlarm` on an existing alarm resets its state to `OK` (AWS keeps the state), so
//!   the runtime-owned state is checked after the last alarm update.
//! - A new alarm starts in `OK` (AWS: `INSUFFICIENT_DATA`).
//! - `PutScalingPolicy` does not check that the group exists, policies are keyed by name alone
//!   (AWS: per group) and outlive their group, and `DeletePolicy` ignores the group name. The
//!   provider always names the group; the test deletes the policy before the group.
//! - `TestEventPattern` is a stub and pattern matching ignores fields inside arrays of objects
//!   (`detail.containers[].exitCode`); the launcher fixes both (docs/emulator.md), so the
//!   crash-loop pattern is checked with `TestEventPattern` as on AWS.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_autoscaling::types::StepAdjustment;
use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::{autoscaling, cloudwatch, events, CallCounter, ClientPool};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::plan::{Action, Plan};
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler, ResourceId};
use reconciler_render::kinds;
use reconciler_render::naming::ServerNames;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

const REGION: &str = "eu-west-1";
const SERVER: &str = "mc";

/// One account in the emulator, a pool counting calls, and a reconciler over the watchdog
/// clients (and the group client, registered with them).
struct Env {
    cfg: SdkConfig,
    account: String,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Env {
    fn new() -> Env {
        let account = fresh_account_id();
        let cfg = Emulator::shared().sdk_config(REGION, &account);
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(cfg.clone()).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        let mut provider = Provider::new();
        provider.on_observation(reconciler_aws::observation_hook(&pool));
        for client in autoscaling::clients(&pool)
            .into_iter()
            .chain(cloudwatch::clients(&pool))
            .chain(events::clients(&pool))
        {
            provider.register(client);
        }
        Env {
            cfg,
            account,
            counter,
            reconciler: Reconciler::new(provider, Options::default()),
        }
    }

    fn cw(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.cfg)
    }

    fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.cfg)
    }

    fn asg(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.cfg)
    }

    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.reconciler, graph).await
    }

    /// Observes, plans and applies; panics on any failure. Returns the plan.
    async fn apply(&self, graph: &DesiredGraph) -> Plan {
        let plan = self.plan(graph).await;
        self.run(&plan).await;
        plan
    }

    async fn destroy(&self, graph: &DesiredGraph) -> Plan {
        let plan = common::plan_destroy(&self.reconciler, graph).await;
        self.run(&plan).await;
        plan
    }

    async fn run(&self, plan: &Plan) {
        common::apply_plan(&self.reconciler, plan).await
    }
}

/// What the watchdog needs from other kinds, created directly.
struct Prereqs {
    group: String,
    topic: String,
    function: String,
}

/// The smallest valid zip archive (an empty one): the emulator only hashes the code.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

async fn prerequisites(env: &Env) -> Prereqs {
    let names = ServerNames::new("main", SERVER);
    let ec2 = aws_sdk_ec2::Client::new(&env.cfg);
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
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.0.0/20")
        .availability_zone(format!("{REGION}a"))
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
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
    let template = ec2
        .create_launch_template()
        .launch_template_name(names.name(""))
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type("t3.medium".into())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template
        .unwrap()
        .launch_template_id
        .unwrap();
    let group = names.name("");
    env.asg()
        .create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_id(template)
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(1)
        .desired_capacity(0)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .unwrap();
    let topic = aws_sdk_sns::Client::new(&env.cfg)
        .create_topic()
        .name("rc-main-admin")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let role = aws_sdk_iam::Client::new(&env.cfg)
        .create_role()
        .role_name(names.name("break-crash-loop"))
        .assume_role_policy_document(
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "lambda.amazonaws.com" },
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
    let function = aws_sdk_lambda::Client::new(&env.cfg)
        .create_function()
        .function_name(names.name("break-crash-loop"))
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(EMPTY_ZIP))
                .build(),
        )
        .send()
        .await
        .unwrap()
        .function_arn
        .unwrap();
    Prereqs {
        group,
        topic,
        function,
    }
}

fn tagged(mut r: DesiredResource, names: &ServerNames) -> DesiredResource {
    for (k, v) in names.tags("sleep") {
        r = r.with_tag(k, v);
    }
    r
}

/// The crash-loop pattern render emits for the server's cluster.
fn crash_pattern(account: &str) -> Value {
    json!({
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [format!("arn:aws:ecs:{REGION}:{account}:cluster/rc-{SERVER}")],
            "desiredStatus": ["STOPPED"],
            "$or": [
                { "stopCode": ["TaskFailedToStart"] },
                { "stopCode": ["EssentialContainerExited"], "containers": { "exitCode": [{ "anything-but": 0 }] } }
            ]
        }
    })
}

/// The watchdog resources render emits for a server, the prerequisites' names and ARNs in
/// place of references to other kinds.
fn watchdog_graph(env: &Env, p: &Prereqs) -> DesiredGraph {
    let names = ServerNames::new("main", SERVER);
    let policy = DesiredResource::new(
        kinds::SCALING_POLICY,
        SERVER,
        REGION,
        names.name("scale-to-zero"),
    )
    .with_properties(json!({
        "autoScalingGroupName": p.group,
        "policyType": "StepScaling",
        "adjustmentType": "ExactCapacity",
        "stepAdjustments": [
            { "metricIntervalUpperBound": 0.0, "scalingAdjustment": 0 },
            { "metricIntervalLowerBound": 0.0, "scalingAdjustment": 0 }
        ]
    }));
    let asg_dim = json!([{ "name": "AutoScalingGroupName", "value": p.group }]);
    let idle = DesiredResource::new(
        kinds::ALARM,
        &format!("{SERVER}-idle"),
        REGION,
        names.name("idle"),
    )
    .with_properties(json!({
        "alarmDescription": format!("Stops server {SERVER} after 7 idle minutes"),
        "metrics": [
            { "id": "activity", "expression": "IF(traffic_in - volumes_out > 0, traffic_in - volumes_out, 0) + FILL(dns_hit, 0)", "label": "Traffic that counts as players", "returnData": true },
            { "id": "traffic_in", "expression": "b_in / PERIOD(b_in)", "label": "Bytes in per second", "returnData": false },
            { "id": "b_in", "metric": { "namespace": "AWS/EC2", "metricName": "NetworkIn", "dimensions": asg_dim }, "period": 60, "stat": "Sum", "returnData": false },
            { "id": "dns_hit", "metric": { "namespace": format!("Reconciler/{SERVER}"), "metricName": "DNSTraffic", "dimensions": [{ "name": "ServerName", "value": SERVER }] }, "period": 60, "stat": "Maximum", "returnData": false },
            { "id": "volumes_out", "expression": "0", "label": "EFS bytes read per second", "returnData": false }
        ],
        "comparisonOperator": "LessThanOrEqualToThreshold",
        "threshold": 1175,
        "evaluationPeriods": 7,
        "datapointsToAlarm": 7,
        "treatMissingData": "missing",
        "alarmActions": [reference(policy.id.clone(), "arn")]
    }));
    let left_up = DesiredResource::new(
        kinds::ALARM,
        &format!("{SERVER}-left-up"),
        REGION,
        names.name("left-up"),
    )
    .with_properties(json!({
        "alarmDescription": format!("Server {SERVER} has been up 8 hours"),
        "metrics": [
            { "id": "up", "expression": "network_in >= 0", "label": "Instance is up", "returnData": true },
            { "id": "network_in", "metric": { "namespace": "AWS/EC2", "metricName": "NetworkIn", "dimensions": asg_dim }, "period": 60, "stat": "Sum", "returnData": false }
        ],
        "comparisonOperator": "GreaterThanOrEqualToThreshold",
        "threshold": 1,
        "evaluationPeriods": 480,
        "datapointsToAlarm": 480,
        "treatMissingData": "notBreaching",
        "alarmActions": [p.topic]
    }));
    let dashboard = DesiredResource::new(kinds::DASHBOARD, SERVER, REGION, names.name(""))
        .with_properties(json!({ "body": dashboard_body("Server mc") }));
    let rule = DesiredResource::new(
        kinds::EVENT_RULE,
        &format!("{SERVER}-crash-loop"),
        REGION,
        names.name("crash-loop"),
    )
    .with_properties(json!({
        "description": format!("Stops server {SERVER} when its container crashes or cannot start"),
        "state": "ENABLED",
        "eventPattern": crash_pattern(&env.account),
        "targets": [
            { "id": "stop-server", "arn": p.function },
            { "id": "admin-alert", "arn": p.topic, "input": Value::String(format!("Server {SERVER} crashed.")).to_string() }
        ]
    }));
    DesiredGraph::new([
        policy,
        tagged(idle, &names),
        tagged(left_up, &names),
        dashboard,
        tagged(rule, &names),
    ])
    .expect("a valid graph")
}

fn dashboard_body(title: &str) -> Value {
    json!({
        "widgets": [
            { "type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": { "markdown": format!("# {title}") } },
            { "type": "metric", "x": 0, "y": 2, "width": 12, "height": 6, "properties": {
                "title": "Network in", "region": REGION, "stat": "Sum", "period": 60,
                "metrics": [["AWS/EC2", "NetworkIn", "AutoScalingGroupName", "rc-mc"]]
            } }
        ]
    })
}

fn id(kind: &str, local: &str) -> ResourceId {
    ResourceId::from(format!("{kind}/{local}"))
}

fn changed_paths(plan: &Plan, id: &ResourceId) -> Vec<String> {
    plan.get(id)
        .map(|r| r.changes.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default()
}

/// An ECS task-state-change event of the server's cluster.
fn task_event(account: &str, task: &str, stop_code: &str, containers: Value) -> Value {
    json!({
        "version": "0",
        "id": format!("00000000-0000-0000-0000-{:0>12}", task.len()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": "2024-01-01T00:00:00Z",
        "region": REGION,
        "resources": [format!("arn:aws:ecs:{REGION}:{account}:task/rc-{SERVER}/{task}")],
        "detail": {
            "clusterArn": format!("arn:aws:ecs:{REGION}:{account}:cluster/rc-{SERVER}"),
            "taskArn": format!("arn:aws:ecs:{REGION}:{account}:task/rc-{SERVER}/{task}"),
            "desiredStatus": "STOPPED",
            "lastStatus": "STOPPED",
            "stopCode": stop_code,
            "containers": containers
        }
    })
}

/// Which of `samples` (name, event) `pattern` matches, by EventBridge's `TestEventPattern`.
async fn pattern_matches(env: &Env, pattern: &str, samples: &[(&str, Value)]) -> BTreeSet<String> {
    let events = env.events();
    let mut matched = BTreeSet::new();
    for (name, event) in samples {
        let out = events
            .test_event_pattern()
            .event_pattern(pattern)
            .event(event.to_string())
            .send()
            .await
            .expect("TestEventPattern");
        if out.result() {
            matched.insert(name.to_string());
        }
    }
    matched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_lifecycle() {
    let env = Env::new();
    let p = prerequisites(&env).await;
    let graph = watchdog_graph(&env, &p);
    let policy = id(kinds::SCALING_POLICY, SERVER);
    let idle = id(kinds::ALARM, "mc-idle");
    let left_up = id(kinds::ALARM, "mc-left-up");
    let dashboard = id(kinds::DASHBOARD, SERVER);
    let rule = id(kinds::EVENT_RULE, "mc-crash-loop");

    // Apply from nothing creates all five.
    let plan = env.apply(&graph).await;
    assert_eq!(plan.with_action(Action::Create).count(), 5, "{plan}");

    let cw = env.cw();
    let asg = env.asg();
    let ev = env.events();
    let policy_arn = asg
        .describe_policies()
        .auto_scaling_group_name(&p.group)
        .send()
        .await
        .unwrap()
        .scaling_policies()[0]
        .policy_arn()
        .unwrap()
        .to_string();
    let describe_alarm = |name: &'static str| {
        let cw = cw.clone();
        async move {
            cw.describe_alarms()
                .alarm_names(name)
                .send()
                .await
                .unwrap()
                .metric_alarms()
                .first()
                .cloned()
                .expect("the alarm exists")
        }
    };
    let alarm = describe_alarm("rc-mc-idle").await;
    assert_eq!(alarm.alarm_actions(), [policy_arn]);
    assert_eq!(alarm.metrics().len(), 5);
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(alarm.alarm_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(tags
        .tags()
        .iter()
        .any(|t| t.key() == Some("reconciler.dev/managed-by")));
    let targets = ev
        .list_targets_by_rule()
        .rule("rc-mc-crash-loop")
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 2);

    // A second look finds nothing to do, and applying it makes no mutating call.
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");
    env.counter.reset();
    env.apply(&graph).await;
    let counts = env.counter.snapshot();
    assert_eq!(counts.mutations, 0, "{:?}", counts.mutating_operations());
    // Observation is batched: one list/describe per kind, the tags of alarms and rules from
    // one tag index call; per object only what has no batch form (rule targets, dashboard
    // bodies).
    let expected: Vec<(&str, u64)> = vec![
        ("Auto Scaling.DescribePolicies", 1),
        ("CloudWatch.DescribeAlarms", 1),
        ("CloudWatch.GetDashboard", 1),
        ("EventBridge.ListRules", 1),
        ("EventBridge.ListTargetsByRule", 1),
        ("Resource Groups Tagging API.GetResources", 1),
    ];
    let actual: Vec<(&str, u64)> = counts
        .by_operation
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(actual, expected);

    // The pattern the rule holds stops the server on a failed start and on a non-zero exit,
    // not on a clean exit.
    let held = ev
        .describe_rule()
        .name("rc-mc-crash-loop")
        .send()
        .await
        .unwrap()
        .event_pattern
        .unwrap();
    let account = env.account.as_str();
    let samples = [
        (
            "failed-to-start",
            task_event(account, "a", "TaskFailedToStart", json!([])),
        ),
        (
            "crashed",
            task_event(
                account,
                "b",
                "EssentialContainerExited",
                json!([{ "name": "mc", "exitCode": 1 }]),
            ),
        ),
        (
            "clean-exit",
            task_event(
                account,
                "c",
                "EssentialContainerExited",
                json!([{ "name": "mc", "exitCode": 0 }]),
            ),
        ),
    ];
    let matched = pattern_matches(&env, &held, &samples).await;
    let matched: Vec<&str> = matched.iter().map(String::as_str).collect();
    assert_eq!(matched, ["crashed", "failed-to-start"]);

    // Out of band: the idle threshold, a rule target, the policy's steps and the dashboard
    // change. The plan shows each as an update and apply puts each back.
    cw.put_metric_alarm()
        .alarm_name("rc-mc-idle")
        .alarm_description(alarm.alarm_description().unwrap())
        .set_metrics(Some(alarm.metrics().to_vec()))
        .set_comparison_operator(alarm.comparison_operator().cloned())
        .threshold(5000.0)
        .set_evaluation_periods(alarm.evaluation_periods())
        .set_datapoints_to_alarm(alarm.datapoints_to_alarm())
        .set_treat_missing_data(alarm.treat_missing_data().map(str::to_string))
        .set_alarm_actions(Some(alarm.alarm_actions().to_vec()))
        .send()
        .await
        .unwrap();
    cw.untag_resource()
        .resource_arn(alarm.alarm_arn().unwrap())
        .tag_keys("reconciler.dev/component")
        .send()
        .await
        .unwrap();
    ev.remove_targets()
        .rule("rc-mc-crash-loop")
        .ids("admin-alert")
        .send()
        .await
        .unwrap();
    ev.disable_rule()
        .name("rc-mc-crash-loop")
        .send()
        .await
        .unwrap();
    asg.put_scaling_policy()
        .auto_scaling_group_name(&p.group)
        .policy_name("rc-mc-scale-to-zero")
        .policy_type("StepScaling")
        .adjustment_type("ExactCapacity")
        .step_adjustments(
            StepAdjustment::builder()
                .metric_interval_upper_bound(0.0)
                .scaling_adjustment(1)
                .build(),
        )
        .step_adjustments(
            StepAdjustment::builder()
                .metric_interval_lower_bound(0.0)
                .scaling_adjustment(0)
                .build(),
        )
        .send()
        .await
        .unwrap();
    cw.put_dashboard()
        .dashboard_name("rc-mc")
        .dashboard_body(dashboard_body("Someone else's").to_string())
        .send()
        .await
        .unwrap();
    let plan = env.plan(&graph).await;
    for r in [&idle, &rule, &policy, &dashboard] {
        assert_eq!(plan.action(r), Some(Action::Update), "{r}\n{plan}");
    }
    assert_eq!(plan.action(&left_up), Some(Action::NoOp), "{plan}");
    assert_eq!(
        changed_paths(&plan, &idle),
        ["/threshold", "/tags/reconciler.dev~1component"]
    );
    assert_eq!(changed_paths(&plan, &rule), ["/state", "/targets"]);
    assert_eq!(changed_paths(&plan, &policy), ["/stepAdjustments"]);
    assert_eq!(changed_paths(&plan, &dashboard), ["/body/widgets"]);
    env.apply(&graph).await;
    assert!(env.plan(&graph).await.is_empty());
    assert_eq!(describe_alarm("rc-mc-idle").await.threshold(), Some(1175.0));
    let targets = ev
        .list_targets_by_rule()
        .rule("rc-mc-crash-loop")
        .send()
        .await
        .unwrap();
    let alert = targets
        .targets()
        .iter()
        .find(|t| t.id() == "admin-alert")
        .expect("the target is back");
    assert_eq!(alert.input(), Some("\"Server mc crashed.\""));
    let held = ev
        .describe_rule()
        .name("rc-mc-crash-loop")
        .send()
        .await
        .unwrap();
    assert_eq!(held.state().map(|s| s.as_str()), Some("ENABLED"));
    assert_eq!(
        serde_json::from_str::<Value>(held.event_pattern().unwrap()).unwrap(),
        crash_pattern(&env.account)
    );

    // The running system moves the alarm's state: not drift.
    cw.set_alarm_state()
        .alarm_name("rc-mc-idle")
        .state_value(StateValue::Alarm)
        .state_reason("idle")
        .send()
        .await
        .unwrap();
    let plan = env.plan(&graph).await;
    assert!(plan.is_empty(), "{plan}");
    env.counter.reset();
    env.apply(&graph).await;
    assert_eq!(env.counter.snapshot().mutations, 0);
    assert_eq!(
        describe_alarm("rc-mc-idle").await.state_value(),
        Some(&StateValue::Alarm)
    );

    // Destroy: the alarm before the policy it points at, the rule's targets before the rule
    // (the emulator, like AWS, refuses to delete a rule that has targets).
    let plan = env.destroy(&graph).await;
    assert_eq!(plan.with_action(Action::Delete).count(), 5, "{plan}");
    let observed = env.reconciler.observe(&graph).await.unwrap();
    assert!(observed.is_empty(), "{observed:?}");
    assert!(cw
        .describe_alarms()
        .alarm_name_prefix("rc-")
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .is_empty());
    assert!(cw
        .list_dashboards()
        .send()
        .await
        .unwrap()
        .dashboard_entries()
        .is_empty());
    assert!(ev
        .list_rules()
        .name_prefix("rc-")
        .send()
        .await
        .unwrap()
        .rules()
        .is_empty());
    assert!(asg
        .describe_policies()
        .auto_scaling_group_name(&p.group)
        .send()
        .await
        .unwrap()
        .scaling_policies()
        .is_empty());
}

/// An alarm with the deterministic name but without the ownership tag is shown in the plan
/// (its tags differ) and never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_without_the_ownership_tag_are_not_touched() {
    let env = Env::new();
    let cw = env.cw();
    cw.put_metric_alarm()
        .alarm_name("rc-foreign-idle")
        .metric_name("NetworkIn")
        .namespace("AWS/EC2")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .unwrap();
    let names = ServerNames::new("main", "foreign");
    let graph = DesiredGraph::new([tagged(
        DesiredResource::new(kinds::ALARM, "foreign-idle", REGION, "rc-foreign-idle")
            .with_properties(json!({
                "alarmDescription": "idle",
                "metrics": [
                    { "id": "m", "metric": { "namespace": "AWS/EC2", "metricName": "NetworkIn", "dimensions": [] }, "period": 60, "stat": "Sum", "returnData": true }
                ],
                "comparisonOperator": "LessThanThreshold",
                "threshold": 1,
                "evaluationPeriods": 1,
                "datapointsToAlarm": 1,
                "treatMissingData": "missing",
                "alarmActions": []
            })),
        &names,
    )])
    .unwrap();
    let plan = env.plan(&graph).await;
    let alarm = id(kinds::ALARM, "foreign-idle");
    assert_eq!(plan.action(&alarm), Some(Action::Update), "{plan}");
    env.counter.reset();
    let report = env
        .reconciler
        .apply(&plan, &reconciler_engine::NoEvents)
        .await;
    let (_, err) = report.failures().next().expect("the update is refused");
    assert!(err.message.contains("is not ours to change"), "{err}");
    assert_eq!(env.counter.snapshot().mutations, 0);
}
