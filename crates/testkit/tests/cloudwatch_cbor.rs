//! The current aws-sdk-cloudwatch speaks Smithy RPC-v2-CBOR; the launcher's
//! shim translates it for moto. These are the calls the reconciler makes.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StateValue,
    Tag,
};
use aws_sdk_cloudwatch::Client;
use reconciler_testkit::{fresh_account_id, Emulator};

fn client() -> Client {
    Client::new(&Emulator::shared().sdk_config("eu-west-1", &fresh_account_id()))
}

fn stat(id: &str, metric: &str, stat: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/EC2")
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name("AutoScalingGroupName")
                                .value("game-asg")
                                .build(),
                        )
                        .build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .return_data(false)
        .build()
}

#[tokio::test]
async fn metric_math_alarm_round_trips() {
    let cw = client();
    let before = SystemTime::now() - Duration::from_secs(5);
    cw.put_metric_alarm()
        .alarm_name("idle-shutdown")
        .alarm_description("scale to zero when idle")
        .metrics(
            MetricDataQuery::builder()
                .id("e1")
                .expression("m1 + m2")
                .label("activity")
                .return_data(true)
                .build(),
        )
        .metrics(stat("m1", "CPUUtilization", "Average"))
        .metrics(stat("m2", "NetworkIn", "Sum"))
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(12.5)
        .comparison_operator(ComparisonOperator::LessThanThreshold)
        .treat_missing_data("breaching")
        .alarm_actions("arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:x")
        .tags(Tag::builder().key("owner").value("reconciler").build())
        .send()
        .await
        .expect("put_metric_alarm");

    let out = cw
        .describe_alarms()
        .alarm_names("idle-shutdown")
        .send()
        .await
        .expect("describe_alarms");
    let [alarm] = out.metric_alarms() else {
        panic!("one alarm expected: {out:?}");
    };
    assert_eq!(alarm.threshold(), Some(12.5));
    assert_eq!(alarm.evaluation_periods(), Some(3));
    assert_eq!(alarm.datapoints_to_alarm(), Some(2));
    assert_eq!(alarm.treat_missing_data(), Some("breaching"));
    assert_eq!(
        alarm.comparison_operator(),
        Some(&ComparisonOperator::LessThanThreshold)
    );
    assert_eq!(alarm.alarm_actions().len(), 1);
    let metrics = alarm.metrics();
    assert_eq!(metrics.len(), 3, "{metrics:?}");
    assert_eq!(metrics[0].expression(), Some("m1 + m2"));
    assert_eq!(metrics[0].return_data(), Some(true));
    let m1 = metrics[1].metric_stat().expect("m1 is a MetricStat");
    assert_eq!(m1.period(), Some(60));
    assert_eq!(m1.stat(), Some("Average"));
    assert_eq!(
        m1.metric().and_then(|m| m.metric_name()),
        Some("CPUUtilization")
    );
    assert_eq!(m1.metric().map(|m| m.dimensions().len()), Some(1));

    // Timestamps come back as CBOR tag 1 and must decode to "now".
    let updated = alarm
        .state_updated_timestamp()
        .expect("state_updated_timestamp");
    let updated = SystemTime::try_from(*updated).expect("valid timestamp");
    assert!(updated >= before, "{updated:?} is recent");
    assert!(alarm.alarm_configuration_updated_timestamp().is_some());

    // Tags by ARN.
    let arn = alarm.alarm_arn().expect("alarm arn");
    cw.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("env").value("test").build())
        .send()
        .await
        .expect("tag_resource");
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("list_tags_for_resource");
    let mut keys: Vec<_> = tags.tags().iter().filter_map(|t| t.key()).collect();
    keys.sort();
    assert_eq!(keys, ["env", "owner"]);

    // Upsert, state change, delete.
    cw.set_alarm_state()
        .alarm_name("idle-shutdown")
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .expect("set_alarm_state");
    let state = cw
        .describe_alarms()
        .alarm_names("idle-shutdown")
        .send()
        .await
        .expect("describe_alarms")
        .metric_alarms()[0]
        .state_value()
        .cloned();
    assert_eq!(state, Some(StateValue::Alarm));

    cw.delete_alarms()
        .alarm_names("idle-shutdown")
        .send()
        .await
        .expect("delete_alarms");
    let left = cw.describe_alarms().send().await.expect("describe_alarms");
    assert!(left.metric_alarms().is_empty());
}

#[tokio::test]
async fn dashboards_and_their_errors() {
    let cw = client();
    let body = r#"{"widgets":[{"type":"text","x":0,"y":0,"width":6,"height":2,"properties":{"markdown":"hi"}}]}"#;
    cw.put_dashboard()
        .dashboard_name("game")
        .dashboard_body(body)
        .send()
        .await
        .expect("put_dashboard");
    let got = cw
        .get_dashboard()
        .dashboard_name("game")
        .send()
        .await
        .expect("get_dashboard");
    assert_eq!(got.dashboard_body(), Some(body));
    assert!(got
        .dashboard_arn()
        .is_some_and(|a| a.ends_with(":dashboard/game")));

    let listed = cw.list_dashboards().send().await.expect("list_dashboards");
    let [entry] = listed.dashboard_entries() else {
        panic!("one dashboard expected: {listed:?}");
    };
    assert_eq!(entry.dashboard_name(), Some("game"));
    assert!(entry.last_modified().is_some(), "timestamp decoded");
    assert!(entry.size().is_some_and(|s| s > 0));

    let err = cw
        .get_dashboard()
        .dashboard_name("missing")
        .send()
        .await
        .expect_err("missing dashboard");
    assert_eq!(err.code(), Some("ResourceNotFound"), "{err:?}");
    assert!(err
        .as_service_error()
        .is_some_and(|e| e.is_dashboard_not_found_error()));

    let err = cw
        .put_dashboard()
        .dashboard_name("broken")
        .dashboard_body("not json")
        .send()
        .await
        .expect_err("invalid body");
    assert_eq!(err.code(), Some("InvalidParameterInput"), "{err:?}");

    cw.delete_dashboards()
        .dashboard_names("game")
        .send()
        .await
        .expect("delete_dashboards");
    let err = cw
        .delete_dashboards()
        .dashboard_names("game")
        .send()
        .await
        .expect_err("already deleted");
    assert_eq!(err.code(), Some("ResourceNotFound"), "{err:?}");
}

#[tokio::test]
async fn metric_data_in_and_out() {
    let cw = client();
    let now = DateTime::from(SystemTime::now());
    cw.put_metric_data()
        .namespace("Reconciler/Game")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Players")
                .dimensions(Dimension::builder().name("Server").value("a").build())
                .timestamp(now)
                .value(3.0)
                .build(),
        )
        .send()
        .await
        .expect("put_metric_data");

    let start = DateTime::from(SystemTime::now() - Duration::from_secs(3600));
    let end = DateTime::from(SystemTime::now() + Duration::from_secs(600));
    let out = cw
        .get_metric_data()
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("players")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace("Reconciler/Game")
                                .metric_name("Players")
                                .dimensions(Dimension::builder().name("Server").value("a").build())
                                .build(),
                        )
                        .period(60)
                        .stat("Maximum")
                        .build(),
                )
                .build(),
        )
        .start_time(start)
        .end_time(end)
        .send()
        .await
        .expect("get_metric_data");
    let [result] = out.metric_data_results() else {
        panic!("one result expected: {out:?}");
    };
    assert_eq!(result.id(), Some("players"));
    assert_eq!(result.values(), [3.0]);
    assert_eq!(result.timestamps().len(), 1);
}

/// Gaps are reported as errors with a code, not as undecodable bodies.
#[tokio::test]
async fn unimplemented_operation_has_an_error_code() {
    let cw = client();
    let err = cw
        .describe_alarm_history()
        .alarm_name("x")
        .send()
        .await
        .expect_err("moto does not implement describe_alarm_history");
    assert_eq!(err.code(), Some("NotImplemented"), "{err:?}");
}
