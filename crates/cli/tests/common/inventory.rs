//! What an account holds, counted per resource kind straight from the AWS APIs (not through
//! the provider, whose observation finds one object per name and so cannot see duplicates).
//! The fault, interruption and concurrency tests compare it with the rendered graph: any
//! duplicate VPC, zone, file system, function or task definition revision shows as a count
//! above the graph's.

use std::collections::{BTreeMap, BTreeSet};

use reconciler_engine::model::DesiredGraph;
use reconciler_testkit::Emulator;

/// Kinds counted, and for each whether the count is exact (all of that kind in the account
/// are ours) or filtered by our ownership tag.
pub const COUNTED: &[&str] = &[
    "ec2.vpc",
    "ec2.subnet",
    "ec2.internet-gateway",
    "ec2.route-table",
    "ec2.security-group",
    "ec2.default-security-group",
    "ec2.launch-template",
    "ec2.launch-template-version",
    "autoscaling.group",
    "iam.role",
    "iam.instance-profile",
    "logs.log-group",
    "efs.file-system",
    "efs.mount-target",
    "sns.topic",
    "ecs.cluster",
    "ecs.service",
    "ecs.task-definition",
    "route53.hosted-zone",
    "route53.query-logging-config",
    "lambda.function",
    "events.rule",
    "cloudwatch.alarm",
    "ssm.parameter",
];

/// How many mount targets the file system `id` has.
pub async fn mount_targets(efs: &aws_sdk_efs::Client, id: &str) -> usize {
    efs.describe_mount_targets()
        .file_system_id(id)
        .send()
        .await
        .unwrap()
        .mount_targets()
        .len()
}

/// The count the graph implies per counted kind (one version per launch template, one
/// active revision per task definition family).
pub fn expected(graph: &DesiredGraph) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = COUNTED.iter().map(|k| (k.to_string(), 0)).collect();
    for r in graph.iter() {
        if let Some(n) = out.get_mut(r.kind.as_str()) {
            *n += 1;
        }
        if r.kind.as_str() == "ec2.launch-template" {
            *out.get_mut("ec2.launch-template-version").unwrap() += 1;
        }
    }
    out
}

const OURS: &str = "tag:reconciler.dev/managed-by";

fn ours() -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(OURS)
        .values("reconciler")
        .build()
}

/// Counts what `account` holds in `regions` (and globally), per counted kind. The root zone
/// the tests create (not ours) is left out of the zones.
pub async fn count(
    account: &str,
    regions: &BTreeSet<String>,
    root_zone: &str,
) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = COUNTED.iter().map(|k| (k.to_string(), 0)).collect();
    let mut add = |kind: &str, n: usize| *out.get_mut(kind).unwrap() += n;
    let global = Emulator::shared().sdk_config("us-east-1", account);

    let iam = aws_sdk_iam::Client::new(&global);
    let roles = iam.list_roles().send().await.unwrap();
    add(
        "iam.role",
        roles
            .roles()
            .iter()
            .filter(|r| r.role_name().starts_with("rc-"))
            .count(),
    );
    let profiles = iam.list_instance_profiles().send().await.unwrap();
    add("iam.instance-profile", profiles.instance_profiles().len());

    let route53 = aws_sdk_route53::Client::new(&global);
    let zones = route53.list_hosted_zones().send().await.unwrap();
    add(
        "route53.hosted-zone",
        zones
            .hosted_zones()
            .iter()
            .filter(|z| !z.id().ends_with(root_zone))
            .count(),
    );
    let configs = route53.list_query_logging_configs().send().await.unwrap();
    add(
        "route53.query-logging-config",
        configs.query_logging_configs().len(),
    );

    for region in regions {
        let cfg = Emulator::shared().sdk_config(region, account);
        let ec2 = aws_sdk_ec2::Client::new(&cfg);
        add(
            "ec2.vpc",
            ec2.describe_vpcs()
                .filters(ours())
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
        );
        add(
            "ec2.subnet",
            ec2.describe_subnets()
                .filters(ours())
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        );
        add(
            "ec2.internet-gateway",
            ec2.describe_internet_gateways()
                .filters(ours())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        );
        add(
            "ec2.route-table",
            ec2.describe_route_tables()
                .filters(ours())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        );
        // A VPC's default group is ours once adopted; it is its own kind.
        let groups = ec2
            .describe_security_groups()
            .filters(ours())
            .send()
            .await
            .unwrap();
        let defaults = groups
            .security_groups()
            .iter()
            .filter(|g| g.group_name() == Some("default"))
            .count();
        add("ec2.default-security-group", defaults);
        add(
            "ec2.security-group",
            groups.security_groups().len() - defaults,
        );
        let templates = ec2.describe_launch_templates().send().await.unwrap();
        add("ec2.launch-template", templates.launch_templates().len());
        for t in templates.launch_templates() {
            let versions = ec2
                .describe_launch_template_versions()
                .launch_template_id(t.launch_template_id().unwrap())
                .send()
                .await
                .unwrap();
            add(
                "ec2.launch-template-version",
                versions.launch_template_versions().len(),
            );
        }

        let asg = aws_sdk_autoscaling::Client::new(&cfg);
        add(
            "autoscaling.group",
            asg.describe_auto_scaling_groups()
                .send()
                .await
                .unwrap()
                .auto_scaling_groups()
                .len(),
        );

        let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
        add(
            "logs.log-group",
            logs.describe_log_groups()
                .send()
                .await
                .unwrap()
                .log_groups()
                .len(),
        );

        let efs = aws_sdk_efs::Client::new(&cfg);
        let systems = efs.describe_file_systems().send().await.unwrap();
        add("efs.file-system", systems.file_systems().len());
        for fs in systems.file_systems() {
            add(
                "efs.mount-target",
                mount_targets(&efs, fs.file_system_id()).await,
            );
        }

        let sns = aws_sdk_sns::Client::new(&cfg);
        add(
            "sns.topic",
            sns.list_topics().send().await.unwrap().topics().len(),
        );

        let ecs = aws_sdk_ecs::Client::new(&cfg);
        let clusters = ecs.list_clusters().send().await.unwrap();
        add("ecs.cluster", clusters.cluster_arns().len());
        for cluster in clusters.cluster_arns() {
            let services = ecs.list_services().cluster(cluster).send().await.unwrap();
            add("ecs.service", services.service_arns().len());
        }
        let revisions = ecs.list_task_definitions().send().await.unwrap();
        add(
            "ecs.task-definition",
            revisions.task_definition_arns().len(),
        );

        let lambda = aws_sdk_lambda::Client::new(&cfg);
        add(
            "lambda.function",
            lambda
                .list_functions()
                .send()
                .await
                .unwrap()
                .functions()
                .len(),
        );

        let events = aws_sdk_eventbridge::Client::new(&cfg);
        add(
            "events.rule",
            events.list_rules().send().await.unwrap().rules().len(),
        );

        let cloudwatch = aws_sdk_cloudwatch::Client::new(&cfg);
        add(
            "cloudwatch.alarm",
            cloudwatch
                .describe_alarms()
                .send()
                .await
                .unwrap()
                .metric_alarms()
                .len(),
        );

        let ssm = aws_sdk_ssm::Client::new(&cfg);
        let params = ssm
            .get_parameters_by_path()
            .path("/reconciler")
            .recursive(true)
            .send()
            .await
            .unwrap();
        add(
            "ssm.parameter",
            params
                .parameters()
                .iter()
                // Results are status, not resources; the lock's newest generations stay
                // after every run (the current one says whether the lock is free).
                .filter(|p| {
                    let name = p.name().unwrap_or_default();
                    !name.contains("/results/") && !name.contains("/locks/")
                })
                .count(),
        );
    }
    out
}

/// Fails the test when the account holds a different number of anything than the graph.
pub async fn assert_no_duplicates(account: &str, graph: &DesiredGraph, root_zone: &str) {
    let regions: BTreeSet<String> = graph.iter().map(|r| r.region.clone()).collect();
    let found = count(account, &regions, root_zone).await;
    let want = expected(graph);
    let differing: Vec<String> = want
        .iter()
        .filter(|(k, n)| found.get(*k) != Some(n))
        .map(|(k, n)| format!("{k}: {} in AWS, {n} rendered", found[k]))
        .collect();
    assert!(
        differing.is_empty(),
        "duplicates or missing objects:\n{}",
        differing.join("\n")
    );
}
