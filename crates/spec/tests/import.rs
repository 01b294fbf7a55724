//! The original project's example configs import into valid documents.

use std::path::{Path, PathBuf};

use reconciler_spec::import::{import, ImportOptions};
use reconciler_spec::{check, EnvValue, Input, InstanceCatalog, Maturity, SpecSet};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/original")
        .join(name)
}

fn env(name: &str) -> Option<String> {
    match name {
        "EMAILS" => Some("admin@example.com  ops@example.com\nthird@example.com".into()),
        "DOMAIN_NAME" => Some("games.example.com".into()),
        "HOSTED_ZONE_ID" => Some("Z0123456789ABC".into()),
        "AWS_REGION" => Some("us-west-2".into()),
        "TIMEZONE" => Some("Europe/Berlin".into()),
        "VALHEIM_SERVER_NAME" => Some("Vikings".into()),
        "VALHEIM_SERVER_PASS" => Some("sentinel-pass-123".into()),
        "PALWORLD_PASSWORD" => Some("sentinel-pal-456".into()),
        _ => None,
    }
}

fn opts(name: &str, maturity: Maturity) -> ImportOptions {
    ImportOptions {
        name: name.into(),
        kind: None,
        maturity,
        base_ref: Some("main".into()),
        region: None,
        schema: "../schema/reconciler.schema.json".into(),
        source_name: "fixture".into(),
    }
}

fn import_file(file: &str, o: &ImportOptions) -> String {
    let text = std::fs::read_to_string(corpus(file)).unwrap();
    import(&text, o).unwrap_or_else(|e| panic!("{file}: {e:?}"))
}

fn load_all(docs: &[(&str, String)]) -> SpecSet {
    let inputs: Vec<Input> = docs
        .iter()
        .map(|(name, text)| Input {
            name: name.to_string(),
            bytes: text.clone().into_bytes(),
        })
        .collect();
    let (set, diags) = check(&inputs, &env, &InstanceCatalog::offline());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    set
}

#[test]
fn original_examples_import_into_valid_documents() {
    let base = import_file("base-stack-config.yaml", &opts("main", Maturity::Prod));
    let mc = import_file(
        "Minecraft.java.example.yaml",
        &opts("minecraft", Maturity::Prod),
    );
    let vh = import_file(
        "Valheim.mbround18.example.yaml",
        &opts("valheim", Maturity::Devel),
    );
    let pw = import_file("Palworld.example.yaml", &opts("palworld", Maturity::Prod));
    for doc in [&base, &mc, &vh, &pw] {
        assert!(
            doc.starts_with("# yaml-language-server: $schema=../schema/reconciler.schema.json\n")
        );
    }
    let set = load_all(&[("base", base), ("mc", mc), ("vh", vh), ("pw", pw)]);

    let b = &set.bases[0].doc.spec;
    assert_eq!(b.region, "us-west-2");
    assert_eq!(b.domain.name, "games.example.com");
    assert_eq!(
        b.alerts.email,
        ["admin@example.com", "ops@example.com", "third@example.com"]
    );

    let mc = &set.servers[0].doc.spec;
    assert_eq!(mc.ec2.instance_type, "m5.large");
    let ports: Vec<(u32, &str)> = mc
        .container
        .ports
        .iter()
        .map(|p| (p.port, p.protocol.as_str()))
        .collect();
    assert_eq!(ports, [(25565, "tcp"), (19132, "udp")]);
    assert_eq!(
        mc.container.environment["EULA"],
        EnvValue::String("TRUE".into())
    );
    assert_eq!(
        mc.container.environment["ENABLE_AUTOPAUSE"].as_env_string(),
        "false"
    );
    assert_eq!(mc.container.environment["UID"].as_env_string(), "1000");
    assert_eq!(
        mc.container.environment["TZ"].as_env_string(),
        "Europe/Berlin"
    );
    assert!(mc.volumes["Data"].backups_enabled(mc.maturity));
    assert_eq!(mc.watchdog.threshold, 1175);
    assert_eq!(mc.watchdog.minutes_without_connections, 7);
    assert_eq!(mc.alerts.email.len(), 3);

    let vh = &set.servers[1].doc.spec;
    assert_eq!(vh.maturity, Maturity::Devel);
    assert_eq!(
        vh.ec2.instance_type, "m5.large",
        "instance types are lower-cased like the original"
    );
    assert_eq!(vh.container.ports.len(), 3);
    assert_eq!(
        vh.container.ports[1].port, 2457,
        "string ports and lower-case protocols are accepted"
    );
    assert_eq!(
        vh.container.environment["TYPE"].as_env_string(),
        "Vanilla",
        "inline fallbacks are kept"
    );
    assert_eq!(vh.container.environment["MODS"].as_env_string(), "");
    let config = &vh.volumes["Config"];
    assert!(
        !config.backups_enabled(vh.maturity) && !config.kept_on_delete(vh.maturity),
        "devel defaults"
    );
    assert_eq!(vh.volumes["Download"].paths.len(), 6);
    assert_eq!(vh.watchdog.minutes_without_connections, 10);
    assert!(vh.watchdog.instance_left_up.should_stop);
    assert!(!vh.dashboard.enabled);

    let pw = &set.servers[2].doc.spec;
    assert_eq!(pw.ec2.instance_type, "m5.2xlarge");
    assert!(
        pw.volumes["Palworld"].kept_on_delete(pw.maturity),
        "prod defaults"
    );
    assert_eq!(pw.dashboard.interval_minutes, 60);
    assert!(!pw.dashboard.show_container_log_timestamp);
    assert!(pw.watchdog.instance_left_up.should_stop);
    assert_eq!(pw.watchdog.instance_left_up.duration_hours, 8);
}

#[test]
fn imported_files_keep_references_not_values() {
    let vh = import_file(
        "Valheim.mbround18.example.yaml",
        &opts("valheim", Maturity::Devel),
    );
    assert!(vh.contains("\"${VALHEIM_SERVER_PASS}\""), "{vh}");
    assert!(!vh.contains("sentinel-pass-123"));
}

#[test]
fn unset_variables_in_imported_files_are_errors_not_empty_strings() {
    let base = import_file("base-stack-config.yaml", &opts("main", Maturity::Prod));
    let inputs = [Input {
        name: "base".into(),
        bytes: base.into_bytes(),
    }];
    let (_, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    let unset: Vec<&str> = diags
        .iter()
        .filter(|d| d.message.contains("is not set"))
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(
        unset,
        [
            "spec.region",
            "spec.domain.name",
            "spec.domain.hostedZoneId",
            "spec.alerts.email"
        ]
    );
}

#[test]
fn bad_original_configs_are_reported_with_locations() {
    let text =
        "Ec2:\n  InstanceType: m5.large\nContainer:\n  Image: x\n  Ports:\n    - SCTP: 1\n  Extra: 1\n";
    let errs = import(text, &opts("x", Maturity::Prod)).unwrap_err();
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|e| e.starts_with("7:3: Container.Extra: unknown key `Extra`")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|e| e.contains("unknown protocol `SCTP`")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|e| e.contains("missing key `Watchdog`")),
        "{shown:?}"
    );
}

/// The original accepted a volume with `Paths: []` (a file system nobody mounts in the
/// container). It imports as a volume mounted on the host only, so its data stays reachable
/// through Session Manager and is backed up.
#[test]
fn a_volume_without_paths_imports_as_a_host_only_volume() {
    let text = std::fs::read_to_string(corpus("Palworld.example.yaml"))
        .unwrap()
        .replace(
            "Volumes:\n",
            "Volumes:\n  Archive:\n    Paths: []\n    EnableBackups: True\n",
        );
    let pw = import(&text, &opts("palworld", Maturity::Prod)).unwrap();
    assert!(pw.contains("Archive:\n      paths: []\n"), "{pw}");
    let base = import_file("base-stack-config.yaml", &opts("main", Maturity::Prod));
    let set = load_all(&[("base", base), ("pw", pw)]);
    let archive = &set.servers[0].doc.spec.volumes["Archive"];
    assert!(archive.paths.is_empty());
    assert!(archive.backups_enabled(Maturity::Prod));
}
