//! Field-level comparison of desired and observed state.
//!
//! Rules, chosen so that a no-op reconcile really is a no-op:
//!
//! * Only what the desired properties mention is managed. Fields AWS adds
//!   (defaults, status, timestamps) are ignored, recursively through
//!   objects, including objects inside arrays.
//! * A desired `null` means "unset": it matches a missing or null field.
//! * Numbers compare by value (`1` equals `1.0`).
//! * Arrays compare element by element and must have the same length;
//!   arrays at a [`KindSpec::unordered`] path compare as multisets.
//! * [`KindSpec::runtime_owned`] paths are skipped entirely.
//! * A change that touches a [`KindSpec::immutable`] path forces
//!   replacement.
//! * A reference that is not resolved yet makes its field a change whose new
//!   value is [`PlannedValue::KnownAfterApply`].
//! * Tags are compared like properties under `/tags/<key>`; only desired
//!   tag keys are managed.

use std::fmt;

use indexmap::IndexMap;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::model::{contains_ref, Observed, Reference};
use crate::path;
use crate::provider::KindSpec;

/// The planned value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedValue {
    /// The value is known now.
    Known(Value),
    /// The value depends on an output that exists only once a dependency has
    /// been created or replaced.
    KnownAfterApply,
}

impl PlannedValue {
    /// The value, when known.
    pub fn known(&self) -> Option<&Value> {
        match self {
            PlannedValue::Known(v) => Some(v),
            PlannedValue::KnownAfterApply => None,
        }
    }
}

impl fmt::Display for PlannedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlannedValue::Known(v) => f.write_str(&render_value(v)),
            PlannedValue::KnownAfterApply => f.write_str("(known after apply)"),
        }
    }
}

/// Renders a JSON value compactly, with unresolved references shown as
/// `(known after apply)`.
pub fn render_value(v: &Value) -> String {
    if contains_ref(v) {
        if let Ok(Some(_)) = Reference::parse(v) {
            return "(known after apply)".to_owned();
        }
        match v {
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(render_value).collect();
                return format!("[{}]", inner.join(","));
            }
            Value::Object(map) => {
                let inner: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), render_value(v)))
                    .collect();
                return format!("{{{}}}", inner.join(","));
            }
            _ => {}
        }
    }
    v.to_string()
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// JSON-pointer path of the field (`/cidrBlock`, `/tags/Name`).
    pub path: String,
    /// The observed value; `None` when the field is absent (or the resource
    /// does not exist yet).
    pub before: Option<Value>,
    /// The desired value; `None` when the field is to be removed.
    pub after: Option<PlannedValue>,
    /// Whether this change alone requires replacing the resource.
    pub forces_replacement: bool,
}

impl FieldChange {
    /// Whether the new value is known only after apply.
    pub fn after_unknown(&self) -> bool {
        matches!(self.after, Some(PlannedValue::KnownAfterApply))
    }

    /// Whether the change is on a tag.
    pub fn is_tag(&self) -> bool {
        self.path.starts_with("/tags/")
    }
}

impl Serialize for FieldChange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FieldChange", 5)?;
        s.serialize_field("path", &self.path)?;
        s.serialize_field("before", &self.before)?;
        s.serialize_field("after", &self.after.as_ref().and_then(PlannedValue::known))?;
        s.serialize_field("after_unknown", &self.after_unknown())?;
        s.serialize_field("forces_replacement", &self.forces_replacement)?;
        s.end()
    }
}

/// The result of comparing one resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    /// Changes in document order (properties, then tags).
    pub changes: Vec<FieldChange>,
}

impl Diff {
    /// No managed field differs.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Some change touches an immutable field.
    pub fn requires_replacement(&self) -> bool {
        self.changes.iter().any(|c| c.forces_replacement)
    }
}

/// Compares desired `properties` and `tags` (references possibly
/// unresolved) with what was observed.
pub fn diff(
    properties: &Value,
    tags: &IndexMap<String, String>,
    observed: &Observed,
    spec: &KindSpec,
) -> Diff {
    let mut changes = Vec::new();
    diff_value(
        "",
        properties,
        Some(&observed.properties),
        spec,
        &mut changes,
    );
    for (key, value) in tags {
        let at = path::join("/tags", key);
        if is_runtime_owned(&at, spec) {
            continue;
        }
        let before = observed.tags.get(key);
        if before != Some(value) {
            changes.push(FieldChange {
                forces_replacement: is_immutable(&at, spec),
                path: at,
                before: before.map(|b| Value::String(b.clone())),
                after: Some(PlannedValue::Known(Value::String(value.clone()))),
            });
        }
    }
    Diff { changes }
}

/// Lists every field of a resource about to be created, as changes from
/// nothing, including runtime-owned fields (they are set at create).
pub fn creation_changes(properties: &Value, tags: &IndexMap<String, String>) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    flatten("", properties, &mut changes);
    for (key, value) in tags {
        changes.push(FieldChange {
            path: path::join("/tags", key),
            before: None,
            after: Some(PlannedValue::Known(Value::String(value.clone()))),
            forces_replacement: false,
        });
    }
    changes
}

fn flatten(at: &str, value: &Value, out: &mut Vec<FieldChange>) {
    match value {
        Value::Object(map)
            if !map.is_empty() && !matches!(Reference::parse(value), Ok(Some(_))) =>
        {
            for (k, v) in map {
                flatten(&path::join(at, k), v, out);
            }
        }
        _ => out.push(FieldChange {
            path: at.to_owned(),
            before: None,
            after: Some(planned(value)),
            forces_replacement: false,
        }),
    }
}

fn planned(value: &Value) -> PlannedValue {
    if contains_ref(value) {
        PlannedValue::KnownAfterApply
    } else {
        PlannedValue::Known(value.clone())
    }
}

fn is_runtime_owned(at: &str, spec: &KindSpec) -> bool {
    spec.runtime_owned
        .iter()
        .any(|p| path::is_at_or_below(at, p))
}

fn is_immutable(at: &str, spec: &KindSpec) -> bool {
    spec.immutable.iter().any(|p| path::overlaps(at, p))
}

fn is_unordered(at: &str, spec: &KindSpec) -> bool {
    spec.unordered.iter().any(|p| path::matches_exactly(at, p))
}

fn diff_value(
    at: &str,
    desired: &Value,
    observed: Option<&Value>,
    spec: &KindSpec,
    out: &mut Vec<FieldChange>,
) {
    if !at.is_empty() && is_runtime_owned(at, spec) {
        return;
    }
    let is_ref = matches!(Reference::parse(desired), Ok(Some(_)));
    if let (Value::Object(map), false) = (desired, is_ref) {
        let observed_map = match observed {
            Some(Value::Object(o)) => Some(o),
            None | Some(Value::Null) => None,
            Some(_) => {
                // A scalar where an object is wanted: one change for the whole field.
                push_change(at, desired, observed, spec, out);
                return;
            }
        };
        if map.is_empty() && observed_map.is_none() && !at.is_empty() {
            push_change(at, desired, observed, spec, out);
            return;
        }
        for (k, v) in map {
            diff_value(
                &path::join(at, k),
                v,
                observed_map.and_then(|o| o.get(k)),
                spec,
                out,
            );
        }
        return;
    }
    if contains_ref(desired) || !matches(at, desired, observed, spec) {
        push_change(at, desired, observed, spec, out);
    }
}

fn push_change(
    at: &str,
    desired: &Value,
    observed: Option<&Value>,
    spec: &KindSpec,
    out: &mut Vec<FieldChange>,
) {
    out.push(FieldChange {
        path: at.to_owned(),
        before: observed.filter(|v| !v.is_null()).cloned(),
        after: if desired.is_null() {
            None
        } else {
            Some(planned(desired))
        },
        forces_replacement: is_immutable(at, spec),
    });
}

/// Whether `observed` satisfies `desired` under the managed-subset rules.
pub fn matches(at: &str, desired: &Value, observed: Option<&Value>, spec: &KindSpec) -> bool {
    if !at.is_empty() && is_runtime_owned(at, spec) {
        return true;
    }
    match desired {
        Value::Null => matches!(observed, None | Some(Value::Null)),
        Value::Object(map) => {
            if matches!(Reference::parse(desired), Ok(Some(_))) {
                return false;
            }
            let Some(Value::Object(obs)) = observed else {
                return false;
            };
            map.iter()
                .all(|(k, v)| matches(&path::join(at, k), v, obs.get(k), spec))
        }
        Value::Array(items) => {
            let Some(Value::Array(obs)) = observed else {
                return false;
            };
            if items.len() != obs.len() {
                return false;
            }
            if is_unordered(at, spec) {
                let elem = path::join(at, "*");
                set_matches(items, obs, |d, o| matches(&elem, d, Some(o), spec))
            } else {
                items
                    .iter()
                    .zip(obs)
                    .enumerate()
                    .all(|(i, (d, o))| matches(&path::join(at, &i.to_string()), d, Some(o), spec))
            }
        }
        Value::Number(d) => match observed {
            Some(Value::Number(o)) => {
                d == o
                    || match (d.as_i64(), o.as_i64(), d.as_u64(), o.as_u64()) {
                        (Some(a), Some(b), _, _) => a == b,
                        (_, _, Some(a), Some(b)) => a == b,
                        _ => d.as_f64().is_some() && d.as_f64() == o.as_f64(),
                    }
            }
            _ => false,
        },
        scalar => observed == Some(scalar),
    }
}

/// Perfect bipartite matching between desired and observed elements
/// (augmenting paths), so that subset semantics inside set elements cannot
/// be fooled by a greedy choice.
fn set_matches(desired: &[Value], observed: &[Value], ok: impl Fn(&Value, &Value) -> bool) -> bool {
    let adj: Vec<Vec<usize>> = desired
        .iter()
        .map(|d| {
            (0..observed.len())
                .filter(|&j| ok(d, &observed[j]))
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; observed.len()];
    fn augment(
        i: usize,
        adj: &[Vec<usize>],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for &j in &adj[i] {
            if seen[j] {
                continue;
            }
            seen[j] = true;
            if owner[j].is_none_or(|k| augment(k, adj, owner, seen)) {
                owner[j] = Some(i);
                return true;
            }
        }
        false
    }
    (0..desired.len()).all(|i| {
        let mut seen = vec![false; observed.len()];
        augment(i, &adj, &mut owner, &mut seen)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reference;
    use serde_json::json;

    fn observed(props: Value) -> Observed {
        let mut o = Observed::new("k/x");
        o.properties = props;
        o
    }

    fn paths(d: &Diff) -> Vec<&str> {
        d.changes.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn extra_observed_fields_are_ignored() {
        let d = diff(
            &json!({"a": 1, "nested": {"b": "x"}, "list": [{"p": 80}]}),
            &IndexMap::new(),
            &observed(
                json!({"a": 1.0, "state": "available", "nested": {"b": "x", "c": 2},
                "list": [{"p": 80, "proto": "tcp"}]}),
            ),
            &KindSpec::new(),
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn managed_changes_are_reported_per_field() {
        let d = diff(
            &json!({"a": 2, "nested": {"b": "y", "new": true}, "gone": null}),
            &IndexMap::from([("Name".to_owned(), "n".to_owned())]),
            &observed(json!({"a": 1, "nested": {"b": "x"}, "gone": 5})),
            &KindSpec::new(),
        );
        assert_eq!(
            paths(&d),
            vec!["/a", "/nested/b", "/nested/new", "/gone", "/tags/Name"]
        );
        assert_eq!(d.changes[0].before, Some(json!(1)));
        assert_eq!(d.changes[0].after, Some(PlannedValue::Known(json!(2))));
        assert_eq!(d.changes[2].before, None);
        assert_eq!(d.changes[3].after, None, "null means unset");
        assert!(!d.requires_replacement());
    }

    #[test]
    fn runtime_owned_and_immutable() {
        let spec = KindSpec::new()
            .runtime_owned("/desiredCapacity")
            .runtime_owned("/tags/LastScaled")
            .immutable("/cidrBlock");
        let d = diff(
            &json!({"desiredCapacity": 0, "cidrBlock": "10.0.0.0/16", "maxSize": 1}),
            &IndexMap::from([("LastScaled".to_owned(), "x".to_owned())]),
            &observed(json!({"desiredCapacity": 1, "cidrBlock": "10.1.0.0/16", "maxSize": 1})),
            &spec,
        );
        assert_eq!(paths(&d), vec!["/cidrBlock"]);
        assert!(d.requires_replacement());
    }

    #[test]
    fn arrays_ordered_and_unordered() {
        let want = json!({"rules": [{"port": 80}, {"port": 443}], "order": [1, 2]});
        let got = json!({"rules": [{"port": 443, "p": "tcp"}, {"port": 80, "p": "tcp"}], "order": [2, 1]});
        let d = diff(
            &want,
            &IndexMap::new(),
            &observed(got.clone()),
            &KindSpec::new(),
        );
        assert_eq!(paths(&d), vec!["/rules", "/order"]);
        let spec = KindSpec::new().unordered("/rules");
        let d = diff(&want, &IndexMap::new(), &observed(got), &spec);
        assert_eq!(paths(&d), vec!["/order"]);
        // Multiset: duplicates count.
        assert!(!matches(
            "/rules",
            &json!([{"port": 80}, {"port": 80}]),
            Some(&json!([{"port": 80}, {"port": 443}])),
            &spec
        ));
        // Needs a non-greedy assignment: {} matches both, {"a":1} only the first.
        assert!(matches(
            "/rules",
            &json!([{}, {"a": 1}]),
            Some(&json!([{"a": 1}, {"b": 2}])),
            &spec
        ));
    }

    #[test]
    fn unresolved_refs_are_known_after_apply() {
        let spec = KindSpec::new().immutable("/vpcId");
        let d = diff(
            &json!({"vpcId": reference("ec2.vpc/main", "id"), "sgs": [reference("ec2.sg/a", "id")]}),
            &IndexMap::new(),
            &observed(json!({"vpcId": "vpc-1", "sgs": ["sg-1"]})),
            &spec,
        );
        assert_eq!(paths(&d), vec!["/vpcId", "/sgs"]);
        assert!(d.changes.iter().all(FieldChange::after_unknown));
        assert!(d.changes[0].forces_replacement);
        assert!(!d.changes[1].forces_replacement);
        assert_eq!(
            d.changes[1].after.as_ref().unwrap().to_string(),
            "(known after apply)"
        );
    }

    #[test]
    fn object_vs_scalar_and_empty_objects() {
        let d = diff(
            &json!({"a": {"b": 1}, "e": {}}),
            &IndexMap::new(),
            &observed(json!({"a": "flat"})),
            &KindSpec::new().immutable("/a/b"),
        );
        assert_eq!(paths(&d), vec!["/a", "/e"]);
        assert!(
            d.changes[0].forces_replacement,
            "/a overlaps immutable /a/b"
        );
    }

    #[test]
    fn creation_changes_flatten_objects() {
        let c = creation_changes(
            &json!({"a": {"b": 1, "r": reference("x/y", "id")}, "l": [1]}),
            &IndexMap::from([("k".to_owned(), "v".to_owned())]),
        );
        let p: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(p, vec!["/a/b", "/a/r", "/l", "/tags/k"]);
        assert!(c[1].after_unknown());
        assert_eq!(
            serde_json::to_value(&c[1]).unwrap(),
            json!({"path": "/a/r", "before": null, "after": null, "after_unknown": true, "forces_replacement": false})
        );
    }

    #[test]
    fn render_value_shows_unknowns_inline() {
        assert_eq!(
            render_value(&json!(["a", reference("x/y", "id")])),
            "[\"a\",(known after apply)]"
        );
        assert_eq!(render_value(&json!({"k": 1})), "{\"k\":1}");
    }
}
