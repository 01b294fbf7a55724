//! The binary's output conventions and `--prune` as a user runs them: JSON for tools, colour
//! only when asked (or on a terminal), quiet summaries, confirmation before a prune deletes,
//! detailed exit codes. Runs in the emulator's default account, which no other test of this
//! binary uses.

mod common;

use std::process::Output;

use reconciler_testkit::Emulator;

fn reconciler(args: &[&str], zone: &str) -> Output {
    common::binary(Emulator::shared().url())
        .args(args)
        .env("HOSTED_ZONE_ID", zone)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const WITHOUT_VALHEIM: [&str; 6] = [
    "-f",
    "specs/base.yaml",
    "-f",
    "specs/minecraft.yaml",
    "-f",
    "specs/palworld.yaml",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_colour_quiet_and_prune_from_the_command_line() {
    reconciler_testkit::ensure_lambda_artifact().unwrap();
    let emulator = Emulator::shared();
    let zone = common::root_zone(&emulator.sdk_config("us-east-1", "123456789012")).await;
    let zone = zone.as_str();

    // Colour when asked, none when piped; -q keeps the summary only.
    let out = reconciler(&["plan", "-f", "specs/", "--color", "always"], zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\x1b[32m+ create "),
        "{}",
        text(&out.stdout)
    );
    let out = reconciler(&["plan", "-f", "specs/"], zone);
    assert!(!text(&out.stdout).contains('\x1b'));
    let out = reconciler(&["plan", "-q", "-f", "specs/"], zone);
    let quiet = text(&out.stdout);
    assert!(quiet.starts_with("Plan: "), "{quiet}");
    assert!(!quiet.contains("+ create"), "{quiet}");

    // apply -o json: one JSON document with the outcome of every resource.
    let out = reconciler(&["apply", "-f", "specs/", "-o", "json"], zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["success"], true);
    assert!(
        report["outcome"]["succeeded"].as_u64().unwrap() > 100,
        "{report}"
    );
    assert_eq!(report["outcome"]["failed"], 0);
    assert!(report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "succeeded" && r["id"].is_string()));
    let out = reconciler(&["status", "-f", "specs/", "valheim"], zone);
    assert!(
        text(&out.stdout).contains("succeeded at 20"),
        "{}",
        text(&out.stdout)
    );

    // Valheim leaves the input: plan says so, plan --prune shows the inventory (exit 2).
    let mut args = vec!["plan", "--detailed-exitcode"];
    args.extend(WITHOUT_VALHEIM);
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Not in the input but still in AWS: valheim"),
        "{}",
        text(&out.stdout)
    );
    args.push("--prune");
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("Prune server valheim"), "{shown}");
    assert!(
        shown.contains("= efs.file-system/valheim-config (rc-valheim-config): data, kept"),
        "{shown}"
    );

    // Without --yes and without a terminal, nothing is deleted.
    let mut args = vec!["apply", "--prune"];
    args.extend(WITHOUT_VALHEIM);
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pass --yes"),
        "{}",
        text(&out.stderr)
    );
    let out = reconciler(&["status", "-f", "specs/", "valheim", "-o", "json"], zone);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["state"], "asleep", "{status}");

    args.extend(["--yes", "-o", "json"]);
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(report["outcome"]["retained"], 2, "{report}");
    let out = reconciler(&["status", "-f", "specs/", "valheim", "-o", "json"], zone);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["state"], "not-deployed", "{status}");
    assert!(status[0]["lastReconcile"].is_null(), "{status}");

    let mut args = vec!["plan", "--prune", "--detailed-exitcode"];
    args.extend(WITHOUT_VALHEIM);
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // destroy -o json.
    let mut args = vec!["destroy", "--yes", "-o", "json"];
    args.extend(WITHOUT_VALHEIM);
    let out = reconciler(&args, zone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["success"], true, "{report}");
    assert!(report["plan"]["destroy"].as_u64().unwrap() > 50, "{report}");
}
