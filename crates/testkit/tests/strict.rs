//! The emulator refuses what AWS refuses (the launcher's strictness, docs/emulator.md section
//! "Strictness"): each test sends a mistake through the real SDK and expects AWS's error, then
//! the nearest valid request, which must pass.

use std::fmt::Debug;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag as AsgTag};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Metric, MetricDataQuery, MetricStat};
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_iam::types::Tag as IamTag;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::Blob;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::json;

const REGION: &str = "eu-west-1";
const GLOBAL: &str = "us-east-1";

/// An empty zip archive: moto stores the code without running it.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

struct Account {
    id: String,
    regional: SdkConfig,
    global: SdkConfig,
}

fn account() -> Account {
    let id = fresh_account_id();
    Account {
        regional: Emulator::shared().sdk_config(REGION, &id),
        global: Emulator::shared().sdk_config(GLOBAL, &id),
        id,
    }
}

/// The error code and message of a request the emulator must refuse.
fn refusal<T: Debug, E: ProvideErrorMetadata + Debug>(result: Result<T, E>) -> (String, String) {
    let error = result.expect_err("AWS refuses this request");
    (
        error.code().unwrap_or_default().to_string(),
        error.message().unwrap_or_default().to_string(),
    )
}

const ASSUME_LAMBDA: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

async fn role(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<String, impl Debug + ProvideErrorMetadata> {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(ASSUME_LAMBDA)
        .send()
        .await
        .map(|r| r.role.unwrap().arn)
}

async fn function(
    lambda: &aws_sdk_lambda::Client,
    role: &str,
    name: &str,
    environment: Option<Environment>,
) -> Result<String, impl Debug + ProvideErrorMetadata> {
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role)
        .set_environment(environment)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(EMPTY_ZIP))
                .build(),
        )
        .send()
        .await
        .map(|f| f.function_arn.unwrap())
}

#[tokio::test]
async fn names_and_patterns_follow_the_api_model() {
    let a = account();
    let iam = aws_sdk_iam::Client::new(&a.global);
    let (code, message) = refusal(role(&iam, &"r".repeat(65)).await);
    assert_eq!(code, "ValidationError");
    assert!(
        message.contains("at 'roleName'") && message.contains("less than or equal to 64"),
        "{message}"
    );
    let (code, message) = refusal(role(&iam, "game server").await);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("regular expression pattern"), "{message}");
    role(&iam, &"r".repeat(64))
        .await
        .expect("64 characters is the limit");

    // CloudWatch Logs answers with its own code; the name must match the model's pattern.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    let (code, message) = refusal(
        logs.create_log_group()
            .log_group_name("/aws/route53/game server")
            .send()
            .await,
    );
    assert_eq!(code, "InvalidParameterException");
    assert!(message.contains("at 'logGroupName'"), "{message}");
    logs.create_log_group()
        .log_group_name("/aws/route53/game-server")
        .send()
        .await
        .expect("a valid log group name");
}

#[tokio::test]
async fn enums_and_the_cbor_protocol_are_checked_too() {
    let a = account();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&a.regional);
    let alarm = |operator: ComparisonOperator| {
        cloudwatch
            .put_metric_alarm()
            .alarm_name("idle")
            .namespace("Game")
            .metric_name("Players")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(operator)
            .send()
    };
    let (code, message) = refusal(alarm(ComparisonOperator::from("Bigger")).await);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("enum value set"), "{message}");
    alarm(ComparisonOperator::LessThanThreshold)
        .await
        .expect("a listed operator");
}

#[tokio::test]
async fn tag_keys_and_values_have_aws_lengths_in_characters() {
    let a = account();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    let group = |value: String| {
        logs.create_log_group()
            .log_group_name("tagged")
            .tags("owner", value)
            .send()
    };
    let (code, message) = refusal(group("v".repeat(300)).await);
    assert_eq!(code, "InvalidParameterException");
    assert!(message.contains("less than or equal to 256"), "{message}");
    // Characters, not bytes or UTF-16 units: 256 letters from beyond the BMP (1,024 bytes,
    // 512 UTF-16 units) are a valid value; emoji are not (the model's pattern takes letters,
    // digits, spaces and `_.:/=+-@`).
    group("\u{1D49C}".repeat(256))
        .await
        .expect("256 characters");
    refusal(group("\u{1F3AE}".to_string()).await);

    let sns = aws_sdk_sns::Client::new(&a.regional);
    let tag = |key: String| {
        aws_sdk_sns::types::Tag::builder()
            .key(key)
            .value("v")
            .build()
    };
    let (code, _) = refusal(
        sns.create_topic()
            .name("alerts")
            .tags(tag("k".repeat(129)).unwrap())
            .send()
            .await,
    );
    assert_eq!(code, "ValidationError");
    sns.create_topic()
        .name("alerts")
        .tags(tag("k".repeat(128)).unwrap())
        .send()
        .await
        .expect("a 128-character key");
}

#[tokio::test]
async fn a_51st_tag_is_refused_on_roles_log_groups_and_auto_scaling_groups() {
    let a = account();
    let iam = aws_sdk_iam::Client::new(&a.global);
    let tags = |range: std::ops::Range<usize>| {
        range
            .map(|i| {
                IamTag::builder()
                    .key(format!("k{i}"))
                    .value("v")
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    iam.create_role()
        .role_name("tagged")
        .assume_role_policy_document(ASSUME_LAMBDA)
        .set_tags(Some(tags(0..50)))
        .send()
        .await
        .expect("50 tags");
    let (code, _) = refusal(
        iam.tag_role()
            .role_name("tagged")
            .set_tags(Some(tags(50..51)))
            .send()
            .await,
    );
    assert_eq!(code, "LimitExceeded");
    iam.tag_role()
        .role_name("tagged")
        .set_tags(Some(tags(49..50)))
        .send()
        .await
        .expect("overwriting a tag it has");

    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    let mut create = logs.create_log_group().log_group_name("tagged");
    for i in 0..50 {
        create = create.tags(format!("k{i}"), "v");
    }
    create.send().await.expect("50 tags");
    let arn = format!("arn:aws:logs:{REGION}:{}:log-group:tagged", a.id);
    let (code, _) = refusal(
        logs.tag_resource()
            .resource_arn(&arn)
            .tags("k50", "v")
            .send()
            .await,
    );
    assert_eq!(code, "TooManyTagsException");
    logs.tag_resource()
        .resource_arn(&arn)
        .tags("k0", "w")
        .send()
        .await
        .expect("overwriting a tag it has");

    let asg = aws_sdk_autoscaling::Client::new(&a.regional);
    auto_scaling_group(&a.regional, "game").await;
    let tag = |i: usize| {
        AsgTag::builder()
            .resource_id("game")
            .resource_type("auto-scaling-group")
            .key(format!("k{i}"))
            .value("v")
            .propagate_at_launch(false)
            .build()
    };
    asg.create_or_update_tags()
        .set_tags(Some((0..50).map(tag).collect()))
        .send()
        .await
        .expect("50 tags");
    let (code, _) = refusal(asg.create_or_update_tags().tags(tag(50)).send().await);
    assert_eq!(code, "LimitExceeded");
    asg.create_or_update_tags()
        .tags(tag(7))
        .send()
        .await
        .expect("overwriting a tag it has");
}

async fn auto_scaling_group(config: &SdkConfig, name: &str) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("moto ships AMIs");
    ec2.create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_autoscaling::Client::new(config)
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name(name)
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(1)
        .availability_zones(format!("{REGION}a"))
        .send()
        .await
        .unwrap();
}

fn metric_query(id: String) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("Game")
                        .metric_name("Players")
                        .build(),
                )
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .return_data(false)
        .build()
}

#[tokio::test]
async fn a_metric_math_alarm_takes_at_most_ten_metrics() {
    let a = account();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&a.regional);
    let alarm = |metrics: usize| {
        let sum = (0..metrics)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join("+");
        let mut queries: Vec<_> = (0..metrics)
            .map(|i| metric_query(format!("m{i}")))
            .collect();
        queries.push(
            MetricDataQuery::builder()
                .id("activity")
                .expression(sum)
                .return_data(true)
                .build(),
        );
        cloudwatch
            .put_metric_alarm()
            .alarm_name("idle")
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::LessThanThreshold)
            .set_metrics(Some(queries))
            .send()
    };
    let (code, message) = refusal(alarm(11).await);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("11 MetricStat"), "{message}");
    alarm(10).await.expect("10 metrics and an expression");
}

#[tokio::test]
async fn lambda_names_and_environments_have_aws_limits() {
    let a = account();
    let iam = aws_sdk_iam::Client::new(&a.global);
    let lambda = aws_sdk_lambda::Client::new(&a.regional);
    let role = role(&iam, "runner").await.unwrap();

    let (code, message) = refusal(function(&lambda, &role, &"f".repeat(65), None).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'functionName'"), "{message}");
    function(&lambda, &role, &"f".repeat(64), None)
        .await
        .expect("64 characters is the limit");

    // 4 KB for all variables together, measured as their JSON: `{"AA":"…","BB":"…"}` has 17
    // characters around the values. (Names have at least two characters, as the model says.)
    let environment = |size: usize| {
        let first = (size - 17) / 2;
        Some(
            Environment::builder()
                .variables("AA", "x".repeat(first))
                .variables("BB", "y".repeat(size - 17 - first))
                .build(),
        )
    };
    let (code, message) = refusal(function(&lambda, &role, "big", environment(4097)).await);
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("exceeded the 4KB limit"), "{message}");
    let (code, _) = refusal(function(&lambda, &role, "big", environment(5 * 1024)).await);
    assert_eq!(code, "InvalidParameterValueException");
    function(&lambda, &role, "fits", environment(4096))
        .await
        .expect("exactly 4 KB");
}

#[tokio::test]
async fn a_record_batch_counts_upserts_twice() {
    let a = account();
    let route53 = aws_sdk_route53::Client::new(&a.global);
    let zone = route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference(fresh_account_id())
        .send()
        .await
        .unwrap()
        .hosted_zone
        .unwrap()
        .id;
    let change = |name: &str, values: std::ops::Range<u32>| {
        let mut set = ResourceRecordSet::builder()
            .name(format!("{name}.example.com"))
            .r#type(RrType::A)
            .ttl(60);
        for v in values {
            set = set.resource_records(
                ResourceRecord::builder()
                    .value(format!("192.0.{}.{}", v / 250, v % 250))
                    .build()
                    .unwrap(),
            );
        }
        Change::builder()
            .action(ChangeAction::Upsert)
            .resource_record_set(set.build().unwrap())
            .build()
            .unwrap()
    };
    let batch = |extra: u32| {
        let mut changes: Vec<_> = (0..5)
            .map(|i| change(&format!("s{i}"), i * 100..i * 100 + 100))
            .collect();
        if extra > 0 {
            changes.push(change("one-more", 0..extra));
        }
        route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(
                ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .unwrap(),
            )
            .send()
    };
    // 501 records upserted count as 1,002.
    let (code, message) = refusal(batch(1).await);
    assert_eq!(code, "InvalidChangeBatch");
    assert!(message.contains("1000"), "{message}");
    batch(0).await.expect("500 records upserted count as 1,000");
}

const FILTER_PATTERN: &str = "\"NOERROR\"";

/// A function CloudWatch Logs may invoke from `source_arn`, if any.
async fn destination(a: &Account, name: &str, source_arn: Option<&str>) -> String {
    let iam = aws_sdk_iam::Client::new(&a.global);
    let lambda = aws_sdk_lambda::Client::new(&a.regional);
    let role = match role(&iam, "runner").await {
        Ok(arn) => arn,
        Err(_) => format!("arn:aws:iam::{}:role/runner", a.id),
    };
    let arn = function(&lambda, &role, name, None).await.unwrap();
    if let Some(source) = source_arn {
        lambda
            .add_permission()
            .function_name(name)
            .statement_id("logs")
            .action("lambda:InvokeFunction")
            .principal("logs.amazonaws.com")
            .source_arn(source)
            .source_account(&a.id)
            .send()
            .await
            .unwrap();
    }
    arn
}

#[tokio::test]
async fn a_subscription_filter_needs_the_functions_permission_for_its_group() {
    let a = account();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    let group = "/aws/route53/game";
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap();
    let group_arn = format!("arn:aws:logs:{REGION}:{}:log-group:{group}", a.id);
    let subscribe = |function: String| {
        logs.put_subscription_filter()
            .log_group_name(group)
            .filter_name("wake")
            .filter_pattern(FILTER_PATTERN)
            .destination_arn(function)
            .send()
    };

    // No permission, and a permission naming the bare group ARN (events come from `…:*`).
    for (name, source) in [("none", None), ("bare", Some(group_arn.clone()))] {
        let function = destination(&a, name, source.as_deref()).await;
        let (code, message) = refusal(subscribe(function).await);
        assert_eq!(code, "InvalidParameterException");
        assert!(
            message.contains("Make sure you have given CloudWatch Logs permission"),
            "{message}"
        );
    }
    let other_group = format!(
        "arn:aws:logs:{REGION}:{}:log-group:/aws/route53/other:*",
        a.id
    );
    let function = destination(&a, "other", Some(&other_group)).await;
    refusal(subscribe(function).await);

    let function = destination(&a, "right", Some(&format!("{group_arn}:*"))).await;
    subscribe(function).await.expect("the group's `:*` ARN");
    let function = destination(&a, "wildcard", Some(&format!("{group_arn}*"))).await;
    subscribe(function)
        .await
        .expect("a wildcard covering the group");
}

#[tokio::test]
async fn a_log_group_takes_two_subscription_filters() {
    let a = account();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    logs.create_log_group()
        .log_group_name("busy")
        .send()
        .await
        .unwrap();
    let group_arn = format!("arn:aws:logs:{REGION}:{}:log-group:busy:*", a.id);
    let function = destination(&a, "sink", Some(&group_arn)).await;
    let subscribe = |name: &str| {
        logs.put_subscription_filter()
            .log_group_name("busy")
            .filter_name(name)
            .filter_pattern(FILTER_PATTERN)
            .destination_arn(&function)
            .send()
    };
    subscribe("one").await.unwrap();
    subscribe("two").await.unwrap();
    let (code, _) = refusal(subscribe("three").await);
    assert_eq!(code, "LimitExceededException");
    subscribe("two").await.expect("replacing a filter it has");
}

fn route53_policy(resource: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "route53.amazonaws.com" },
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": resource
        }]
    })
    .to_string()
}

#[tokio::test]
async fn logs_take_ten_resource_policies_per_region() {
    let a = account();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.regional);
    let put = |name: String| {
        logs.put_resource_policy()
            .policy_name(name)
            .policy_document(route53_policy("*"))
            .send()
    };
    for i in 0..10 {
        put(format!("p{i}")).await.unwrap();
    }
    let (code, _) = refusal(put("p10".into()).await);
    assert_eq!(code, "LimitExceededException");
    put("p3".into()).await.expect("replacing a policy it has");
}

#[tokio::test]
async fn query_logging_needs_a_logs_policy_for_route53() {
    let a = account();
    let route53 = aws_sdk_route53::Client::new(&a.global);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&a.global);
    let zone = route53
        .create_hosted_zone()
        .name("example.com")
        .caller_reference(fresh_account_id())
        .send()
        .await
        .unwrap()
        .hosted_zone
        .unwrap()
        .id
        .trim_start_matches("/hostedzone/")
        .to_string();
    let group = "/aws/route53/example.com";
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap();
    let group_arn = format!("arn:aws:logs:{GLOBAL}:{}:log-group:{group}", a.id);
    let log_queries = || {
        route53
            .create_query_logging_config()
            .hosted_zone_id(&zone)
            .cloud_watch_logs_log_group_arn(format!("{group_arn}:*"))
            .send()
    };
    let (code, _) = refusal(log_queries().await);
    assert_eq!(code, "InsufficientCloudWatchLogsResourcePolicy");
    // The bare group ARN does not cover its log streams.
    logs.put_resource_policy()
        .policy_name("route53")
        .policy_document(route53_policy(&group_arn))
        .send()
        .await
        .unwrap();
    let (code, _) = refusal(log_queries().await);
    assert_eq!(code, "InsufficientCloudWatchLogsResourcePolicy");
    logs.put_resource_policy()
        .policy_name("route53")
        .policy_document(route53_policy(&format!(
            "arn:aws:logs:{GLOBAL}:{}:log-group:/aws/route53/*",
            a.id
        )))
        .send()
        .await
        .unwrap();
    log_queries().await.expect("the policy AWS documents");
}
