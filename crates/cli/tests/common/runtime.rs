//! Reads of the deployed runtime wiring the wake-path tests share: a function's configuration,
//! a group's desired capacity and launched instance, a zone's A record.

use std::collections::HashMap;

use aws_types::SdkConfig;

/// The deployed function's ARN and environment, to run its handler in-process with exactly
/// what Lambda would give it.
pub async fn environment(config: &SdkConfig, function: &str) -> (String, HashMap<String, String>) {
    let f = aws_sdk_lambda::Client::new(config)
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetFunctionConfiguration {function}: {e:?}"));
    let env = f
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    (
        f.function_arn().unwrap().to_string(),
        env.into_iter().collect(),
    )
}

/// Asserts that AWS would deliver to the deployed function `function` (its ARN) what
/// `principal` sends from `source_arn` in `account`: the function's resource policy, read back
/// from Lambda, allows it ([`reconciler_testkit::resource_policy`], an evaluator independent of
/// the product's grants). Called before a test hands the function an event, so an event AWS
/// would drop fails the test.
pub async fn assert_delivers(
    config: &SdkConfig,
    function: &str,
    principal: &str,
    source_arn: &str,
    account: &str,
) {
    let policy = aws_sdk_lambda::Client::new(config)
        .get_policy()
        .function_name(function)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetPolicy {function}: {e:?} (no permission at all)"));
    let document: serde_json::Value =
        serde_json::from_str(policy.policy().unwrap_or("{}")).unwrap();
    let request = reconciler_testkit::resource_policy::Request {
        principal_service: principal,
        action: "lambda:InvokeFunction",
        resource: function,
        source_arn: Some(source_arn),
        source_account: Some(account),
    };
    assert!(
        reconciler_testkit::resource_policy::allows(&document, &request),
        "AWS would not let {principal} invoke {function} from {source_arn}: {document:#}"
    );
}

/// The Auto Scaling group `group` as described now.
async fn describe_group(
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
) -> aws_sdk_autoscaling::types::AutoScalingGroup {
    autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .clone()
}

/// The desired capacity of the Auto Scaling group `group`.
pub async fn desired_capacity(autoscaling: &aws_sdk_autoscaling::Client, group: &str) -> i32 {
    describe_group(autoscaling, group)
        .await
        .desired_capacity()
        .unwrap()
}

/// The id of the instance the Auto Scaling group `group` launched.
pub async fn launched_instance(autoscaling: &aws_sdk_autoscaling::Client, group: &str) -> String {
    describe_group(autoscaling, group)
        .await
        .instances()
        .first()
        .and_then(|i| i.instance_id().map(str::to_string))
        .expect("the group launched an instance")
}

/// The values of the A record `name` in `zone`.
pub async fn a_record(route53: &aws_sdk_route53::Client, zone: &str, name: &str) -> Vec<String> {
    let out = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter(|r| r.name() == name && r.r#type() == &aws_sdk_route53::types::RrType::A)
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
        .collect()
}

/// Writes `lines` (Route 53 query log lines) to a new stream `stream` of the query log `group`,
/// then returns those the deployed subscription filter's `pattern` matches, as Logs would hand
/// them to the filter's function.
pub async fn lines_matching(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    lines: &[String],
    pattern: &str,
) -> Vec<String> {
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut put = logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream);
    for line in lines {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now)
                .message(line)
                .build()
                .unwrap(),
        );
    }
    put.send().await.unwrap();
    logs.filter_log_events()
        .log_group_name(group)
        .filter_pattern(pattern)
        .send()
        .await
        .unwrap()
        .events()
        .iter()
        .filter_map(|e| e.message().map(str::to_string))
        .collect()
}

/// The public address of `instance`.
pub async fn public_ip(ec2: &aws_sdk_ec2::Client, instance: &str) -> String {
    ec2.describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .public_ip_address()
        .expect("a public address")
        .to_string()
}

/// Changes the threshold of alarm `name` out of band, as a person in the console would,
/// keeping the rest of its definition.
pub async fn set_alarm_threshold(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    name: &str,
    threshold: f64,
) {
    let alarm = cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .unwrap()
        .metric_alarms()[0]
        .clone();
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .set_alarm_description(alarm.alarm_description().map(str::to_string))
        .set_metrics(Some(alarm.metrics().to_vec()))
        .set_comparison_operator(alarm.comparison_operator().cloned())
        .threshold(threshold)
        .set_evaluation_periods(alarm.evaluation_periods())
        .set_datapoints_to_alarm(alarm.datapoints_to_alarm())
        .set_treat_missing_data(alarm.treat_missing_data().map(str::to_string))
        .set_alarm_actions(Some(alarm.alarm_actions().to_vec()))
        .send()
        .await
        .unwrap();
}
