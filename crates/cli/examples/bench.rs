//! Reconcile benchmarks against the local emulator, run by `cargo xtask bench`: first apply,
//! no-op reconcile, drift detection, and apply under added latency compared with the
//! dependency graph's critical path. Prints one JSON object per measurement on standard output.
//!
//! The emulator answers in microseconds to milliseconds where AWS takes tens of milliseconds,
//! so wall times here are a lower bound; call counts are what a real account would see. The
//! runtime Lambda package is a small stand-in binary (its contents do not change any count).
//!
//! The no-op is measured as a user meets it: a fresh `reconciler plan` process against an
//! applied account, every call (STS included) counted by a proxy; the warm figure (a second
//! plan in one process, as `watch` and the operator make it) stands beside it. The
//! rate-limited runs put the fault proxy at AWS's documented request rates
//! (`reconciler_testkit::rates`) between a fresh `reconciler` process and the emulator.
//!
//! `cargo run -p reconciler-cli --example bench -- [--apply 1,20] [--noop 1,20,100]
//! [--drift 100] [--latency-ms 50] [--rated 1,20,100]`; an empty list or 0 leaves a
//! measurement out. The fresh-process runs need the binary: `cargo build --workspace --bins`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reconciler_engine::execute::{ApplyEvent, EventKind};
use reconciler_engine::model::ResourceId;
use reconciler_engine::{NoEvents, Options, Reconciler};
use reconciler_ops::deploy::{self, PlanOptions, Prepared};
use reconciler_ops::session::{home_region, load_specs_with};
use reconciler_spec::InstanceCatalog;
use reconciler_testkit::proxy::{FaultPlan, Proxy, ProxyStats};
use reconciler_testkit::rates::{Demand, RULES};
use reconciler_testkit::{fresh_account_id, sdk_config, Emulator};
use serde_json::json;

/// When each resource's operation started and ended.
type Spans = HashMap<ResourceId, (Instant, Option<Instant>)>;

/// The root zone made for each account, for the binary's `HOSTED_ZONE_ID`.
static ZONES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// The `reconciler` binary built next to this example.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("examples/ in the target directory")
        .join("reconciler");
    assert!(
        path.exists(),
        "{} is missing: cargo build --workspace --bins",
        path.display()
    );
    path
}

/// A fresh `reconciler <args> -f DIR` process as a user runs it, every call through `proxy`
/// (which stamps the account): its wall time and exit code.
fn run_binary(args: &[&str], proxy: &Proxy, account: &str, dir: &Path) -> (f64, Option<i32>) {
    let zone = ZONES.lock().unwrap()[account].clone();
    let started = Instant::now();
    let out = std::process::Command::new(binary())
        .args(args)
        .arg("-f")
        .arg(dir)
        .env("AWS_ENDPOINT_URL", proxy.url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOSTED_ZONE_ID", zone)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run the reconciler binary");
    let wall = started.elapsed().as_secs_f64();
    if !matches!(out.status.code(), Some(0 | 2)) {
        eprintln!(
            "reconciler {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (wall, out.status.code())
}

/// A proxy that counts calls into `account` (and throttles them at AWS's rates when `rated`).
fn counting_proxy(account: &str, rated: bool) -> Proxy {
    Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            account: Some(account.to_string()),
            rates: rated.then_some(1.0),
            ..FaultPlan::default()
        },
    )
}

/// Proxy counts grouped as `service: {operation: n}`.
fn proxy_calls(stats: &ProxyStats) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (key, n) in &stats.operations {
        let (service, op) = key.split_once(':').unwrap_or(("?", key));
        out.entry(service.to_string())
            .or_default()
            .insert(op.to_string(), *n);
    }
    out
}

/// The lower bound a call mix allows at AWS's rates: per service, the slowest of its buckets
/// (calls divided by the bucket's rate), largest first.
fn lower_bounds(demand: &[Demand]) -> Vec<serde_json::Value> {
    let mut by_service: BTreeMap<&str, &Demand> = BTreeMap::new();
    for d in demand {
        let slowest = by_service.entry(d.service).or_insert(d);
        if d.seconds() > slowest.seconds() {
            *slowest = d;
        }
    }
    let mut bounds: Vec<&Demand> = by_service.into_values().collect();
    bounds.sort_by(|a, b| b.seconds().total_cmp(&a.seconds()));
    bounds
        .iter()
        .map(|d| {
            let bucket = d.bucket.split('|').skip(1).collect::<Vec<_>>().join(" ");
            json!({"service": d.service, "bucket": bucket, "calls": d.calls,
                   "rate": d.refill, "seconds": d.seconds()})
        })
        .collect()
}

/// One fresh-process run through `proxy`, as a JSON line's fields.
fn fresh_run(args: &[&str], proxy: &Proxy, account: &str, dir: &Path) -> serde_json::Value {
    let (wall, code) = run_binary(args, proxy, account, dir);
    let stats = proxy.stats();
    let bounds = lower_bounds(&proxy.rate_demand());
    json!({
        "wall_seconds": wall, "exit_code": code, "requests": stats.requests,
        "reads": stats.requests - stats.mutations, "mutations": stats.mutations,
        "throttled": stats.throttled.values().sum::<u64>(), "throttled_calls": stats.throttled,
        "lower_bounds": bounds, "calls": proxy_calls(&stats),
    })
}

/// The rate table the rate-limited runs apply, for the docs.
fn rate_table() -> serde_json::Value {
    let rules: Vec<serde_json::Value> = RULES
        .iter()
        .map(|r| {
            json!({"service": r.service, "label": r.label, "scope": format!("{:?}", r.scope),
                   "per_operation": r.bucketing == reconciler_testkit::rates::Bucketing::PerOperation,
                   "capacity": r.capacity, "refill": r.refill, "source": r.source})
        })
        .collect();
    json!({"bench": "rates", "rules": rules})
}
fn list(args: &[String], flag: &str, default: &[usize]) -> Vec<usize> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// A directory with the examples' Base and `n` servers made from the Minecraft example.
fn specs(n: usize) -> tempfile::TempDir {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(examples.join("base.yaml"), dir.path().join("base.yaml")).unwrap();
    let server = std::fs::read_to_string(examples.join("minecraft.yaml")).unwrap();
    for i in 0..n {
        let name = format!("mc{i:03}");
        std::fs::write(
            dir.path().join(format!("{name}.yaml")),
            server.replace("name: minecraft", &format!("name: {name}")),
        )
        .unwrap();
    }
    dir
}

async fn root_zone(account: &str) -> String {
    let route53 =
        aws_sdk_route53::Client::new(&Emulator::shared().sdk_config("us-east-1", account));
    let out = route53
        .create_hosted_zone()
        .name("games.example.com.")
        .caller_reference(format!("bench-{account}"))
        .send()
        .await
        .unwrap();
    out.hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

/// `n` servers prepared in a fresh account, all calls through `endpoint` (the emulator, or a
/// proxy in front of it).
async fn prepared(n: usize, endpoint: Option<&str>) -> (String, Prepared, tempfile::TempDir) {
    let account = fresh_account_id();
    let zone = root_zone(&account).await;
    let dir = specs(n);
    let catalog = InstanceCatalog::offline();
    ZONES.lock().unwrap().insert(account.clone(), zone.clone());
    let env = move |name: &str| match name {
        "HOSTED_ZONE_ID" => Some(zone.clone()),
        _ => None,
    };
    let (set, diags) = load_specs_with(&[dir.path().to_path_buf()], &catalog, &env).unwrap();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let region = home_region(&set);
    let config = match endpoint {
        Some(url) => sdk_config(url, &region, &account),
        None => Emulator::shared().sdk_config(&region, &account),
    };
    let p = deploy::prepare(set, catalog, config).await.unwrap();
    (account, p, dir)
}

fn reconciler(p: &Prepared) -> Reconciler {
    Reconciler::new(
        reconciler_aws::provider(&p.session.pool),
        Options::default(),
    )
}

/// Calls grouped as `service: {operation: n}`.
fn by_service(calls: &reconciler_aws::CallCounts) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (key, n) in &calls.by_operation {
        let (service, op) = key.rsplit_once('.').unwrap_or(("?", key));
        out.entry(service.to_string())
            .or_default()
            .insert(op.to_string(), *n);
    }
    out
}

async fn apply(p: &Prepared, rec: &Reconciler) -> (f64, f64, usize) {
    let started = Instant::now();
    let planned = deploy::plan_with(p, rec, PlanOptions::default())
        .await
        .unwrap();
    let observed = started.elapsed().as_secs_f64();
    let report = rec.apply(&planned.plan, &NoEvents).await;
    assert!(report.is_success(), "{:?}", report.failures().next());
    (
        started.elapsed().as_secs_f64(),
        observed,
        planned.plan.summary().add,
    )
}

/// The first apply and the fresh no-op of `n` servers in a new account, through the proxy at
/// AWS's rates: wall time, throttling met, and the bound the call mix allows.
async fn rated(n: usize) {
    let account = fresh_account_id();
    let zone = root_zone(&account).await;
    ZONES.lock().unwrap().insert(account.clone(), zone);
    let dir = specs(n);
    for (bench, args) in [
        ("rated-first-apply", &["apply", "-q"][..]),
        ("rated-no-op", &["plan", "--detailed-exitcode"][..]),
    ] {
        // A proxy of its own for each run: AWS's buckets are full again after a pause.
        let proxy = counting_proxy(&account, true);
        let mut line = fresh_run(args, &proxy, &account, dir.path());
        line["bench"] = json!(bench);
        line["servers"] = json!(n);
        println!("{line}");
    }
}

/// What was measured where: the commit, the date, the machine's cores and the command.
fn provenance(args: &[String]) -> serde_json::Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    json!({
        "bench": "provenance",
        "commit": git(&["rev-parse", "HEAD"]),
        "dirty": !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "date": git(&["log", "-1", "--format=%cI"]),
        "measured_at_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "command": args.join(" "),
    })
}

fn stand_in_artifact() -> PathBuf {
    if let Ok(path) = std::env::var("RECONCILER_LAMBDA_ARTIFACT") {
        return PathBuf::from(path);
    }
    let path = std::env::temp_dir().join("reconciler-bench-bootstrap");
    std::fs::copy("/bin/true", &path).expect("a small x86_64 ELF binary as the stand-in package");
    // SAFETY: set before any thread that reads the environment starts.
    unsafe { std::env::set_var("RECONCILER_LAMBDA_ARTIFACT", &path) };
    path
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let apply_sizes = list(&args, "--apply", &[1, 20]);
    let noop_sizes = list(&args, "--noop", &[1, 20, 100]);
    let drift_size = list(&args, "--drift", &[100])
        .first()
        .copied()
        .unwrap_or(100);
    let rated_sizes = list(&args, "--rated", &[1, 20, 100]);
    println!("{}", provenance(&args));
    println!("{}", rate_table());
    let latency_ms = list(&args, "--latency-ms", &[50])
        .first()
        .copied()
        .unwrap_or(50) as u64;
    stand_in_artifact();

    // 2. First apply.
    let mut applied: HashMap<usize, (String, Prepared, tempfile::TempDir)> = HashMap::new();
    for &n in &apply_sizes {
        let (account, p, dir) = prepared(n, None).await;
        let rec = reconciler(&p);
        p.session.counter.reset();
        let (wall, observe, created) = apply(&p, &rec).await;
        let calls = p.session.counter.snapshot();
        println!(
            "{}",
            json!({
                "bench": "first-apply", "servers": n, "resources": p.graph.len(), "created": created,
                "wall_seconds": wall, "observe_seconds": observe,
                "reads": calls.reads, "mutations": calls.mutations, "calls": by_service(&calls),
            })
        );
        applied.insert(n, (account, p, dir));
    }

    // 3. No-op reconcile, and 4. drift among the largest.
    for &n in &noop_sizes {
        if let std::collections::hash_map::Entry::Vacant(slot) = applied.entry(n) {
            let (account, p, dir) = prepared(n, None).await;
            apply(&p, &reconciler(&p)).await;
            slot.insert((account, p, dir));
        }
        let (_, p, _) = &applied[&n];
        let rec = reconciler(p);
        // The first observation after an apply may still see the emulator settle; measure
        // the second.
        let _ = deploy::plan(p, &rec).await.unwrap();
        p.session.counter.reset();
        let started = Instant::now();
        let plan = deploy::plan(p, &rec).await.unwrap();
        let wall = started.elapsed().as_secs_f64();
        let report = rec.apply(&plan, &NoEvents).await;
        let calls = p.session.counter.snapshot();
        println!(
            "{}",
            json!({
                "bench": "no-op-warm", "servers": n, "resources": p.graph.len(),
                "changes": plan.resources().iter().filter(|r| r.action.is_change()).count(),
                "wall_seconds": wall, "reads": calls.reads, "mutations": calls.mutations,
                "reads_per_resource": calls.reads as f64 / p.graph.len() as f64,
                "applied_ok": report.is_success(), "calls": by_service(&calls),
            })
        );
    }
    for &n in &noop_sizes {
        let (account, p, dir) = &applied[&n];
        let proxy = counting_proxy(account, false);
        let mut line = fresh_run(
            &["plan", "--detailed-exitcode"],
            &proxy,
            account,
            dir.path(),
        );
        line["bench"] = json!("no-op");
        line["servers"] = json!(n);
        line["resources"] = json!(p.graph.len());
        line["reads_per_resource"] =
            json!(line["reads"].as_f64().unwrap_or(0.0) / p.graph.len() as f64);
        println!("{line}");
    }
    for &n in &rated_sizes {
        rated(n).await;
    }
    if let Some((account, p, _)) = applied.get(&drift_size) {
        let alarm_name = format!("rc-mc{:03}-idle", drift_size / 2);
        let region = home_region(&p.set);
        let cloudwatch =
            aws_sdk_cloudwatch::Client::new(&Emulator::shared().sdk_config(&region, account));
        let alarm = cloudwatch
            .describe_alarms()
            .alarm_names(&alarm_name)
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .first()
            .cloned();
        if let Some(alarm) = alarm {
            cloudwatch
                .put_metric_alarm()
                .alarm_name(&alarm_name)
                .set_alarm_description(alarm.alarm_description().map(str::to_string))
                .set_metrics(Some(alarm.metrics().to_vec()))
                .set_comparison_operator(alarm.comparison_operator().cloned())
                .threshold(99_999.0)
                .set_evaluation_periods(alarm.evaluation_periods())
                .set_datapoints_to_alarm(alarm.datapoints_to_alarm())
                .set_treat_missing_data(alarm.treat_missing_data().map(str::to_string))
                .set_alarm_actions(Some(alarm.alarm_actions().to_vec()))
                .send()
                .await
                .unwrap();
            let rec = reconciler(p);
            p.session.counter.reset();
            let started = Instant::now();
            let plan = deploy::plan(p, &rec).await.unwrap();
            let wall = started.elapsed().as_secs_f64();
            let calls = p.session.counter.snapshot();
            let changed: Vec<String> = plan
                .resources()
                .iter()
                .filter(|r| r.action.is_change())
                .map(|r| format!("{} {:?}", r.id, r.cause))
                .collect();
            println!(
                "{}",
                json!({
                    "bench": "drift", "servers": drift_size, "resources": p.graph.len(),
                    "wall_seconds": wall, "reads": calls.reads, "found": changed,
                })
            );
        }
    }

    // 5. First apply with added latency per call, against the critical path (`--latency-ms 0`
    // leaves it out).
    if latency_ms == 0 {
        return;
    }
    let proxy = Proxy::start(
        Emulator::shared().url(),
        FaultPlan {
            latency: Duration::from_millis(latency_ms),
            ..FaultPlan::default()
        },
    );
    // The scheduler's default concurrency, then one call at a time: the ratio of wall time to
    // critical path moves once calls wait for each other.
    for concurrency in [Options::default().max_concurrency, 1] {
        let requests_before = proxy.stats().requests;
        let (_, p, _dir) = prepared(1, Some(proxy.url())).await;
        let rec = Reconciler::new(
            reconciler_aws::provider(&p.session.pool),
            Options::default().with_max_concurrency(concurrency),
        );
        let planned = deploy::plan_with(&p, &rec, PlanOptions::default())
            .await
            .unwrap();
        let times: Arc<Mutex<Spans>> = Arc::default();
        let sink_times = times.clone();
        let sink = move |event: ApplyEvent| {
            let mut t = sink_times.lock().unwrap();
            match event.kind {
                EventKind::Started { .. } => {
                    t.insert(event.id, (Instant::now(), None));
                }
                EventKind::Succeeded { .. } | EventKind::Failed { .. } => {
                    if let Some(entry) = t.get_mut(&event.id) {
                        entry.1 = Some(Instant::now());
                    }
                }
                _ => {}
            }
        };
        let started = Instant::now();
        let report = rec.apply(&planned.plan, &sink).await;
        let wall = started.elapsed().as_secs_f64();
        assert!(report.is_success(), "{:?}", report.failures().next());
        // The longest chain of dependent operations, each as long as it took.
        let times = times.lock().unwrap();
        let duration = |id: &ResourceId| {
            times
                .get(id)
                .and_then(|(s, e)| e.map(|e| (e - *s).as_secs_f64()))
                .unwrap_or(0.0)
        };
        let mut finish: HashMap<ResourceId, f64> = HashMap::new();
        for r in planned.plan.resources() {
            let before = r
                .depends_on
                .iter()
                .map(|d| finish.get(d).copied().unwrap_or(0.0))
                .fold(0.0f64, f64::max);
            finish.insert(r.id.clone(), before + duration(&r.id));
        }
        let critical = finish.values().copied().fold(0.0, f64::max);
        println!(
            "{}",
            json!({
                "bench": "apply-under-latency", "servers": 1, "latency_ms": latency_ms,
                "max_concurrency": concurrency,
                "resources": p.graph.len(), "wall_seconds": wall,
                "critical_path_seconds": critical, "ratio": wall / critical,
                "requests": proxy.stats().requests - requests_before,
            })
        );
    }
    drop(proxy);
}
