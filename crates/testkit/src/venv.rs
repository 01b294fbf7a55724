//! Creates and refreshes the emulator's Python virtual environment.
//!
//! This file depends on `std` and `anyhow` only: `xtask` includes it with
//! `#[path]` so that `cargo xtask emulator` and the test harness share one
//! implementation without xtask pulling in the AWS SDK.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};

/// Environment variable naming a Python interpreter that already has the
/// emulator's requirements installed; when set, no venv is created.
pub const PYTHON_ENV: &str = "EMULATOR_PYTHON";
/// The venv's directory, relative to the project root.
pub const VENV_DIR: &str = ".venv-emulator";
/// The pinned requirements, relative to the project root.
pub const REQUIREMENTS: &str = "emulator/requirements.txt";
/// The launcher script, relative to the project root.
pub const LAUNCHER: &str = "emulator/launcher.py";

const STAMP: &str = ".requirements-stamp";
const LOCK_WAIT: Duration = Duration::from_secs(15 * 60);

/// Returns the Python interpreter that runs the emulator.
///
/// Honours `EMULATOR_PYTHON`. Otherwise creates `<root>/.venv-emulator` with
/// `python3 -m venv` and installs `emulator/requirements.txt` into it when the
/// venv is missing or the requirements changed since the last install (a stamp
/// file in the venv holds a hash of requirements.txt). Progress goes to stderr.
/// Concurrent callers (parallel test binaries) serialise on a lock directory.
pub fn ensure_venv(project_root: &Path) -> Result<PathBuf> {
    ensure_tool_venv(
        project_root,
        &ToolVenv {
            label: "emulator",
            env_override: Some(PYTHON_ENV),
            dir: VENV_DIR,
            requirements: REQUIREMENTS,
        },
    )
}

/// A project-local Python venv holding pinned tools.
#[derive(Debug, Clone, Copy)]
pub struct ToolVenv<'a> {
    /// Prefix of progress lines (`emulator`, `chart tools`).
    pub label: &'a str,
    /// Environment variable naming an interpreter that already has the requirements.
    pub env_override: Option<&'a str>,
    /// The venv's directory, relative to the project root.
    pub dir: &'a str,
    /// The pinned requirements, relative to the project root.
    pub requirements: &'a str,
}

/// Creates or refreshes the venv `tool` describes and returns its interpreter: the same
/// mechanism as [`ensure_venv`] (stamp of the requirements' hash, a lock for parallel
/// callers), for any set of pinned tools.
pub fn ensure_tool_venv(project_root: &Path, tool: &ToolVenv<'_>) -> Result<PathBuf> {
    if let Some(python) = tool
        .env_override
        .and_then(std::env::var_os)
        .filter(|v| !v.is_empty())
    {
        return Ok(PathBuf::from(python));
    }
    let label = tool.label;
    let requirements_path = project_root.join(tool.requirements);
    let requirements = fs::read(&requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let wanted = format!("{:016x}\n", fnv1a64(&requirements));
    let venv = project_root.join(tool.dir);
    let python = venv_python(&venv);
    let stamp = venv.join(STAMP);
    let up_to_date =
        || python.exists() && fs::read_to_string(&stamp).is_ok_and(|have| have == wanted);
    if up_to_date() {
        return Ok(python);
    }

    let _lock = DirLock::acquire(&project_root.join(format!("{}.lock", tool.dir)), label)?;
    if up_to_date() {
        // Another process finished the install while we waited.
        return Ok(python);
    }
    let started = Instant::now();
    if !python.exists() {
        if venv.exists() {
            fs::remove_dir_all(&venv)
                .with_context(|| format!("removing broken venv {}", venv.display()))?;
        }
        say(&format!(
            "{label}: creating Python venv in {}",
            venv.display()
        ));
        let status = match Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
        {
            Ok(status) => status,
            Err(err) if err.kind() == ErrorKind::NotFound => bail!(
                "python3 was not found on PATH; {label} needs Python 3.9 or newer \
                 (Debian: apt-get install python3 python3-venv){}",
                tool.env_override
                    .map(|v| format!(
                        ", or set {v} to an interpreter that has {} installed",
                        tool.requirements
                    ))
                    .unwrap_or_default()
            ),
            Err(err) => return Err(err).context("running python3 -m venv"),
        };
        if !status.success() {
            bail!(
                "`python3 -m venv {}` failed ({status}); on Debian/Ubuntu install python3-venv",
                venv.display()
            );
        }
    }
    say(&format!(
        "{label}: installing {} (first run takes about a minute)",
        tool.requirements
    ));
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
        ])
        .arg(&requirements_path)
        .status()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    if !status.success() {
        bail!(
            "pip install -r {} failed ({status}); the packages come from PyPI, so the first \
             run needs network access to it",
            requirements_path.display()
        );
    }
    fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
    say(&format!(
        "{label}: venv ready in {:.0?} ({})",
        started.elapsed(),
        python.display()
    ));
    Ok(python)
}

/// The interpreter inside a venv directory.
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// Progress line on stderr. Written to the stream directly rather than with
/// `eprintln!`, which libtest captures: a first install takes a while and the
/// person running `cargo test` should see why.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// 64-bit FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A cross-process lock: a directory that exists while someone installs.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path, label: &str) -> Result<Self> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut told = false;
        loop {
            match fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_path_buf())),
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(anyhow!(err))
                        .with_context(|| format!("creating {}", path.display()))
                }
            }
            // A lock older than the longest install is left over from a killed run.
            let stale = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > LOCK_WAIT);
            if stale {
                let _ = fs::remove_dir(path);
                continue;
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {}; remove it if no install is running",
                    path.display()
                );
            }
            if !told {
                say(&format!(
                    "{label}: waiting for another process to finish the venv install"
                ));
                told = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}
