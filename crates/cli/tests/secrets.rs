//! Secret values never appear in what `reconciler` prints: not in `validate`, `render`,
//! `plan` (text and JSON), `apply`, `status` (every format), nor in the JSON logs of `watch`.
//!
//! Three kinds of secret are planted in the emulator's account, each with a value this test
//! knows:
//!
//! - the values of the SSM parameters the example specs name in `container.secrets` (the way
//!   secrets are meant to be passed: `reconciler` handles only their names);
//! - a secret written as a plain environment variable, `ADMIN_TOKEN: ${RECONCILER_TEST_TOKEN}`
//!   (validation warns about it; it does reach the task definition, where this test finds it,
//!   and every printed plan or resource shows it as `(sensitive)`), changed between two
//!   applies so the value before and the value after are both in play;
//! - the private key of the SSH key pair the Base creates when it opens SSH, which `apply`
//!   stores in SSM Parameter Store.
//!
//! An ordinary environment variable, `MOTD: ${RECONCILER_TEST_MOTD}`, is hidden too unless
//! `--show-values` asks for it: environment values often come from the environment of whoever
//! runs the command, and printed plans end up in CI logs. With the flag it is shown, while the
//! secret-named one stays `(sensitive)`.
//!
//! The binary cannot choose an emulator account (it sends no account header), so it works in
//! the emulator's default account, which no other test of this binary uses.

mod common;

use std::path::Path;
use std::process::Stdio;

use reconciler_testkit::Emulator;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-west-2";
const TOKEN: &str = "env-sentinel-first-7f3a9c2e";
const TOKEN_CHANGED: &str = "env-sentinel-second-51d04b7a";
const MOTD: &str = "plain-sentinel-first-0c9e71d3";
const MOTD_CHANGED: &str = "plain-sentinel-second-a4b2e690";

/// The parameters the example specs reference, with the values planted in them.
fn ssm_secrets() -> Vec<(&'static str, String)> {
    [
        "/games/minecraft/rcon-password",
        "/games/palworld/server-password",
        "/games/palworld/admin-password",
        "/games/valheim/server-password",
    ]
    .into_iter()
    .enumerate()
    .map(|(i, name)| (name, format!("ssm-sentinel-{i}-c41b9e0d")))
    .collect()
}

/// The example specs, with SSH opened in the Base (so a key pair is made) and a secret-named
/// plain environment variable in minecraft.
fn specs(dir: &Path) {
    for entry in std::fs::read_dir(common::specs_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        match path.file_name().unwrap().to_str().unwrap() {
            "base.yaml" => text.push_str("  ssh:\n    allowFrom: [203.0.113.7/32]\n"),
            "minecraft.yaml" => {
                let at = text.find("    environment:\n").unwrap() + "    environment:\n".len();
                text.insert_str(
                    at,
                    "      ADMIN_TOKEN: ${RECONCILER_TEST_TOKEN}\n      MOTD: ${RECONCILER_TEST_MOTD}\n",
                );
            }
            _ => {}
        }
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
}

struct Run {
    label: String,
    code: Option<i32>,
    output: String,
}

fn reconciler(zone: &str, token: &str, args: &[&str]) -> Run {
    let out = common::binary(Emulator::shared().url())
        .args(args)
        .env("HOSTED_ZONE_ID", zone)
        .env("RECONCILER_TEST_TOKEN", token)
        .env(
            "RECONCILER_TEST_MOTD",
            if token == TOKEN { MOTD } else { MOTD_CHANGED },
        )
        .env("AWS_REGION", REGION)
        // Every log line the binary can write, the SDK's included.
        .env("RECONCILER_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        label: args.join(" "),
        code: out.status.code(),
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_appear_in_any_output() {
    reconciler_testkit::ensure_lambda_artifact().unwrap();
    let emulator = Emulator::shared();
    let zone = common::root_zone(&emulator.sdk_config("us-east-1", ACCOUNT)).await;
    let config = emulator.sdk_config(REGION, ACCOUNT);
    let ssm = aws_sdk_ssm::Client::new(&config);
    for (name, value) in ssm_secrets() {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    specs(dir.path());
    let f = dir.path().to_str().unwrap();

    let mut runs = Vec::new();
    for args in [
        &["validate", "-f", f][..],
        &["validate", "-o", "json", "-f", f],
        &["render", "--account-id", ACCOUNT, "-f", f],
        &["render", "-o", "json", "--account-id", ACCOUNT, "-f", f],
        &["plan", "-f", f],
        &["plan", "-o", "json", "-f", f],
        &["apply", "-f", f],
        &["plan", "-f", f],
        &["status", "-f", f],
        &["status", "-o", "json", "-f", f],
        &["status", "-o", "yaml", "-f", f],
        &["watch", "--cycles", "1", "--log-format", "json", "-f", f],
    ] {
        runs.push(reconciler(&zone, TOKEN, args));
    }
    // The secret changes: the plan shows the task definition's old and new environment.
    for args in [
        &["plan", "-f", f][..],
        &["plan", "-o", "json", "-f", f],
        &["apply", "-f", f],
        &["watch", "--cycles", "1", "--log-format", "json", "-f", f],
    ] {
        runs.push(reconciler(&zone, TOKEN_CHANGED, args));
    }
    for run in &runs {
        assert_eq!(run.code, Some(0), "{}:\n{}", run.label, run.output);
    }

    // The planted values are really there, so their absence from the output means something.
    let ecs = aws_sdk_ecs::Client::new(&config);
    let td = ecs
        .describe_task_definition()
        .task_definition("rc-minecraft")
        .send()
        .await
        .unwrap();
    let env: Vec<(String, String)> = td.task_definition().unwrap().container_definitions()[0]
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_string(),
                kv.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        env.contains(&("ADMIN_TOKEN".into(), TOKEN_CHANGED.into())),
        "{env:?}"
    );
    let key_id = aws_sdk_ec2::Client::new(&config)
        .describe_key_pairs()
        .send()
        .await
        .unwrap()
        .key_pairs()
        .iter()
        .find(|k| k.key_name() == Some("rc-main"))
        .and_then(|k| k.key_pair_id())
        .expect("the Base's key pair")
        .to_string();
    let private_key = ssm
        .get_parameter()
        .name(format!("/ec2/keypair/{key_id}"))
        .with_decryption(true)
        .send()
        .await
        .unwrap()
        .parameter()
        .and_then(|p| p.value())
        .unwrap()
        .to_string();
    // The key's body lines: any of them in the output would be a leak.
    let key_lines: Vec<&str> = private_key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .collect();
    assert!(!key_lines.is_empty(), "{private_key}");

    assert!(
        env.contains(&("MOTD".into(), MOTD_CHANGED.into())),
        "{env:?}"
    );
    let mut secrets: Vec<String> = vec![
        TOKEN.into(),
        TOKEN_CHANGED.into(),
        MOTD.into(),
        MOTD_CHANGED.into(),
    ];
    secrets.extend(ssm_secrets().into_iter().map(|(_, v)| v));
    secrets.extend(key_lines.iter().map(|l| l.to_string()));
    for run in &runs {
        for secret in &secrets {
            assert!(
                !run.output.contains(secret.as_str()),
                "`{}` printed the secret `{secret}`:\n{}",
                run.label,
                run.output
            );
        }
    }

    // The entry is shown, with its value hidden, where resources and plans are printed.
    for run in runs.iter().filter(|r| {
        r.label.starts_with("render")
            || (r.label.starts_with("plan") && !r.output.contains("No changes"))
    }) {
        assert!(
            run.output.contains("ADMIN_TOKEN") && run.output.contains("(sensitive)"),
            "`{}`:\n{}",
            run.label,
            run.output
        );
    }
    // Validation says where the secret should go.
    assert!(
        runs[0].output.contains("`ADMIN_TOKEN` looks like a secret"),
        "{}",
        runs[0].output
    );
    // The references to SSM are names and stay visible.
    assert!(runs[2].output.contains("/games/minecraft/rcon-password"));

    // Asked for, ordinary values are shown; secret-named ones never are.
    for args in [
        &["render", "--show-values", "--account-id", ACCOUNT, "-f", f][..],
        &[
            "render",
            "-o",
            "json",
            "--show-values",
            "--account-id",
            ACCOUNT,
            "-f",
            f,
        ],
    ] {
        let run = reconciler(&zone, TOKEN, args);
        assert_eq!(run.code, Some(0), "{}:\n{}", run.label, run.output);
        assert!(run.output.contains(MOTD), "{}:\n{}", run.label, run.output);
        assert!(
            !run.output.contains(TOKEN),
            "{}:\n{}",
            run.label,
            run.output
        );
        assert!(run.output.contains("(sensitive)"), "{}", run.label);
    }
    let run = reconciler(&zone, TOKEN, &["plan", "--show-values", "-f", f]);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        run.output.contains(MOTD),
        "the plan back to the first values:\n{}",
        run.output
    );
    assert!(run.output.contains(MOTD_CHANGED), "{}", run.output);
    assert!(!run.output.contains(TOKEN) && !run.output.contains(TOKEN_CHANGED));
}
