//! `cargo xtask emulator [--port N] [--quiet]`: runs the local AWS emulator in
//! the foreground until Ctrl-C, for the demo and for manual poking.
//!
//! Tests do not need this (they start their own emulator), but they reuse a
//! running one when `EMULATOR_ENDPOINT` is set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};

// Shared with the test harness; depends on std and anyhow only.
#[path = "../../crates/testkit/src/venv.rs"]
mod venv;

const USAGE: &str = "usage: cargo xtask emulator [--port N] [--quiet]";

pub fn run(args: &[String]) -> Result<()> {
    let mut port = String::from("0");
    let mut quiet = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args.next().context(USAGE)?.clone();
            }
            other if other.starts_with("--port=") => port = other["--port=".len()..].to_owned(),
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}\n  --port N   port to listen on (default 0: a free port)\n  --quiet    do not log each request");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if port.parse::<u16>().is_err() {
        bail!("--port needs a number from 0 to 65535, got `{port}`");
    }

    let root = project_root();
    let (mut child, url, lines) = spawn(&root, &port, quiet)?;
    println!("emulator: listening on {url} (Ctrl-C stops it)");
    println!("export AWS_ENDPOINT_URL={url}");
    println!("emulator: tests reuse it with EMULATOR_ENDPOINT={url}; pick an account per client with the x-moto-account-id header");
    // Pass anything else the server prints through.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    let status = child.wait().context("waiting for the emulator")?;
    // Ctrl-C: the launcher exits 0, or the signal ended it.
    if !status.success() && status.code().is_some() {
        bail!("the emulator exited with {status}");
    }
    Ok(())
}

/// The emulator venv's python (installing the venv first if needed).
pub fn venv_python(root: &Path) -> Result<PathBuf> {
    venv::ensure_venv(root)
}

/// Starts the launcher (installing its venv first if needed) and waits for its URL. The
/// launcher stops when this process exits (`--exit-with-parent`); stdin and stderr stay the
/// terminal's, so Ctrl-C reaches it and tracebacks show.
pub fn spawn(
    root: &Path,
    port: &str,
    quiet: bool,
) -> Result<(Child, String, std::io::Lines<BufReader<ChildStdout>>)> {
    let python = venv::ensure_venv(root)?;
    let mut command = Command::new(&python);
    command
        .arg(root.join(venv::LAUNCHER))
        .args(["--port", port, "--exit-with-parent"])
        .current_dir(root)
        .stdout(Stdio::piped());
    if quiet {
        command.arg("--quiet");
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.starts_with("EMULATOR_READY ") => {
            let url = line["EMULATOR_READY ".len()..].trim().to_string();
            Ok((child, url, lines))
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the emulator did not start (first output: {other:?})");
        }
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the project root")
        .to_path_buf()
}
