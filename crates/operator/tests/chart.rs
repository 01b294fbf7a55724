//! The Helm chart, checked offline by `tests/k8s/check_chart.py`: `helm lint --strict` and
//! `helm template` of both modes for two Kubernetes versions (Helm's Go SDK), the rendered
//! objects against those versions' schemas, the example specs against the CRD schemas, and
//! the chart's least-privilege and pod-security promises. The tools are pinned in
//! `tests/k8s/requirements.txt` and installed into `.venv-k8s` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use reconciler_testkit::{ensure_tool_venv, ToolVenv};

/// The oldest Kubernetes the chart supports and the newest the client is built for.
const KUBERNETES: [&str; 2] = ["1.29.0", "1.34.0"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_chart_lints_renders_and_validates_offline() {
    let root = root();
    let python = ensure_tool_venv(
        &root,
        &ToolVenv {
            label: "kubernetes test tools",
            env_override: Some("K8S_TOOLS_PYTHON"),
            dir: ".venv-k8s",
            requirements: "tests/k8s/requirements.txt",
        },
    )
    .expect("the chart tools (helm-python-sdk, kubernetes-validate, check-jsonschema)");
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/k8s/check_chart.py"))
        .arg("--chart")
        .arg(root.join("charts/reconciler"))
        .arg("--specs")
        .arg(root.join("specs"));
    for version in KUBERNETES {
        cmd.args(["--kube", version]);
    }
    let out = cmd.output().expect("running check_chart.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failures: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("ok")).collect();
    assert!(out.status.success(), "{}\n{stderr}", failures.join("\n"));
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed > 100, "too few checks ran: {summary}");
}
