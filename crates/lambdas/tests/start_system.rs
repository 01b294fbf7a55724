//! start-system against the emulator: one DNS batch asks the group for an
//! instance and pushes the DNS-traffic metric the idle alarm reads.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use common::{event, Cloud, REGION};
use reconciler_lambdas::{
    parse_wakes, start_system, start_system_at, HandlerError, LogBatchReading, StartSystemClients,
    StartSystemConfig, WakeDecision, TAG_VALUE_MAX, WAKES_TAG,
};

const GROUP: &str = "minecraft-asg";
const NAMESPACE: &str = "GameServers/minecraft";

fn config(group: &str) -> StartSystemConfig {
    let vars: HashMap<&str, &str> = [
        ("ASG_NAME", group),
        ("ASG_REGION", REGION),
        ("METRIC_NAMESPACE", NAMESPACE),
        ("METRIC_NAME", "DNSTraffic"),
        ("METRIC_DIMENSIONS", r#"{"ServerName": "minecraft"}"#),
        ("METRIC_VALUE", "2001"),
    ]
    .into_iter()
    .collect();
    StartSystemConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
        .expect("valid config")
}

/// The maximum of the metric over the last ten minutes, as the alarm reads it.
async fn metric_maximum(cloud: &Cloud) -> Vec<f64> {
    let now = SystemTime::now();
    let out = cloud
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("dns_hit")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(NAMESPACE)
                                .metric_name("DNSTraffic")
                                .dimensions(
                                    Dimension::builder()
                                        .name("ServerName")
                                        .value("minecraft")
                                        .build(),
                                )
                                .build(),
                        )
                        .period(60)
                        .stat("Maximum")
                        .build(),
                )
                .build(),
        )
        .start_time(DateTime::from(now - Duration::from_secs(600)))
        .end_time(DateTime::from(now + Duration::from_secs(60)))
        .send()
        .await
        .expect("get_metric_data");
    out.metric_data_results()
        .iter()
        .flat_map(|r| r.values().iter().copied())
        .collect()
}

#[tokio::test]
async fn a_dns_batch_starts_the_server_and_pushes_the_metric() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 0).await;
    let config = config(GROUP);
    let clients = StartSystemClients::new(&cloud.sdk);

    let outcome = start_system(
        &config,
        &clients,
        &event("cloudwatch-logs-dns-queries.json"),
    )
    .await
    .expect("start handled");

    assert_eq!(outcome.desired_capacity, 1);
    assert_eq!(outcome.metric.as_ref().map(|m| m.value), Some(2001.0));
    let LogBatchReading::Read(summary) = &outcome.batch else {
        panic!("the recorded batch is readable: {:?}", outcome.batch);
    };
    assert_eq!(summary.message_type.as_deref(), Some("DATA_MESSAGE"));
    assert_eq!(summary.log_events, 3);
    // Two spellings (with and without the trailing dot) of one name.
    assert_eq!(summary.queried_names, 1);

    let (desired, instances) = cloud.group(GROUP).await;
    assert_eq!(desired, 1);
    assert_eq!(instances.len(), 1, "the emulator launches at once");

    let listed = cloud
        .cloudwatch
        .list_metrics()
        .namespace(NAMESPACE)
        .send()
        .await
        .expect("list_metrics");
    let [metric] = listed.metrics() else {
        panic!("one metric expected: {listed:?}");
    };
    assert_eq!(metric.metric_name(), Some("DNSTraffic"));
    let dims: Vec<(&str, &str)> = metric
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
        .collect();
    assert_eq!(dims, [("ServerName", "minecraft")]);
    assert_eq!(metric_maximum(&cloud).await, [2001.0]);
}

#[tokio::test]
async fn repeated_and_unreadable_batches_still_start_the_server() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 1).await;
    let config = config(GROUP);
    let clients = StartSystemClients::new(&cloud.sdk);

    for payload in [
        serde_json::json!({"awslogs": {"data": "bm90IGd6aXA="}}),
        serde_json::json!({"unexpected": true}),
        serde_json::Value::Null,
    ] {
        let outcome = start_system(&config, &clients, &payload)
            .await
            .expect("the payload never makes the start fail");
        assert!(
            matches!(outcome.batch, LogBatchReading::Unreadable { .. }),
            "{:?}",
            outcome.batch
        );
    }
    let (desired, instances) = cloud.group(GROUP).await;
    assert_eq!((desired, instances.len()), (1, 1), "idempotent");
}

#[tokio::test]
async fn a_missing_group_is_an_aws_error_after_the_metric_push() {
    let cloud = Cloud::new();
    let config = config("no-such-group");
    let clients = StartSystemClients::new(&cloud.sdk);
    let err = start_system(
        &config,
        &clients,
        &event("cloudwatch-logs-dns-queries.json"),
    )
    .await
    .expect_err("the group does not exist");
    assert!(
        matches!(
            &err,
            HandlerError::Aws {
                operation: "SetDesiredCapacity",
                ..
            }
        ),
        "{err:?}"
    );
    // The metric was still pushed: it went first.
    assert_eq!(metric_maximum(&cloud).await, [2001.0]);
}

fn limited_config(group: &str, cooldown: &str, max_per_hour: &str) -> StartSystemConfig {
    let vars: HashMap<&str, &str> = [
        ("ASG_NAME", group),
        ("ASG_REGION", REGION),
        ("METRIC_NAMESPACE", NAMESPACE),
        ("METRIC_NAME", "DNSTraffic"),
        ("METRIC_DIMENSIONS", r#"{"ServerName": "minecraft"}"#),
        ("METRIC_VALUE", "2001"),
        ("WAKE_COOLDOWN_MINUTES", cooldown),
        ("MAX_WAKES_PER_HOUR", max_per_hour),
    ]
    .into_iter()
    .collect();
    StartSystemConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string()))
        .expect("valid config")
}

/// The wakes the handler recorded on the group.
async fn recorded_wakes(cloud: &Cloud) -> Vec<i64> {
    let out = cloud
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(GROUP)
        .send()
        .await
        .expect("describe_auto_scaling_groups");
    out.auto_scaling_groups()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(WAKES_TAG))
        .and_then(|t| t.value())
        .map(parse_wakes)
        .unwrap_or_default()
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn the_cooldown_keeps_stray_lookups_from_waking_a_stopped_server() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 0).await;
    let config = limited_config(GROUP, "20", "0");
    let clients = StartSystemClients::new(&cloud.sdk);
    let batch = event("cloudwatch-logs-dns-queries.json");
    let t0 = SystemTime::now();

    let first = start_system_at(&config, &clients, &batch, t0)
        .await
        .unwrap();
    assert_eq!(first.wake, WakeDecision::Woke { wakes_last_hour: 1 });
    assert_eq!(cloud.group(GROUP).await.0, 1);
    assert_eq!(recorded_wakes(&cloud).await, [secs(t0)]);

    // While it runs, a lookup only refreshes the activity metric.
    let running = start_system_at(&config, &clients, &batch, t0 + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(running.wake, WakeDecision::AlreadyRunning);
    assert!(running.metric.is_some());

    // The idle alarm stops it after 8 minutes; a stray lookup 2 minutes later is ignored.
    cloud.set_desired(GROUP, 0).await;
    let stray = start_system_at(&config, &clients, &batch, t0 + Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        stray.wake,
        WakeDecision::Suppressed {
            reason: "woken 600s ago, within the 20-minute wake cooldown".into(),
            retry_after_secs: 600
        }
    );
    assert_eq!(stray.desired_capacity, 0);
    assert!(stray.metric.is_none());
    assert_eq!(cloud.group(GROUP).await.0, 0, "still asleep");

    // After the cooldown the next lookup wakes it again. Without a rate limit only the latest
    // wake is read, so only it is kept.
    let later = t0 + Duration::from_secs(1201);
    let again = start_system_at(&config, &clients, &batch, later)
        .await
        .unwrap();
    assert_eq!(again.wake, WakeDecision::Woke { wakes_last_hour: 2 });
    assert_eq!(cloud.group(GROUP).await.0, 1);
    assert_eq!(recorded_wakes(&cloud).await, [secs(later)]);
}

#[tokio::test]
async fn at_most_max_wakes_per_hour_and_old_wakes_age_out() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 0).await;
    let config = limited_config(GROUP, "0", "2");
    let clients = StartSystemClients::new(&cloud.sdk);
    let batch = event("cloudwatch-logs-dns-queries.json");
    let t0 = SystemTime::now();

    for minute in [0u64, 10] {
        let at = t0 + Duration::from_secs(minute * 60);
        let out = start_system_at(&config, &clients, &batch, at)
            .await
            .unwrap();
        assert!(matches!(out.wake, WakeDecision::Woke { .. }), "{out:?}");
        cloud.set_desired(GROUP, 0).await;
    }
    let third = start_system_at(&config, &clients, &batch, t0 + Duration::from_secs(1200))
        .await
        .unwrap();
    assert_eq!(
        third.wake,
        WakeDecision::Suppressed {
            reason: "2 wakes in the last hour, the limit is 2".into(),
            retry_after_secs: 2400
        }
    );
    assert_eq!(cloud.group(GROUP).await.0, 0);

    // An hour after the first wake it has aged out of the tag.
    let late = t0 + Duration::from_secs(3601);
    let fourth = start_system_at(&config, &clients, &batch, late)
        .await
        .unwrap();
    assert_eq!(fourth.wake, WakeDecision::Woke { wakes_last_hour: 2 });
    assert_eq!(
        recorded_wakes(&cloud).await,
        [secs(t0 + Duration::from_secs(600)), secs(late)]
    );
}

/// At the highest rate the spec allows (60 wakes an hour), every wake is recorded and the tag
/// stays within AWS's 256 characters; the 61st lookup of the hour is refused by the limit, not
/// by a failed tag write.
#[tokio::test]
async fn sixty_wakes_an_hour_fit_the_tag_and_the_limit_holds() {
    let cloud = Cloud::new();
    cloud.create_group(GROUP, 0).await;
    let config = limited_config(GROUP, "0", "60");
    let clients = StartSystemClients::new(&cloud.sdk);
    let batch = event("cloudwatch-logs-dns-queries.json");
    let t0 = SystemTime::now();
    for i in 0..60u64 {
        let at = t0 + Duration::from_secs(i * 59);
        let out = start_system_at(&config, &clients, &batch, at)
            .await
            .unwrap_or_else(|e| panic!("wake {}: {e}", i + 1));
        assert_eq!(
            out.wake,
            WakeDecision::Woke {
                wakes_last_hour: i as u32 + 1
            }
        );
        cloud.set_desired(GROUP, 0).await;
    }
    assert_eq!(recorded_wakes(&cloud).await.len(), 60);
    assert!(recorded_value(&cloud).await.len() <= TAG_VALUE_MAX);
    let refused = start_system_at(&config, &clients, &batch, t0 + Duration::from_secs(3540))
        .await
        .unwrap();
    assert!(
        matches!(refused.wake, WakeDecision::Suppressed { .. }),
        "{refused:?}"
    );
    assert_eq!(cloud.group(GROUP).await.0, 0);
}

async fn recorded_value(cloud: &Cloud) -> String {
    let out = cloud
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(GROUP)
        .send()
        .await
        .expect("describe_auto_scaling_groups");
    out.auto_scaling_groups()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(WAKES_TAG))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string()
}
