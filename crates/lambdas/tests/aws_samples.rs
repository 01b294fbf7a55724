//! The rendered rules and subscription filters, and the Lambdas behind them, driven with AWS's
//! documented sample events and query-log lines (`tests/events`, each named with its AWS page
//! in `tests/events/SOURCES.md`), matched the way AWS matches them: EventBridge's pattern rules
//! (`reconciler_testkit::event_pattern`) and CloudWatch Logs' filter terms
//! (`reconciler_testkit::log_filter`), both written from AWS's documentation, rather than the
//! emulator's `TestEventPattern` and `FilterLogEvents`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{event, with, Cloud, REGION};
use reconciler_lambdas::{
    start_system, wake_dispatcher, LogBatch, StartSystemClients, StartSystemConfig,
    WakeDispatcherConfig,
};
use reconciler_render::{render, Context};
use reconciler_spec::{check, collect_inputs, InstanceCatalog};
use reconciler_testkit::{event_pattern, log_filter};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/events")
}

/// A rendered resource: kind, name, properties.
type Resource = (String, String, Value);

/// The example specs rendered, optionally with the Base in the shared wake zone.
fn rendered(shared: bool) -> Vec<Resource> {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let mut inputs = collect_inputs(&[specs]).unwrap();
    if shared {
        let base = inputs
            .iter_mut()
            .find(|i| i.name.ends_with("base.yaml"))
            .unwrap();
        let text = String::from_utf8(base.bytes.clone()).unwrap();
        let zone = "    hostedZoneId: ${HOSTED_ZONE_ID:-Z0123456789EXAMPLE}\n";
        assert!(text.contains(zone));
        base.bytes = text
            .replace(zone, &format!("{zone}    wakeZone: shared\n"))
            .into_bytes();
    }
    let (set, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    render(&Context::new(ACCOUNT), &set, &InstanceCatalog::offline())
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.kind.as_str().to_string(),
                r.name.clone(),
                r.properties.clone(),
            )
        })
        .collect()
}

fn of_kind<'a>(resources: &'a [Resource], kind: &str) -> Vec<&'a Resource> {
    resources.iter().filter(|r| r.0 == kind).collect()
}

/// Every key path of a JSON value (`detail.containers[].exitCode`).
fn paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                paths(child, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

/// The fields of a stopped task that a running task's sample cannot show, as the ECS API's Task
/// and Container objects define them (the task events page: the detail "resembles the Task
/// object").
const ECS_STOPPED_TASK_FIELDS: [&str; 9] = [
    "detail.containerInstanceArn",
    "detail.startedBy",
    "detail.stopCode",
    "detail.stoppedAt",
    "detail.stoppedReason",
    "detail.stoppingAt",
    "detail.executionStoppedAt",
    "detail.containers[].exitCode",
    "detail.containers[].reason",
];

/// `SOURCES.md`'s rows: fixture -> (source, documented sample).
fn sources() -> BTreeMap<String, (String, Option<String>)> {
    let text = std::fs::read_to_string(events_dir().join("SOURCES.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = cells[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_string();
            let sample = cells[2].trim_matches('`');
            (
                name,
                (
                    cells[1].to_string(),
                    (sample != "—").then(|| sample.to_string()),
                ),
            )
        })
        .collect()
}

#[test]
fn every_fixture_names_its_aws_source_and_keeps_aws_field_names() {
    let sources = sources();
    let mut fixtures: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    fixtures.sort();
    assert_eq!(
        fixtures,
        sources.keys().cloned().collect::<Vec<_>>(),
        "fixtures vs. the rows of tests/events/SOURCES.md"
    );
    for (fixture, (source, sample)) in &sources {
        assert!(
            source.starts_with("https://docs.aws.amazon.com/") || source == "as above",
            "{fixture}: {source}"
        );
        let Some(sample) = sample else { continue };
        let documented: Value =
            serde_json::from_str(&std::fs::read_to_string(events_dir().join(sample)).unwrap())
                .unwrap();
        let ours = event(fixture);
        let (mut allowed, mut have) = (BTreeSet::new(), BTreeSet::new());
        paths(&documented, "", &mut allowed);
        paths(&ours, "", &mut have);
        if fixture.starts_with("ecs-") {
            allowed.extend(ECS_STOPPED_TASK_FIELDS.iter().map(|s| s.to_string()));
        }
        let foreign: Vec<&String> = have.difference(&allowed).collect();
        assert!(
            foreign.is_empty(),
            "{fixture}: fields AWS's sample ({sample}) does not have: {foreign:?}"
        );
        // The envelope is complete, and of the same kind as the sample.
        for key in documented.as_object().unwrap().keys() {
            assert!(ours.get(key).is_some(), "{fixture}: no `{key}`");
        }
        assert_eq!(ours["source"], documented["source"], "{fixture}");
        if !fixture.starts_with("ecs-") {
            assert_eq!(ours["detail-type"], documented["detail-type"], "{fixture}");
        }
    }
}

/// The sample query-log lines, by case.
fn query_lines() -> BTreeMap<String, String> {
    serde_json::from_value(event("route53-query-log-lines.json")).unwrap()
}

#[test]
fn the_query_log_lines_have_route53s_documented_format() {
    let lines = query_lines();
    assert_eq!(
        lines.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "aaaa", "deeper", "mixed-case", "srv"]
    );
    for (case, line) in &lines {
        // version timestamp hosted-zone-id query-name query-type response-code protocol
        // edge-location resolver-ip edns-client-subnet
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 10, "{case}: {line}");
        assert_eq!(f[0], "1.0", "{case}");
        let t = f[1].as_bytes();
        assert!(
            f[1].ends_with('Z') && t[4] == b'-' && t[10] == b'T' && t[13] == b':',
            "{case}: {}",
            f[1]
        );
        assert!(
            f[2].chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
            "{case}"
        );
        assert!(["A", "AAAA", "SRV"].contains(&f[4]), "{case}");
        assert!(["NOERROR", "NXDOMAIN"].contains(&f[5]), "{case}");
        assert!(["UDP", "TCP"].contains(&f[6]), "{case}");
        assert!(f[8].parse::<std::net::IpAddr>().is_ok(), "{case}");
        assert!(
            f[9] == "-"
                || f[9]
                    .split_once('/')
                    .is_some_and(|(ip, _)| ip.parse::<std::net::IpAddr>().is_ok()),
            "{case}"
        );
    }
    // The subscription payload's documented fields.
    let batch = event("cloudwatch-logs-dns-queries.json");
    let data = batch["awslogs"]["data"].as_str().unwrap();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut json)
        .unwrap();
    let decoded: Value = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "logEvents",
            "logGroup",
            "logStream",
            "messageType",
            "owner",
            "subscriptionFilters"
        ]
    );
}

/// Every rule of `resources` an event matches, by name.
fn matching_rules(resources: &[Resource], event: &Value) -> BTreeSet<String> {
    of_kind(resources, "events.rule")
        .into_iter()
        .filter(|(_, name, p)| {
            event_pattern::matches(&p["eventPattern"], event)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .map(|(_, name, _)| name.clone())
        .collect()
}

#[test]
fn the_rendered_rules_match_the_samples_as_eventbridge_does() {
    let resources = rendered(false);
    let group = "rc-minecraft";
    let cluster = format!("arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/rc-minecraft");
    let asg = |fixture: &str| {
        with(
            event(fixture),
            &[
                ("/region", "us-west-2"),
                ("/detail/AutoScalingGroupName", group),
            ],
        )
    };
    let ecs = |fixture: &str| {
        with(
            event(fixture),
            &[("/region", "us-west-2"), ("/detail/clusterArn", &cluster)],
        )
    };
    let mut sidecar_crashed = ecs("ecs-task-stopped-clean-exit-with-sidecar.json");
    sidecar_crashed["detail"]["containers"][1]["exitCode"] = json!(137);
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "launch successful",
            asg("asg-launch-successful.json"),
            &["rc-minecraft-instance-up"],
        ),
        (
            "terminate lifecycle action",
            asg("asg-terminate-lifecycle-action.json"),
            &["rc-minecraft-instance-down"],
        ),
        // The down rule acts on the lifecycle action, which comes first; the handler also
        // takes this one (instance_state_change.rs), should a rule route it.
        (
            "terminate successful",
            asg("asg-terminate-successful.json"),
            &[],
        ),
        (
            "failed to start",
            ecs("ecs-task-failed-to-start.json"),
            &["rc-minecraft-crash-loop"],
        ),
        (
            "essential container exited 1",
            ecs("ecs-task-stopped-essential-container-exited.json"),
            &["rc-minecraft-crash-loop"],
        ),
        (
            "exit 0 with a sidecar",
            ecs("ecs-task-stopped-clean-exit-with-sidecar.json"),
            &[],
        ),
        // An event's array matches if any element does: a sidecar that fails counts as a
        // crash. The render's tasks have one container, so this is a rule of EventBridge's
        // the pattern relies on, not a case a server meets.
        (
            "a sidecar exited 137",
            sidecar_crashed,
            &["rc-minecraft-crash-loop"],
        ),
        // Another group's or cluster's events (the fixtures as recorded) wake nobody's rules.
        ("another group", event("asg-launch-successful.json"), &[]),
        (
            "another cluster",
            event("ecs-task-stopped-essential-container-exited.json"),
            &[],
        ),
    ];
    for (case, event, want) in cases {
        let got = matching_rules(&resources, &event);
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{case}");
    }
}

/// The filter pattern of the subscription filter named `name`.
fn filter_pattern(resources: &[Resource], name: &str) -> String {
    of_kind(resources, "logs.subscription-filter")
        .into_iter()
        .find(|r| r.1 == name)
        .unwrap_or_else(|| panic!("no subscription filter {name}"))
        .2["filterPattern"]
        .as_str()
        .unwrap()
        .to_string()
}

fn passing(pattern: &str) -> Vec<String> {
    query_lines()
        .into_iter()
        .filter(|(_, line)| log_filter::matches(pattern, line).unwrap())
        .map(|(case, _)| case)
        .collect()
}

#[test]
fn the_subscription_filters_pass_the_sample_lines_as_cloudwatch_logs_does() {
    // A server's own zone: every successful A lookup is its name, in any letter case.
    let own = filter_pattern(&rendered(false), "rc-minecraft-a-queries");
    assert_eq!(own, reconciler_render::wake::SERVER_ZONE_FILTER);
    assert_eq!(passing(&own), ["a", "mixed-case"]);
    // The shared zone: every A lookup; the dispatcher sorts them by name.
    let shared = filter_pattern(&rendered(true), "rc-main-wake-dispatcher");
    assert_eq!(passing(&shared), ["a", "deeper", "mixed-case"]);
}

/// A subscription payload of `lines`, as CloudWatch Logs hands it to a Lambda.
fn payload(group: &str, filter: &str, lines: &[String]) -> Value {
    LogBatch {
        message_type: Some("DATA_MESSAGE".into()),
        owner: Some(ACCOUNT.into()),
        log_group: Some(group.into()),
        log_stream: Some("Z0123456789EXAMPLE/FRA6".into()),
        subscription_filters: vec![filter.into()],
        log_events: lines
            .iter()
            .enumerate()
            .map(|(i, m)| reconciler_lambdas::LogLine {
                id: format!("3700000000000000000000000000000000000000000000000000000{i}"),
                timestamp: 1_795_428_000_000 + i as i64,
                message: m.clone(),
            })
            .collect(),
    }
    .encode()
}

/// Records what the dispatcher would invoke.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(String, Value)>>);

impl reconciler_lambdas::Waker for Recorded {
    async fn wake(
        &self,
        function: &str,
        payload: &Value,
    ) -> Result<(), reconciler_lambdas::HandlerError> {
        self.0
            .lock()
            .unwrap()
            .push((function.to_string(), payload.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn the_dispatcher_wakes_the_server_a_sample_line_names() {
    let resources = rendered(true);
    let function = of_kind(&resources, "lambda.function")
        .into_iter()
        .find(|r| r.1 == "rc-main-wake-dispatcher")
        .unwrap();
    let env = function.2["environment"].as_object().unwrap().clone();
    let config = WakeDispatcherConfig::from_lookup(|k| {
        env.get(k).and_then(Value::as_str).map(str::to_string)
    })
    .unwrap();
    let filter = filter_pattern(&resources, "rc-main-wake-dispatcher");
    let lines = query_lines();
    let delivered: Vec<String> = lines
        .values()
        .filter(|l| log_filter::matches(&filter, l).unwrap())
        .cloned()
        .collect();
    let recorded = Recorded::default();
    let outcome = wake_dispatcher(
        &config,
        &recorded,
        &payload(
            "/aws/route53/rc-main/queries",
            "rc-main-wake-dispatcher",
            &delivered,
        ),
    )
    .await
    .unwrap();
    assert_eq!(outcome.unknown_names, ["www.minecraft.games.example.com"]);
    let woken = recorded.0.into_inner().unwrap();
    assert_eq!(woken.len(), 1, "{woken:?}");
    assert_eq!(woken[0].0, "rc-minecraft-start-system");
    let forwarded = LogBatch::decode(&woken[0].1).unwrap();
    let messages: Vec<&str> = forwarded
        .log_events
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [lines["a"].as_str(), lines["mixed-case"].as_str()]
    );
}

#[tokio::test]
async fn the_lines_the_server_filter_passes_wake_the_server() {
    let resources = rendered(false);
    let pattern = filter_pattern(&resources, "rc-minecraft-a-queries");
    let start = of_kind(&resources, "lambda.function")
        .into_iter()
        .find(|r| r.1 == "rc-minecraft-start-system")
        .unwrap();
    let mut env = start.2["environment"].as_object().unwrap().clone();
    // The group lives in the emulator's region of the handler tests.
    env.insert("ASG_REGION".into(), json!(REGION));
    let config =
        StartSystemConfig::from_lookup(|k| env.get(k).and_then(Value::as_str).map(str::to_string))
            .unwrap();
    let cloud = Cloud::new();
    cloud.create_group(&config.asg_name, 0).await;
    let delivered: Vec<String> = query_lines()
        .into_values()
        .filter(|l| log_filter::matches(&pattern, l).unwrap())
        .collect();
    assert_eq!(delivered.len(), 2);
    let outcome = start_system(
        &config,
        &StartSystemClients::new(&cloud.sdk),
        &payload(
            "/aws/route53/rc-minecraft",
            "rc-minecraft-a-queries",
            &delivered,
        ),
    )
    .await
    .unwrap();
    assert_eq!(outcome.desired_capacity, 1);
    assert_eq!(cloud.group(&config.asg_name).await.0, 1);
}
