//! `watch` against the emulator: one server that cannot be reconciled backs off while the
//! others converge, and it is tried again once its backoff ends; a cycle converges exactly as
//! `apply` does (retiring, drift labels) and never leaves its lock behind.

mod common;

use std::time::Duration;

use std::sync::Arc;

use common::{prepared, reconciler};
use reconciler_aws::ClientPool;
use reconciler_ops::deploy::Prepared;
use reconciler_ops::session::Session;
use reconciler_ops::watch::{WatchOptions, Watcher};
use reconciler_testkit::proxy::{FaultPlan, Proxy, Scripted};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_server_backs_off_while_the_others_converge() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let rec = reconciler(&p);
    let home = reconciler_ops::session::home_region(&p.set);

    // The injected failure: valheim's container log group exists but is not ours, so the
    // reconciler refuses to adopt it (and everything of valheim that needs it waits).
    let logs = aws_sdk_cloudwatchlogs::Client::new(&Emulator::shared().sdk_config(&home, &account));
    logs.create_log_group()
        .log_group_name("/reconciler/valheim/container")
        .send()
        .await
        .unwrap();

    let opts = WatchOptions {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(600),
        cycles: None,
    };
    let mut watcher = Watcher::new();
    let t0 = Instant::now();
    let first = watcher.cycle(&p, &rec, &opts, t0).await.unwrap();
    assert_eq!(first.reconciled.len(), 3, "{first:?}");
    assert_eq!(
        first.failed.keys().cloned().collect::<Vec<_>>(),
        ["valheim"],
        "{first:?}"
    );
    assert!(first.failed["valheim"].contains("not ours"), "{first:?}");
    assert!(first.base_failures.is_empty(), "{first:?}");
    assert!(watcher.is_backing_off("valheim", t0 + Duration::from_secs(59)));
    // The failure is recorded for `status`; the others succeeded.
    let last = reconciler_ops::results::read(&p, &["valheim".into(), "minecraft".into()])
        .await
        .unwrap();
    assert_eq!(last["valheim"].outcome, "failed", "{last:?}");
    assert!(
        last["valheim"].failed >= 1 && last["valheim"].skipped > 0,
        "{last:?}"
    );
    assert!(last["valheim"].errors[0].contains("not ours"), "{last:?}");
    assert_eq!(last["minecraft"].outcome, "succeeded", "{last:?}");

    // The next cycle skips valheim; the others have nothing left to do.
    let second = watcher
        .cycle(&p, &rec, &opts, t0 + Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(second.backing_off, ["valheim"], "{second:?}");
    assert_eq!(second.reconciled, ["minecraft", "palworld"], "{second:?}");
    assert!(second.failed.is_empty(), "{second:?}");
    assert_eq!(second.changed, 0, "{second:?}");

    // Once the log group is ours (an operator tagged it), valheim is tried again after its
    // backoff and converges.
    let arn = format!("arn:aws:logs:{home}:{account}:log-group:/reconciler/valheim/container");
    logs.tag_resource()
        .resource_arn(&arn)
        .tags("reconciler.dev/managed-by", "reconciler")
        .send()
        .await
        .unwrap();
    let third = watcher
        .cycle(&p, &rec, &opts, t0 + Duration::from_secs(61))
        .await
        .unwrap();
    assert_eq!(third.reconciled.len(), 3, "{third:?}");
    assert!(third.failed.is_empty(), "{third:?}");
    assert!(!watcher.is_backing_off("valheim", t0 + Duration::from_secs(62)));
}

/// A cycle converges as `apply` does: what the specs no longer render is retired (a volume
/// taken out loses its mount targets, its file system kept) and an out-of-band change is
/// labelled drift, in the same cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cycle_retires_what_the_specs_dropped_and_labels_drift() {
    let account = fresh_account_id();
    let mut p = prepared(&account).await;
    let rec = reconciler(&p);
    let opts = WatchOptions {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(600),
        cycles: None,
    };
    let mut watcher = Watcher::new();
    let t0 = Instant::now();
    let first = watcher.cycle(&p, &rec, &opts, t0).await.unwrap();
    assert!(first.failed.is_empty() && first.changed > 0, "{first:?}");

    let home = reconciler_ops::session::home_region(&p.set);
    let config = Emulator::shared().sdk_config(&home, &account);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    // Palworld's alarm: minecraft's changes with its volumes (a spec change, not drift).
    common::runtime::set_alarm_threshold(&cloudwatch, "rc-palworld-idle", 99_999.0).await;
    for server in &mut p.set.servers {
        if server.doc.metadata.name == "minecraft" {
            server.doc.spec.volumes.clear();
        }
    }
    p.graph = p.session.render(&p.set, &p.catalog).unwrap();

    let second = watcher
        .cycle(&p, &rec, &opts, t0 + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(second.failed.is_empty(), "{second:?}");
    assert_eq!(
        second.drifted,
        ["cloudwatch.alarm/palworld-idle"],
        "{second:?}"
    );
    let efs = aws_sdk_efs::Client::new(&config);
    let kept = efs.describe_file_systems().send().await.unwrap();
    let minecraft: Vec<_> = kept
        .file_systems()
        .iter()
        .filter(|fs| fs.name().is_some_and(|n| n.starts_with("rc-minecraft")))
        .collect();
    assert!(!minecraft.is_empty(), "the data is kept");
    for fs in minecraft {
        let targets = common::inventory::mount_targets(&efs, fs.file_system_id()).await;
        assert_eq!(targets, 0, "retired by the cycle: {fs:?}");
    }
}

/// A cycle that fails after taking the Base's lock (here its second observation, under the
/// lock, is refused) releases the lock at once, instead of leaving the Base locked until the
/// lock goes stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_cycle_releases_the_lock_at_once() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            scripted: vec![Scripted {
                operation: "DescribeVpcs".into(),
                times: u64::MAX,
                status: 403,
                code: "UnauthorizedOperation".into(),
                message: "You are not authorized to perform this operation.".into(),
                // The first mutating call of the cycle is taking the lock.
                after_mutations: 1,
            }],
            ..FaultPlan::default()
        },
    );
    let home = reconciler_ops::session::home_region(&p.set);
    let through_proxy = Prepared {
        session: Session {
            pool: Arc::new(ClientPool::new(sdk_config(proxy.url(), &home, &account))),
            ..p.session.clone()
        },
        ..p.clone()
    };
    let rec = reconciler(&through_proxy);
    let opts = WatchOptions {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(600),
        cycles: None,
    };
    let failed = Watcher::new()
        .cycle(&through_proxy, &rec, &opts, Instant::now())
        .await;
    let error = format!(
        "{:#}",
        failed.expect_err("the observation under the lock fails")
    );
    assert!(error.contains("UnauthorizedOperation"), "{error}");
    // Taking the lock and releasing it are each one new lock generation.
    assert_eq!(
        proxy.stats().operations.get("ssm:PutParameter"),
        Some(&2),
        "taken and released through the run's own clients: {:?}",
        proxy.stats().operations
    );
    let base = &p.set.bases[0].doc.metadata.name;
    let held = reconciler_ops::lock::holder(&p.session.pool, &p.session.retry, base, &home)
        .await
        .unwrap();
    assert!(held.is_none(), "the lock is released: {held:?}");
}

/// The binary reconciles, logs each cycle (JSON here) and stops cleanly on SIGTERM while it
/// waits for the next cycle. It works in the emulator's default account, which no other test
/// of this binary uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    reconciler_testkit::ensure_lambda_artifact().unwrap();
    let emulator = Emulator::shared();
    let zone = common::root_zone(&emulator.sdk_config("us-east-1", "123456789012")).await;
    let mut child = common::binary(emulator.url())
        .args([
            "watch",
            "-f",
            "specs/",
            "--interval",
            "1h",
            "--log-format",
            "json",
        ])
        .env("HOSTED_ZONE_ID", zone)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("cycle done");
        seen.push(line);
        if done {
            break;
        }
    }
    let last: serde_json::Value = serde_json::from_str(seen.last().unwrap()).expect("JSON logs");
    assert_eq!(last["fields"]["failed"], 0, "{seen:#?}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("shutting down between cycles")),
        "{rest:#?}"
    );
}
