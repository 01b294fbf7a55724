//! Small helpers for reading desired properties and building observed ones.

use std::future::Future;
use std::sync::Arc;

use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use serde_json::Value;

use crate::tags::tag_delta;

/// A required string property, or a terminal error naming it.
pub fn str_prop<'a>(desired: &'a DesiredResource, key: &str) -> Result<&'a str, ProviderError> {
    desired
        .properties
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(desired, key))
}

/// An optional string property.
pub fn opt_str<'a>(desired: &'a DesiredResource, key: &str) -> Option<&'a str> {
    desired.properties.get(key).and_then(Value::as_str)
}

/// A required integer property.
pub fn i64_prop(desired: &DesiredResource, key: &str) -> Result<i64, ProviderError> {
    desired
        .properties
        .get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| missing(desired, key))
}

/// A required boolean property.
pub fn bool_prop(desired: &DesiredResource, key: &str) -> Result<bool, ProviderError> {
    desired
        .properties
        .get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| missing(desired, key))
}

/// A list of strings (empty when absent).
pub fn str_list(desired: &DesiredResource, key: &str) -> Vec<String> {
    strings(desired.properties.get(key))
}

/// The strings of a JSON array, desired or observed (empty when absent or not an array).
pub fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The error for a property render should always set.
pub fn missing(desired: &DesiredResource, key: &str) -> ProviderError {
    ProviderError::terminal(format!(
        "{}: property `{key}` is missing or has the wrong type (a render/provider mismatch)",
        desired.id
    ))
}

/// An observation with the given properties, outputs and tags.
pub fn observed(
    desired: &DesiredResource,
    properties: Value,
    outputs: impl IntoIterator<Item = (&'static str, Value)>,
    tags: IndexMap<String, String>,
) -> Observed {
    let mut o = Observed::new(desired.id.clone());
    o.properties = properties;
    o.outputs = outputs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    o.tags = tags;
    o
}

/// Whether any change lies at or below the top-level property `key`.
pub fn touches(changes: &[FieldChange], key: &str) -> bool {
    let exact = format!("/{key}");
    let below = format!("/{key}/");
    changes
        .iter()
        .any(|c| c.path == exact || c.path.starts_with(&below))
}

/// Whether any change is on a tag.
pub fn touches_tags(changes: &[FieldChange]) -> bool {
    changes.iter().any(FieldChange::is_tag)
}

/// Parses a JSON policy document as AWS returns it (sometimes URL-encoded, as IAM does).
pub fn parse_policy(text: &str) -> Value {
    let decoded = if text.trim_start().starts_with('%') || text.contains("%7B") {
        percent_decode(text)
    } else {
        text.to_string()
    };
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The longest prefix every name shares (empty for no names). Listing with it finds every
/// desired object in one paginated call, with as little else as the names allow.
pub fn common_prefix<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names = names.into_iter();
    let Some(first) = names.next() else {
        return String::new();
    };
    let mut prefix = first;
    for name in names {
        let len = prefix
            .char_indices()
            .zip(name.chars())
            .find(|((_, a), b)| a != b)
            .map_or(prefix.len().min(name.len()), |((i, _), _)| i);
        prefix = &prefix[..len];
    }
    prefix.to_string()
}

/// An output of the observed object (its id, its ARN), which update and delete need to address
/// it; a terminal error naming the resource when the observation lacks it.
pub fn output(
    desired: &DesiredResource,
    observed: &Observed,
    key: &str,
) -> Result<String, ProviderError> {
    observed
        .output(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ProviderError::terminal(format!("{}: observed without output `{key}`", desired.id))
        })
}

/// The observation after a successful update: the desired (resolved) properties over the old
/// observation, and the tags with the delta applied.
pub fn updated(observed: &Observed, desired: &DesiredResource) -> Observed {
    let mut out = observed.clone();
    if let (Value::Object(props), Value::Object(want)) = (&mut out.properties, &desired.properties)
    {
        for (k, v) in want {
            props.insert(k.clone(), v.clone());
        }
    }
    let (set, remove) = tag_delta(&desired.tags, &observed.tags);
    for key in remove {
        out.tags.shift_remove(&key);
    }
    out.tags.extend(set);
    out
}

/// How many per-object reads run at once: enough to hide latency, few enough to stay clear of
/// the low request-rate limits of control-plane APIs (IAM, Lambda).
pub const READ_CONCURRENCY: usize = 4;

/// Runs per-object reads (for APIs without a batch form) with at most [`READ_CONCURRENCY`] in
/// flight, keeping the input order; the first error wins.
pub async fn read_all<T, F>(reads: Vec<F>) -> Result<Vec<T>, ProviderError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ProviderError>> + Send + 'static,
{
    let n = reads.len();
    let permits = Arc::new(tokio::sync::Semaphore::new(READ_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, read) in reads.into_iter().enumerate() {
        let permits = permits.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, read.await)
        });
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) =
            joined.map_err(|e| ProviderError::transient(format!("a read task failed: {e}")))?;
        out[i] = Some(result?);
    }
    Ok(out.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_parse_plain_and_url_encoded() {
        let v = super::parse_policy("%7B%22a%22%3A1%7D");
        assert_eq!(v["a"], 1);
        let v = super::parse_policy("{\"a\": 2}");
        assert_eq!(v["a"], 2);
    }

    #[test]
    fn common_prefix_of_names() {
        use super::common_prefix;
        assert_eq!(common_prefix(["rc-minecraft", "rc-valheim"]), "rc-");
        assert_eq!(common_prefix(["rc-a"]), "rc-a");
        assert_eq!(common_prefix(["abc", "xyz"]), "");
        assert_eq!(common_prefix(["rc-ab", "rc-a"]), "rc-a");
        assert_eq!(common_prefix(["rc-é", "rc-è"]), "rc-");
        assert_eq!(common_prefix(Vec::<&str>::new()), "");
    }

    #[test]
    fn updated_overlays_properties_and_tags() {
        let desired = DesiredResource::new("iam.role", "r", "us-east-1", "rc-r")
            .with_properties(json!({"description": "new"}))
            .with_tag("reconciler.dev/a", "1");
        let mut observed = Observed::new("iam.role/r");
        observed.properties = json!({"description": "old", "path": "/"});
        observed
            .tags
            .insert("reconciler.dev/old".into(), "x".into());
        observed.tags.insert("user".into(), "y".into());
        let out = updated(&observed, &desired);
        assert_eq!(out.properties, json!({"description": "new", "path": "/"}));
        assert_eq!(
            out.tags.get("reconciler.dev/a").map(String::as_str),
            Some("1")
        );
        assert!(!out.tags.contains_key("reconciler.dev/old"));
        assert!(out.tags.contains_key("user"));
    }
}
