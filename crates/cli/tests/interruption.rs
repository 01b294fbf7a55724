//! The `reconciler` binary killed (SIGKILL) in the middle of an apply, at ten points spread
//! over the whole run, and two applies racing each other. After each, a normal apply finishes
//! the work, nothing exists twice, and the next plan is empty.
//!
//! A proxy in front of the emulator counts mutating calls and kills the process right after
//! the k-th one was carried out and before its answer reaches the process: the worst moment,
//! when AWS has acted and the reconciler does not know. Each run gets an emulated account of
//! its own through the proxy.

mod common;

use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::inventory::assert_no_duplicates;
use reconciler_testkit::proxy::{FaultPlan, Proxy};
use reconciler_testkit::{fresh_account_id, Emulator};

fn command(args: &[&str], endpoint: &str, zone: &str) -> Command {
    let mut cmd = common::binary(endpoint);
    cmd.args(args)
        .args(["-f", "specs/"])
        .env("HOSTED_ZONE_ID", zone);
    cmd
}

fn run(args: &[&str], endpoint: &str, zone: &str) -> Output {
    command(args, endpoint, zone).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh account with its root zone, and a proxy that stamps the account on every call.
async fn new_account() -> (String, String, Proxy) {
    let account = fresh_account_id();
    let emulator = Emulator::shared();
    let zone = common::root_zone(&emulator.sdk_config("us-east-1", &account)).await;
    let proxy = Proxy::start(
        emulator.url(),
        FaultPlan {
            account: Some(account.clone()),
            ..FaultPlan::default()
        },
    );
    (account, zone, proxy)
}

/// A normal apply completes, the plan after it is empty, and nothing exists twice.
async fn assert_finished(account: &str, zone: &str, proxy: &Proxy, context: &str) {
    let out = run(&["apply", "-q"], proxy.url(), zone);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{context}: the apply after failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = run(&["plan", "--detailed-exitcode"], proxy.url(), zone);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{context}: the plan after is not empty:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let p = common::prepared_in(account, zone).await;
    eprintln!("{context}: checking for duplicates");
    assert_no_duplicates(account, &p.graph, zone).await;
}

fn killed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apply_killed_at_any_point_is_finished_by_the_next() {
    reconciler_testkit::ensure_lambda_artifact().unwrap();

    // How many mutating calls a whole apply makes.
    let (account, zone, proxy) = new_account().await;
    let out = run(&["apply", "-q"], proxy.url(), &zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let total = proxy.stats().mutations;
    assert!(total > 100, "{total}");
    drop((account, proxy));

    // Ten kill points spread over the run, from the first call into the last tenth. A run's
    // count varies by a few calls (the lock's refreshes follow the wall clock), so the last
    // point stays a tenth short of the end, where a kill is certain to land.
    let last = total - total / 10;
    let points: Vec<u64> = (0..10).map(|i| 1 + i * (last - 1) / 9).collect();
    for k in points {
        let (account, zone, proxy) = new_account().await;
        let pid = Arc::new(AtomicU32::new(0));
        let target = pid.clone();
        proxy.after_mutations(k, move || {
            let pid = target.load(Ordering::SeqCst);
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        let mut child = command(&["apply", "-q"], proxy.url(), &zone)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        pid.store(child.id(), Ordering::SeqCst);
        let status = child.wait().unwrap();
        assert!(killed(status), "k={k}: the apply was not killed ({status})");
        let done = proxy.stats().mutations;
        assert!(done >= k, "k={k}: only {done} mutations before the kill");
        assert_finished(
            &account,
            &zone,
            &proxy,
            &format!("killed after {k} of {total}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_applies_at_once_converge_without_duplicates() {
    reconciler_testkit::ensure_lambda_artifact().unwrap();
    let (account, zone, proxy) = new_account().await;
    let first = command(&["apply", "-q"], proxy.url(), &zone)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let second = command(&["apply", "-q"], proxy.url(), &zone)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    for (n, out) in [(1, &first), (2, &second)] {
        assert_eq!(
            out.status.code(),
            Some(0),
            "apply {n} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let out = run(&["plan", "--detailed-exitcode"], proxy.url(), &zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let p = common::prepared_in(&account, &zone).await;
    assert_no_duplicates(&account, &p.graph, &zone).await;
}
