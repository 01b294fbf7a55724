//! The end-to-end check of boot grace and wake noise: the minecraft example with
//! `bootGraceMinutes`, `wakeCooldownMinutes` and `maxWakesPerHour` set is applied to the
//! emulator; the idle alarm is read back wired to the idle-stop Lambda (with the permission that
//! lets CloudWatch alarms invoke it), and the start-system and idle-stop handlers run with the
//! environments as deployed: a lookup wakes the server, a stray lookup after it stopped does
//! not, and the idle alarm cannot stop it before the grace is over.
//!
//! Emulator gap: moto neither runs alarm actions nor Lambdas, so the handlers are called with
//! the deployed environment and the alarm payload CloudWatch sends a Lambda action.

mod common;

use common::runtime::{assert_delivers, desired_capacity, environment};

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::StateValue;
use common::{root_zone, specs_dir};
use reconciler_engine::NoEvents;
use reconciler_lambdas::{
    idle_stop_at, start_system_at, IdleStopClients, IdleStopConfig, IdleStopOutcome,
    StartSystemClients, StartSystemConfig, WakeDecision,
};
use reconciler_ops::deploy;
use reconciler_ops::session::{home_region, load_specs_with};
use reconciler_spec::InstanceCatalog;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::json;

const SERVER: &str = "minecraft";

#[tokio::test]
async fn boot_grace_and_wake_limits_hold_through_the_deployed_wiring() {
    reconciler_testkit::ensure_lambda_artifact().expect("the runtime Lambda binary");
    let account = fresh_account_id();
    let global = Emulator::shared().sdk_config("us-east-1", &account);
    let zone = root_zone(&global).await;
    let env = move |name: &str| match name {
        "HOSTED_ZONE_ID" => Some(zone.clone()),
        other => std::env::var(other).ok(),
    };
    let files = [
        specs_dir().join("base.yaml"),
        specs_dir().join("minecraft.yaml"),
    ];
    let catalog = InstanceCatalog::offline();
    let (mut set, diags) = load_specs_with(&files, &catalog, &env).unwrap();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let wd = &mut set.servers[0].doc.spec.watchdog;
    wd.boot_grace_minutes = Some(15);
    wd.wake_cooldown_minutes = Some(20);
    wd.max_wakes_per_hour = Some(3);
    let home = home_region(&set);
    let regional = Emulator::shared().sdk_config(&home, &account);
    let p = deploy::prepare(set, catalog, regional.clone())
        .await
        .unwrap();
    let rec = common::reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let report = rec.apply(&plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");

    let group = format!("rc-{SERVER}");
    let alarm = format!("rc-{SERVER}-idle");
    let autoscaling = aws_sdk_autoscaling::Client::new(&regional);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&regional);

    // The idle alarm invokes idle-stop, which CloudWatch alarms may call.
    let (idle_arn, idle_env) = environment(&regional, &format!("rc-{SERVER}-idle-stop")).await;
    assert_eq!(idle_env["BOOT_GRACE_MINUTES"], "15");
    assert_eq!(idle_env["ALARM_NAME"], alarm);
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(
        alarms.metric_alarms()[0].alarm_actions(),
        std::slice::from_ref(&idle_arn)
    );
    let alarm_arn = alarms.metric_alarms()[0].alarm_arn().unwrap().to_string();
    let policy = aws_sdk_lambda::Client::new(&regional)
        .get_policy()
        .function_name(format!("rc-{SERVER}-idle-stop"))
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Principal"]["Service"],
        "lambda.alarms.cloudwatch.amazonaws.com"
    );
    assert!(statement.to_string().contains(&format!(":alarm:{alarm}")));

    // A lookup wakes the server; the deployed start function carries the limits.
    let (start_arn, start_env) = environment(&global, &format!("rc-{SERVER}-start-system")).await;
    let query_log_arn =
        format!("arn:aws:logs:us-east-1:{account}:log-group:/aws/route53/rc-{SERVER}:*");
    assert_delivers(
        &global,
        &start_arn,
        "logs.amazonaws.com",
        &query_log_arn,
        &account,
    )
    .await;
    let start_config = StartSystemConfig::from_lookup(|k| start_env.get(k).cloned()).unwrap();
    assert_eq!(
        (
            start_config.wake_cooldown_minutes,
            start_config.max_wakes_per_hour
        ),
        (20, 3)
    );
    let handler_sdk = Emulator::shared().sdk_config(&start_config.asg_region, &account);
    let start_clients = StartSystemClients::new(&handler_sdk);
    let batch = json!({ "awslogs": { "data": "" } });
    let t0 = SystemTime::now();
    let woke = start_system_at(&start_config, &start_clients, &batch, t0)
        .await
        .unwrap();
    assert_eq!(woke.wake, WakeDecision::Woke { wakes_last_hour: 1 });
    assert_eq!(desired_capacity(&autoscaling, &group).await, 1);

    // The idle alarm fires five minutes in: the instance is still booting, so it stays up and
    // the alarm goes back to OK to fire again later.
    assert_delivers(
        &regional,
        &idle_arn,
        "lambda.alarms.cloudwatch.amazonaws.com",
        &alarm_arn,
        &account,
    )
    .await;
    let idle_config = IdleStopConfig::from_lookup(|k| idle_env.get(k).cloned()).unwrap();
    let idle_clients = IdleStopClients::new(&handler_sdk);
    let alarm_event = json!({ "source": "aws.cloudwatch", "alarmData": { "alarmName": alarm, "state": { "value": "ALARM" } } });
    cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(StateValue::Alarm)
        .state_reason("idle")
        .send()
        .await
        .unwrap();
    let early = idle_stop_at(
        &idle_config,
        &idle_clients,
        &alarm_event,
        t0 + Duration::from_secs(300),
    )
    .await
    .unwrap();
    assert!(
        matches!(early, IdleStopOutcome::InBootGrace { .. }),
        "{early:?}"
    );
    assert_eq!(desired_capacity(&autoscaling, &group).await, 1);
    let state = cloudwatch
        .describe_alarms()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.metric_alarms()[0].state_value(),
        Some(&StateValue::Ok)
    );

    // After the grace the next firing stops it.
    let late = idle_stop_at(
        &idle_config,
        &idle_clients,
        &alarm_event,
        t0 + Duration::from_secs(16 * 60),
    )
    .await
    .unwrap();
    assert!(matches!(late, IdleStopOutcome::Stopped { .. }), "{late:?}");
    assert_eq!(desired_capacity(&autoscaling, &group).await, 0);

    // A stray lookup right after the stop does not wake it (cooldown from the wake)...
    let stray = start_system_at(
        &start_config,
        &start_clients,
        &batch,
        t0 + Duration::from_secs(17 * 60),
    )
    .await
    .unwrap();
    assert!(
        matches!(stray.wake, WakeDecision::Suppressed { .. }),
        "{stray:?}"
    );
    assert_eq!(desired_capacity(&autoscaling, &group).await, 0);
    // ...one after the cooldown does.
    let again = start_system_at(
        &start_config,
        &start_clients,
        &batch,
        t0 + Duration::from_secs(21 * 60),
    )
    .await
    .unwrap();
    assert_eq!(again.wake, WakeDecision::Woke { wakes_last_hour: 2 });
    assert_eq!(desired_capacity(&autoscaling, &group).await, 1);

    // A second apply sees no drift from the wakes tag the runtime wrote on the group.
    let plan = deploy::plan(&p, &rec).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
}
