//! `cargo xtask demo`: the README's first command. On a fresh machine it installs the local AWS
//! emulator, starts it, builds `reconciler` and `reconciler-lambda`, and runs it against the emulator on `specs/`:
//! validate, plan, apply (with progress), and a second plan that finds nothing to do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{bail, Context, Result};

use crate::emulator;

/// Stops the emulator when the demo ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        if arg == "-h" || arg == "--help" {
            println!("usage: cargo xtask demo\n  applies specs/ to a local AWS emulator and shows that a second plan has nothing to do");
            return Ok(());
        }
        bail!("unknown argument `{arg}`; usage: cargo xtask demo");
    }
    let root = emulator::project_root();

    // The runtime Lambdas' binary lands next to `reconciler`, where apply finds and packages it.
    step("building reconciler and its runtime Lambda binary");
    crate::cargo(&[
        "build",
        "--quiet",
        "-p",
        "reconciler-cli",
        "-p",
        "reconciler-lambdas",
    ])?;
    let binary = target_dir(&root).join("debug").join("reconciler");

    step("starting the local AWS emulator");
    let (child, url, _lines) = emulator::spawn(&root, "0", true)?;
    let _running = Running(child);
    println!("emulator at {url}");

    // The Base names a root zone the user already owns; in the emulator the demo creates it.
    step("creating the Base's root zone (games.example.com) in the emulator");
    let zone_id = root_zone(&root, &url)?;
    println!("root zone {zone_id}");

    let reconciler = |args: &[&str]| -> Result<i32> {
        println!("\n$ reconciler {}", args.join(" "));
        let status = Command::new(&binary)
            .args(args)
            .current_dir(&root)
            // Everything goes to the emulator, with throw-away credentials; nothing from the
            // user's own AWS configuration is read.
            .env("AWS_ENDPOINT_URL", &url)
            .env("AWS_ACCESS_KEY_ID", "demo")
            .env("AWS_SECRET_ACCESS_KEY", "demo")
            .env("AWS_REGION", "us-west-2")
            .env("HOSTED_ZONE_ID", &zone_id)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .status()
            .with_context(|| format!("running {}", binary.display()))?;
        Ok(status.code().unwrap_or(1))
    };

    step("1. validate the specs (no AWS call)");
    expect(reconciler(&["validate", "-f", "specs/"])?, 0, "validate")?;
    step("2. plan: everything is to be created");
    expect(
        reconciler(&["plan", "-f", "specs/", "--detailed-exitcode"])?,
        2,
        "first plan",
    )?;
    step("3. apply");
    expect(reconciler(&["apply", "-f", "specs/"])?, 0, "apply")?;
    step("4. plan again: nothing to do");
    expect(
        reconciler(&["plan", "-f", "specs/", "--detailed-exitcode"])?,
        0,
        "second plan",
    )?;
    step("done: the emulator stops now; nothing was sent to AWS");
    Ok(())
}

/// Creates the examples' root zone with boto3 from the emulator's venv and returns its id.
fn root_zone(root: &Path, url: &str) -> Result<String> {
    let python = crate::emulator::venv_python(root)?;
    let script = "import boto3, sys, time\n\
        r = boto3.client('route53', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
            aws_access_key_id='demo', aws_secret_access_key='demo')\n\
        z = r.create_hosted_zone(Name='games.example.com.', CallerReference=str(time.time()))\n\
        print(z['HostedZone']['Id'].split('/')[-1])\n";
    let out = Command::new(python)
        .args(["-c", script, url])
        .output()
        .context("running the emulator's python")?;
    if !out.status.success() {
        bail!(
            "creating the root zone failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

fn expect(code: i32, want: i32, what: &str) -> Result<()> {
    if code != want {
        bail!("{what} exited with {code}, expected {want}");
    }
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}
