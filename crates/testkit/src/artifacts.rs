//! The runtime Lambda binary for tests that apply whole specs.
//!
//! The provider packages `reconciler-lambda` from next to the running executable (a test binary
//! lives in `<target>/<profile>/deps/`, the Lambda binary in `<target>/<profile>/`).
//! `cargo test --workspace` builds it already; a test run of one package does not, so
//! [`ensure_lambda_artifact`] builds it once with the same cargo, target directory and profile.
//! It asks for one of the Lambda crate's integration tests with `--workspace` (cargo builds a
//! package's binaries for its integration tests), so features resolve as in `cargo test
//! --workspace` and a whole-suite run finds everything fresh; `cargo build -p` would resolve
//! the Lambda crate's features alone and compile the AWS SDK crates a second time.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

use crate::project_root;

/// The Lambda binary's name, as `crates/lambdas` builds it.
pub const LAMBDA_BINARY: &str = "reconciler-lambda";

/// An integration test of `crates/lambdas`: building it builds [`LAMBDA_BINARY`].
const LAMBDA_TEST: &str = "packaging";

/// Builds (if needed) the Lambda binary of the running test's profile and returns its path.
pub fn ensure_lambda_artifact() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // <target>/<profile>/deps/<test>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow!("unexpected test binary location {}", exe.display()))?
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| anyhow!("unexpected profile directory {}", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(project_root())
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--quiet",
            "--test",
            LAMBDA_TEST,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    let status = command
        .status()
        .context("running cargo to build the Lambda binary")?;
    if !status.success() {
        bail!("building {LAMBDA_BINARY} failed ({status})");
    }
    let path = profile_dir.join(LAMBDA_BINARY);
    if !path.is_file() {
        bail!("{} is missing after the build", path.display());
    }
    Ok(path)
}
