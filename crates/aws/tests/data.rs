//! The data-plane kinds against the emulator: IAM roles and instance profiles, log groups, SNS
//! topics, EFS file systems and mount targets, AWS Backup vaults, plans and selections.
//!
//! Every test works in its own emulator account and checks the same life cycle: apply from
//! nothing creates; a second observe + plan is empty; a second apply makes no mutating call; a
//! change made behind the reconciler's back shows as an update and apply repairs it; destroy
//! deletes (or keeps what is retained).
//!
//! Emulator gaps met here (the provider keeps the AWS behaviour; see the notes at each test):
//! - everything is `available` at once: the EFS waits for `creating`/`deleting` are tested with
//!   scripted states in `efs/mod.rs`'s unit tests;
//! - email subscriptions are confirmed at once: the `PendingConfirmation` branch of the topic
//!   client cannot run here;
//! - `UpdateFileSystem` (throughput mode) is not implemented: the update is not exercised;
//! - `ListInstanceProfileTags` is not implemented: the profile client reads tags with
//!   `GetInstanceProfile`, which works on both;
//! - backup selections and `UpdateBackupPlan` exist only through the launcher's patch, and a
//!   plan with selections can be deleted (AWS refuses; the plan client deletes leftover
//!   selections first anyway);
//! - a vault's recovery points cannot be made here, so the "vault still holds recovery points"
//!   message is not exercised;
//! - restores (`GetRecoveryPointRestoreMetadata`, `StartRestoreJob`, `DescribeRestoreJob`) are
//!   not implemented: the restore test gets them answered by the fault proxy's scripted
//!   replies, in AWS's shapes, and everything else from the emulator.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::{CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::{Action, Backoff, NoEvents, Options, Plan, Reconciler, RetryPolicy};
use reconciler_render::naming::{ServerNames, GLOBAL_REGION};
use reconciler_render::{kinds, policies, Context};
use reconciler_spec::{check, collect_inputs, InstanceCatalog};
use reconciler_testkit::proxy::{FaultPlan, Proxy, Reply, Scripted};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

const REGION: &str = "eu-west-1";

/// One test's account, pool (with a call counter) and reconciler.
struct Harness {
    account: String,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Harness {
    fn new() -> Self {
        Harness::at(fresh_account_id(), Emulator::shared().url())
    }

    /// A harness for `account` whose provider calls go to `endpoint` (the emulator, or a proxy
    /// in front of it).
    fn at(account: String, endpoint: &str) -> Self {
        let config = reconciler_testkit::sdk_config(endpoint, REGION, &account);
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(config).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        // Short, bounded retries: the emulator answers at once, and a wrong classification
        // should fail the test quickly rather than wait.
        let quick = Backoff::new(4, Duration::from_millis(20), Duration::from_millis(100));
        let retry = RetryPolicy {
            throttled: quick,
            transient: Backoff::new(2, Duration::from_millis(20), Duration::from_millis(50)),
            eventual_consistency: quick,
            conflict: quick,
            seed: Some(7),
        };
        let reconciler = Reconciler::new(
            reconciler_aws::provider(&pool),
            Options::default().with_retry(retry),
        );
        Harness {
            account,
            counter,
            reconciler,
        }
    }

    /// A configuration for direct SDK calls (out-of-band changes, checks), not counted.
    fn sdk(&self, region: &str) -> SdkConfig {
        Emulator::shared().sdk_config(region, &self.account)
    }

    fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk(GLOBAL_REGION))
    }

    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.reconciler, graph).await
    }

    async fn apply(&self, graph: &DesiredGraph) -> Plan {
        common::apply(&self.reconciler, graph).await
    }

    async fn assert_converged(&self, graph: &DesiredGraph) -> CallCounts {
        common::assert_converged(&self.reconciler, &self.counter, graph).await
    }

    /// Plans and applies the destroy of the whole graph.
    async fn destroy(&self, graph: &DesiredGraph) -> Plan {
        let plan = common::plan_destroy(&self.reconciler, graph).await;
        let report = self.reconciler.apply(&plan, &NoEvents).await;
        let failures: Vec<String> = report
            .failures()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        assert!(
            failures.is_empty(),
            "destroy failed:\n{}",
            failures.join("\n")
        );
        plan
    }
}

/// A harness for `account` whose calls go through a proxy with `plan` (scripted replies or
/// refusals for what the emulator cannot do); keep the proxy alive as long as the harness.
fn proxied(account: &str, plan: FaultPlan) -> (Proxy, Harness) {
    let proxy = Proxy::start(Emulator::shared().url(), plan);
    let harness = Harness::at(account.to_string(), proxy.url());
    (proxy, harness)
}

/// A scripted `200` answer with `body` to `method` requests under `path`.
fn reply(method: &str, path: &str, body: Value) -> Reply {
    Reply {
        method: method.into(),
        path_prefix: path.into(),
        status: 200,
        body: body.to_string(),
    }
}

/// Calls of one operation (`CreateFileSystem`), whatever the service.
fn calls(counts: &CallCounts, operation: &str) -> u64 {
    counts
        .by_operation
        .iter()
        .filter(|(k, _)| k.rsplit('.').next() == Some(operation))
        .map(|(_, n)| n)
        .sum()
}

/// The changed paths of one resource in a plan.
fn changed_paths(plan: &Plan, id: &str) -> Vec<String> {
    plan.get(&id.into())
        .map(|r| r.changes.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default()
}

fn assert_update(plan: &Plan, id: &str, path_prefix: &str) {
    assert_eq!(
        plan.action(&id.into()),
        Some(Action::Update),
        "expected an update of {id}:\n{plan}"
    );
    let paths = changed_paths(plan, id);
    assert!(
        paths.iter().any(|p| p.starts_with(path_prefix)),
        "expected a change under {path_prefix} for {id}, got {paths:?}"
    );
    let others: Vec<_> = plan
        .resources()
        .iter()
        .filter(|r| r.id.as_str() != id && r.action.is_change())
        .map(|r| r.id.to_string())
        .collect();
    assert!(
        others.is_empty(),
        "only {id} should change, also: {others:?}"
    );
}

fn tagged(r: DesiredResource, names: &ServerNames, component: &str) -> DesiredResource {
    let mut r = r;
    r.tags.extend(names.tags(component));
    r
}

// ---------------------------------------------------------------------------------------------
// The rendered examples.
// ---------------------------------------------------------------------------------------------

/// The kinds of the rendered examples these clients own whose references stay among
/// themselves (file systems point at subnets and security groups, so they are tested by hand
/// below).
const RENDERED_KINDS: &[&str] = &[
    kinds::ROLE,
    kinds::INSTANCE_PROFILE,
    kinds::LOG_GROUP,
    kinds::TOPIC,
    kinds::BACKUP_VAULT,
    kinds::BACKUP_PLAN,
    kinds::BACKUP_SELECTION,
];

fn rendered(account: &str) -> DesiredGraph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let inputs = collect_inputs(&[root]).expect("example specs");
    let catalog = InstanceCatalog::offline();
    let (set, diags) = check(&inputs, &|_| None, &catalog);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let resources = reconciler_render::render_resources(&Context::new(account), &set, &catalog)
        .expect("render");
    DesiredGraph::new(
        resources
            .into_iter()
            .filter(|r| RENDERED_KINDS.contains(&r.kind.as_str()))
            // The wake/sleep path's roles and log groups refer to kinds outside this subset;
            // tests/dns.rs, functions.rs and watchdog.rs cover them.
            .filter(|r| {
                !matches!(
                    r.tags.get("reconciler.dev/component").map(String::as_str),
                    Some("wake" | "sleep")
                )
            }),
    )
    .expect("the subset is a graph")
}

#[tokio::test]
async fn rendered_examples_apply_converge_and_destroy() {
    let h = Harness::new();
    let graph = rendered(&h.account);
    let kinds_seen: BTreeSet<&str> = graph.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds_seen.len(), RENDERED_KINDS.len(), "{kinds_seen:?}");

    let plan = h.apply(&graph).await;
    assert_eq!(plan.summary().add, graph.len(), "{plan}");
    // The counter sees the calls (without it, "zero mutations" below would prove nothing).
    let first = h.counter.snapshot();
    assert!(calls(&first, "CreateRole") >= 1, "{:?}", first.by_operation);
    assert!(first.mutations >= graph.len() as u64);
    let calls_after = h.assert_converged(&graph).await;
    // Batched discovery: one listing per kind and region, whatever the number of objects.
    assert_eq!(calls(&calls_after, "ListRoles"), 1);
    // Profiles come with their roles' authorization details.
    assert_eq!(calls(&calls_after, "ListInstanceProfiles"), 0);
    // The topics are in the tag index, and GetTopicAttributes confirms each exists.
    assert_eq!(calls(&calls_after, "ListTopics"), 0);
    assert_eq!(
        calls(&calls_after, "DescribeLogGroups"),
        1,
        "every group in one call by identifier"
    );
    assert_eq!(calls(&calls_after, "ListBackupVaults"), 1);
    assert_eq!(
        calls(&calls_after, "ListBackupPlans"),
        1,
        "one listing shared by plans and selections"
    );

    // The vault is retained (it would hold the recovery points); everything else goes.
    let plan = h.destroy(&graph).await;
    let retained: Vec<&str> = plan.retained().map(|r| r.id.as_str()).collect();
    assert_eq!(retained, vec!["backup.vault/main"]);
    let observed = h.reconciler.observe(&graph).await.unwrap();
    let left: Vec<&str> = observed.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(left, vec!["backup.vault/main"]);
}

// ---------------------------------------------------------------------------------------------
// IAM
// ---------------------------------------------------------------------------------------------

fn iam_graph(names: &ServerNames, cx: &Context, inline_b: bool) -> DesiredGraph {
    let role_name = names.name("instance");
    let mut inline = json!({
        "mount": {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                "Resource": "*"
            }]
        }
    });
    if inline_b {
        inline["logs"] = json!({
            "Version": "2012-10-17",
            "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" }]
        });
    }
    let role = DesiredResource::new(kinds::ROLE, "instance", GLOBAL_REGION, &role_name)
        .with_properties(json!({
            "description": "Host of a test server",
            "assumeRolePolicyDocument": policies::assume_role("ec2.amazonaws.com"),
            "managedPolicyArns": [
                policies::managed(cx, "AmazonSSMManagedInstanceCore"),
                policies::managed(cx, "service-role/AmazonEC2ContainerServiceforEC2Role")
            ],
            "inlinePolicies": inline
        }));
    let profile = DesiredResource::new(
        kinds::INSTANCE_PROFILE,
        "instance",
        GLOBAL_REGION,
        &role_name,
    )
    .with_properties(json!({ "roles": [reference("iam.role/instance", "name")] }));
    DesiredGraph::new([
        tagged(role, names, "compute"),
        tagged(profile, names, "compute"),
    ])
    .unwrap()
}

async fn attached(iam: &aws_sdk_iam::Client, role: &str) -> BTreeSet<String> {
    iam.list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_string))
        .collect()
}

async fn inline_doc(iam: &aws_sdk_iam::Client, role: &str, policy: &str) -> Value {
    let doc = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .unwrap()
        .policy_document()
        .to_string();
    reconciler_aws::util::parse_policy(&doc)
}

#[tokio::test]
async fn iam_role_with_policies_and_profile_repairs_drift() {
    let h = Harness::new();
    let cx = Context::new(h.account.clone());
    let names = ServerNames::new("main", "iamtest");
    let role = names.name("instance");
    let graph = iam_graph(&names, &cx, true);
    let iam = h.iam();

    h.apply(&graph).await;
    assert_eq!(attached(&iam, &role).await.len(), 2);
    let profile = iam
        .get_instance_profile()
        .instance_profile_name(&role)
        .send()
        .await
        .unwrap();
    let profile = profile.instance_profile().unwrap();
    assert_eq!(profile.roles()[0].role_name(), role);
    h.assert_converged(&graph).await;

    // A managed policy detached behind our back.
    let ssm = policies::managed(&cx, "AmazonSSMManagedInstanceCore");
    iam.detach_role_policy()
        .role_name(&role)
        .policy_arn(&ssm)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "iam.role/instance", "/managedPolicyArns");
    h.apply(&graph).await;
    assert!(attached(&iam, &role).await.contains(&ssm));
    h.assert_converged(&graph).await;

    // An extra managed policy attached behind our back is removed too (the set is managed).
    let extra = policies::managed(&cx, "ReadOnlyAccess");
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn(&extra)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "iam.role/instance", "/managedPolicyArns");
    h.apply(&graph).await;
    assert!(!attached(&iam, &role).await.contains(&extra));

    // An inline policy rewritten behind our back.
    iam.put_role_policy()
        .role_name(&role)
        .policy_name("mount")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "iam.role/instance", "/inlinePolicies/mount");
    h.apply(&graph).await;
    let doc = inline_doc(&iam, &role, "mount").await;
    assert_eq!(
        doc["Statement"][0]["Action"],
        json!([
            "elasticfilesystem:ClientMount",
            "elasticfilesystem:ClientWrite"
        ])
    );
    h.assert_converged(&graph).await;

    // The role taken out of its profile, and a tag removed.
    iam.remove_role_from_instance_profile()
        .instance_profile_name(&role)
        .role_name(&role)
        .send()
        .await
        .unwrap();
    iam.untag_role()
        .role_name(&role)
        .tag_keys("reconciler.dev/component")
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_eq!(
        changed_paths(&plan, "iam.instance-profile/instance"),
        vec!["/roles"]
    );
    assert_eq!(
        changed_paths(&plan, "iam.role/instance"),
        vec!["/tags/reconciler.dev~1component"]
    );
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    // The spec drops one inline policy and changes the description: both are applied.
    let mut smaller = iam_graph(&names, &cx, false);
    let mut resources: Vec<DesiredResource> = smaller.iter().cloned().collect();
    resources[0].properties["description"] = json!("Host of a test server, v2");
    resources[0].properties["inlinePolicies"]["mount"]["Statement"][0]["Resource"] =
        json!(format!(
            "arn:aws:elasticfilesystem:{REGION}:{}:file-system/*",
            h.account
        ));
    smaller = DesiredGraph::new(resources).unwrap();
    h.apply(&smaller).await;
    let names_left = iam
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec();
    assert_eq!(names_left, vec!["mount".to_string()]);
    h.assert_converged(&smaller).await;

    // Destroy: policies detached and deleted, the role taken out of the profile, both gone.
    h.destroy(&smaller).await;
    assert!(iam.get_role().role_name(&role).send().await.is_err());
    assert!(iam
        .get_instance_profile()
        .instance_profile_name(&role)
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn objects_without_the_ownership_tag_are_not_touched() {
    let h = Harness::new();
    let cx = Context::new(h.account.clone());
    let names = ServerNames::new("main", "foreign");
    let role = names.name("instance");
    let iam = h.iam();
    iam.create_role()
        .role_name(&role)
        .assume_role_policy_document(policies::assume_role("ec2.amazonaws.com").to_string())
        .send()
        .await
        .unwrap();
    let graph = iam_graph(&names, &cx, true);
    let plan = h.plan(&graph).await;
    assert_eq!(
        plan.action(&"iam.role/instance".into()),
        Some(Action::Update)
    );
    let report = h.reconciler.apply(&plan, &NoEvents).await;
    let failure = report
        .failures()
        .find(|(id, _)| id.as_str() == "iam.role/instance")
        .map(|(_, e)| e.message.clone())
        .expect("the update is refused");
    assert!(failure.contains("not ours"), "{failure}");
    assert!(
        attached(&iam, &role).await.is_empty(),
        "nothing was attached"
    );
}

// ---------------------------------------------------------------------------------------------
// CloudWatch Logs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn log_groups_are_listed_per_namespace_and_retention_drift_is_fixed() {
    let h = Harness::new();
    let names = ServerNames::new("main", "logtest");
    let container = "/reconciler/logtest/container";
    let lambda = "/aws/lambda/rc-logtest-start";
    let graph = DesiredGraph::new([
        tagged(
            DesiredResource::new(kinds::LOG_GROUP, "container", REGION, container)
                .with_properties(json!({ "retentionInDays": 7 })),
            &names,
            "compute",
        ),
        tagged(
            DesiredResource::new(kinds::LOG_GROUP, "lambda", REGION, lambda)
                .with_properties(json!({ "retentionInDays": 14 })),
            &names,
            "wake",
        ),
    ])
    .unwrap();
    h.apply(&graph).await;
    let calls_after = h.assert_converged(&graph).await;
    assert_eq!(
        calls(&calls_after, "DescribeLogGroups"),
        1,
        "one call by identifier for groups of any namespace"
    );

    let observed = h.reconciler.observe(&graph).await.unwrap();
    let arn = observed
        .get(&"logs.log-group/container".into())
        .and_then(|o| o.output("arn"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(
        arn.ends_with(":log-group:/reconciler/logtest/container"),
        "{arn}"
    );

    let logs = aws_sdk_cloudwatchlogs::Client::new(&h.sdk(REGION));
    logs.put_retention_policy()
        .log_group_name(container)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "logs.log-group/container", "/retentionInDays");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    logs.delete_retention_policy()
        .log_group_name(lambda)
        .send()
        .await
        .unwrap();
    logs.untag_resource()
        .resource_arn(arn.replace(container, lambda))
        .tag_keys("reconciler.dev/component")
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_eq!(
        changed_paths(&plan, "logs.log-group/lambda"),
        vec!["/retentionInDays", "/tags/reconciler.dev~1component"]
    );
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    h.destroy(&graph).await;
    let left = logs
        .describe_log_groups()
        .send()
        .await
        .unwrap()
        .log_groups()
        .len();
    assert_eq!(left, 0);
}

// ---------------------------------------------------------------------------------------------
// SNS
// ---------------------------------------------------------------------------------------------

fn topic_graph(h: &Harness, names: &ServerNames, subscriptions: Value) -> DesiredGraph {
    let cx = Context::new(h.account.clone());
    let name = names.name("alerts");
    let arn = format!("arn:aws:sns:{REGION}:{}:{name}", h.account);
    DesiredGraph::new([tagged(
        DesiredResource::new(kinds::TOPIC, "alerts", REGION, &name).with_properties(json!({
            "displayName": "snstest alerts",
            "policy": policies::topic_policy(&cx, &arn, &["cloudwatch.amazonaws.com", "events.amazonaws.com"]),
            "subscriptions": subscriptions
        })),
        names,
        "alerts",
    )])
    .unwrap()
}

async fn subscriptions(sns: &aws_sdk_sns::Client, arn: &str) -> BTreeSet<(String, String)> {
    sns.list_subscriptions_by_topic()
        .topic_arn(arn)
        .send()
        .await
        .unwrap()
        .subscriptions()
        .iter()
        .map(|s| {
            (
                s.protocol().unwrap_or_default().to_string(),
                s.endpoint().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn topic_subscriptions_and_policy_follow_the_spec() {
    // The emulator confirms email subscriptions at once, so the `PendingConfirmation` branch
    // (a desired pending subscription counts as present and is not requested again) cannot
    // run here.
    let h = Harness::new();
    let names = ServerNames::new("main", "snstest");
    let graph = topic_graph(
        &h,
        &names,
        json!([
            { "protocol": "email", "endpoint": "a@example.com" },
            { "protocol": "email", "endpoint": "b@example.com" }
        ]),
    );
    h.apply(&graph).await;
    h.assert_converged(&graph).await;
    let arn = format!(
        "arn:aws:sns:{REGION}:{}:{}",
        h.account,
        names.name("alerts")
    );
    let sns = aws_sdk_sns::Client::new(&h.sdk(REGION));
    let pair = |e: &str| ("email".to_string(), e.to_string());
    assert_eq!(
        subscriptions(&sns, &arn).await,
        [pair("a@example.com"), pair("b@example.com")].into()
    );

    // One subscription removed and a stranger added behind our back.
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(&arn)
        .send()
        .await
        .unwrap();
    let a = subs
        .subscriptions()
        .iter()
        .find(|s| s.endpoint() == Some("a@example.com"))
        .and_then(|s| s.subscription_arn())
        .unwrap()
        .to_string();
    sns.unsubscribe().subscription_arn(&a).send().await.unwrap();
    sns.subscribe()
        .topic_arn(&arn)
        .protocol("email")
        .endpoint("stranger@example.com")
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "sns.topic/alerts", "/subscriptions");
    h.apply(&graph).await;
    assert_eq!(
        subscriptions(&sns, &arn).await,
        [pair("a@example.com"), pair("b@example.com")].into()
    );
    h.assert_converged(&graph).await;

    // The policy replaced behind our back.
    sns.set_topic_attributes()
        .topic_arn(&arn)
        .attribute_name("Policy")
        .attribute_value(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": arn}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "sns.topic/alerts", "/policy");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    // The spec changes its subscribers.
    let changed = topic_graph(
        &h,
        &names,
        json!([
            { "protocol": "email", "endpoint": "b@example.com" },
            { "protocol": "https", "endpoint": "https://hooks.example.com/alerts" }
        ]),
    );
    h.apply(&changed).await;
    assert_eq!(
        subscriptions(&sns, &arn).await,
        [
            pair("b@example.com"),
            (
                "https".to_string(),
                "https://hooks.example.com/alerts".to_string()
            )
        ]
        .into()
    );
    h.assert_converged(&changed).await;

    h.destroy(&changed).await;
    assert!(sns
        .get_topic_attributes()
        .topic_arn(&arn)
        .send()
        .await
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// EFS
// ---------------------------------------------------------------------------------------------

/// A VPC with one subnet in each of the region's first two zones (in name order, the order
/// `availabilityZoneIndex` counts in) and two security groups, made directly with the SDK.
struct Network {
    subnets: Vec<String>,
    groups: Vec<String>,
}

async fn network(h: &Harness) -> Network {
    let ec2 = aws_sdk_ec2::Client::new(&h.sdk(REGION));
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let mut zones: Vec<String> = ec2
        .describe_availability_zones()
        .send()
        .await
        .unwrap()
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    let mut subnets = Vec::new();
    for (i, zone) in zones.iter().take(2).enumerate() {
        let id = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.0.{}.0/20", i * 16))
            .availability_zone(zone)
            .send()
            .await
            .unwrap()
            .subnet()
            .and_then(|s| s.subnet_id())
            .unwrap()
            .to_string();
        subnets.push(id);
    }
    let mut groups = Vec::new();
    for name in ["efs-a", "efs-b"] {
        let id = ec2
            .create_security_group()
            .group_name(name)
            .description("NFS")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        groups.push(id);
    }
    Network { subnets, groups }
}

/// An instance role (the policy's principal), a file system and a mount target per subnet,
/// shaped as render makes them.
fn efs_graph(names: &ServerNames, net: &Network, retained: bool) -> DesiredGraph {
    let role_name = names.name("instance");
    let role = tagged(
        DesiredResource::new(kinds::ROLE, "instance", GLOBAL_REGION, &role_name).with_properties(
            json!({
                "description": "Host",
                "assumeRolePolicyDocument": policies::assume_role("ec2.amazonaws.com"),
                "managedPolicyArns": [],
                "inlinePolicies": {}
            }),
        ),
        names,
        "compute",
    );
    let token = names.efs_creation_token("Data");
    let mut fs = DesiredResource::new(kinds::FILE_SYSTEM, "data", REGION, &token)
        .with_properties(json!({
            "encrypted": true,
            "performanceMode": "generalPurpose",
            "throughputMode": "bursting",
            "fileSystemPolicy": policies::file_system_policy(reference("iam.role/instance", "arn"))
        }))
        .with_tag("Name", token.clone());
    if retained {
        fs = fs.retained();
    }
    let mut resources = vec![role, tagged(fs, names, "storage")];
    for (zone, subnet) in net.subnets.iter().enumerate() {
        resources.push(
            DesiredResource::new(
                kinds::MOUNT_TARGET,
                &format!("data-{zone}"),
                REGION,
                format!("{token}-{zone}"),
            )
            .with_properties(json!({
                "fileSystemId": reference("efs.file-system/data", "id"),
                "subnetId": subnet,
                "securityGroups": [net.groups[0]]
            })),
        );
    }
    DesiredGraph::new(resources).unwrap()
}

#[tokio::test]
async fn file_system_and_mount_targets_round_trip() {
    // The emulator makes file systems and mount targets `available` at once; the waits for
    // `creating` and `deleting` are covered by efs/mod.rs's unit tests. `UpdateFileSystem` is not
    // implemented there, so a throughput-mode change is not exercised.
    let h = Harness::new();
    let names = ServerNames::new("main", "efstest");
    let net = network(&h).await;
    let graph = efs_graph(&names, &net, false);
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));

    h.apply(&graph).await;
    let token = names.efs_creation_token("Data");
    let fs = efs
        .describe_file_systems()
        .creation_token(&token)
        .send()
        .await
        .unwrap();
    let fs_id = fs.file_systems()[0].file_system_id().to_string();
    assert!(fs.file_systems()[0].encrypted().unwrap_or(false));
    let mts = efs
        .describe_mount_targets()
        .file_system_id(&fs_id)
        .send()
        .await
        .unwrap();
    assert_eq!(mts.mount_targets().len(), 2);
    let calls_after = h.assert_converged(&graph).await;
    assert_eq!(
        calls(&calls_after, "DescribeFileSystems"),
        1,
        "one listing shared by the file systems and the mount targets"
    );
    assert_eq!(
        calls(&calls_after, "DescribeMountTargets"),
        1,
        "one per file system"
    );
    assert_eq!(
        (
            calls(&calls_after, "DescribeNetworkInterfaces"),
            calls(&calls_after, "DescribeMountTargetSecurityGroups")
        ),
        (1, 0),
        "the mount targets' groups from their network interfaces, in one call"
    );

    // Security groups of one mount target swapped behind our back.
    let mt0 = mts
        .mount_targets()
        .iter()
        .find(|m| m.subnet_id() == net.subnets[0])
        .unwrap()
        .mount_target_id()
        .to_string();
    efs.modify_mount_target_security_groups()
        .mount_target_id(&mt0)
        .security_groups(&net.groups[1])
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "efs.mount-target/data-0", "/securityGroups");
    h.apply(&graph).await;
    let groups = efs
        .describe_mount_target_security_groups()
        .mount_target_id(&mt0)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups(), [net.groups[0].clone()]);
    h.assert_converged(&graph).await;

    // A caller without `ec2:DescribeNetworkInterfaces` reads each mount target's groups from
    // EFS instead, with the same result.
    let (_proxy, denied) = proxied(
        &h.account,
        FaultPlan {
            scripted: vec![Scripted {
                operation: "DescribeNetworkInterfaces".into(),
                times: u64::MAX,
                status: 403,
                code: "UnauthorizedOperation".into(),
                message: "You are not authorized to perform this operation.".into(),
                after_mutations: 0,
            }],
            ..FaultPlan::default()
        },
    );
    let calls_denied = denied.assert_converged(&graph).await;
    assert_eq!(
        (
            calls(&calls_denied, "DescribeNetworkInterfaces"),
            calls(&calls_denied, "DescribeMountTargetSecurityGroups")
        ),
        (1, 2),
        "one refused EC2 call, then one EFS call per mount target"
    );

    // The file system policy replaced behind our back.
    efs.put_file_system_policy()
        .file_system_id(&fs_id)
        .policy(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "efs.file-system/data", "/fileSystemPolicy");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    // An immutable field: encryption cannot change in place, so a replacement is planned.
    let mut resources: Vec<DesiredResource> = graph.iter().cloned().collect();
    resources[1].properties["encrypted"] = json!(false);
    let unencrypted = DesiredGraph::new(resources).unwrap();
    let plan = h.plan(&unencrypted).await;
    assert_eq!(
        plan.action(&"efs.file-system/data".into()),
        Some(Action::Replace)
    );

    // Destroy: mount targets first (each waits until gone), then the file system.
    h.destroy(&graph).await;
    assert!(efs
        .describe_file_systems()
        .creation_token(&token)
        .send()
        .await
        .unwrap()
        .file_systems()
        .is_empty());
}

#[tokio::test]
async fn a_retained_file_system_survives_destroy_and_is_adopted_again() {
    let h = Harness::new();
    let names = ServerNames::new("main", "keeptest");
    let net = network(&h).await;
    let graph = efs_graph(&names, &net, true);

    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    // A needed replacement of a retained file system is blocked, not carried out.
    let mut resources: Vec<DesiredResource> = graph.iter().cloned().collect();
    resources[1].properties["performanceMode"] = json!("maxIO");
    let plan = h.plan(&DesiredGraph::new(resources).unwrap()).await;
    assert_eq!(
        plan.action(&"efs.file-system/data".into()),
        Some(Action::Blocked)
    );

    // Destroy keeps the file system: listed as retained, no delete call.
    h.counter.reset();
    let plan = h.destroy(&graph).await;
    let retained: Vec<&str> = plan.retained().map(|r| r.id.as_str()).collect();
    assert_eq!(retained, vec!["efs.file-system/data"]);
    let counts = h.counter.snapshot();
    assert_eq!(calls(&counts, "DeleteFileSystem"), 0);
    assert_eq!(calls(&counts, "DeleteMountTarget"), 2);

    // The next apply finds it by its creation token and adopts it: no second file system.
    h.counter.reset();
    // The file system is adopted, not created. Its policy names the instance role, which the
    // destroy deleted and this apply creates again, so the policy is "known after apply" and
    // the file system is planned as an update (on AWS the new role is a new principal, so the
    // policy must indeed be written again).
    let plan = h.apply(&graph).await;
    assert_eq!(
        plan.action(&"efs.file-system/data".into()),
        Some(Action::Update)
    );
    assert_eq!(
        changed_paths(&plan, "efs.file-system/data"),
        vec!["/fileSystemPolicy/Statement"]
    );
    assert_eq!(
        plan.action(&"efs.mount-target/data-0".into()),
        Some(Action::Create)
    );
    let counts = h.counter.snapshot();
    assert_eq!(calls(&counts, "CreateFileSystem"), 0);
    assert_eq!(calls(&counts, "CreateMountTarget"), 2);
    h.assert_converged(&graph).await;
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));
    let all = efs.describe_file_systems().send().await.unwrap();
    assert_eq!(all.file_systems().len(), 1);
}

/// [`efs_graph`] with `extra` merged into the file system's properties (`adopt`,
/// `restoreFrom`).
fn efs_graph_with(
    names: &ServerNames,
    net: &Network,
    retained: bool,
    extra: Value,
) -> DesiredGraph {
    let resources: Vec<DesiredResource> = efs_graph(names, net, retained)
        .iter()
        .cloned()
        .map(|mut r| {
            if r.kind.as_str() == kinds::FILE_SYSTEM {
                for (k, v) in extra.as_object().unwrap() {
                    r.properties[k] = v.clone();
                }
            }
            r
        })
        .collect();
    DesiredGraph::new(resources).unwrap()
}

/// A file system made directly with the SDK (outside the reconciler), with `tags`.
async fn hand_made_file_system(
    h: &Harness,
    token: &str,
    encrypted: bool,
    tags: &[(String, String)],
) -> String {
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));
    let tags: Vec<aws_sdk_efs::types::Tag> = tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_efs::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .unwrap()
        })
        .collect();
    efs.create_file_system()
        .creation_token(token)
        .encrypted(encrypted)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap()
        .file_system_id()
        .to_string()
}

async fn file_system_tags(h: &Harness, id: &str) -> BTreeMap<String, String> {
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));
    let out = efs
        .describe_file_systems()
        .file_system_id(id)
        .send()
        .await
        .unwrap();
    out.file_systems()[0]
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

async fn mount_target_file_systems(h: &Harness, id: &str) -> usize {
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));
    efs.describe_mount_targets()
        .file_system_id(id)
        .send()
        .await
        .unwrap()
        .mount_targets()
        .len()
}

/// Applies a graph expected to fail; the failure messages.
async fn apply_failures(h: &Harness, graph: &DesiredGraph) -> Vec<String> {
    let plan = h.plan(graph).await;
    let report = h.reconciler.apply(&plan, &NoEvents).await;
    report
        .failures()
        .map(|(id, e)| format!("{id}: {e}"))
        .collect()
}

#[tokio::test]
async fn an_existing_file_system_is_adopted_not_created() {
    let h = Harness::new();
    let names = ServerNames::new("main", "adopttest");
    let net = network(&h).await;
    let existing =
        hand_made_file_system(&h, "made-by-hand", true, &[("team".into(), "games".into())]).await;
    let graph = efs_graph_with(&names, &net, true, json!({ "adopt": existing }));

    h.counter.reset();
    let plan = h.apply(&graph).await;
    assert_eq!(
        plan.action(&"efs.file-system/data".into()),
        Some(Action::Create)
    );
    let counts = h.counter.snapshot();
    assert_eq!(calls(&counts, "CreateFileSystem"), 0);
    assert_eq!(calls(&counts, "CreateMountTarget"), 2);
    let efs = aws_sdk_efs::Client::new(&h.sdk(REGION));
    assert_eq!(
        efs.describe_file_systems()
            .send()
            .await
            .unwrap()
            .file_systems()
            .len(),
        1,
        "no second file system"
    );
    let tags = file_system_tags(&h, &existing).await;
    assert_eq!(tags["reconciler.dev/managed-by"], "reconciler");
    assert_eq!(tags["reconciler.dev/server"], "adopttest");
    assert_eq!(tags["Name"], names.efs_creation_token("Data"));
    assert_eq!(tags["team"], "games", "other tags are left alone");
    assert_eq!(mount_target_file_systems(&h, &existing).await, 2);
    // Found again by its tags (its creation token is not ours): nothing to do.
    h.assert_converged(&graph).await;

    // Another `adopt` is another volume: a replacement, blocked as the data is kept.
    let other = efs_graph_with(
        &names,
        &net,
        true,
        json!({ "adopt": "fs-0123456789abcdef0" }),
    );
    assert_eq!(
        h.plan(&other).await.action(&"efs.file-system/data".into()),
        Some(Action::Blocked)
    );

    // Destroy keeps the adopted file system.
    h.counter.reset();
    let plan = h.destroy(&graph).await;
    let retained: Vec<&str> = plan.retained().map(|r| r.id.as_str()).collect();
    assert_eq!(retained, vec!["efs.file-system/data"]);
    assert_eq!(calls(&h.counter.snapshot(), "DeleteFileSystem"), 0);
    assert_eq!(file_system_tags(&h, &existing).await["team"], "games");
}

#[tokio::test]
async fn adoption_refuses_another_servers_a_missing_or_an_unencrypted_file_system() {
    let h = Harness::new();
    let names = ServerNames::new("main", "refusetest");
    let net = network(&h).await;

    // Owned by another server of the Base: left as it is.
    let owner = ServerNames::new("main", "other");
    let mut owner_tags: Vec<(String, String)> = owner.tags("storage").into_iter().collect();
    owner_tags.push(("Name".into(), owner.efs_creation_token("Data")));
    let owned = hand_made_file_system(&h, "rc-other-data", true, &owner_tags).await;
    let failures = apply_failures(
        &h,
        &efs_graph_with(&names, &net, true, json!({ "adopt": owned })),
    )
    .await;
    assert!(
        failures
            .iter()
            .any(|f| f.contains(&format!("adopting file system {owned}"))
                && f.contains("belongs to server `other` of Base `main`")),
        "{failures:?}"
    );
    let tags = file_system_tags(&h, &owned).await;
    assert_eq!(tags["reconciler.dev/server"], "other");
    assert_eq!(mount_target_file_systems(&h, &owned).await, 0);

    // Not in this region (nor anywhere).
    let failures = apply_failures(
        &h,
        &efs_graph_with(
            &names,
            &net,
            true,
            json!({ "adopt": "fs-0123456789abcdef0" }),
        ),
    )
    .await;
    assert!(
        failures
            .iter()
            .any(|f| f.contains("there is no file system fs-0123456789abcdef0 in eu-west-1")),
        "{failures:?}"
    );

    // Unencrypted: volumes are encrypted, and EFS cannot encrypt in place.
    let plain = hand_made_file_system(&h, "plain", false, &[]).await;
    let failures = apply_failures(
        &h,
        &efs_graph_with(&names, &net, true, json!({ "adopt": plain })),
    )
    .await;
    assert!(
        failures.iter().any(|f| f.contains("is not encrypted")),
        "{failures:?}"
    );
    assert!(!file_system_tags(&h, &plain)
        .await
        .contains_key("reconciler.dev/managed-by"));
}

#[tokio::test]
async fn a_volume_is_restored_from_a_recovery_point_and_adopted() {
    // Gap: the emulator has no AWS Backup restores. The proxy answers the three restore calls
    // with AWS-shaped replies; the file system the restore job "creates" is made in the
    // emulator beforehand, carrying the backed-up volume's tags (another server's, which a
    // restore may bring along), and everything after the job is real emulator traffic.
    let account = fresh_account_id();
    let setup = Harness::at(account.clone(), Emulator::shared().url());
    let names = ServerNames::new("main", "restoretest");
    let net = network(&setup).await;
    let source = ServerNames::new("main", "original");
    let mut source_tags: Vec<(String, String)> = source.tags("storage").into_iter().collect();
    source_tags.push(("Name".into(), source.efs_creation_token("Data")));
    let restored = hand_made_file_system(&setup, "restore-job-output", true, &source_tags).await;

    let arn = format!(
        "arn:aws:backup:{REGION}:{account}:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45"
    );
    let (proxy, h) = proxied(
        &account,
        FaultPlan {
            replies: vec![
                reply(
                    "GET",
                    "/backup-vaults/rc-main/recovery-points/",
                    json!({
                        "BackupVaultArn": format!("arn:aws:backup:{REGION}:{account}:backup-vault:rc-main"),
                        "RecoveryPointArn": arn,
                        "ResourceType": "EFS",
                        "RestoreMetadata": {
                            "file-system-id": "fs-5ce0ba5e",
                            "Encrypted": "true",
                            "PerformanceMode": "generalPurpose",
                            "CreationToken": "rc-original-data",
                            "newFileSystem": "false"
                        }
                    }),
                ),
                reply("PUT", "/restore-jobs", json!({ "RestoreJobId": "job-1" })),
                reply(
                    "GET",
                    "/restore-jobs/job-1",
                    json!({ "RestoreJobId": "job-1", "Status": "RUNNING" }),
                ),
                reply(
                    "GET",
                    "/restore-jobs/job-1",
                    json!({
                        "RestoreJobId": "job-1",
                        "Status": "COMPLETED",
                        "CreatedResourceArn": format!("arn:aws:elasticfilesystem:{REGION}:{account}:file-system/{restored}")
                    }),
                ),
            ],
            ..Default::default()
        },
    );
    let role = format!("arn:aws:iam::{account}:role/rc-main-backup");
    let graph = efs_graph_with(
        &names,
        &net,
        true,
        json!({ "restoreFrom": { "recoveryPointArn": arn, "backupVaultName": "rc-main", "iamRoleArn": role } }),
    );

    h.counter.reset();
    let plan = h.apply(&graph).await;
    assert_eq!(
        plan.action(&"efs.file-system/data".into()),
        Some(Action::Create)
    );
    assert_eq!(calls(&h.counter.snapshot(), "CreateFileSystem"), 0);
    let replied = proxy.stats().replied;
    assert_eq!(replied.len(), 4, "{replied:?}");
    let (_, _, body) = &replied[1];
    let start: Value = serde_json::from_str(body).unwrap();
    assert_eq!(start["RecoveryPointArn"], arn.as_str());
    assert_eq!(start["IamRoleArn"], role.as_str());
    assert_eq!(start["ResourceType"], "EFS");
    assert!(start["IdempotencyToken"]
        .as_str()
        .is_some_and(|t| t.len() <= 64));
    let metadata = &start["Metadata"];
    assert_eq!(metadata["newFileSystem"], "true");
    assert_eq!(metadata["CreationToken"], names.efs_creation_token("Data"));
    assert_eq!(
        metadata["file-system-id"], "fs-5ce0ba5e",
        "the recovery point's own metadata"
    );
    assert_eq!(metadata["Encrypted"], "true");

    // The restored file system is this volume's now, with its mount targets.
    let tags = file_system_tags(&setup, &restored).await;
    assert_eq!(tags["reconciler.dev/server"], "restoretest");
    assert_eq!(tags["Name"], names.efs_creation_token("Data"));
    assert_eq!(mount_target_file_systems(&setup, &restored).await, 2);
    // From now on it is found by its tags and `restoreFrom` is not read again: converged, and
    // no further restore call reached the proxy.
    h.assert_converged(&graph).await;
    assert_eq!(proxy.stats().replied.len(), 4);
}

#[tokio::test]
async fn a_failed_restore_job_is_reported() {
    // Gap as above: the restore calls are scripted replies.
    let account = fresh_account_id();
    let setup = Harness::at(account.clone(), Emulator::shared().url());
    let names = ServerNames::new("main", "failtest");
    let net = network(&setup).await;
    let arn = format!("arn:aws:backup:{REGION}:{account}:recovery-point:abc");
    let (_proxy, h) = proxied(
        &account,
        FaultPlan {
            replies: vec![
                reply(
                    "GET",
                    "/backup-vaults/rc-main/recovery-points/",
                    json!({ "RestoreMetadata": { "file-system-id": "fs-5ce0ba5e" } }),
                ),
                reply("PUT", "/restore-jobs", json!({ "RestoreJobId": "job-2" })),
                reply(
                    "GET",
                    "/restore-jobs/job-2",
                    json!({ "RestoreJobId": "job-2", "Status": "FAILED", "StatusMessage": "Access denied to the KMS key" }),
                ),
            ],
            ..Default::default()
        },
    );
    let graph = efs_graph_with(
        &names,
        &net,
        true,
        json!({ "restoreFrom": { "recoveryPointArn": arn, "backupVaultName": "rc-main", "iamRoleArn": "arn:aws:iam::123456789012:role/r" } }),
    );
    let failures = apply_failures(&h, &graph).await;
    assert!(
        failures
            .iter()
            .any(|f| f.contains("restore job job-2 is FAILED: Access denied to the KMS key")),
        "{failures:?}"
    );
    let efs = aws_sdk_efs::Client::new(&setup.sdk(REGION));
    assert!(efs
        .describe_file_systems()
        .send()
        .await
        .unwrap()
        .file_systems()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// AWS Backup
// ---------------------------------------------------------------------------------------------

fn backup_graph(
    cx: &Context,
    names: &ServerNames,
    schedule: &str,
    resources: Value,
) -> DesiredGraph {
    let base = &names.base;
    let tag = |r: DesiredResource| {
        let mut r = r;
        r.tags.extend(base.tags("backup"));
        r
    };
    let vault = tag(DesiredResource::new(
        kinds::BACKUP_VAULT,
        "main",
        REGION,
        base.name(""),
    ));
    let role = tag(
        DesiredResource::new(kinds::ROLE, "backup", GLOBAL_REGION, base.name("backup")).with_properties(json!({
            "description": "AWS Backup",
            "assumeRolePolicyDocument": policies::assume_role("backup.amazonaws.com"),
            "managedPolicyArns": [policies::managed(cx, "service-role/AWSBackupServiceRolePolicyForBackup")],
            "inlinePolicies": {}
        })),
    );
    let plan = tag(
        DesiredResource::new(kinds::BACKUP_PLAN, "main", REGION, base.name("daily"))
            .with_properties(json!({
                "rules": [{
                    "ruleName": "daily",
                    "targetBackupVaultName": reference("backup.vault/main", "name"),
                    "scheduleExpression": schedule,
                    "startWindowMinutes": 60,
                    "completionWindowMinutes": 360,
                    "lifecycle": { "deleteAfterDays": 35 }
                }]
            })),
    );
    let selection = DesiredResource::new(
        kinds::BACKUP_SELECTION,
        "main",
        REGION,
        base.name("file-systems"),
    )
    .with_properties(json!({
        "backupPlanId": reference("backup.plan/main", "id"),
        "iamRoleArn": reference("iam.role/backup", "arn"),
        "resources": resources,
        "conditions": {
            "stringEquals": [
                { "conditionKey": "aws:ResourceTag/reconciler.dev/backup", "conditionValue": "daily" },
                { "conditionKey": "aws:ResourceTag/reconciler.dev/base", "conditionValue": base.base }
            ]
        }
    }));
    DesiredGraph::new([vault, role, plan, selection]).unwrap()
}

#[tokio::test]
async fn backup_vault_plan_and_selection_round_trip() {
    // Selections and UpdateBackupPlan exist only through the launcher's patch. ScheduleExpression
    // timezone and rule ids are AWS defaults the desired rules do not name: no drift.
    let h = Harness::new();
    let cx = Context::new(h.account.clone());
    let names = ServerNames::new("bkp", "unused");
    let all_fs = json!([format!(
        "arn:aws:elasticfilesystem:{REGION}:{}:file-system/*",
        h.account
    )]);
    let graph = backup_graph(&cx, &names, "cron(0 5 ? * * *)", all_fs.clone());
    h.apply(&graph).await;
    h.assert_converged(&graph).await;
    let backup = aws_sdk_backup::Client::new(&h.sdk(REGION));
    let observed = h.reconciler.observe(&graph).await.unwrap();
    let plan_id = observed
        .get(&"backup.plan/main".into())
        .and_then(|o| o.output("id"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let selection_id = observed
        .get(&"backup.selection/main".into())
        .and_then(|o| o.output("id"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();

    // The schedule changed behind our back.
    let rule = aws_sdk_backup::types::BackupRuleInput::builder()
        .rule_name("daily")
        .target_backup_vault_name(names.base.name(""))
        .schedule_expression("cron(0 1 ? * * *)")
        .build()
        .unwrap();
    backup
        .update_backup_plan()
        .backup_plan_id(&plan_id)
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name(names.base.name("daily"))
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, "backup.plan/main", "/rules");
    h.apply(&graph).await;
    let rules = backup
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let rule = &rules.backup_plan().unwrap().rules()[0];
    assert_eq!(rule.schedule_expression(), Some("cron(0 5 ? * * *)"));
    assert_eq!(
        rule.lifecycle().and_then(|l| l.delete_after_days()),
        Some(35)
    );
    h.assert_converged(&graph).await;

    // A selection cannot change in place: a new resource list replaces it.
    let one_fs = json!([format!(
        "arn:aws:elasticfilesystem:{REGION}:{}:file-system/fs-12345678",
        h.account
    )]);
    let changed = backup_graph(&cx, &names, "cron(0 5 ? * * *)", one_fs);
    let plan = h.plan(&changed).await;
    assert_eq!(
        plan.action(&"backup.selection/main".into()),
        Some(Action::Replace)
    );
    h.apply(&changed).await;
    let selections = backup
        .list_backup_selections()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = selections
        .backup_selections_list()
        .iter()
        .filter_map(|s| s.selection_id())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], selection_id);
    h.assert_converged(&changed).await;

    h.destroy(&changed).await;
    let plans = backup.list_backup_plans().send().await.unwrap();
    assert!(plans.backup_plans_list().is_empty());
    let vaults = backup.list_backup_vaults().send().await.unwrap();
    assert!(vaults
        .backup_vault_list()
        .iter()
        .all(|v| v.backup_vault_name() != Some(names.base.name("").as_str())));
}
