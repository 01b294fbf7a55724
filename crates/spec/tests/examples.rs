//! The checked-in schema and the example specs stay true to the types.

use std::path::{Path, PathBuf};

use reconciler_spec::resolve::resolve;
use reconciler_spec::schema::{schema_json, SCHEMA_PATH};
use reconciler_spec::yaml::parse_stream;
use reconciler_spec::{check, collect_inputs, InstanceCatalog};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "specs/ should hold a Base and three servers"
    );
    files
}

#[test]
fn checked_in_schema_is_fresh() {
    let path = root().join(SCHEMA_PATH);
    let generated = schema_json();
    if std::env::var_os("RECONCILER_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{SCHEMA_PATH} is stale: run `cargo run -p reconciler-cli -- schema > {SCHEMA_PATH}` \
         (or RECONCILER_BLESS=1 cargo test -p reconciler-spec --test examples)"
    );
}

#[test]
fn every_example_has_the_schema_modeline() {
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let target = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| {
                panic!("{} does not start with the schema modeline", file.display())
            });
        let schema = file.parent().unwrap().join(target);
        assert!(
            schema.exists(),
            "{}: modeline points at a missing file",
            file.display()
        );
    }
}

#[test]
fn examples_load_and_validate_without_diagnostics() {
    let inputs = collect_inputs(&[root().join("specs")]).unwrap();
    let (set, diags) = check(&inputs, &no_env, &InstanceCatalog::offline());
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(diags.is_empty(), "{}", shown.join("\n\n"));
    assert_eq!(set.bases.len(), 1);
    let names: Vec<&str> = set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["minecraft", "palworld", "valheim"]);
}

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn examples_validate_against_the_json_schema() {
    let validator = schema_validator();
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for node in parse_stream(&text).unwrap().into_iter().flatten() {
            let (value, _, errors) = resolve(&node, &no_env);
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            let problems: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
        }
    }
}

#[test]
fn the_json_schema_rejects_what_the_loader_rejects() {
    let validator = schema_validator();
    let text = std::fs::read_to_string(root().join("specs/minecraft.yaml")).unwrap();
    let node = parse_stream(&text).unwrap().remove(0).unwrap();
    let (good, _, _) = resolve(&node, &no_env);
    assert!(validator.is_valid(&good));
    for (pointer, bad) in [
        ("/spec/container/imgae", serde_json::json!("typo")),
        (
            "/spec/watchdog/minutesWithoutConnections",
            serde_json::json!(0),
        ),
        ("/spec/container/ports/0/port", serde_json::json!(70000)),
        ("/spec/maturity", serde_json::json!("Prod")),
        ("/kind", serde_json::json!("Server")),
        ("/metadata/name", serde_json::json!("Not_A_Name")),
    ] {
        let mut doc = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match doc.pointer_mut(parent).unwrap() {
            serde_json::Value::Object(m) => {
                m.insert(key.to_string(), bad);
            }
            other => panic!("{parent} is not a mapping: {other}"),
        }
        assert!(!validator.is_valid(&doc), "schema accepted a bad {pointer}");
    }
}

#[test]
fn generated_spec_reference_is_fresh() {
    use reconciler_spec::reference::{reference_markdown, REFERENCE_PATH};
    let path = root().join(REFERENCE_PATH);
    let generated = reference_markdown();
    if std::env::var_os("RECONCILER_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{REFERENCE_PATH} is stale: run RECONCILER_BLESS=1 cargo test -p reconciler-spec --test examples"
    );
}
