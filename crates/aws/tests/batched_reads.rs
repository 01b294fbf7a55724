//! Batched reads against the emulator. The region's tag index (the Resource Groups Tagging
//! API): a no-op observation reads tags in one call, an out-of-band tag change is confirmed by
//! the service's own read of just that object, and without the tagging permission observation
//! falls back to per-object reads and stays correct. IAM: roles and profiles are read through
//! `GetAccountAuthorizationDetails`, or per role without that permission, with the same result.

mod common;

use std::sync::Arc;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use reconciler_aws::{iam, logs, CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler};
use reconciler_render::naming::ServerNames;
use reconciler_render::naming::GLOBAL_REGION;
use reconciler_render::{kinds, policies, Context};
use reconciler_testkit::proxy::{FaultPlan, Proxy, Scripted};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use serde_json::json;

use common::calls;

const REGION: &str = "eu-west-1";

fn groups(n: usize) -> DesiredGraph {
    let names = ServerNames::new("main", "mc");
    DesiredGraph::new((0..n).map(|i| {
        let mut g = DesiredResource::new(
            kinds::LOG_GROUP,
            &format!("g{i}"),
            REGION,
            format!("/reconciler/tagindex/g{i}"),
        )
        .with_properties(json!({ "retentionInDays": 7 }));
        g.tags = names.tags("logs");
        g
    }))
    .unwrap()
}

/// A reconciler of log groups, roles and profiles whose calls go through a proxy that answers
/// the first `denied` calls of `operation` with `AccessDenied` (see [`common::pool_denying`]).
fn reconciler_denying(
    account: &str,
    operation: &str,
    denied: u64,
) -> (Reconciler, CallCounter, Proxy) {
    let (pool, counter, proxy) = common::pool_denying(account, REGION, operation, denied);
    let mut provider = Provider::new();
    provider.on_observation(reconciler_aws::observation_hook(&pool));
    for client in logs::clients(&pool).into_iter().chain(iam::clients(&pool)) {
        provider.register(client);
    }
    (
        Reconciler::new(provider, Options::default()),
        counter,
        proxy,
    )
}

#[tokio::test]
async fn tags_come_from_one_index_call_and_differences_are_confirmed_per_object() {
    let account = fresh_account_id();
    let (rec, counter, _proxy) = reconciler_denying(&account, "GetResources", 0);
    let graph = groups(6);
    common::apply(&rec, &graph).await;

    // No-op: one index call for six groups, no per-group tag read.
    let calls_noop = common::assert_converged(&rec, &counter, &graph).await;
    assert_eq!(calls(&calls_noop, "GetResources"), 1, "{calls_noop:?}");
    assert_eq!(
        calls(&calls_noop, "ListTagsForResource"),
        0,
        "{calls_noop:?}"
    );

    // A managed tag removed out of band: the index shows it, the service confirms it for that
    // one group only, and the plan fixes it.
    let logs =
        aws_sdk_cloudwatchlogs::Client::new(&Emulator::shared().sdk_config(REGION, &account));
    let arn = rec.observe(&graph).await.unwrap();
    let arn = arn
        .get(&"logs.log-group/g3".into())
        .and_then(|o| o.output("arn"))
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    logs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("reconciler.dev/component")
        .send()
        .await
        .unwrap();
    counter.reset();
    let plan = common::plan(&rec, &graph).await;
    let counts = counter.snapshot();
    assert_eq!(calls(&counts, "ListTagsForResource"), 1, "{counts:?}");
    let entry = plan.get(&"logs.log-group/g3".into()).unwrap();
    assert_eq!(
        entry
            .changes
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>(),
        ["/tags/reconciler.dev~1component"],
        "{plan}"
    );
    assert_eq!(
        plan.resources()
            .iter()
            .filter(|r| r.action.is_change())
            .count(),
        1
    );
    common::apply_plan(&rec, &plan).await;
    common::assert_converged(&rec, &counter, &graph).await;
}

#[tokio::test]
async fn without_the_tagging_permission_tags_are_read_per_object() {
    let account = fresh_account_id();
    let (rec, counter, _proxy) = reconciler_denying(&account, "GetResources", u64::MAX);
    let graph = groups(4);
    common::apply(&rec, &graph).await;
    let counts = common::assert_converged(&rec, &counter, &graph).await;
    // One refused index call per observation (not one per kind or per object), then the
    // service's own read for each group.
    assert_eq!(calls(&counts, "GetResources"), 1, "{counts:?}");
    assert_eq!(calls(&counts, "ListTagsForResource"), 4, "{counts:?}");
}

/// Where `DescribeLogGroups` refuses the identifiers filter (say, a policy that allows only
/// prefix listings), observation lists by prefix instead and still finds every group.
#[tokio::test]
async fn log_groups_are_listed_by_prefix_where_identifiers_are_refused() {
    let account = fresh_account_id();
    let graph = groups(3);
    let (rec, _counter, _proxy) = reconciler_denying(&account, "GetResources", 0);
    common::apply(&rec, &graph).await;

    let (rec, counter, _proxy) = reconciler_denying(&account, "DescribeLogGroups", 1);
    let counts = common::assert_converged(&rec, &counter, &graph).await;
    assert_eq!(
        calls(&counts, "DescribeLogGroups"),
        2,
        "the refused call by identifier, then one listing of the namespace: {counts:?}"
    );
}

fn roles(account: &str) -> DesiredGraph {
    let cx = Context::new(account.to_string());
    let names = ServerNames::new("main", "iamread");
    let name = names.name("instance");
    let mut role = DesiredResource::new(kinds::ROLE, "instance", GLOBAL_REGION, &name)
        .with_properties(json!({
            "description": "Host of a test server",
            "assumeRolePolicyDocument": policies::assume_role("ec2.amazonaws.com"),
            "managedPolicyArns": [policies::managed(&cx, "AmazonSSMManagedInstanceCore")],
            "inlinePolicies": {
                "logs": {
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*" }]
                }
            }
        }));
    role.tags = names.tags("compute");
    let mut profile =
        DesiredResource::new(kinds::INSTANCE_PROFILE, "instance", GLOBAL_REGION, &name)
            .with_properties(json!({ "roles": [reference("iam.role/instance", "name")] }));
    profile.tags = names.tags("compute");
    DesiredGraph::new([role, profile]).unwrap()
}

/// Applies the role graph, checks the no-op, then rewrites the inline policy out of band and
/// checks the plan sees exactly that; returns the no-op's calls.
async fn role_round_trip(account: &str, rec: &Reconciler, counter: &CallCounter) -> CallCounts {
    let graph = roles(account);
    common::apply(rec, &graph).await;
    let noop = common::assert_converged(rec, counter, &graph).await;
    let iam = aws_sdk_iam::Client::new(&Emulator::shared().sdk_config(GLOBAL_REGION, account));
    iam.put_role_policy()
        .role_name(ServerNames::new("main", "iamread").name("instance"))
        .policy_name("logs")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let plan = common::plan(rec, &graph).await;
    assert_eq!(
        common::changed_paths(&plan),
        [(
            "iam.role/instance".to_string(),
            vec!["/inlinePolicies/logs/Statement".to_string()]
        )],
        "{plan}"
    );
    common::apply_plan(rec, &plan).await;
    common::assert_converged(rec, counter, &graph).await;
    noop
}

#[tokio::test]
async fn roles_and_profiles_come_from_the_authorization_details() {
    let account = fresh_account_id();
    let (rec, counter, _proxy) = reconciler_denying(&account, "GetAccountAuthorizationDetails", 0);
    let noop = role_round_trip(&account, &rec, &counter).await;
    for per_role in [
        "ListRoleTags",
        "ListRolePolicies",
        "GetRolePolicy",
        "ListAttachedRolePolicies",
        "GetInstanceProfile",
    ] {
        assert_eq!(calls(&noop, per_role), 0, "{per_role}: {noop:?}");
    }
    // One call serves the role and the instance-profile clients of an observation.
    assert_eq!(
        calls(&noop, "GetAccountAuthorizationDetails"),
        1,
        "{noop:?}"
    );
}

#[tokio::test]
async fn without_the_authorization_details_roles_are_read_one_by_one() {
    let account = fresh_account_id();
    let (rec, counter, _proxy) =
        reconciler_denying(&account, "GetAccountAuthorizationDetails", u64::MAX);
    let noop = role_round_trip(&account, &rec, &counter).await;
    assert_eq!(calls(&noop, "ListRolePolicies"), 1, "{noop:?}");
    assert_eq!(calls(&noop, "GetInstanceProfile"), 1, "{noop:?}");
}

/// A listing made once is shared by later reads, until a write through the pool expires it:
/// the zone a create just made is seen by the next observation, not hidden by the old listing.
#[tokio::test]
async fn a_shared_listing_serves_until_a_write_through_the_pool() {
    let account = fresh_account_id();
    let counter = CallCounter::new();
    let pool = Arc::new(
        ClientPool::new(Emulator::shared().sdk_config(GLOBAL_REGION, &account))
            .with_interceptor(SharedInterceptor::new(counter.clone())),
    );
    let zones = reconciler_aws::route53::clients(&pool)
        .into_iter()
        .find(|c| c.kind().as_str() == kinds::HOSTED_ZONE)
        .unwrap();
    let mut zone = DesiredResource::new(
        kinds::HOSTED_ZONE,
        "shared",
        GLOBAL_REGION,
        "shared-listing.example.com.",
    )
    .with_properties(json!({ "comment": "shared listing" }));
    zone.tags = ServerNames::new("main", "mc").tags("dns");
    let desired = [zone];

    assert!(zones
        .observe(GLOBAL_REGION, &desired)
        .await
        .unwrap()
        .is_empty());
    assert!(zones
        .observe(GLOBAL_REGION, &desired)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(calls(&counter.snapshot(), "ListHostedZones"), 1, "shared");

    zones.create(&desired[0]).await.unwrap();
    let seen = zones.observe(GLOBAL_REGION, &desired).await.unwrap();
    assert_eq!(seen.len(), 1, "the zone just created is observed");
    assert_eq!(
        calls(&counter.snapshot(), "ListHostedZones"),
        2,
        "the create expired the shared listing"
    );
}

/// A read that meets server errors is retried in place by the pool's clients, so one failed
/// call does not send a whole observation group round again; a write is sent once, and its
/// failure is left to the engine, which knows when repeating it is safe.
#[tokio::test]
async fn reads_retry_in_place_and_writes_are_sent_once() {
    let account = fresh_account_id();
    let failing = |operation: &str, times: u64| Scripted {
        operation: operation.into(),
        times,
        status: 500,
        code: "InternalFailure".into(),
        message: "We encountered an internal error. Please try again.".into(),
        after_mutations: 0,
    };
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            scripted: vec![
                failing(
                    "DescribeLogGroups",
                    u64::from(reconciler_aws::pool::READ_ATTEMPTS) - 1,
                ),
                failing("CreateLogGroup", 1),
            ],
            ..FaultPlan::default()
        },
    );
    let pool = ClientPool::new(sdk_config(proxy.url(), REGION, &account));
    let logs = pool.logs(REGION);

    let write = logs
        .create_log_group()
        .log_group_name("/reconciler/retries/a")
        .send()
        .await;
    assert!(write.is_err(), "the write's one attempt met the error");
    logs.describe_log_groups()
        .send()
        .await
        .expect("the read's last attempt gets through");

    let stats = proxy.stats();
    assert_eq!(stats.operations["logs:CreateLogGroup"], 1);
    assert_eq!(
        stats.operations["logs:DescribeLogGroups"],
        u64::from(reconciler_aws::pool::READ_ATTEMPTS)
    );
}
