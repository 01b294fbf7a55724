//! The observe / plan / apply steps every provider test repeats, over any reconciler.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::Arc;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use reconciler_aws::{CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::DesiredGraph;
use reconciler_engine::plan::Plan;
use reconciler_engine::{NoEvents, Reconciler};
use reconciler_testkit::proxy::{FaultPlan, Proxy, Scripted};
use reconciler_testkit::{sdk_config, Emulator};

/// A client pool (with a call counter) in `account` whose calls go through a proxy that
/// answers the first `denied` calls of `operation` with `AccessDenied`, as for a caller
/// without that permission. Keep the proxy alive as long as the pool.
pub fn pool_denying(
    account: &str,
    region: &str,
    operation: &str,
    denied: u64,
) -> (Arc<ClientPool>, CallCounter, Proxy) {
    let code = if operation == "GetResources" {
        "AccessDeniedException"
    } else {
        "AccessDenied"
    };
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            scripted: vec![Scripted {
                operation: operation.into(),
                times: denied,
                status: 403,
                code: code.into(),
                message: format!("not authorized to perform: {operation}"),
                after_mutations: 0,
            }],
            ..FaultPlan::default()
        },
    );
    let counter = CallCounter::new();
    let pool = Arc::new(
        ClientPool::new(sdk_config(proxy.url(), region, account))
            .with_interceptor(SharedInterceptor::new(counter.clone())),
    );
    (pool, counter, proxy)
}

/// How many calls of `operation` (any service) `counts` holds.
pub fn calls(counts: &CallCounts, operation: &str) -> u64 {
    counts
        .by_operation
        .iter()
        .filter(|(k, _)| k.rsplit('.').next() == Some(operation))
        .map(|(_, n)| n)
        .sum()
}

/// The resources `plan` changes, each with the paths it changes, in plan order.
pub fn changed_paths(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.resources()
        .iter()
        .filter(|r| r.action.is_change())
        .map(|r| {
            (
                r.id.to_string(),
                r.changes.iter().map(|c| c.path.clone()).collect(),
            )
        })
        .collect()
}

/// Observes and plans `graph`.
pub async fn plan(rec: &Reconciler, graph: &DesiredGraph) -> Plan {
    let observed = rec.observe(graph).await.expect("observe");
    rec.plan(graph, &observed, &[]).expect("plan")
}

/// Observes `graph` and plans its destroy.
pub async fn plan_destroy(rec: &Reconciler, graph: &DesiredGraph) -> Plan {
    let observed = rec.observe(graph).await.expect("observe");
    rec.plan_destroy(graph, &observed).expect("plan destroy")
}

/// Applies `plan`; fails the test on any failed resource.
pub async fn apply_plan(rec: &Reconciler, plan: &Plan) {
    let report = rec.apply(plan, &NoEvents).await;
    let failures: Vec<String> = report
        .failures()
        .map(|(id, e)| format!("{id}: {e}"))
        .collect();
    assert!(
        failures.is_empty(),
        "apply failed:\n{}\nplan:\n{plan}",
        failures.join("\n")
    );
}

/// Observes, plans and applies; fails the test on any failed resource.
pub async fn apply(rec: &Reconciler, graph: &DesiredGraph) -> Plan {
    let plan = plan(rec, graph).await;
    apply_plan(rec, &plan).await;
    plan
}

/// A second observe + plan is empty and a second apply changes nothing; returns the calls
/// that made.
pub async fn assert_converged(
    rec: &Reconciler,
    counter: &CallCounter,
    graph: &DesiredGraph,
) -> CallCounts {
    counter.reset();
    let plan = plan(rec, graph).await;
    assert!(
        plan.is_empty(),
        "expected an empty plan, got:\n{plan}\n{:#?}",
        plan.resources()
            .iter()
            .filter(|r| r.action.is_change())
            .map(|r| (&r.id, &r.changes))
            .collect::<Vec<_>>()
    );
    let report = rec.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    let calls = counter.snapshot();
    assert_eq!(
        calls.mutations,
        0,
        "a no-op apply made changes: {:?}",
        calls.mutating_operations()
    );
    calls
}
