//! The region's tag index (the Resource Groups Tagging API) against the emulator: a no-op
//! observation reads tags in one call, an out-of-band tag change is confirmed by the service's
//! own read of just that object, and without the tagging permission observation falls back to
//! per-object reads and stays correct.

mod common;

use std::sync::Arc;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use reconciler_aws::{logs, CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler};
use reconciler_render::kinds;
use reconciler_render::naming::ServerNames;
use reconciler_testkit::proxy::{FaultPlan, Proxy, Scripted};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use serde_json::json;

const REGION: &str = "eu-west-1";

fn calls(counts: &CallCounts, operation: &str) -> u64 {
    counts
        .by_operation
        .iter()
        .filter(|(k, _)| k.ends_with(&format!(".{operation}")))
        .map(|(_, v)| *v)
        .sum()
}

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

/// A reconciler whose calls go through a proxy that answers the first `denied` `GetResources`
/// calls with `AccessDeniedException`, as for a caller without `tag:GetResources`.
fn reconciler(account: &str, denied: u64) -> (Reconciler, CallCounter, Proxy) {
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            scripted: vec![Scripted {
                operation: "GetResources".into(),
                times: denied,
                status: 400,
                code: "AccessDeniedException".into(),
                message: "not authorized to perform: tag:GetResources".into(),
            }],
            ..FaultPlan::default()
        },
    );
    let counter = CallCounter::new();
    let pool = Arc::new(
        ClientPool::new(sdk_config(proxy.url(), REGION, account))
            .with_interceptor(SharedInterceptor::new(counter.clone())),
    );
    let mut provider = Provider::new();
    provider.on_observation(reconciler_aws::observation_hook(&pool));
    for client in logs::clients(&pool) {
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
    let (rec, counter, _proxy) = reconciler(&account, 0);
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
    let (rec, counter, _proxy) = reconciler(&account, u64::MAX);
    let graph = groups(4);
    common::apply(&rec, &graph).await;
    let counts = common::assert_converged(&rec, &counter, &graph).await;
    // One refused index call per observation (not one per kind or per object), then the
    // service's own read for each group.
    assert_eq!(calls(&counts, "GetResources"), 1, "{counts:?}");
    assert_eq!(calls(&counts, "ListTagsForResource"), 4, "{counts:?}");
}
