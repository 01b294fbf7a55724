//! `reconciler calibrate` against the emulator: a synthetic traffic history is written into
//! the metrics the idle alarm reads, and the binary must propose the idle peak plus the
//! margin.
//!
//! The emulator's GetMetricData evaluates only simple metric math (not `IF`, `FILL` or
//! `PERIOD`, which the idle alarm uses); the product reads the raw metrics and applies the
//! alarm's arithmetic itself, which is what it does against AWS too, so this test exercises
//! the real path.

mod common;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_smithy_types::DateTime;
use reconciler_engine::NoEvents;
use reconciler_testkit::proxy::{FaultPlan, Proxy};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::Value;

/// Idle minutes: 100 to 140 B/s from outside; in some of them the instance also reads 5 kB/s
/// from EFS, which arrives as network traffic and must not count.
const IDLE_MINUTES: i64 = 150;
/// Play minutes: 30 to 50 kB/s.
const PLAY_MINUTES: i64 = 40;

fn datum(name: &str, dims: &[(&str, &str)], epoch: i64, value: f64) -> MetricDatum {
    let mut d = MetricDatum::builder()
        .metric_name(name)
        .timestamp(DateTime::from_secs(epoch))
        .value(value);
    for (k, v) in dims {
        d = d.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    d.build()
}

fn run(proxy: &Proxy, zone: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::binary(proxy.url())
        .args(args)
        .env("HOSTED_ZONE_ID", zone)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calibrate_proposes_the_idle_peak_plus_the_margin() {
    let account = fresh_account_id();
    let emulator = Emulator::shared();
    let zone = common::root_zone(&emulator.sdk_config("us-east-1", &account)).await;
    let p = common::prepared_in(&account, &zone).await;
    let rec = common::reconciler(&p);
    let planned = reconciler_ops::deploy::plan_with(&p, &rec, Default::default())
        .await
        .unwrap();
    assert!(rec.apply(&planned.plan, &NoEvents).await.is_success());

    // The minecraft volume's file system, as AWS knows it.
    let region = "us-west-2";
    let config = emulator.sdk_config(region, &account);
    let efs = aws_sdk_efs::Client::new(&config);
    let listed = efs.describe_file_systems().send().await.unwrap();
    let fs_id = listed
        .file_systems()
        .iter()
        .find(|f| f.creation_token() == "rc-minecraft-data")
        .expect("the Data volume")
        .file_system_id()
        .to_string();

    // History: idle, a DNS lookup, play, idle again, in the last few hours.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let first = now - now % 60 - 6 * 3600;
    let asg = [("AutoScalingGroupName", "rc-minecraft")];
    let mut ec2 = Vec::new();
    let mut reads = Vec::new();
    let mut dns = Vec::new();
    let mut idle_peak: f64 = 0.0;
    let mut minute = 0;
    let mut idle = |ec2: &mut Vec<MetricDatum>, reads: &mut Vec<MetricDatum>, i: i64, at: i64| {
        let players = 100.0 + (i * 7 % 41) as f64;
        idle_peak = idle_peak.max(players);
        let efs_read = if i % 10 == 3 { 5000.0 } else { 0.0 };
        ec2.push(datum("NetworkIn", &asg, at, (players + efs_read) * 60.0));
        if efs_read > 0.0 {
            reads.push(datum(
                "DataReadIOBytes",
                &[("FileSystemId", fs_id.as_str())],
                at,
                efs_read * 60.0,
            ));
        }
    };
    for i in 0..IDLE_MINUTES / 2 {
        idle(&mut ec2, &mut reads, i, first + minute * 60);
        minute += 1;
    }
    dns.push(datum(
        "DNSTraffic",
        &[("ServerName", "minecraft")],
        first + minute * 60,
        1176.0,
    ));
    ec2.push(datum("NetworkIn", &asg, first + minute * 60, 2000.0 * 60.0));
    minute += 1;
    for i in 0..PLAY_MINUTES {
        let bps = 30_000.0 + (i * 500) as f64;
        ec2.push(datum("NetworkIn", &asg, first + minute * 60, bps * 60.0));
        minute += 1;
    }
    for i in IDLE_MINUTES / 2..IDLE_MINUTES {
        idle(&mut ec2, &mut reads, i, first + minute * 60);
        minute += 1;
    }
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    for (namespace, data) in [
        ("AWS/EC2", ec2),
        ("AWS/EFS", reads),
        ("Reconciler/minecraft", dns),
    ] {
        for chunk in data.chunks(500) {
            cloudwatch
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap();
        }
    }

    let proxy = Proxy::start(
        emulator.url(),
        FaultPlan {
            account: Some(account.clone()),
            ..FaultPlan::default()
        },
    );
    let (code, stdout, stderr) = run(
        &proxy,
        &zone,
        &[
            "calibrate",
            "-f",
            "specs/",
            "minecraft",
            "--days",
            "1",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}\n{stdout}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let expected = (idle_peak * 1.2).ceil();
    assert_eq!(json["proposedThreshold"], expected as u64, "{json:#}");
    assert_eq!(json["currentThreshold"], 1175);
    assert_eq!(json["deployedThreshold"], 1175.0);
    assert_eq!(json["periodSeconds"], 60);
    assert_eq!(json["periods"], 1440);
    assert_eq!(json["runningPeriods"], IDLE_MINUTES + 1 + PLAY_MINUTES);
    assert_eq!(json["wakePeriods"], 1);
    let c = &json["classification"];
    assert_eq!(c["idle"]["periods"], IDLE_MINUTES);
    assert_eq!(c["idle"]["max"], idle_peak, "EFS reads are not players");
    assert_eq!(c["play"]["periods"], PLAY_MINUTES);
    assert_eq!(c["play"]["min"], 30_000.0);
    assert_eq!(json["warnings"], serde_json::json!([]), "{json:#}");
    let samples = json["samples"].as_array().unwrap();
    assert_eq!(samples.len() as i64, IDLE_MINUTES + 1 + PLAY_MINUTES);
    assert!(samples.iter().any(|s| s["class"] == "wake"));
    let day_minutes: i64 = json["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["runningMinutes"].as_i64().unwrap())
        .sum();
    assert_eq!(day_minutes, IDLE_MINUTES + 1 + PLAY_MINUTES);

    // Text, with another margin.
    let (code, stdout, stderr) = run(
        &proxy,
        &zone,
        &["calibrate", "-f", "specs/", "minecraft", "--margin", "50%"],
    );
    assert_eq!(code, Some(0), "{stderr}\n{stdout}");
    let proposed = (idle_peak * 1.5).ceil();
    assert!(
        stdout.contains(&format!(
            "Proposed threshold: {proposed} B/s (idle peak {idle_peak} B/s + 50%)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Current threshold:  1175 B/s in the spec (deployed: 1175 B/s)"),
        "{stdout}"
    );
    assert!(stdout.contains("DAY (UTC)"), "{stdout}");

    // A server that never ran: no proposal, exit 1, and the reason.
    let (code, stdout, stderr) = run(&proxy, &zone, &["calibrate", "-f", "specs/", "valheim"]);
    assert_eq!(code, Some(1), "{stderr}\n{stdout}");
    assert!(stdout.contains("Proposed threshold: none"), "{stdout}");
    assert!(
        stdout.contains("warning: no minute with the instance running"),
        "{stdout}"
    );

    // Out-of-range history is refused before any AWS call.
    let (code, _, stderr) = run(
        &proxy,
        &zone,
        &["calibrate", "-f", "specs/", "minecraft", "--days", "30"],
    );
    assert_eq!(code, Some(2), "{stderr}");
}
