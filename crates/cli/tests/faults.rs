//! Apply (the whole converge path: plans, lock, apply, results) of the example specs through a
//! proxy that injects AWS's failures at 10%: throttling
//! in each protocol's error shape, 500/503, connections reset before and after the service
//! acted, stalled answers beyond the client's timeout, and the IAM propagation error Lambda
//! answers while a new role is not yet assumable. The apply must converge with nothing
//! duplicated and a bounded number of attempts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use common::inventory::assert_no_duplicates;
use common::{prepared, reconciler};
use reconciler_aws::{CallCounter, ClientPool};
use reconciler_engine::{Options, Reconciler};
use reconciler_ops::converge::{converge, ConvergeOptions, Quiet};
use reconciler_ops::deploy::{self, PlanOptions, Prepared};
use reconciler_ops::session::Session;
use reconciler_testkit::proxy::{FaultPlan, Proxy, Scripted};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};

/// The seed of the fault dice: `FAULT_SEED` repeats a run.
fn seed() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261123)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_converges_through_ten_percent_faults_without_duplicates() {
    if std::env::var("RECONCILER_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("RECONCILER_LOG"))
            .with_test_writer()
            .try_init();
    }
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let root_zone = p.set.bases[0].doc.spec.domain.hosted_zone_id.clone();
    let seed = seed();
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            seed,
            rate: 0.10,
            stall: Duration::from_secs(9),
            scripted: vec![Scripted {
                operation: "CreateFunction".into(),
                times: 2,
                status: 400,
                code: "InvalidParameterValueException".into(),
                message: "The role defined for the function cannot be assumed by Lambda.".into(),
                after_mutations: 0,
            }],
            ..FaultPlan::default()
        },
    );

    // The reconciler talks through the proxy, with an attempt timeout shorter than a stall.
    let region = reconciler_ops::session::home_region(&p.set);
    let faulty = sdk_config(proxy.url(), &region, &account)
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(8))
                .build(),
        )
        .build();
    let counter = CallCounter::new();
    let pool = Arc::new(ClientPool::new(faulty).with_interceptor(SharedInterceptor::new(counter)));
    let rec = Reconciler::new(reconciler_aws::provider(&pool), Options::default());
    let faulty = Prepared {
        session: Session {
            pool,
            ..p.session.clone()
        },
        ..p.clone()
    };

    // The whole converge path, as `reconciler apply` runs it: plans, the lock, the apply, and
    // each server's result written outside the graph, all through the faults.
    let opts = ConvergeOptions {
        plan: PlanOptions::default(),
        lock_wait: Duration::from_secs(60),
    };
    let converged = converge(&faulty, &rec, &opts, &Quiet)
        .await
        .expect("observation and the lock survive the faults");
    if let Some(error) = &converged.record_error {
        panic!("seed {seed}: results not recorded: {error:#}");
    }
    let planned = &converged.planned;
    let report = converged.report.expect("there was something to apply");
    let stats = proxy.stats();
    let failures = common::failure_lines(&report);
    assert!(
        report.is_success(),
        "seed {seed}: {failures:#?}\ninjected: {:?}",
        stats.injected
    );
    // Every kind of fault happened, and the Lambda propagation error was retried.
    for kind in [
        "throttle",
        "500",
        "503",
        "reset-before",
        "reset-after",
        "stall",
    ] {
        assert!(
            stats.injected.get(kind).copied().unwrap_or(0) > 0,
            "seed {seed}: no {kind}: {stats:?}"
        );
    }
    assert_eq!(
        stats.injected.get("InvalidParameterValueException"),
        Some(&2)
    );
    // Bounded retries: well under twice the operations the plan needed.
    let operations = planned
        .plan
        .resources()
        .iter()
        .filter(|r| r.action.is_change())
        .count() as u32;
    let attempts = report.total_attempts();
    assert!(
        attempts < operations * 2,
        "seed {seed}: {attempts} attempts for {operations} operations"
    );

    // Converged: a clean plan is empty, and nothing exists twice.
    let clean = reconciler(&p);
    let after = deploy::plan(&p, &clean).await.unwrap();
    assert!(after.is_empty(), "seed {seed}:\n{after}");
    assert_no_duplicates(&account, &p.graph, &root_zone).await;
    // Every server's result is on record, and the lock is gone.
    let servers: Vec<String> = p
        .set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.clone())
        .collect();
    let results = reconciler_ops::results::read(&p, &servers).await.unwrap();
    assert_eq!(results.len(), servers.len(), "seed {seed}: {results:?}");
    assert!(
        results.values().all(|r| r.outcome == "succeeded"),
        "{results:?}"
    );
    let base = &p.set.bases[0].doc.metadata.name;
    let held = reconciler_ops::lock::holder(&p.session.pool, &p.session.retry, base, &region)
        .await
        .unwrap();
    assert!(held.is_none(), "seed {seed}: the lock was left behind");
}
