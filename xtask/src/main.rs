//! Developer tasks: `cargo xtask <task>`. Thin wrappers over cargo and the emulator harness.

use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

mod bench;
mod demo;
mod emulator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((task, rest)) = args.split_first() else {
        bail!("usage: cargo xtask <test|demo|bench|emulator>");
    };
    match task.as_str() {
        "test" => test(rest),
        "emulator" => emulator::run(rest),
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        other => bail!("unknown task `{other}`; expected one of: test, demo, bench, emulator"),
    }
}

/// Runs a cargo subcommand from the workspace root and fails on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The README's test command: formatting, lints, and every test in the workspace.
fn test(_rest: &[String]) -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace"])?;
    Ok(())
}
