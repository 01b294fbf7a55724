//! The CRDs checked into the chart are the ones generated from the spec types, they are
//! structural (or the API server would reject them), and a spec file is a valid object.

use std::path::{Path, PathBuf};

use reconciler_operator::crd::{crd_files, Base, ContainerSpec, CRD_DIR};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn crds_are_current() {
    for (name, wanted) in crd_files() {
        let path = root().join(CRD_DIR).join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == wanted,
            "{} is stale: run `cargo run -p reconciler-operator --bin gen-crds`",
            path.display()
        );
    }
    let mut listed: Vec<String> = std::fs::read_dir(root().join(CRD_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut wanted: Vec<String> = crd_files().iter().map(|(n, _)| n.to_string()).collect();
    wanted.sort();
    assert_eq!(listed, wanted, "no other file in {CRD_DIR}");
}

/// The rules of a structural schema the API server checks (apiextensions "Specifying a
/// structural schema"), applied to every node.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let map = node.as_object().expect("a schema node is an object");
    let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match map.get("type") {
        Some(Value::String(_)) => {}
        None if open => {}
        other => problems.push(format!("{path}: type {other:?}")),
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!("{path}: properties with additionalProperties"));
    }
    for key in [
        "const",
        "$ref",
        "$schema",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "definitions",
    ] {
        if map.contains_key(key) {
            problems.push(format!("{path}: {key}"));
        }
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, child) in props {
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = map.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(child @ Value::Object(_)) = map.get("additionalProperties") {
        check_structural(child, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn the_schemas_are_structural_and_describe_every_field() {
    for (name, text) in crd_files() {
        let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        let schema = &version["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        check_structural(schema, name, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
        let spec = &schema["properties"]["spec"]["properties"];
        for (field, body) in spec.as_object().unwrap() {
            assert!(
                body["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: spec.{field} has no description"
            );
        }
    }
}

#[test]
fn every_example_spec_file_is_a_valid_object() {
    let dir = root().join("specs");
    let mut servers = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("\nkind: Base") {
            let base: Base = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(base.api_version, "reconciler.dev/v1alpha1");
            assert_eq!(base.metadata.name.as_deref(), Some("main"));
        } else {
            let server: ContainerSpec = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(server.kind, "ContainerSpec");
            servers += 1;
        }
    }
    assert_eq!(servers, 3);
}

#[test]
fn an_unknown_spec_field_is_rejected_as_in_a_file() {
    let text = std::fs::read_to_string(root().join("specs/minecraft.yaml")).unwrap();
    let typo = text.replace("  watchdog:", "  watchdgo:");
    let err = serde_yaml_ng::from_str::<ContainerSpec>(&typo).unwrap_err();
    assert!(err.to_string().contains("watchdgo"), "{err}");
}
