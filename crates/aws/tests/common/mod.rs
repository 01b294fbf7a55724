//! The observe / plan / apply steps every provider test repeats, over any reconciler.

#![allow(dead_code)] // each test binary uses its own subset

use reconciler_aws::{CallCounter, CallCounts};
use reconciler_engine::model::DesiredGraph;
use reconciler_engine::plan::Plan;
use reconciler_engine::{NoEvents, Reconciler};

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
