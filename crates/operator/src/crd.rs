//! The two custom resources, `ContainerSpec` and `Base`, and their CustomResourceDefinitions.
//!
//! Their `spec` fields are the spec crate's own types ([`ServerSpec`], [`BaseSpec`]), so a
//! document in a file and an object in the cluster are the same thing with the same
//! validation: one source of truth. The resources implement [`kube::Resource`] by hand rather
//! than through the derive macro, because the macro generates its own spec struct and we want
//! the existing one unchanged.
//!
//! The CRD schema is generated from the same schemars types as `schema/reconciler.schema.json`
//! and then made *structural*, as the Kubernetes API server requires (every node typed, no
//! `additionalProperties` beside `properties`, no `const`, no type unions). The few values that
//! JSON Schema can describe but a structural schema cannot (a list that may also be written as
//! one string, an environment value that is text, a number or a boolean) are left open in the
//! CRD; the operator validates every object with the spec crate's loader before it acts, so
//! nothing invalid reaches AWS.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use reconciler_spec::{BaseSpec, ServerSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The API group of both resources (the documents' `apiVersion` is `GROUP/VERSION`).
pub const GROUP: &str = "reconciler.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The finalizer that deletes an object's AWS resources before Kubernetes forgets it.
pub const FINALIZER: &str = "reconciler.dev/cleanup";
/// Where the generated CRDs are checked in, relative to the workspace root.
pub const CRD_DIR: &str = "charts/reconciler/crds";

/// `ContainerSpec` and `Base`: what the controller code needs to treat them alike.
pub trait Object:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + for<'de> Deserialize<'de>
    + Send
    + Sync
    + 'static
{
    /// The status the controller last wrote.
    fn status(&self) -> Option<&Status>;
    /// The kind, for messages and object references.
    const KIND: &'static str;
}

/// One on-demand game server, reconciled into AWS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// `reconciler.dev/v1alpha1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `ContainerSpec`.
    #[serde(default = "container_spec_kind")]
    pub kind: String,
    /// Kubernetes metadata; `metadata.name` is the server's id, as in a spec file.
    pub metadata: ObjectMeta,
    /// The server, exactly as in a ContainerSpec document.
    pub spec: ServerSpec,
    /// What the operator last observed and did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// Shared infrastructure (VPC, alerts, root domain) for the servers of a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    /// `reconciler.dev/v1alpha1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `Base`.
    #[serde(default = "base_kind")]
    pub kind: String,
    /// Kubernetes metadata; `metadata.name` is the Base's name (`spec.baseRef` of servers).
    pub metadata: ObjectMeta,
    /// The Base, exactly as in a Base document.
    pub spec: BaseSpec,
    /// What the operator last observed and did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

fn container_spec_kind() -> String {
    "ContainerSpec".into()
}

fn base_kind() -> String {
    "Base".into()
}

impl ContainerSpec {
    /// A new object in `namespace`.
    pub fn new(namespace: &str, name: &str, spec: ServerSpec) -> Self {
        ContainerSpec {
            api_version: api_version(),
            kind: container_spec_kind(),
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Base {
    /// A new object in `namespace`.
    pub fn new(namespace: &str, name: &str, spec: BaseSpec) -> Self {
        Base {
            api_version: api_version(),
            kind: base_kind(),
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

macro_rules! resource {
    ($ty:ty, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl Object for $ty {
            const KIND: &'static str = $kind;
            fn status(&self) -> Option<&Status> {
                self.status.as_ref()
            }
        }
    };
}

resource!(ContainerSpec, "ContainerSpec", "containerspecs");
resource!(Base, "Base", "bases");

/// What the operator reports on an object (`kubectl get` and `kubectl describe` show it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The `metadata.generation` the conditions describe. Lower than the object's generation
    /// while a change has not been reconciled yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the AWS resources exist as specified), `Synced` (the last reconcile
    /// succeeded) and `Drifted` (the last reconcile found and corrected changes made outside
    /// the spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The error of the last failed reconcile; absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a reconcile last changed this status (RFC 3339). Reconciles that find nothing new
    /// do not rewrite it, so an idle object causes no API writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    /// AWS resources created, changed or deleted by the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<u32>,
    /// Where the server is in its sleep/wake cycle (ContainerSpec only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
}

/// A condition, shaped like Kubernetes' `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Synced` or `Drifted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word saying why.
    pub reason: String,
    /// Details for a person.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The runtime state of a server, read from AWS after each reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    /// `asleep`, `waking`, `running`, `stopping` or `not-deployed`.
    pub state: String,
    /// The DNS name players look up to wake the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// The public IP of the instance in service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    /// The Auto Scaling group's desired capacity (0 asleep, 1 awake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_capacity: Option<i32>,
}

/// The CRD of `ContainerSpec`.
pub fn container_spec_crd() -> Value {
    crd(CrdInfo {
        kind: "ContainerSpec",
        plural: "containerspecs",
        singular: "containerspec",
        description: "One on-demand container server: it costs nothing while nobody plays, \
                      wakes when a player looks up its DNS name, and goes back to sleep when \
                      its traffic stays idle. The operator creates its AWS resources and \
                      deletes them (keeping data as the spec says) when the object is deleted.",
        spec: spec_schema::<ServerSpec>(),
        name_rule: true,
        columns: vec![
            column("Base", "string", ".spec.baseRef", 0),
            column("State", "string", ".status.runtime.state", 0),
            column(
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
                0,
            ),
            column(
                "Synced",
                "string",
                r#".status.conditions[?(@.type=="Synced")].status"#,
                0,
            ),
            column("DNS", "string", ".status.runtime.dnsName", 1),
            column("Age", "date", ".metadata.creationTimestamp", 0),
        ],
    })
}

/// The CRD of `Base`.
pub fn base_crd() -> Value {
    crd(CrdInfo {
        kind: "Base",
        plural: "bases",
        singular: "base",
        description: "Shared infrastructure for the servers of one AWS account and region: \
                      the VPC, the admin alert topic and the imported root DNS zone. Deleting \
                      it waits until no ContainerSpec of its namespace uses it.",
        spec: spec_schema::<BaseSpec>(),
        name_rule: true,
        columns: vec![
            column("Region", "string", ".spec.region", 0),
            column("Domain", "string", ".spec.domain.name", 0),
            column(
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
                0,
            ),
            column(
                "Synced",
                "string",
                r#".status.conditions[?(@.type=="Synced")].status"#,
                0,
            ),
            column("Age", "date", ".metadata.creationTimestamp", 0),
        ],
    })
}

/// Both CRDs as the YAML files checked in under [`CRD_DIR`]: `(file name, content)`.
pub fn crd_files() -> Vec<(&'static str, String)> {
    vec![
        ("bases.reconciler.dev.yaml", to_yaml(&base_crd())),
        (
            "containerspecs.reconciler.dev.yaml",
            to_yaml(&container_spec_crd()),
        ),
    ]
}

fn to_yaml(crd: &Value) -> String {
    let body = serde_yaml_ng::to_string(crd).expect("a CRD serializes");
    format!(
        "# Generated from the spec crate's types by `cargo run -p reconciler-operator --bin \
         gen-crds`; do not edit.\n{body}"
    )
}

struct CrdInfo {
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    description: &'static str,
    spec: Value,
    name_rule: bool,
    columns: Vec<Value>,
}

fn column(name: &str, type_: &str, path: &str, priority: u32) -> Value {
    let mut c = json!({ "name": name, "type": type_, "jsonPath": path });
    if priority > 0 {
        c["priority"] = json!(priority);
    }
    c
}

fn crd(info: CrdInfo) -> Value {
    let mut status = spec_schema::<Status>();
    // Conditions are a map keyed by type, as in every built-in kind: server-side apply and
    // strategic merges treat one condition as one entry.
    if let Some(conditions) = status.pointer_mut("/properties/conditions") {
        conditions["x-kubernetes-list-type"] = json!("map");
        conditions["x-kubernetes-list-map-keys"] = json!(["type"]);
    }
    let mut root = json!({
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "type": "object" },
            "spec": info.spec,
            "status": status,
        },
    });
    if info.name_rule {
        // The object's name names its AWS resources, so it follows the documents' rule.
        root["x-kubernetes-validations"] = json!([{
            "rule": format!("self.metadata.name.matches('{NAME_PATTERN}')"),
            "message": "metadata.name: lower-case letters, digits and `-`; 1 to 32 characters; \
                        starts with a letter and does not end with `-`",
        }]);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{}.{GROUP}", info.plural) },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": format!("{}List", info.kind),
                "plural": info.plural,
                "singular": info.singular,
                "categories": ["reconciler"],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": root },
                "subresources": { "status": {} },
                "additionalPrinterColumns": info.columns,
            }],
        },
    })
}

/// The documents' `metadata.name` rule (see the spec crate's `Metadata`).
pub const NAME_PATTERN: &str = "^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$";

/// The OpenAPI v3 schema of `T`, inlined and made structural.
pub fn spec_schema<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        for key in ["$schema", "title", "definitions", "components", "$defs"] {
            map.remove(key);
        }
    }
    structural(&mut value);
    value
}

/// Keys a Kubernetes structural schema accepts (JSONSchemaProps).
const ALLOWED: &[&str] = &[
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "nullable",
    "example",
];

/// Rewrites one schema node (and its children) into structural form.
fn structural(value: &mut Value) {
    let Value::Object(map) = value else {
        return;
    };
    // Enums with a description per variant come out as `oneOf` of `const`s.
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(variants)) = map.get(key) {
            let consts: Option<Vec<(Value, Option<String>)>> = variants
                .iter()
                .map(|v| {
                    let c = v.get("const").cloned().or_else(|| {
                        v.get("enum")
                            .and_then(|e| e.as_array())
                            .filter(|e| e.len() == 1)
                            .map(|e| e[0].clone())
                    })?;
                    Some((
                        c,
                        v.get("description")
                            .and_then(|d| d.as_str())
                            .map(str::to_string),
                    ))
                })
                .collect();
            if let Some(consts) = consts.filter(|c| c.iter().all(|(v, _)| v.is_string())) {
                map.remove(key);
                let mut text = map
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("")
                    .to_string();
                for (v, d) in &consts {
                    if let Some(d) = d {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&format!("- `{}`: {d}", v.as_str().unwrap_or("")));
                    }
                }
                if !text.is_empty() {
                    map.insert("description".into(), Value::String(text));
                }
                map.insert("type".into(), json!("string"));
                map.insert(
                    "enum".into(),
                    Value::Array(consts.into_iter().map(|(v, _)| v).collect()),
                );
            }
        }
    }
    if let Some(c) = map.remove("const") {
        map.insert("enum".into(), json!([c]));
    }
    // A union of types (a list or one string; text, number or boolean) cannot be structural:
    // leave the value open and let the operator's validation judge it.
    let union = matches!(map.get("type"), Some(Value::Array(_)))
        || map.contains_key("anyOf")
        || map.contains_key("oneOf");
    if union {
        let description = map.get("description").cloned();
        map.clear();
        if let Some(d) = description {
            map.insert("description".into(), d);
        }
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        return;
    }
    // `additionalProperties: false` (from deny_unknown_fields) may not sit beside
    // `properties`; the API server prunes unknown fields anyway, and the operator's own
    // validation rejects them.
    if map
        .get("additionalProperties")
        .is_some_and(Value::is_boolean)
    {
        map.remove("additionalProperties");
    }
    match map.get("format").and_then(|f| f.as_str()) {
        Some("uint8" | "uint16" | "int8" | "int16") => {
            map.insert("format".into(), json!("int32"));
        }
        Some("uint32" | "uint64" | "uint" | "int") => {
            map.insert("format".into(), json!("int64"));
        }
        _ => {}
    }
    map.retain(|k, _| ALLOWED.contains(&k.as_str()) || k.starts_with("x-kubernetes-"));
    if !map.contains_key("type") && map.contains_key("properties") {
        map.insert("type".into(), json!("object"));
    }
    if let Some(Value::Object(props)) = map.get_mut("properties") {
        for v in props.values_mut() {
            structural(v);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v @ Value::Object(_)) = map.get_mut(key) {
            structural(v);
        }
    }
    unwrap_description(map);
}

/// Doc comments wrap at 100 columns; `kubectl explain` reflows paragraphs itself, so single
/// line breaks become spaces (list lines and blank lines stay).
fn unwrap_description(map: &mut Map<String, Value>) {
    if let Some(Value::String(text)) = map.get_mut("description") {
        let mut out = String::new();
        for line in text.split('\n').map(str::trim) {
            if out.is_empty() {
                out.push_str(line);
            } else if line.is_empty() || line.starts_with("- ") || out.ends_with('\n') {
                out.push('\n');
                out.push_str(line);
            } else {
                out.push(' ');
                out.push_str(line);
            }
        }
        *text = out;
    }
}
