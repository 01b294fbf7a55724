//! idle-stop against the emulator: the idle alarm cannot stop an instance
//! younger than the boot grace; it resets the alarm instead, and stops the
//! server once the grace is over.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use common::{Cloud, REGION};
use reconciler_lambdas::{idle_stop_at, IdleStopClients, IdleStopConfig, IdleStopOutcome};
use serde_json::json;

const GROUP: &str = "minecraft-asg";
const ALARM: &str = "minecraft-idle";

fn config() -> IdleStopConfig {
    let vars: HashMap<&str, &str> = [
        ("ASG_NAME", GROUP),
        ("ASG_REGION", REGION),
        ("BOOT_GRACE_MINUTES", "15"),
        ("ALARM_NAME", ALARM),
    ]
    .into_iter()
    .collect();
    IdleStopConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string())).expect("config")
}

/// The payload CloudWatch sends a Lambda alarm action.
fn alarm_event(state: &str) -> serde_json::Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:{ALARM}"),
        "accountId": "123456789012",
        "region": REGION,
        "time": "2025-01-01T00:00:00.000+0000",
        "alarmData": {
            "alarmName": ALARM,
            "state": { "value": state, "reason": "Threshold Crossed", "timestamp": "2025-01-01T00:00:00.000+0000" },
            "previousState": { "value": "OK" }
        }
    })
}

async fn create_alarm(cloud: &Cloud) {
    cloud
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(ALARM)
        .namespace("AWS/EC2")
        .metric_name("NetworkIn")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::LessThanOrEqualToThreshold)
        .send()
        .await
        .expect("put_metric_alarm");
    cloud
        .cloudwatch
        .set_alarm_state()
        .alarm_name(ALARM)
        .state_value(StateValue::Alarm)
        .state_reason("idle")
        .send()
        .await
        .expect("set_alarm_state");
}

async fn alarm_state(cloud: &Cloud) -> StateValue {
    let out = cloud
        .cloudwatch
        .describe_alarms()
        .alarm_names(ALARM)
        .send()
        .await
        .expect("describe_alarms");
    out.metric_alarms()[0].state_value().unwrap().clone()
}

#[tokio::test]
async fn a_booting_instance_is_kept_and_the_alarm_reset_then_stopped_after_the_grace() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 1).await;
    create_alarm(&cloud).await;
    let clients = IdleStopClients::new(&cloud.sdk);
    let config = config();
    let now = SystemTime::now();

    let early = idle_stop_at(
        &config,
        &clients,
        &alarm_event("ALARM"),
        now + Duration::from_secs(300),
    )
    .await
    .expect("handled");
    let IdleStopOutcome::InBootGrace {
        age_secs,
        grace_secs,
        ..
    } = early
    else {
        panic!("expected the grace to hold: {early:?}");
    };
    assert_eq!(grace_secs, 900);
    assert!((290..=330).contains(&age_secs), "{age_secs}");
    assert_eq!(cloud.group(GROUP).await.0, 1, "still running");
    assert_eq!(
        alarm_state(&cloud).await,
        StateValue::Ok,
        "reset so it can fire again"
    );

    let late = idle_stop_at(
        &config,
        &clients,
        &alarm_event("ALARM"),
        now + Duration::from_secs(960),
    )
    .await
    .expect("handled");
    assert!(
        matches!(late, IdleStopOutcome::Stopped { youngest_age_secs: Some(a), .. } if a >= 930),
        "{late:?}"
    );
    assert_eq!(cloud.group(GROUP).await.0, 0, "stopped after the grace");
}

#[tokio::test]
async fn other_states_are_ignored_and_an_empty_group_is_stopped() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 0).await;
    let clients = IdleStopClients::new(&cloud.sdk);
    let config = config();
    let ok = idle_stop_at(&config, &clients, &alarm_event("OK"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(ok, IdleStopOutcome::Ignored { state: "OK".into() });
    let out = idle_stop_at(&config, &clients, &alarm_event("ALARM"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        out,
        IdleStopOutcome::Stopped {
            asg_name: GROUP.into(),
            youngest_age_secs: None
        }
    );
    assert!(
        idle_stop_at(&config, &clients, &json!({}), SystemTime::now())
            .await
            .is_err()
    );
}
