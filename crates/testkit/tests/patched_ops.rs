//! Operations moto 5.2.5 lacks or gets wrong, patched in by the launcher, work from Rust.

use aws_config::SdkConfig;
use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, StepAdjustment};
use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput, BackupSelection};
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_efs::types::{BackupPolicy, Status};
use reconciler_testkit::{fresh_account_id, Emulator};

const REGION: &str = "eu-west-1";

fn config() -> SdkConfig {
    Emulator::shared().sdk_config(REGION, &fresh_account_id())
}

fn plan(rule: &str) -> BackupPlanInput {
    BackupPlanInput::builder()
        .backup_plan_name("game-data")
        .rules(
            BackupRuleInput::builder()
                .rule_name(rule)
                .target_backup_vault_name("game-vault")
                .schedule_expression("cron(0 5 ? * * *)")
                .build()
                .expect("rule"),
        )
        .build()
        .expect("plan")
}

#[tokio::test]
async fn backup_selections_and_plan_updates() {
    let config = config();
    let backup = aws_sdk_backup::Client::new(&config);
    backup
        .create_backup_vault()
        .backup_vault_name("game-vault")
        .send()
        .await
        .expect("create_backup_vault");
    let created = backup
        .create_backup_plan()
        .backup_plan(plan("daily"))
        .send()
        .await
        .expect("create_backup_plan");
    let plan_id = created.backup_plan_id().expect("plan id").to_owned();

    let selection = backup
        .create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            BackupSelection::builder()
                .selection_name("efs")
                .iam_role_arn("arn:aws:iam::123456789012:role/backup")
                .resources("arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1")
                .build()
                .expect("selection"),
        )
        .send()
        .await
        .expect("create_backup_selection");
    let selection_id = selection.selection_id().expect("selection id").to_owned();
    assert_eq!(selection.backup_plan_id(), Some(plan_id.as_str()));
    assert!(selection.creation_date().is_some());

    let got = backup
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&selection_id)
        .send()
        .await
        .expect("get_backup_selection");
    let body = got.backup_selection().expect("selection body");
    assert_eq!(body.selection_name(), "efs");
    assert_eq!(body.resources().len(), 1);

    let listed = backup
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .expect("list_backup_selections");
    let [item] = listed.backup_selections_list() else {
        panic!("one selection expected: {listed:?}");
    };
    assert_eq!(item.selection_name(), Some("efs"));
    assert_eq!(item.selection_id(), Some(selection_id.as_str()));

    let updated = backup
        .update_backup_plan()
        .backup_plan_id(&plan_id)
        .backup_plan(plan("hourly"))
        .send()
        .await
        .expect("update_backup_plan");
    assert_ne!(updated.version_id(), created.version_id(), "new version");
    let current = backup
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .expect("get_backup_plan");
    let rules = current.backup_plan().map(|p| p.rules()).unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].rule_name(), "hourly");

    backup
        .delete_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&selection_id)
        .send()
        .await
        .expect("delete_backup_selection");
    let err = backup
        .get_backup_selection()
        .backup_plan_id(&plan_id)
        .selection_id(&selection_id)
        .send()
        .await
        .expect_err("selection is gone");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // A deleted plan's name can be used again.
    backup
        .delete_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .expect("delete_backup_plan");
    let again = backup
        .create_backup_plan()
        .backup_plan(plan("daily"))
        .send()
        .await
        .expect("re-create after delete");
    assert_ne!(again.backup_plan_id(), Some(plan_id.as_str()));
}

#[tokio::test]
async fn efs_backup_policy_round_trips() {
    let efs = aws_sdk_efs::Client::new(&config());
    let fs = efs
        .create_file_system()
        .creation_token("game-data")
        .encrypted(true)
        .send()
        .await
        .expect("create_file_system");
    let fs_id = fs.file_system_id();

    for status in [Status::Enabled, Status::Disabled, Status::Enabled] {
        let put = efs
            .put_backup_policy()
            .file_system_id(fs_id)
            .backup_policy(
                BackupPolicy::builder()
                    .status(status.clone())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("put_backup_policy");
        assert_eq!(put.backup_policy().map(|p| p.status()), Some(&status));
        let got = efs
            .describe_backup_policy()
            .file_system_id(fs_id)
            .send()
            .await
            .expect("describe_backup_policy");
        assert_eq!(got.backup_policy().map(|p| p.status()), Some(&status));
    }

    let err = efs
        .describe_backup_policy()
        .file_system_id("fs-00000000")
        .send()
        .await
        .expect_err("unknown file system");
    assert_eq!(err.code(), Some("FileSystemNotFound"));
}

#[tokio::test]
async fn autoscaling_notifications_policy_arn_and_user_data_versions() {
    let config = config();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);

    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe_images")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("moto ships AMIs");
    let data = |script: &str| {
        RequestLaunchTemplateData::builder()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .user_data(aws_smithy_types::base64::encode(script))
            .build()
    };
    ec2.create_launch_template()
        .launch_template_name("game-server")
        .launch_template_data(data("#!/bin/sh\necho v1\n"))
        .send()
        .await
        .expect("create_launch_template");
    let version = ec2
        .create_launch_template_version()
        .launch_template_name("game-server")
        .launch_template_data(data("#!/bin/sh\necho v2\n"))
        .send()
        .await
        .expect("create_launch_template_version")
        .launch_template_version
        .and_then(|v| v.version_number)
        .expect("version number");
    assert_eq!(version, 2);

    // An ASG on the new version with UserData launches (moto crashed here).
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("game-asg")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("game-server")
                .version(version.to_string())
                .build(),
        )
        .min_size(0)
        .max_size(1)
        .desired_capacity(1)
        .availability_zones("eu-west-1a")
        .send()
        .await
        .expect("create_auto_scaling_group");
    let groups = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("game-asg")
        .send()
        .await
        .expect("describe_auto_scaling_groups");
    assert_eq!(groups.auto_scaling_groups()[0].instances().len(), 1);

    let types = asg
        .describe_auto_scaling_notification_types()
        .send()
        .await
        .expect("describe_auto_scaling_notification_types");
    assert!(types
        .auto_scaling_notification_types()
        .iter()
        .any(|t| t == "autoscaling:EC2_INSTANCE_LAUNCH"));

    let topic = format!("arn:aws:sns:{REGION}:123456789012:game-events");
    asg.put_notification_configuration()
        .auto_scaling_group_name("game-asg")
        .topic_arn(&topic)
        .notification_types("autoscaling:EC2_INSTANCE_LAUNCH")
        .notification_types("autoscaling:EC2_INSTANCE_TERMINATE")
        .send()
        .await
        .expect("put_notification_configuration");
    let described = asg
        .describe_notification_configurations()
        .auto_scaling_group_names("game-asg")
        .send()
        .await
        .expect("describe_notification_configurations");
    let mut kinds: Vec<_> = described
        .notification_configurations()
        .iter()
        .inspect(|c| assert_eq!(c.topic_arn(), Some(topic.as_str())))
        .filter_map(|c| c.notification_type())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "autoscaling:EC2_INSTANCE_LAUNCH",
            "autoscaling:EC2_INSTANCE_TERMINATE"
        ]
    );
    asg.delete_notification_configuration()
        .auto_scaling_group_name("game-asg")
        .topic_arn(&topic)
        .send()
        .await
        .expect("delete_notification_configuration");
    let described = asg
        .describe_notification_configurations()
        .send()
        .await
        .expect("describe_notification_configurations");
    assert!(described.notification_configurations().is_empty());

    let err = asg
        .put_notification_configuration()
        .auto_scaling_group_name("no-such-group")
        .topic_arn(&topic)
        .notification_types("autoscaling:EC2_INSTANCE_LAUNCH")
        .send()
        .await
        .expect_err("unknown group");
    assert_eq!(err.code(), Some("ValidationError"));

    let policy = asg
        .put_scaling_policy()
        .auto_scaling_group_name("game-asg")
        .policy_name("scale-to-zero")
        .policy_type("StepScaling")
        .adjustment_type("ExactCapacity")
        .step_adjustments(
            StepAdjustment::builder()
                .metric_interval_upper_bound(0.0)
                .scaling_adjustment(0)
                .build(),
        )
        .send()
        .await
        .expect("put_scaling_policy");
    let arn = policy.policy_arn().expect("PolicyARN is returned");
    assert!(arn.contains(":scalingPolicy:") && arn.ends_with("policyName/scale-to-zero"));
}

/// AWS matches fields inside arrays of objects (each element's value counts); the ECS crash
/// rule depends on it.
#[tokio::test]
async fn event_patterns_see_fields_inside_arrays_of_objects() {
    let events = aws_sdk_eventbridge::Client::new(&config());
    let pattern = serde_json::json!({
        "source": ["aws.ecs"],
        "detail": {
            "$or": [
                { "stopCode": ["TaskFailedToStart"] },
                { "stopCode": ["EssentialContainerExited"], "containers": { "exitCode": [{ "anything-but": 0 }] } }
            ]
        }
    })
    .to_string();
    let event = |stop: &str, codes: &[i64]| {
        let containers: Vec<serde_json::Value> = codes
            .iter()
            .map(|c| serde_json::json!({ "name": "game", "exitCode": c }))
            .collect();
        serde_json::json!({
            "id": "1", "account": "123456789012", "source": "aws.ecs", "time": "2026-11-23T10:00:00Z",
            "region": REGION, "resources": [], "detail-type": "ECS Task State Change",
            "detail": { "stopCode": stop, "containers": containers }
        })
        .to_string()
    };
    for (stop, codes, expected) in [
        ("EssentialContainerExited", vec![1], true),
        ("EssentialContainerExited", vec![0, 137], true),
        ("EssentialContainerExited", vec![0], false),
        ("TaskFailedToStart", vec![], true),
        ("UserInitiated", vec![1], false),
    ] {
        let out = events
            .test_event_pattern()
            .event_pattern(&pattern)
            .event(event(stop, &codes))
            .send()
            .await
            .expect("TestEventPattern");
        assert_eq!(out.result(), expected, "{stop} {codes:?}");
    }
}

/// The tagging API lists event rules with their tags, as AWS does (moto lists only buses).
#[tokio::test]
async fn tagged_event_rules_are_in_the_tag_index() {
    let config = config();
    let events = aws_sdk_eventbridge::Client::new(&config);
    let tag = |k: &str, v: &str| {
        aws_sdk_eventbridge::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .unwrap()
    };
    let arn = events
        .put_rule()
        .name("indexed")
        .event_pattern(r#"{"source":["aws.ec2"]}"#)
        .tags(tag("owner", "tests"))
        .send()
        .await
        .unwrap()
        .rule_arn()
        .unwrap()
        .to_string();
    events
        .put_rule()
        .name("untagged")
        .event_pattern(r#"{"source":["aws.ec2"]}"#)
        .send()
        .await
        .unwrap();
    events
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("later", "yes"))
        .send()
        .await
        .unwrap();
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&config);
    let out = tagging
        .get_resources()
        .resource_type_filters("events")
        .tag_filters(
            aws_sdk_resourcegroupstagging::types::TagFilter::builder()
                .key("owner")
                .values("tests")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let found: Vec<(&str, Vec<(&str, &str)>)> = out
        .resource_tag_mapping_list()
        .iter()
        .map(|m| {
            let mut tags: Vec<(&str, &str)> =
                m.tags().iter().map(|t| (t.key(), t.value())).collect();
            tags.sort();
            (m.resource_arn().unwrap(), tags)
        })
        .collect();
    assert_eq!(
        found,
        vec![(arn.as_str(), vec![("later", "yes"), ("owner", "tests")])]
    );
}

/// Without `TagsPerPage`, a page holds `ResourcesPerPage` resources however many tags they
/// carry (moto limited every page to 100 tags).
#[tokio::test]
async fn tag_index_pages_are_limited_by_resources_only() {
    let config = config();
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    for i in 0..30 {
        let tags: std::collections::HashMap<String, String> =
            (0..8).map(|t| (format!("k{t}"), format!("v{i}"))).collect();
        logs.create_log_group()
            .log_group_name(format!("/pages/g{i}"))
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }
    let tagging = aws_sdk_resourcegroupstagging::Client::new(&config);
    let page = tagging
        .get_resources()
        .resources_per_page(25)
        .send()
        .await
        .unwrap();
    assert_eq!(page.resource_tag_mapping_list().len(), 25);
    let limited = tagging
        .get_resources()
        .resources_per_page(25)
        .tags_per_page(100)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.resource_tag_mapping_list().len(), 12);
}

/// A group whose launch template maps the root device with encryption and type only (the
/// size comes from the AMI on AWS) gets its instance.
#[tokio::test]
async fn groups_launch_with_a_root_mapping_without_size() {
    let config = config();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("DescribeImages")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_owned))
        .expect("an AMI");
    ec2.create_launch_template()
        .launch_template_name("sized-by-ami")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .block_device_mappings(
                    aws_sdk_ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                        .device_name("/dev/xvda")
                        .ebs(
                            aws_sdk_ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
                                .encrypted(true)
                                .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("sized-by-ami")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("sized-by-ami")
                .version("$Latest")
                .build(),
        )
        .min_size(0)
        .max_size(1)
        .desired_capacity(1)
        .availability_zones("eu-west-1a")
        .send()
        .await
        .expect("CreateAutoScalingGroup launches");
    let groups = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("sized-by-ami")
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    assert_eq!(groups.auto_scaling_groups()[0].instances().len(), 1);
}

/// Tags added to or removed from a launch template after its creation show when it is
/// described, as on AWS (an owner tag added by an adopting run must be seen by the next one).
#[tokio::test]
async fn launch_template_tags_follow_create_and_delete_tags() {
    let ec2 = aws_sdk_ec2::Client::new(&config());
    let made = ec2
        .create_launch_template()
        .launch_template_name("tagged-later")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let id = made
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap();
    let tag = |key: &str, value: &str| {
        aws_sdk_ec2::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    };
    ec2.create_tags()
        .resources(id)
        .tags(tag("owner", "k8s:a/ContainerSpec/minecraft"))
        .tags(tag("gone", "soon"))
        .send()
        .await
        .expect("CreateTags");
    ec2.delete_tags()
        .resources(id)
        .tags(aws_sdk_ec2::types::Tag::builder().key("gone").build())
        .send()
        .await
        .expect("DeleteTags");
    let described = ec2
        .describe_launch_templates()
        .launch_template_ids(id)
        .send()
        .await
        .expect("DescribeLaunchTemplates");
    let tags: Vec<(String, String)> = described.launch_templates()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
        .collect();
    assert_eq!(
        tags,
        [(
            "owner".to_string(),
            "k8s:a/ContainerSpec/minecraft".to_string()
        )]
    );
}

/// Idempotency keys hold as on AWS: a caller reference makes one hosted zone, ever; a client
/// token makes one route table.
#[tokio::test]
async fn caller_references_and_client_tokens_are_idempotent() {
    let config = config();
    let route53 = aws_sdk_route53::Client::new(&config);
    let create = || {
        route53
            .create_hosted_zone()
            .name("once.example.com.")
            .caller_reference("reference-1")
            .send()
    };
    let first = create().await.expect("CreateHostedZone");
    let again = create().await.expect_err("the reference is spent");
    assert_eq!(
        aws_sdk_route53::error::ProvideErrorMetadata::code(&again),
        Some("HostedZoneAlreadyExists")
    );
    let zone_id = first.hosted_zone().unwrap().id().to_string();
    route53
        .delete_hosted_zone()
        .id(&zone_id)
        .send()
        .await
        .expect("DeleteHostedZone");
    assert!(
        create().await.is_err(),
        "not even after the zone is deleted"
    );

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .expect("CreateVpc");
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let table = |token: &'static str| {
        ec2.create_route_table()
            .vpc_id(&vpc_id)
            .client_token(token)
            .send()
    };
    let a = table("token-a").await.expect("CreateRouteTable");
    let b = table("token-a").await.expect("CreateRouteTable again");
    let c = table("token-b")
        .await
        .expect("CreateRouteTable, other token");
    let id = |o: &aws_sdk_ec2::operation::create_route_table::CreateRouteTableOutput| {
        o.route_table()
            .unwrap()
            .route_table_id()
            .unwrap()
            .to_string()
    };
    assert_eq!(id(&a), id(&b));
    assert_ne!(id(&a), id(&c));
}

/// Query logging finds its log group in an account with more than one page of groups.
#[tokio::test]
async fn query_logging_finds_groups_beyond_the_first_page() {
    let account = fresh_account_id();
    let global = Emulator::shared().sdk_config("us-east-1", &account);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&global);
    for i in 0..60 {
        logs.create_log_group()
            .log_group_name(format!("/aws/route53/group-{i:02}"))
            .send()
            .await
            .expect("CreateLogGroup");
    }
    // Route 53 may write to the groups, as AWS requires.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "route53.amazonaws.com" },
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": format!("arn:aws:logs:us-east-1:{account}:log-group:/aws/route53/*")
        }]
    });
    logs.put_resource_policy()
        .policy_name("route53-query-logs")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("PutResourcePolicy");
    let route53 = aws_sdk_route53::Client::new(&global);
    let zone = route53
        .create_hosted_zone()
        .name("many.example.com.")
        .caller_reference("many-groups")
        .send()
        .await
        .expect("CreateHostedZone");
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    route53
        .create_query_logging_config()
        .hosted_zone_id(&zone_id)
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:us-east-1:{account}:log-group:/aws/route53/group-59:*"
        ))
        .send()
        .await
        .expect("the 60th group is found");
    let missing = route53
        .create_query_logging_config()
        .hosted_zone_id(&zone_id)
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:us-east-1:{account}:log-group:/aws/route53/absent:*"
        ))
        .send()
        .await
        .expect_err("an absent group is still refused");
    assert_eq!(
        aws_sdk_route53::error::ProvideErrorMetadata::code(&missing),
        Some("NoSuchCloudWatchLogsLogGroup")
    );
}

/// A create-only PutParameter is atomic, as in AWS: of many concurrent creates of one name,
/// exactly one succeeds and the others answer ParameterAlreadyExists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_parameter_creates_have_one_winner() {
    let ssm = aws_sdk_ssm::Client::new(&config());
    let attempts: Vec<_> = (0..16)
        .map(|i| {
            let ssm = ssm.clone();
            tokio::spawn(async move {
                ssm.put_parameter()
                    .name("/contended/lock")
                    .value(format!("run {i}"))
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .send()
                    .await
                    .map_err(|e| e.code().unwrap_or_default().to_string())
            })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(code) => assert_eq!(code, "ParameterAlreadyExists"),
        }
    }
    assert_eq!(won, 1);
}
