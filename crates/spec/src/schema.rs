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
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
