//! `reconciler operator` over real HTTP: the binary runs against kmock's Kubernetes API
//! emulator (`tests/k8s/kube_api_smoke.py`), takes the leader Lease, lists and watches
//! ContainerSpecs, adds its finalizer, writes status, releases the finalizer of a deleted
//! object, and on SIGTERM stops cleanly and releases the Lease. AWS is never reached.

use std::path::{Path, PathBuf};
use std::process::Command;

use reconciler_testkit::{ensure_tool_venv, ToolVenv};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_operator_binary_talks_to_a_kubernetes_api_over_http() {
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
    .expect("the Kubernetes test tools (kmock)");
    let out = Command::new(python)
        .arg(root.join("tests/k8s/kube_api_smoke.py"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_reconciler"))
        .args(["--timeout", "30"])
        .output()
        .expect("running kube_api_smoke.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let passed: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 11, "{stdout}");
}
