//! The end-to-end runtime check: apply the example specs to the emulator, read back what was
//! deployed (the subscription filter, the rules' event patterns, each function's environment,
//! the alarms), and drive the system with simulated events through the deployed wiring and the
//! real handlers. This proves that the pieces fit, not only that each handler works.
//!
//! Emulator gaps this test works around (AWS behaviour is what the product relies on):
//! - moto neither evaluates a subscription filter's pattern on delivery nor runs Lambdas
//!   without Docker. The deployed pattern is evaluated by `FilterLogEvents` over the lines
//!   written to the deployed query log group (the same quoted-term matching), and the start
//!   handler receives exactly the lines that matched, in the payload format Logs delivers.
//! - EventBridge does not invoke targets here: `TestEventPattern` evaluates the deployed
//!   patterns (the launcher fixes moto's stub, see docs/emulator.md), and the handler named by
//!   the rule's target is run with the deployed function's environment.

mod common;

use common::runtime::{
    a_record, assert_delivers, desired_capacity, environment, launched_instance, lines_matching,
    public_ip,
};

use std::io::Write;

use base64::Engine;
use common::{prepared, reconciler, DOMAIN};
use reconciler_engine::NoEvents;
use reconciler_lambdas::{
    break_crash_loop, instance_state_change, start_system, AutoScalingEvent, BreakCrashLoopClients,
    BreakCrashLoopConfig, InstanceStateChangeClients, InstanceStateChangeConfig,
    StartSystemClients, StartSystemConfig,
};
use reconciler_ops::deploy;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

const SERVER: &str = "minecraft";
const GLOBAL: &str = "us-east-1";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../lambdas/tests/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// `name` with every other letter upper-cased, as a resolver using DNS 0x20 may send it.
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A rule's pattern and target ARNs as deployed.
async fn rule(events: &aws_sdk_eventbridge::Client, name: &str) -> (String, Vec<String>) {
    let rule = events.describe_rule().name(name).send().await.unwrap();
    let targets = events
        .list_targets_by_rule()
        .rule(name)
        .send()
        .await
        .unwrap();
    (
        rule.event_pattern().unwrap().to_string(),
        targets
            .targets()
            .iter()
            .map(|t| t.arn().to_string())
            .collect(),
    )
}

/// The deployed rule's ARN: the source EventBridge names when it invokes a target.
async fn rule_arn(events: &aws_sdk_eventbridge::Client, name: &str) -> String {
    let rule = events.describe_rule().name(name).send().await.unwrap();
    rule.arn().unwrap().to_string()
}

async fn matches(events: &aws_sdk_eventbridge::Client, pattern: &str, event: &Value) -> bool {
    events
        .test_event_pattern()
        .event_pattern(pattern)
        .event(event.to_string())
        .send()
        .await
        .unwrap()
        .result()
}

/// The payload CloudWatch Logs hands a subscription's Lambda: gzip'd JSON in base64.
fn subscription_payload(group: &str, stream: &str, filter: &str, messages: &[String]) -> Value {
    let data = json!({
        "messageType": "DATA_MESSAGE",
        "owner": "000000000000",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": [filter],
        "logEvents": messages.iter().enumerate().map(|(i, m)| json!({
            "id": i.to_string(), "timestamp": 1_764_000_000_000_i64, "message": m
        })).collect::<Vec<_>>()
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data.to_string().as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    json!({ "awslogs": { "data": base64::engine::general_purpose::STANDARD.encode(bytes) } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployed_wiring_wakes_the_server_follows_its_instance_and_breaks_crash_loops() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let rec = reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let report = rec.apply(&plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");

    let spec = p
        .set
        .servers
        .iter()
        .find(|s| s.doc.metadata.name == SERVER)
        .unwrap();
    let home = reconciler_ops::session::home_region(&p.set);
    let global = Emulator::shared().sdk_config(GLOBAL, &account);
    let regional = Emulator::shared().sdk_config(&home, &account);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&global);
    let events = aws_sdk_eventbridge::Client::new(&regional);
    let autoscaling = aws_sdk_autoscaling::Client::new(&regional);
    let route53 = aws_sdk_route53::Client::new(&global);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&regional);
    let dns = format!("{SERVER}.{DOMAIN}");
    let group = format!("rc-{SERVER}");
    let query_logs = format!("/aws/route53/rc-{SERVER}");

    // --- Read back what was deployed. ---
    let filters = logs
        .describe_subscription_filters()
        .log_group_name(&query_logs)
        .send()
        .await
        .unwrap();
    let [filter] = filters.subscription_filters() else {
        panic!("one subscription filter on {query_logs}: {filters:?}")
    };
    let pattern = filter.filter_pattern().unwrap().to_string();
    assert_eq!(pattern, reconciler_render::wake::SERVER_ZONE_FILTER);
    let (start_arn, start_env) = environment(&global, &format!("rc-{SERVER}-start-system")).await;
    assert_eq!(filter.destination_arn(), Some(start_arn.as_str()));
    let (state_arn, state_env) =
        environment(&regional, &format!("rc-{SERVER}-instance-state-change")).await;
    let (crash_arn, crash_env) =
        environment(&regional, &format!("rc-{SERVER}-break-crash-loop")).await;
    for env in [&start_env, &state_env, &crash_env] {
        assert_eq!(env.get("ASG_REGION"), Some(&home));
    }
    let (up_pattern, up_targets) = rule(&events, &format!("rc-{SERVER}-instance-up")).await;
    let (down_pattern, down_targets) = rule(&events, &format!("rc-{SERVER}-instance-down")).await;
    let (crash_pattern, crash_targets) = rule(&events, &format!("rc-{SERVER}-crash-loop")).await;
    assert!(up_targets.contains(&state_arn) && down_targets.contains(&state_arn));
    assert_eq!(up_targets.len(), 3, "the Lambda and both alert topics");
    assert_eq!(crash_targets, std::slice::from_ref(&crash_arn));

    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(format!("rc-{SERVER}-idle"))
        .alarm_names(format!("rc-{SERVER}-left-up"))
        .alarm_names(format!("rc-{SERVER}-crash-loop"))
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.metric_alarms().len(), 3);
    let idle = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(&format!("rc-{SERVER}-idle")))
        .unwrap();
    let wd = &spec.doc.spec.watchdog;
    assert_eq!(idle.threshold(), Some(wd.threshold as f64));
    assert_eq!(
        idle.evaluation_periods(),
        Some(wd.minutes_without_connections as i32)
    );
    let activity = idle
        .metrics()
        .iter()
        .find(|q| q.return_data() == Some(true))
        .and_then(|q| q.expression())
        .unwrap();
    assert!(activity.contains("FILL(dns_hit, 0)") && activity.contains("volumes_out"));
    let policies = autoscaling
        .describe_policies()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .unwrap();
    let zero_policy = policies.scaling_policies()[0].policy_arn().unwrap();
    assert_eq!(idle.alarm_actions(), [zero_policy.to_string()]);
    // The start Lambda pushes enough to keep the idle alarm quiet for a while.
    assert_eq!(
        start_env["METRIC_VALUE"].parse::<f64>().unwrap(),
        (wd.threshold + 1) as f64
    );

    // --- A DNS query wakes the server. ---
    let stream = "simulated";
    let zone_id = state_env["HOSTED_ZONE_ID"].clone();
    let lines = [
        format!("1.0 2026-11-23T10:00:00.000Z {zone_id} {dns} A NOERROR UDP IAD89-C1 192.0.2.1 -"),
        format!("1.0 2026-11-23T10:00:01.000Z {zone_id} {dns} AAAA NOERROR UDP IAD89-C1 192.0.2.1 -"),
        format!("1.0 2026-11-23T10:00:02.000Z {zone_id} _minecraft._tcp.{dns} SRV NXDOMAIN UDP IAD89-C1 192.0.2.1 -"),
        format!("1.0 2026-11-23T10:00:03.000Z {zone_id} deeper.{dns} A NXDOMAIN UDP IAD89-C1 192.0.2.1 -"),
        // A resolver using DNS 0x20 randomises the case of the name; the log keeps it.
        format!("1.0 2026-11-23T10:00:04.000Z {zone_id} {} A NOERROR UDP IAD89-C1 192.0.2.1 -", mixed_case(&dns)),
    ];
    let matched = lines_matching(&logs, &query_logs, stream, &lines, &pattern).await;
    assert_eq!(
        matched,
        [lines[0].clone(), lines[4].clone()],
        "the server's name looked up for an address wakes it, in any letter case"
    );

    assert_eq!(desired_capacity(&autoscaling, &group).await, 0);
    let config = StartSystemConfig::from_lookup(|k| start_env.get(k).cloned()).unwrap();
    let handler_sdk = Emulator::shared().sdk_config(&config.asg_region, &account);
    let payload =
        subscription_payload(&query_logs, stream, filter.filter_name().unwrap(), &matched);
    let query_log_arn = format!("arn:aws:logs:{GLOBAL}:{account}:log-group:{query_logs}:*");
    assert_delivers(
        &global,
        &start_arn,
        "logs.amazonaws.com",
        &query_log_arn,
        &account,
    )
    .await;
    start_system(&config, &StartSystemClients::new(&handler_sdk), &payload)
        .await
        .unwrap();
    assert_eq!(desired_capacity(&autoscaling, &group).await, 1);

    // --- The launch event puts the instance's address into the server's zone. ---
    let instance = launched_instance(&autoscaling, &group).await;
    let mut launch = fixture("asg-launch-successful.json");
    launch["region"] = json!(home);
    launch["detail"]["AutoScalingGroupName"] = json!(group);
    launch["detail"]["EC2InstanceId"] = json!(instance);
    assert!(matches(&events, &up_pattern, &launch).await);
    assert!(!matches(&events, &down_pattern, &launch).await);
    let mut other_group = launch.clone();
    other_group["detail"]["AutoScalingGroupName"] = json!("rc-valheim");
    assert!(!matches(&events, &up_pattern, &other_group).await);

    let up_rule = rule_arn(&events, &format!("rc-{SERVER}-instance-up")).await;
    assert_delivers(
        &regional,
        &state_arn,
        "events.amazonaws.com",
        &up_rule,
        &account,
    )
    .await;
    let config = InstanceStateChangeConfig::from_lookup(|k| state_env.get(k).cloned()).unwrap();
    let state_clients = InstanceStateChangeClients::new(&handler_sdk);
    instance_state_change(
        &config,
        &state_clients,
        &AutoScalingEvent::from_value(launch.clone()).unwrap(),
    )
    .await
    .unwrap();
    let ip = public_ip(&aws_sdk_ec2::Client::new(&regional), &instance).await;
    let record_name = format!("{dns}.");
    assert_eq!(a_record(&route53, &zone_id, &record_name).await, [ip]);

    // The running system owns the group's size and the record: a plan finds nothing to do.
    let plan = deploy::plan(&p, &rec).await.unwrap();
    assert!(
        plan.is_empty(),
        "runtime-owned fields are not drift:\n{plan}"
    );

    // --- A crash stops the server; a clean exit does not match. ---
    let mut crash = fixture("ecs-task-stopped-essential-container-exited.json");
    crash["region"] = json!(home);
    crash["detail"]["clusterArn"] =
        json!(format!("arn:aws:ecs:{home}:{account}:cluster/rc-{SERVER}"));
    assert!(matches(&events, &crash_pattern, &crash).await);
    let mut clean = crash.clone();
    clean["detail"]["containers"][0]["exitCode"] = json!(0);
    assert!(!matches(&events, &crash_pattern, &clean).await);
    let mut elsewhere = crash.clone();
    elsewhere["detail"]["clusterArn"] =
        json!(format!("arn:aws:ecs:{home}:{account}:cluster/rc-valheim"));
    assert!(!matches(&events, &crash_pattern, &elsewhere).await);
    let crash_rule = rule_arn(&events, &format!("rc-{SERVER}-crash-loop")).await;
    assert_delivers(
        &regional,
        &crash_arn,
        "events.amazonaws.com",
        &crash_rule,
        &account,
    )
    .await;
    let config = BreakCrashLoopConfig::from_lookup(|k| crash_env.get(k).cloned()).unwrap();
    break_crash_loop(&config, &BreakCrashLoopClients::new(&handler_sdk), &crash)
        .await
        .unwrap();
    assert_eq!(desired_capacity(&autoscaling, &group).await, 0);

    // --- The terminate event puts the unavailable address back. ---
    let mut terminate = fixture("asg-terminate-lifecycle-action.json");
    terminate["region"] = json!(home);
    terminate["detail"]["AutoScalingGroupName"] = json!(group);
    terminate["detail"]["EC2InstanceId"] = json!(instance);
    assert!(matches(&events, &down_pattern, &terminate).await);
    assert!(!matches(&events, &up_pattern, &terminate).await);
    let down_rule = rule_arn(&events, &format!("rc-{SERVER}-instance-down")).await;
    assert_delivers(
        &regional,
        &state_arn,
        "events.amazonaws.com",
        &down_rule,
        &account,
    )
    .await;
    let config = InstanceStateChangeConfig::from_lookup(|k| state_env.get(k).cloned()).unwrap();
    instance_state_change(
        &config,
        &state_clients,
        &AutoScalingEvent::from_value(terminate).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        a_record(&route53, &zone_id, &record_name).await,
        [reconciler_render::wake::UNAVAILABLE_IP]
    );
}
