//! The JSON Schema of the documents, generated from the same types the loader uses, so editors
//! and the reconciler agree on what is valid.

use crate::types::AnyDocument;

/// Path of the checked-in schema, relative to the workspace root.
pub const SCHEMA_PATH: &str = "schema/reconciler.schema.json";

/// The combined schema (a Base or a ContainerSpec, told apart by `kind`), pretty-printed with
/// a trailing newline, exactly as checked in.
pub fn schema_json() -> String {
    let mut schema = schemars::schema_for!(AnyDocument);
    schema.insert(
        "$id".into(),
        "https://reconciler.dev/schema/v1alpha1/reconciler.schema.json".into(),
    );
    schema.insert("title".into(), "reconciler document".into());
    schema.insert(
        "description".into(),
        "A `Base` (shared VPC, alerts, root domain) or a `ContainerSpec` (one on-demand server)."
            .into(),
    );
    let mut value = schema.to_value();
    unwrap_descriptions(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("a schema serializes");
    text.push('\n');
    text
}

/// Doc comments wrap at 100 columns; editors show descriptions as paragraphs, so single line
/// breaks become spaces (blank lines stay paragraph breaks).
fn unwrap_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if key == "description" => {
                        *s = s
                            .split("\n\n")
                            .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                            .collect::<Vec<_>>()
                            .join("\n\n");
                    }
                    _ => unwrap_descriptions(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_property_is_described() {
        let schema: serde_json::Value = serde_json::from_str(&super::schema_json()).unwrap();
        let defs = schema["$defs"].as_object().unwrap();
        for (name, def) in defs {
            if let Some(props) = def.get("properties").and_then(|p| p.as_object()) {
                for (prop, body) in props {
                    let text = body
                        .get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or("");
                    assert!(!text.is_empty(), "{name}.{prop} has no description");
                    assert!(
                        !text.contains('\n') || text.contains("\n\n"),
                        "{name}.{prop}"
                    );
                }
            }
        }
    }
}
