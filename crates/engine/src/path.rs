//! Field paths inside a resource's properties.
//!
//! Paths use JSON Pointer syntax (RFC 6901): `/desiredCapacity`,
//! `/ingress/0/fromPort`, with `~1` standing for `/` and `~0` for `~` inside a
//! segment. Tags are addressed as `/tags/<key>`, which is why `tags` is a
//! reserved top-level property name (see [`crate::model::DesiredGraph`]).
//!
//! Patterns (used by [`crate::provider::KindSpec`] for runtime-owned,
//! immutable and unordered fields) are paths in which a segment may be `*`,
//! matching any single segment, typically an array index:
//! `/containerDefinitions/*/image`.

use serde_json::{Map, Value};

/// Escapes one path segment (`~` -> `~0`, `/` -> `~1`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Reverses [`escape`].
pub fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Appends an (unescaped) segment to `path` in place and returns the length to truncate back
/// to: walks over large documents reuse one buffer instead of allocating a path per node.
pub fn push(path: &mut String, segment: &str) -> usize {
    let len = path.len();
    path.push('/');
    if segment.contains(['~', '/']) {
        path.push_str(&escape(segment));
    } else {
        path.push_str(segment);
    }
    len
}

/// Appends an (unescaped) segment to a path.
pub fn join(path: &str, segment: &str) -> String {
    format!("{path}/{}", escape(segment))
}

/// Splits a path into its unescaped segments; the root path `""` has none.
pub fn segments(path: &str) -> Vec<String> {
    if path.is_empty() {
        return Vec::new();
    }
    path.trim_start_matches('/')
        .split('/')
        .map(unescape)
        .collect()
}

fn raw_segments(path: &str) -> Vec<&str> {
    if path.is_empty() {
        return Vec::new();
    }
    path.trim_start_matches('/').split('/').collect()
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    pattern == "*" || pattern == segment
}

/// True when `path` is `pattern` itself or lies below it.
///
/// Used for runtime-owned fields: owning `/scaling` owns `/scaling/desired`.
pub fn is_at_or_below(path: &str, pattern: &str) -> bool {
    let p = raw_segments(pattern);
    let s = raw_segments(path);
    s.len() >= p.len() && p.iter().zip(&s).all(|(p, s)| segment_matches(p, s))
}

/// True when `path` and `pattern` lie on one branch: one is at or below the
/// other.
///
/// Used for immutable fields: a change of `/placement` (the whole object)
/// touches the immutable `/placement/zone`, and so does a change of
/// `/placement/zone/name`.
pub fn overlaps(path: &str, pattern: &str) -> bool {
    let p = raw_segments(pattern);
    let s = raw_segments(path);
    p.iter().zip(&s).all(|(p, s)| segment_matches(p, s))
}

/// True when `path` is exactly matched by `pattern`.
pub fn matches_exactly(path: &str, pattern: &str) -> bool {
    let p = raw_segments(pattern);
    let s = raw_segments(path);
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| segment_matches(p, s))
}

/// Reads the value at `path`; `""` is the whole document.
pub fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(root);
    }
    root.pointer(path)
}

/// Writes `value` at `path`, creating intermediate objects as needed.
///
/// Returns `false` (and changes nothing further) when an intermediate value is
/// neither an object nor an array that has the addressed index. Providers use
/// this to apply a [`crate::diff::FieldChange`] to a read-back document.
pub fn set(root: &mut Value, path: &str, value: Value) -> bool {
    let segs = segments(path);
    let Some((last, parents)) = segs.split_last() else {
        *root = value;
        return true;
    };
    let mut cur = root;
    for seg in parents {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        cur = match cur {
            Value::Object(map) => map
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return false,
            },
            _ => return false,
        };
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            true
        }
        Value::Array(items) => match last.parse::<usize>().ok() {
            Some(i) if i < items.len() => {
                items[i] = value;
                true
            }
            Some(i) if i == items.len() => {
                items.push(value);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Removes the value at `path`, returning it.
pub fn remove(root: &mut Value, path: &str) -> Option<Value> {
    let segs = segments(path);
    let (last, parents) = segs.split_last()?;
    let mut cur = root;
    for seg in parents {
        cur = match cur {
            Value::Object(map) => map.get_mut(seg)?,
            Value::Array(items) => items.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match cur {
        Value::Object(map) => map.shift_remove(last),
        Value::Array(items) => {
            let i = last.parse::<usize>().ok()?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_round_trips() {
        assert_eq!(escape("team.example/cluster~x"), "team.example~1cluster~0x");
        assert_eq!(
            unescape("team.example~1cluster~0x"),
            "team.example/cluster~x"
        );
        assert_eq!(join("/tags", "a/b"), "/tags/a~1b");
        assert_eq!(segments("/tags/a~1b"), vec!["tags", "a/b"]);
        assert!(segments("").is_empty());
    }

    #[test]
    fn pattern_matching() {
        assert!(is_at_or_below("/desiredCapacity", "/desiredCapacity"));
        assert!(is_at_or_below("/scaling/desired", "/scaling"));
        assert!(!is_at_or_below("/scaling", "/scaling/desired"));
        assert!(is_at_or_below("/containers/3/image", "/containers/*/image"));
        assert!(!is_at_or_below("/desiredCapacityX", "/desiredCapacity"));
        assert!(overlaps("/placement", "/placement/zone"));
        assert!(overlaps("/placement/zone/name", "/placement/zone"));
        assert!(!overlaps("/placement/tenancy", "/placement/zone"));
        assert!(matches_exactly("/ingress", "/ingress"));
        assert!(!matches_exactly("/ingress/0", "/ingress"));
    }

    #[test]
    fn set_get_remove() {
        let mut doc = json!({"a": {"b": 1}, "list": [1, 2]});
        assert!(set(&mut doc, "/a/c/d", json!("x")));
        assert_eq!(get(&doc, "/a/c/d"), Some(&json!("x")));
        assert!(set(&mut doc, "/list/1", json!(5)));
        assert!(set(&mut doc, "/list/2", json!(6)));
        assert!(!set(&mut doc, "/list/9", json!(6)));
        assert_eq!(doc["list"], json!([1, 5, 6]));
        assert_eq!(remove(&mut doc, "/a/b"), Some(json!(1)));
        assert_eq!(remove(&mut doc, "/a/zz"), None);
        assert!(!set(&mut doc, "/list/0/x", json!(1)));
        assert_eq!(get(&doc, ""), Some(&doc));
    }
}
