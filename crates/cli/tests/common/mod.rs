//! Set-up shared by the tests that apply the example specs to the emulator.

#![allow(dead_code)] // each test binary uses its own subset

pub mod inventory;
pub mod runtime;

use std::path::{Path, PathBuf};

use aws_types::SdkConfig;
use reconciler_engine::{ApplyReport, Options, Reconciler};
use reconciler_ops::deploy::{self, Prepared};
use reconciler_ops::session::{home_region, load_specs_with};
use reconciler_spec::InstanceCatalog;
use reconciler_testkit::Emulator;

/// The examples' root domain (the Base's default).
pub const DOMAIN: &str = "games.example.com";

pub fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs")
}

/// Creates the Base's root zone in the account, as a user has it before the first apply, and
/// returns its id.
pub async fn root_zone(config: &SdkConfig) -> String {
    let route53 = aws_sdk_route53::Client::new(config);
    let out = route53
        .create_hosted_zone()
        .name(format!("{DOMAIN}."))
        .caller_reference(format!("root-{}", std::process::id()))
        .send()
        .await
        .expect("CreateHostedZone (root)");
    out.hosted_zone()
        .expect("zone")
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

/// The example specs, with the root zone created in `account`, prepared for the emulator.
pub async fn prepared(account: &str) -> Prepared {
    let global = Emulator::shared().sdk_config("us-east-1", account);
    let zone = root_zone(&global).await;
    prepared_in(account, &zone).await
}

/// The example specs prepared for `account`, whose root zone `zone` exists already.
pub async fn prepared_in(account: &str, zone: &str) -> Prepared {
    reconciler_testkit::ensure_lambda_artifact().expect("the runtime Lambda binary");
    let catalog = InstanceCatalog::offline();
    let zone = zone.to_string();
    let env = move |name: &str| match name {
        "HOSTED_ZONE_ID" => Some(zone.clone()),
        other => std::env::var(other).ok(),
    };
    let (set, diags) = load_specs_with(&[specs_dir()], &catalog, &env).unwrap();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let region = home_region(&set);
    let config = Emulator::shared().sdk_config(&region, account);
    deploy::prepare(set, catalog, config).await.unwrap()
}

pub fn reconciler(p: &Prepared) -> Reconciler {
    Reconciler::new(
        reconciler_aws::provider(&p.session.pool),
        Options::default(),
    )
}

/// The `reconciler` binary run from the project root against `endpoint` (the emulator, or a
/// proxy in front of it), with dummy credentials and nothing else from the environment's AWS
/// set-up (profiles, config files, instance metadata, a Lambda artifact override).
pub fn binary(endpoint: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reconciler"));
    cmd.current_dir(specs_dir().parent().unwrap())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("RECONCILER_LAMBDA_ARTIFACT");
    cmd
}

/// The failed resources of `report`, one line each, for an assertion's message.
pub fn failure_lines(report: &ApplyReport) -> Vec<String> {
    report
        .failures()
        .map(|(id, e)| format!("{id}: {e}"))
        .collect()
}
