//! The `reconciler` binary as a user runs it: exit codes, located errors, no panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reconciler(args: &[&str]) -> Output {
    reconciler_with_stdin(args, None)
}

fn reconciler_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            pipe.write_all(bytes).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_examples() {
    let out = reconciler(&["validate", "-f", "specs/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("valid: 4 file(s), 1 Base(s), 3 ContainerSpec(s)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn validate_reads_files_and_stdin() {
    let base = std::fs::read(root().join("specs/base.yaml")).unwrap();
    let out = reconciler_with_stdin(
        &["validate", "-f", "-", "-f", "specs/minecraft.yaml"],
        Some(&base),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn text_output_shows_file_line_col_source_and_hint() {
    let out = reconciler(&["validate", "-f", "tests/corpus/invalid/unknown-keys.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("tests/corpus/invalid/unknown-keys.yaml:12:5: error: spec.container.imgae: unknown key `imgae`"),
        "{err}"
    );
    assert!(err.contains("    imgae: typo"), "{err}");
    assert!(err.contains("= hint: did you mean `image`?"), "{err}");
    assert!(err.contains("nothing was sent to AWS"), "{err}");
}

#[test]
fn missing_paths_are_errors_not_panics() {
    let out = reconciler(&["validate", "-f", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does/not/exist.yaml:1:1: error: no such file or directory"));
}

#[test]
fn watch_rejects_a_bad_interval() {
    let out = reconciler(&["watch", "-f", "specs/", "--interval", "5 parsecs"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(
        text(&out.stderr).contains("the unit must be s, m or h"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn day2_commands_check_their_input_before_any_aws_call() {
    for args in [
        &["status", "-f", "does/not/exist.yaml"][..],
        &["wake", "-f", "does/not/exist.yaml", "minecraft"][..],
        &["sleep", "-f", "does/not/exist.yaml", "minecraft"][..],
        &["watch", "-f", "does/not/exist.yaml", "--cycles", "1"][..],
    ] {
        let out = reconciler(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("does/not/exist.yaml:1:1: error"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A server name is required.
    let out = reconciler(&["wake", "-f", "specs/"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let out = reconciler(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let on_disk = std::fs::read(root().join("schema/reconciler.schema.json")).unwrap();
    assert_eq!(out.stdout, on_disk);
}

#[test]
fn import_writes_a_document_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let base_out = dir.path().join("base.yaml");
    let leaf_out = dir.path().join("mc.yaml");
    let out = reconciler(&[
        "import",
        "tests/corpus/original/base-stack-config.yaml",
        "--name",
        "main",
        "--region",
        "eu-west-1",
        "-o",
        base_out.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = reconciler(&[
        "import",
        "tests/corpus/original/Minecraft.java.example.yaml",
        "--name",
        "minecraft",
        "-o",
        leaf_out.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_reconciler"))
        .args(["validate", "-f", dir.path().to_str().unwrap()])
        .env("DOMAIN_NAME", "example.com")
        .env("HOSTED_ZONE_ID", "Z0123456789ABC")
        .env("EMAILS", "a@example.com b@example.com")
        .env("TIMEZONE", "UTC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = reconciler(&["import", "specs/base.yaml", "--name", "x"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "our own format is not the original's"
    );
    assert!(
        text(&out.stderr).contains("unknown key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn aws_commands_refuse_invalid_input_before_any_call() {
    // An unreachable endpoint: reaching it would fail differently (and slowly).
    for verb in ["plan", "apply", "destroy", "render"] {
        let out = reconciler(&[
            verb,
            "--endpoint-url",
            "http://127.0.0.1:9",
            "-f",
            "tests/corpus/invalid/out-of-range.yaml",
        ]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = text(&out.stderr);
        assert!(err.contains("expected 1 to 1440 minutes"), "{verb}: {err}");
        assert!(!err.contains("GetCallerIdentity"), "{verb}: {err}");
    }
}
