//! Bad input through the `reconciler` binary: every file of `tests/corpus/invalid`, and huge
//! or hostile inputs generated here, end with exit code 1 and located errors, without a panic
//! or a hang, and without a single request to AWS: the AWS commands run against a TCP listener
//! of this test, which must see no connection at all.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A stand-in for the AWS endpoint that counts the connections made to it (and drops them at
/// once, so a command that wrongly calls out fails fast instead of waiting for an answer).
struct Endpoint {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Endpoint { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Runs the binary from the project root with dummy credentials and no other AWS set-up from
/// the environment (profiles, config files, instance metadata).
fn reconciler(args: &[&str]) -> Output {
    reconciler_with_env(args, &[])
}

/// [`reconciler`] with more environment variables.
fn reconciler_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "dummy-secret")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `# expect: LINE:COL TEXT` lines of a corpus file.
fn expectations(file: &Path) -> Vec<(usize, usize, String)> {
    let Ok(content) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    content
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|rest| {
            let (pos, want) = rest.split_once(' ').unwrap();
            let (line, col) = pos.split_once(':').unwrap();
            (
                line.parse().unwrap(),
                col.parse().unwrap(),
                want.to_string(),
            )
        })
        .collect()
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/corpus/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "{files:?}");
    files
}

/// `validate -o json` on one file: exit 1, located diagnostics, each expectation met.
fn validate_json(rel: &str, file: &Path) -> Vec<serde_json::Value> {
    let out = reconciler(&["validate", "-o", "json", "-f", rel]);
    assert_eq!(out.status.code(), Some(1), "{rel}: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false, "{rel}");
    let diags = report["diagnostics"].as_array().unwrap().clone();
    assert!(
        diags.iter().any(|d| d["severity"] == "error"),
        "{rel}: no error"
    );
    for d in &diags {
        assert_eq!(d["file"], rel, "{d}");
        assert!(
            d["line"].as_u64().unwrap() >= 1 && d["col"].as_u64().unwrap() >= 1,
            "{d}"
        );
        assert!(!d["message"].as_str().unwrap().is_empty(), "{d}");
    }
    for (line, col, want) in expectations(file) {
        let hit = diags.iter().any(|d| {
            let path = d["path"].as_str().unwrap();
            let message = d["message"].as_str().unwrap();
            let shown = if path.is_empty() {
                message.to_string()
            } else {
                format!("{path}: {message}")
            };
            d["line"] == line && d["col"] == col && shown.starts_with(&want)
        });
        assert!(hit, "{rel}: expected {line}:{col} {want}, got {diags:#?}");
    }
    diags
}

/// `plan` and `apply` on one input: exit 1, the first error located in the text output,
/// nothing sent.
fn aws_commands_refuse(rel: &str, endpoint: &Endpoint, first_error: &serde_json::Value) {
    let located = format!(
        "{rel}:{}:{}: error: ",
        first_error["line"], first_error["col"]
    );
    for verb in ["plan", "apply"] {
        let out = reconciler(&[verb, "--endpoint-url", &endpoint.url, "-f", rel]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb} {rel}: {err}");
        assert!(
            err.contains(&located),
            "{verb} {rel}: no `{located}` in {err}"
        );
        assert!(
            err.contains("nothing was sent to AWS"),
            "{verb} {rel}: {err}"
        );
        for output in [&err, &text(&out.stdout)] {
            assert!(!output.contains("panicked"), "{verb} {rel}: {output}");
        }
        assert_eq!(
            endpoint.connections(),
            0,
            "{verb} {rel} reached the endpoint"
        );
    }
}

#[test]
fn every_corpus_file_gives_located_errors_exit_1_and_no_aws_call() {
    let endpoint = Endpoint::start();
    for file in corpus() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let rel = format!("tests/corpus/invalid/{name}");
        let diags = validate_json(&rel, &file);
        let first_error = diags.iter().find(|d| d["severity"] == "error").unwrap();
        aws_commands_refuse(&rel, &endpoint, first_error);
    }
    // Files that cannot carry `# expect:` lines.
    let message = |name: &str| {
        let rel = format!("tests/corpus/invalid/{name}");
        let d = validate_json(&rel, &root().join(&rel));
        (
            d[0]["line"].as_u64().unwrap(),
            d[0]["col"].as_u64().unwrap(),
            d[0]["message"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        message("empty.yaml"),
        (1, 1, "file has no documents".into())
    );
    assert_eq!(
        message("bom-only.yaml"),
        (1, 1, "file has no documents".into())
    );
    let (line, col, utf8) = message("not-utf8.yaml");
    assert_eq!((line, col), (2, 4));
    assert!(utf8.contains("not valid UTF-8"), "{utf8}");
}

#[test]
fn the_whole_corpus_at_once_reports_every_file() {
    let out = reconciler(&["validate", "-o", "json", "-f", "tests/corpus/invalid"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = report["diagnostics"].as_array().unwrap();
    for file in corpus() {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            diags.iter().any(
                |d| d["file"].as_str().unwrap().ends_with(&format!("/{name}"))
                    && d["severity"] == "error"
            ),
            "{name}: no error when read with the others"
        );
    }
}

/// Inputs too big to keep in the repository, each with the start of the message it must get
/// and where.
fn generated(dir: &Path) -> Vec<(PathBuf, (usize, usize), &'static str)> {
    let mut out = Vec::new();
    let mut add = |name: &str, content: Vec<u8>, at: (usize, usize), want: &'static str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        out.push((path, at, want));
    };
    // 20 MB: refused before it is parsed.
    let mut big = b"a: ".to_vec();
    big.resize(20 * 1024 * 1024, b'x');
    add(
        "big.yaml",
        big,
        (1, 1),
        "file is 20971520 bytes; spec files are limited to 4194304 bytes",
    );
    // 150,000 keys: past the value limit at the 100,000th key.
    let keys: String = (0..150_000).map(|i| format!("k{i:06}: 1\n")).collect();
    add(
        "keys.yaml",
        keys.into_bytes(),
        (100_000, 10),
        "invalid YAML: the file has more than 200000 values",
    );
    // A million nested block sequences on one line (this overflowed the parser's stack).
    add(
        "nested.yaml",
        format!("{}x\n", "- ".repeat(1_000_000)).into_bytes(),
        (1, 129),
        "invalid YAML: nesting deeper than 64 levels",
    );
    // A million open brackets.
    add(
        "brackets.yaml",
        "[".repeat(1_000_000).into_bytes(),
        (1, 256),
        "invalid YAML: nesting deeper than the parser's limit",
    );
    // Ten levels of ten aliases: 10^10 values once expanded.
    let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*l{p}"); 10].join(", ");
        bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    add(
        "bomb.yaml",
        bomb.into_bytes(),
        (6, 10),
        "invalid YAML: the file expands to more than 200000 values",
    );
    // A server with 60,000 wrongly typed ports: the first problems, then a stop.
    let mut ports = String::from(
        "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata: {name: ports}\nspec:\n  ec2: {instanceType: m5.large}\n  container:\n    image: itzg/minecraft-server\n    ports:\n",
    );
    for i in 0..60_000 {
        ports.push_str(&format!("      - {{port: p{i}}}\n"));
    }
    ports.push_str("  watchdog: {threshold: 1}\n");
    add(
        "ports.yaml",
        ports.into_bytes(),
        (9, 16),
        "spec.container.ports[0].port: expected a non-negative integer, found a string",
    );
    out
}

#[test]
fn huge_and_hostile_inputs_fail_fast_with_located_errors() {
    let endpoint = Endpoint::start();
    let dir = tempfile::tempdir().unwrap();
    for (path, (line, col), want) in generated(dir.path()) {
        let rel = path.to_str().unwrap();
        let started = Instant::now();
        let out = reconciler(&["validate", "-f", rel]);
        let took = started.elapsed();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{rel}: {err}");
        let located = format!("{rel}:{line}:{col}: error: {want}");
        assert!(
            err.contains(&located),
            "{rel}: no `{located}` in {}",
            &err[..err.len().min(2000)]
        );
        assert!(!err.contains("panicked"), "{rel}");
        // Generous for a debug build on a busy machine; a hang or a quadratic path takes
        // minutes.
        assert!(took < Duration::from_secs(60), "{rel} took {took:?}");
        let out = reconciler(&["plan", "--endpoint-url", &endpoint.url, "-f", rel]);
        assert_eq!(out.status.code(), Some(1), "plan {rel}");
        assert!(text(&out.stderr).contains(&located), "plan {rel}");
    }
    assert_eq!(endpoint.connections(), 0, "an input reached the endpoint");
}

#[test]
fn the_listener_does_count_connections() {
    // The zero-connection checks above mean something only if a command that does call AWS
    // shows up here: valid specs make `plan` connect at once.
    let endpoint = Endpoint::start();
    let out = reconciler(&["plan", "--endpoint-url", &endpoint.url, "-f", "specs/"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(endpoint.connections() > 0, "{}", text(&out.stderr));
}

/// A device or a stream with no end is cut off at the size limit while it is read: the
/// command fails at once with a located error instead of reading until memory runs out.
#[test]
fn endless_inputs_stop_at_the_size_limit_while_reading() {
    let started = Instant::now();
    let out = reconciler(&["validate", "-f", "/dev/zero"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "/dev/zero:1:1: error: file is more than 4194304 bytes; spec files are limited to 4194304 bytes"
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // Standard input that never ends: a writer keeps sending until the command hangs up.
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["validate", "-f", "-"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = "k: value\n".repeat(1024);
        let mut sent = 0usize;
        // Bounded so the test ends even if the command kept reading: 64 times the limit.
        while sent < 64 * 4 * 1024 * 1024 {
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return sent;
            }
            sent += chunk.len();
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    let sent = writer.join().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("<stdin>:1:1: error: file is more than 4194304 bytes"),
        "{err}"
    );
    assert!(
        sent < 64 * 4 * 1024 * 1024,
        "the command read {sent} bytes without stopping"
    );
}

/// Values that come from the environment may be secrets: no diagnostic quotes one back,
/// whatever check refuses it (a wrong type, an out-of-range number, an invalid region, a
/// value inside a longer string), in text or JSON, from `validate` or an AWS command.
#[test]
fn environment_values_never_appear_in_the_output() {
    const SECRET: &str = "Pl4nted-S3cret";
    const NUMBER: &str = "7654321";
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("planted.yaml");
    std::fs::write(
        &spec,
        "apiVersion: reconciler.dev/v1alpha1
kind: Base
metadata:
  name: main
spec:
  region: ${PLANTED_SECRET}
  vpc:
    maxAzs: ${PLANTED_NUMBER}
  domain:
    name: games.example.com
    hostedZoneId: Z-${PLANTED_SECRET}
---
apiVersion: reconciler.dev/v1alpha1
kind: ContainerSpec
metadata:
  name: mc
spec:
  baseRef: main
  ec2:
    instanceType: m5.large
  container:
    image: itzg/minecraft-server
    ports:
      - port: ${PLANTED_SECRET}
      - port: 25565
        protocol: ${PLANTED_SECRET}
  watchdog:
    threshold: 1175
---
apiVersion: reconciler.dev/v1alpha1
kind: ContainerSpec
metadata:
  name: other
spec:
  baseRef: main
  ec2:
    instanceType: m5.large
  container:
    image: itzg/minecraft-server
    ports:
      - port: ${PLANTED_NUMBER}
  watchdog:
    threshold: 1175
",
    )
    .unwrap();
    let spec = spec.to_str().unwrap();
    let env = [("PLANTED_SECRET", SECRET), ("PLANTED_NUMBER", NUMBER)];
    let endpoint = Endpoint::start();
    let runs: [&[&str]; 4] = [
        &["validate", "-f", spec],
        &["validate", "-o", "json", "-f", spec],
        &["plan", "--endpoint-url", &endpoint.url, "-f", spec],
        &["render", "-f", spec],
    ];
    for args in runs {
        let out = reconciler_with_env(args, &env);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        for planted in [SECRET, NUMBER] {
            assert!(!all.contains(planted), "{args:?} shows {planted}: {all}");
        }
        for want in [
            "`${PLANTED_SECRET}` is not an AWS region",
            "`Z-${PLANTED_SECRET}` is not a hosted zone id",
            "got ${PLANTED_NUMBER}",
            "expected a port from 1 to 65535, got ${PLANTED_NUMBER}",
            "expected a non-negative integer, found a string",
            "unknown value `${PLANTED_SECRET}`",
        ] {
            assert!(all.contains(want), "{args:?}: no `{want}` in {all}");
        }
    }
    assert_eq!(endpoint.connections(), 0);
}
