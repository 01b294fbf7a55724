//! The spec reference in Markdown (`docs/spec.md`), generated from the JSON Schema so the
//! documentation cannot drift from what the loader accepts.

use std::fmt::Write as _;

use serde_json::Value;

use crate::schema::schema_json;

/// Path of the generated reference, relative to the workspace root.
pub const REFERENCE_PATH: &str = "docs/spec.md";

/// The reference document.
pub fn reference_markdown() -> String {
    let schema: Value = serde_json::from_str(&schema_json()).expect("the schema is JSON");
    let defs = &schema["$defs"];
    let mut out = String::new();
    out.push_str("# Spec reference\n\n");
    out.push_str(
        "Generated from `schema/reconciler.schema.json` by the spec crate's tests \
         (`RECONCILER_BLESS=1 cargo test -p reconciler-spec` rewrites it); do not edit by hand.\n\n\
         Every document has `apiVersion: reconciler.dev/v1alpha1`, a `kind`, `metadata.name` and a \
         `spec`. Keys are camelCase; unknown keys are errors. Any value may use `${VAR}` or \
         `${VAR:-default}` (an unset variable without a default is an error), and the `!ENV` tag \
         is accepted for compatibility. Write `$${` for a literal `${`.\n",
    );
    for (kind, def) in [
        ("Base", "BaseDocument"),
        ("ContainerSpec", "ContainerSpecDocument"),
    ] {
        let _ = write!(out, "\n## kind: {kind}\n\n");
        if let Some(d) = defs[def]["description"].as_str() {
            let _ = writeln!(out, "{d}\n");
        }
        out.push_str("| key | type | default | description |\n| --- | --- | --- | --- |\n");
        let mut rows = Vec::new();
        walk(defs, &defs[def], "", &mut rows, 0);
        for (key, ty, default, desc) in rows {
            let _ = writeln!(
                out,
                "| `{key}` | {ty} | {default} | {} |",
                desc.replace('\n', " ").replace('|', "\\|")
            );
        }
    }
    out
}

fn resolve<'a>(defs: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches("#/$defs/")],
        None => node,
    }
}

/// The definition to describe the keys of: through `$ref`, and through an optional value's
/// `anyOf [T, null]`.
fn nested<'a>(defs: &'a Value, node: &'a Value) -> &'a Value {
    let target = resolve(defs, node);
    match target.get("anyOf").and_then(Value::as_array) {
        Some(options) => options
            .iter()
            .map(|o| resolve(defs, o))
            .find(|o| o.get("properties").is_some())
            .unwrap_or(target),
        None => target,
    }
}

type Row = (String, String, String, String);

fn walk(defs: &Value, node: &Value, path: &str, rows: &mut Vec<Row>, depth: usize) {
    if depth > 12 {
        return;
    }
    let node = resolve(defs, node);
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, prop) in props {
        let key = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let target = nested(defs, prop);
        let desc = prop
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let default = match prop.get("default") {
            Some(v) => format!("`{v}`"),
            None if required.contains(&name.as_str()) => "required".into(),
            None => "—".into(),
        };
        rows.push((key.clone(), type_of(defs, prop), default, desc));
        if target.get("properties").is_some() {
            walk(defs, target, &key, rows, depth + 1);
        } else if let Some(items) = target.get("items") {
            walk(defs, items, &format!("{key}[]"), rows, depth + 1);
        } else if let Some(values) = target.get("additionalProperties").filter(|v| v.is_object()) {
            walk(defs, values, &format!("{key}.<id>"), rows, depth + 1);
        }
    }
}

fn type_of(defs: &Value, node: &Value) -> String {
    let target = resolve(defs, node);
    if let Some(options) = target.get("oneOf").and_then(Value::as_array) {
        let consts: Vec<String> = options
            .iter()
            .filter_map(|o| o.get("const"))
            .map(|c| format!("`{}`", c.as_str().unwrap_or_default()))
            .collect();
        if consts.len() == options.len() {
            return consts.join(" \\| ");
        }
    }
    if let Some(options) = target.get("anyOf").and_then(Value::as_array) {
        return options
            .iter()
            .map(|o| type_of(defs, o))
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let base = match target.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" \\| "),
        _ => "object".into(),
    };
    let base = match base.as_str() {
        "array" => match target.get("items") {
            Some(items) => format!("list of {}", type_of(defs, items)),
            None => "list".into(),
        },
        "object"
            if target
                .get("additionalProperties")
                .is_some_and(Value::is_object) =>
        {
            format!("map of {}", type_of(defs, &target["additionalProperties"]))
        }
        "object" if target.get("properties").is_some() => "mapping".into(),
        other => other.to_string(),
    };
    match (target.get("minimum"), target.get("maximum")) {
        (Some(min), Some(max)) => format!("{base} ({min}–{max})"),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_nested_keys_with_types_and_defaults() {
        let md = reference_markdown();
        assert!(
            md.contains("| `spec.watchdog.minutesWithoutConnections` | integer (1–1440) | `7` |"),
            "{md}"
        );
        assert!(
            md.contains("| `spec.volumes.<id>.paths[].path` | string | required |"),
            "{md}"
        );
        assert!(
            md.contains("| `spec.container.ports[].protocol` | `tcp` \\| `udp` | `\"tcp\"` |"),
            "{md}"
        );
        assert!(
            md.contains("| `spec.domain.hostedZoneId` | string | required |"),
            "{md}"
        );
        assert!(
            md.contains("| `spec.ssh.allowFrom` | list of string | required |"),
            "{md}"
        );
    }
}
