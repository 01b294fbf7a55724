//! `status`, `wake` and `sleep` against the emulator, through the same library functions the
//! binary calls.

mod common;

use common::{prepared, reconciler};
use reconciler_engine::NoEvents;
use reconciler_ops::day2::{self, ServerState};
use reconciler_ops::deploy;
use reconciler_testkit::fresh_account_id;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_wake_and_sleep() {
    let account = fresh_account_id();
    let p = prepared(&account).await;

    // Before apply nothing is deployed; asking for an unknown server is an error naming the
    // known ones.
    let before = day2::status(&p, &["minecraft".into()]).await.unwrap();
    assert_eq!(before[0].state, ServerState::NotDeployed);
    let err = day2::status(&p, &["nope".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("minecraft") && err.contains("nope"), "{err}");

    assert!(before[0].last_reconcile.is_none());

    let rec = reconciler(&p);
    let planned = deploy::plan_with(&p, &rec, deploy::PlanOptions::default())
        .await
        .unwrap();
    let report = rec.apply(&planned.plan, &NoEvents).await;
    assert!(report.is_success());
    deploy::record_results(&p, &planned, &report).await.unwrap();

    let all = day2::status(&p, &[]).await.unwrap();
    assert_eq!(all.len(), 3);
    for s in &all {
        assert_eq!(s.state, ServerState::Asleep, "{s:?}");
        assert_eq!(s.dns_record, ["0.0.0.0"], "{s:?}");
        assert_eq!(s.desired_capacity, Some(0));
        assert_eq!(s.alarms.len(), 3, "{s:?}");
        let last = s.last_reconcile.as_ref().expect("the apply's result");
        assert_eq!(last.outcome, "succeeded", "{s:?}");
        assert!(last.changed > 30 && last.failed == 0, "{s:?}");
    }
    let table = day2::status_table(&all);
    assert!(table.contains("minecraft.games.example.com"), "{table}");
    assert!(table.contains("asleep"), "{table}");
    assert!(
        table.contains("LAST RECONCILE") && table.contains("succeeded at 20"),
        "{table}"
    );

    // Wake: the group gets its instance; DNS still says unavailable (no Lambda runs in the
    // emulator), so the server is waking, not running.
    day2::wake(&p, "minecraft").await.unwrap();
    let s = &day2::status(&p, &["minecraft".into()]).await.unwrap()[0];
    assert_eq!(s.desired_capacity, Some(1));
    assert_eq!(s.state, ServerState::Waking, "{s:?}");
    assert_eq!(s.instances.len(), 1, "{s:?}");
    let others = day2::status(&p, &["valheim".into()]).await.unwrap();
    assert_eq!(
        others[0].state,
        ServerState::Asleep,
        "only the named server wakes"
    );

    // Waking is not drift.
    assert!(deploy::plan(&p, &rec).await.unwrap().is_empty());

    // Sleep: back to zero.
    day2::sleep(&p, "minecraft").await.unwrap();
    let s = &day2::status(&p, &["minecraft".into()]).await.unwrap()[0];
    assert_eq!(s.desired_capacity, Some(0));
    assert!(
        matches!(s.state, ServerState::Asleep | ServerState::Stopping),
        "{s:?}"
    );
    let json = serde_json::to_value(day2::status(&p, &[]).await.unwrap()).unwrap();
    assert_eq!(json[0]["name"], "minecraft");
    assert!(json[0]["dnsRecord"].is_array());
}

/// The binary prints the status as JSON for tools (here of an account where nothing is
/// deployed: the emulator's default account, which no other test of this binary uses).
#[test]
fn the_binary_prints_status_as_json() {
    let emulator = reconciler_testkit::Emulator::shared();
    let out = common::binary(emulator.url())
        .args(["status", "-f", "specs/", "-o", "json", "minecraft"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["name"], "minecraft");
    assert_eq!(json[0]["state"], "not-deployed");
    assert_eq!(json[0]["dnsName"], "minecraft.games.example.com");
}
