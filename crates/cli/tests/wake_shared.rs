//! The shared wake zone (`spec.domain.wakeZone: shared`) end to end against the emulator: the
//! example Base with its three servers is applied in shared mode, the deployed wiring is read
//! back (one query logging config on the root zone, one subscription filter, one dispatcher
//! whose role may invoke exactly the servers' start functions, no zone per server), and a
//! batch of query-log lines is driven through the deployed filter, the dispatcher and the
//! start handler it routes to: only the looked-up server wakes, and its instance's address
//! lands in the root zone. A Base switched from per-server zones to a shared one (and back)
//! converges, deleting what the other mode made.
//!
//! Emulator gaps this test works around (AWS behaviour is what the product relies on):
//! - moto neither evaluates a subscription filter on delivery nor runs Lambdas without Docker.
//!   The deployed pattern is evaluated with `FilterLogEvents` over lines written to the
//!   deployed query log group, and the dispatcher handler gets exactly the matched lines in the
//!   payload format Logs delivers.
//! - For the same reason the dispatcher's `Invoke` of a start function cannot run it here. The
//!   test's [`Waker`] stands in for Lambda: it reads the invoked function's deployed
//!   configuration (so the name the dispatcher routed to must exist) and runs the start
//!   handler with it on the payload the dispatcher forwarded. That the dispatcher may invoke the
//!   function is checked on its deployed role policy.

mod common;

use common::runtime::{
    a_record, assert_delivers, desired_capacity, environment, launched_instance, lines_matching,
    public_ip,
};

use std::sync::Mutex;

use aws_types::SdkConfig;
use common::{prepared, reconciler, DOMAIN};
use reconciler_engine::{Action, NoEvents};
use reconciler_lambdas::{
    instance_state_change, start_system, wake_dispatcher, AutoScalingEvent, HandlerError,
    InstanceStateChangeClients, InstanceStateChangeConfig, LogBatch, LogLine, StartSystemClients,
    StartSystemConfig, WakeDispatcherConfig, Waker,
};
use reconciler_ops::deploy::{self, Prepared};
use reconciler_spec::WakeZone;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

const GLOBAL: &str = "us-east-1";
const QUERY_LOG: &str = "/aws/route53/rc-main/queries";
const DISPATCHER: &str = "rc-main-wake-dispatcher";

/// Switches every Base of the input to `mode` and renders again.
fn with_wake_zone(p: &mut Prepared, mode: WakeZone) {
    for base in &mut p.set.bases {
        base.doc.spec.domain.wake_zone = mode;
    }
    p.graph = p.session.render(&p.set, &p.catalog).unwrap();
}

async fn apply(p: &Prepared) -> reconciler_engine::Plan {
    let rec = reconciler(p);
    let plan = deploy::plan(p, &rec).await.unwrap();
    let report = rec.apply(&plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");
    plan
}

async fn assert_converged(p: &Prepared) {
    let plan = deploy::plan(p, &reconciler(p)).await.unwrap();
    assert!(plan.is_empty(), "a second plan has nothing to do:\n{plan}");
}

/// The public hosted zones of the account by name.
async fn zones(route53: &aws_sdk_route53::Client) -> Vec<String> {
    let mut names: Vec<String> = route53
        .list_hosted_zones()
        .send()
        .await
        .unwrap()
        .hosted_zones()
        .iter()
        .map(|z| z.name().to_string())
        .collect();
    names.sort();
    names
}

/// Lambda, for the test: the invoked function's deployed configuration, run in-process.
struct DeployedStart {
    account: String,
    global: SdkConfig,
    invoked: Mutex<Vec<String>>,
}

impl Waker for DeployedStart {
    async fn wake(&self, function: &str, payload: &Value) -> Result<(), HandlerError> {
        self.invoked.lock().unwrap().push(function.to_string());
        let (_, env) = environment(&self.global, function).await;
        let config = StartSystemConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        let sdk = Emulator::shared().sdk_config(&config.asg_region, &self.account);
        start_system(&config, &StartSystemClients::new(&sdk), payload).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_zone_wakes_only_the_server_a_lookup_names() {
    let account = fresh_account_id();
    let mut p = prepared(&account).await;
    with_wake_zone(&mut p, WakeZone::Shared);
    apply(&p).await;
    assert_converged(&p).await;

    let root_zone = p.set.bases[0].doc.spec.domain.hosted_zone_id.clone();
    let home = reconciler_ops::session::home_region(&p.set);
    let global = Emulator::shared().sdk_config(GLOBAL, &account);
    let regional = Emulator::shared().sdk_config(&home, &account);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&global);
    let route53 = aws_sdk_route53::Client::new(&global);
    let autoscaling = aws_sdk_autoscaling::Client::new(&regional);
    let servers: Vec<String> = p
        .set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.clone())
        .collect();
    assert!(servers.len() >= 2, "{servers:?}");

    // --- Read back what was deployed: the root zone's one query log feeds one filter. ---
    assert_eq!(
        zones(&route53).await,
        [format!("{DOMAIN}.")],
        "no zone per server"
    );
    let configs = route53.list_query_logging_configs().send().await.unwrap();
    let [config] = configs.query_logging_configs() else {
        panic!("one query logging config: {configs:?}")
    };
    assert_eq!(
        config.hosted_zone_id().trim_start_matches("/hostedzone/"),
        root_zone
    );
    assert!(config
        .cloud_watch_logs_log_group_arn()
        .contains(&format!(":log-group:{QUERY_LOG}")));
    let filters = logs
        .describe_subscription_filters()
        .log_group_name(QUERY_LOG)
        .send()
        .await
        .unwrap();
    let [filter] = filters.subscription_filters() else {
        panic!("one subscription filter on {QUERY_LOG}: {filters:?}")
    };
    let (dispatcher_arn, dispatcher_env) = environment(&global, DISPATCHER).await;
    assert_eq!(filter.destination_arn(), Some(dispatcher_arn.as_str()));
    let pattern = filter.filter_pattern().unwrap().to_string();

    // The dispatcher's role may invoke exactly the servers' start functions.
    let iam = aws_sdk_iam::Client::new(&global);
    let policy = iam
        .get_role_policy()
        .role_name(DISPATCHER)
        .policy_name("wake-dispatcher")
        .send()
        .await
        .unwrap();
    let document = reconciler_aws::util::parse_policy(policy.policy_document());
    let invoke = document["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "lambda:InvokeFunction")
        .unwrap()
        .clone();
    let mut allowed: Vec<String> = invoke["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    allowed.sort();
    let mut start_arns = Vec::new();
    for server in &servers {
        start_arns.push(
            environment(&global, &format!("rc-{server}-start-system"))
                .await
                .0,
        );
    }
    start_arns.sort();
    assert_eq!(allowed, start_arns);

    // --- Lookups in the root zone's query log. ---
    let stream = "simulated";
    let line = |name: &str, record_type: &str| {
        format!("1.0 2026-11-23T10:00:00.000Z {root_zone} {name} {record_type} NOERROR UDP IAD89-C1 192.0.2.1 -")
    };
    let lines = [
        line(&format!("Minecraft.{DOMAIN}."), "A"),
        line(&format!("minecraft.{DOMAIN}"), "A"),
        line(&format!("valheim.{DOMAIN}"), "AAAA"),
        line(&format!("nobody.{DOMAIN}"), "A"),
        line(DOMAIN, "A"),
        line("minecraft.example.org", "A"),
    ];
    let matched = lines_matching(&logs, QUERY_LOG, stream, &lines, &pattern).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let a_lookups: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains(" AAAA "))
        .cloned()
        .collect();
    assert_eq!(
        matched, a_lookups,
        "the filter passes the A lookups, however spelt"
    );

    // --- The dispatcher wakes minecraft, once, and nobody else. ---
    for server in &servers {
        assert_eq!(
            desired_capacity(&autoscaling, &format!("rc-{server}")).await,
            0
        );
    }
    let batch = LogBatch {
        message_type: Some("DATA_MESSAGE".into()),
        owner: Some(account.clone()),
        log_group: Some(QUERY_LOG.into()),
        log_stream: Some(stream.into()),
        subscription_filters: vec![filter.filter_name().unwrap().to_string()],
        log_events: matched
            .iter()
            .enumerate()
            .map(|(i, m)| LogLine {
                id: i.to_string(),
                timestamp: now,
                message: m.clone(),
            })
            .collect(),
    };
    let query_log_arn = format!("arn:aws:logs:{GLOBAL}:{account}:log-group:{QUERY_LOG}:*");
    assert_delivers(
        &global,
        &dispatcher_arn,
        "logs.amazonaws.com",
        &query_log_arn,
        &account,
    )
    .await;
    let config = WakeDispatcherConfig::from_lookup(|k| dispatcher_env.get(k).cloned()).unwrap();
    let lambda = DeployedStart {
        account: account.clone(),
        global: global.clone(),
        invoked: Mutex::new(Vec::new()),
    };
    let outcome = wake_dispatcher(&config, &lambda, &batch.encode())
        .await
        .unwrap();
    assert_eq!(
        *lambda.invoked.lock().unwrap(),
        ["rc-minecraft-start-system"]
    );
    assert_eq!(outcome.woken.len(), 1);
    assert_eq!(outcome.woken[0].lookups, 2);
    assert_eq!(
        outcome.unknown_names,
        [
            DOMAIN.to_string(),
            "minecraft.example.org".to_string(),
            format!("nobody.{DOMAIN}")
        ]
    );
    for server in &servers {
        let want = i32::from(server == "minecraft");
        assert_eq!(
            desired_capacity(&autoscaling, &format!("rc-{server}")).await,
            want,
            "{server}"
        );
    }

    // --- The launch puts minecraft's address into the root zone; the others keep 0.0.0.0. ---
    let instance = launched_instance(&autoscaling, "rc-minecraft").await;
    let (state_arn, state_env) = environment(&regional, "rc-minecraft-instance-state-change").await;
    assert_eq!(state_env["HOSTED_ZONE_ID"], root_zone);
    let launch = json!({
        "id": "e1",
        "detail-type": "EC2 Instance Launch Successful",
        "source": "aws.autoscaling",
        "region": home,
        "detail": { "AutoScalingGroupName": "rc-minecraft", "EC2InstanceId": instance }
    });
    let up_rule = aws_sdk_eventbridge::Client::new(&regional)
        .describe_rule()
        .name("rc-minecraft-instance-up")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    assert_delivers(
        &regional,
        &state_arn,
        "events.amazonaws.com",
        &up_rule,
        &account,
    )
    .await;
    let config = InstanceStateChangeConfig::from_lookup(|k| state_env.get(k).cloned()).unwrap();
    let sdk = Emulator::shared().sdk_config(&config.asg_region, &account);
    instance_state_change(
        &config,
        &InstanceStateChangeClients::new(&sdk),
        &AutoScalingEvent::from_value(launch).unwrap(),
    )
    .await
    .unwrap();
    let ip = public_ip(&aws_sdk_ec2::Client::new(&regional), &instance).await;
    assert_eq!(
        a_record(&route53, &root_zone, &format!("minecraft.{DOMAIN}.")).await,
        std::slice::from_ref(&ip)
    );
    // `status` reads the record where it lives: in the root zone.
    let status = reconciler_ops::day2::status(&p, &["minecraft".to_string()])
        .await
        .unwrap();
    assert_eq!(status[0].dns_record, [ip]);
    assert_eq!(
        a_record(&route53, &root_zone, &format!("valheim.{DOMAIN}.")).await,
        [reconciler_render::wake::UNAVAILABLE_IP]
    );
    // The running system owns the group's size and the record: nothing to do.
    assert_converged(&p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_a_base_between_per_server_and_shared_zones_converges() {
    let account = fresh_account_id();
    let mut p = prepared(&account).await;
    let global = Emulator::shared().sdk_config(GLOBAL, &account);
    let route53 = aws_sdk_route53::Client::new(&global);
    let servers = p.set.servers.len();
    apply(&p).await;
    assert_eq!(
        zones(&route53).await.len(),
        1 + servers,
        "a zone per server"
    );

    // To shared: the plan removes every server's zone and its wiring, and adds the Base's.
    with_wake_zone(&mut p, WakeZone::Shared);
    let plan = apply(&p).await;
    let deleted: Vec<&str> = plan
        .with_action(Action::Delete)
        .map(|r| r.id.as_str())
        .collect();
    for server in &p.set.servers {
        let name = &server.doc.metadata.name;
        for id in [
            format!("route53.hosted-zone/{name}"),
            format!("route53.record-set/{name}-delegation"),
            format!("route53.record-set/{name}-address"),
            format!("route53.query-logging-config/{name}"),
            format!("logs.subscription-filter/{name}-queries"),
            format!("logs.log-group/{name}-queries"),
            format!("lambda.permission/{name}-query-log-invoke"),
        ] {
            assert!(deleted.contains(&id.as_str()), "{id} deleted: {deleted:?}");
        }
    }
    assert_eq!(deleted.len(), 7 * servers, "{deleted:?}");
    assert!(plan
        .resources()
        .iter()
        .any(|r| r.id.as_str() == "lambda.function/main-wake-dispatcher"
            && r.action == Action::Create));
    assert_eq!(zones(&route53).await, [format!("{DOMAIN}.")]);
    assert_converged(&p).await;

    // And back: the dispatcher and the root zone's logging go, the zones return.
    with_wake_zone(&mut p, WakeZone::PerServer);
    let plan = apply(&p).await;
    let deleted: Vec<&str> = plan
        .with_action(Action::Delete)
        .map(|r| r.id.as_str())
        .collect();
    for id in [
        "lambda.function/main-wake-dispatcher",
        "iam.role/main-wake-dispatcher",
        "route53.query-logging-config/main.wake",
        "logs.subscription-filter/main.wake-queries",
        "route53.record-set/minecraft.address",
    ] {
        assert!(deleted.contains(&id), "{id} deleted: {deleted:?}");
    }
    assert_eq!(zones(&route53).await.len(), 1 + servers);
    let configs = route53.list_query_logging_configs().send().await.unwrap();
    assert_eq!(configs.query_logging_configs().len(), servers);
    assert_converged(&p).await;
}
