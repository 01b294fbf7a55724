//! Second pass over a YAML tree: substitutes `${VAR}` references, types scalars, and turns the
//! tree into a `serde_json::Value` plus an index from key path to source position.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use crate::yaml::{Node, NodeValue, Pos};

/// Where the node at a key path sits in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// The mapping key, when the node is a mapping value.
    pub key: Option<Pos>,
    /// The value itself.
    pub value: Pos,
}

/// Key path (`spec.volumes.data.paths[0].path`) to position, for one document.
#[derive(Debug, Clone, Default)]
pub struct LocationIndex {
    entries: HashMap<String, Loc>,
}

impl LocationIndex {
    /// The position for `path`, or for its nearest ancestor present in the source (a missing
    /// field is reported at the map that lacks it).
    pub fn find(&self, path: &str) -> Loc {
        let mut p = path;
        loop {
            if let Some(loc) = self.entries.get(p) {
                return *loc;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => {
                    return self.entries.get("").copied().unwrap_or(Loc {
                        key: None,
                        value: Pos { line: 1, col: 1 },
                    })
                }
            }
        }
    }

    /// True when the source has a node at exactly this path.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }
}

fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Appends a mapping key to a key path.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a list index to a key path.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A problem found while resolving, located.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveError {
    /// Where.
    pub pos: Pos,
    /// Key path of the value.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Looks up environment variables; tests pass a map, the CLI the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Resolves a document tree. Every problem is collected; the value is best-effort when there
/// are errors.
pub fn resolve(node: &Node, env: EnvLookup<'_>) -> (Value, LocationIndex, Vec<ResolveError>) {
    let mut index = LocationIndex::default();
    let mut errors = Vec::new();
    index.entries.insert(
        String::new(),
        Loc {
            key: None,
            value: node.pos,
        },
    );
    let value = resolve_node(node, "", env, &mut index, &mut errors);
    (value, index, errors)
}

fn resolve_node(
    node: &Node,
    path: &str,
    env: EnvLookup<'_>,
    index: &mut LocationIndex,
    errors: &mut Vec<ResolveError>,
) -> Value {
    let mut error = |message: String, hint: Option<String>| {
        errors.push(ResolveError {
            pos: node.pos,
            path: path.to_string(),
            message,
            hint,
        })
    };
    match &node.value {
        NodeValue::Scalar { text, plain } => {
            let tag = node.tag.as_deref();
            let substituted = match tag {
                None | Some("!ENV") => match substitute(text, env) {
                    Ok(s) => s,
                    Err(problems) => {
                        for p in problems {
                            error(p.message, p.hint);
                        }
                        return Value::Null;
                    }
                },
                _ => text.clone(),
            };
            match tag {
                None if *plain => {
                    if substituted == *text {
                        type_plain(text)
                    } else {
                        type_substituted(&substituted)
                    }
                }
                None | Some("!ENV") | Some("!!str") | Some("!") => Value::String(substituted),
                Some("!!int") => match substituted.trim().parse::<i64>() {
                    Ok(i) => Value::from(i),
                    Err(_) => {
                        error("`!!int` value is not an integer".into(), None);
                        Value::Null
                    }
                },
                Some("!!float") => match parse_float(substituted.trim()) {
                    Some(v) => v,
                    None => {
                        error("`!!float` value is not a number".into(), None);
                        Value::Null
                    }
                },
                Some("!!bool") => match substituted.trim() {
                    "true" | "True" | "TRUE" => Value::Bool(true),
                    "false" | "False" | "FALSE" => Value::Bool(false),
                    _ => {
                        error("`!!bool` value is not true or false".into(), None);
                        Value::Null
                    }
                },
                Some("!!null") => Value::Null,
                Some(other) => {
                    error(
                        format!("unknown tag `{other}`"),
                        Some("the tags understood are `!ENV` and the standard `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`".into()),
                    );
                    Value::Null
                }
            }
        }
        NodeValue::Seq(items) => {
            check_collection_tag(node, "!!seq", path, errors);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let child = join_index(path, i);
                index.entries.insert(
                    child.clone(),
                    Loc {
                        key: None,
                        value: item.pos,
                    },
                );
                out.push(resolve_node(item, &child, env, index, errors));
            }
            Value::Array(out)
        }
        NodeValue::Map(entries) => {
            check_collection_tag(node, "!!map", path, errors);
            let mut out = Map::new();
            for (key, value) in entries {
                let child = join_key(path, &key.text);
                index.entries.insert(
                    child.clone(),
                    Loc {
                        key: Some(key.pos),
                        value: value.pos,
                    },
                );
                let v = resolve_node(value, &child, env, index, errors);
                out.insert(key.text.clone(), v);
            }
            Value::Object(out)
        }
    }
}

fn check_collection_tag(node: &Node, allowed: &str, path: &str, errors: &mut Vec<ResolveError>) {
    if let Some(tag) = node.tag.as_deref() {
        if tag != allowed && tag != "!" {
            errors.push(ResolveError {
                pos: node.pos,
                path: path.to_string(),
                message: format!("unknown tag `{tag}` on a list or map"),
                hint: Some("`!ENV` applies to single values, not to lists or maps".into()),
            });
        }
    }
}

/// Types an unquoted scalar by the YAML 1.2 core schema: null, booleans, integers (decimal,
/// `0o` octal, `0x` hex), floats (with `.inf` and `.nan`), otherwise text.
pub fn type_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::from(i);
    }
    parse_float(text).unwrap_or_else(|| Value::String(text.to_string()))
}

/// Types a scalar that came from the environment conservatively: only canonical integers and
/// `true`/`false` become non-text, so a substituted `007` or `1e5` stays exactly as given.
fn type_substituted(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match canonical.then(|| text.parse::<i64>().ok()).flatten() {
        Some(i) => Value::from(i),
        None => Value::String(text.to_string()),
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -magnitude } else { magnitude })
}

fn parse_float(text: &str) -> Option<Value> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            // JSON has no infinities or NaN; keep the text so a typed field reports it.
            return Some(Value::String(text.to_string()));
        }
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// A problem with a `${...}` reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SubstError {
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Replaces `${NAME}` and `${NAME:-default}` with environment values. `$${` stands for a
/// literal `${`. An unset variable without a default is an error naming it: silently using
/// an empty string would hide a missing secret until deploy time.
pub fn substitute(text: &str, env: EnvLookup<'_>) -> Result<String, Vec<SubstError>> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            problems.push(SubstError {
                message: "unterminated `${` reference".into(),
                hint: Some("close it with `}`, or write `$${` for a literal `${`".into()),
            });
            return Err(problems);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid_name = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            problems.push(SubstError {
                message: format!("`${{{inner}}}` is not a valid variable reference"),
                hint: Some(
                    "write `${NAME}` or `${NAME:-default}`; NAME has letters, digits and `_`"
                        .into(),
                ),
            });
        } else {
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => problems.push(SubstError {
                    message: format!("environment variable `{name}` is not set"),
                    hint: Some(format!(
                        "set {name}, or give a default with `${{{name}:-default}}`"
                    )),
                }),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("25565".into()),
            "ZERO" => Some("007".into()),
            "PW" => Some("s3cret".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_plain_quoted_and_env_tagged_values() {
        assert_eq!(substitute("a-${PW}-b", &env).unwrap(), "a-s3cret-b");
        assert_eq!(substitute("${NOPE:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(substitute("$${PW}", &env).unwrap(), "${PW}");
        assert_eq!(
            substitute("no refs $ here", &env).unwrap(),
            "no refs $ here"
        );
    }

    #[test]
    fn unset_variables_are_errors_naming_them() {
        let errs = substitute("${A} and ${B}", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("`A`"));
        assert!(errs[1].message.contains("`B`"));
        assert!(substitute("${", &env).is_err());
        assert!(substitute("${1X}", &env).is_err());
    }

    #[test]
    fn types_follow_style_tag_and_origin() {
        let docs = parse_stream(
            "a: ${PORT}\nb: '${PORT}'\nc: !ENV ${PORT}\nd: ${ZERO}\ne: 0x1F\nf: 1.5\ng: TRUE\nh: ~\n",
        )
        .unwrap();
        let (v, _, errs) = resolve(docs[0].as_ref().unwrap(), &env);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(v["a"], Value::from(25565));
        assert_eq!(v["b"], Value::from("25565"));
        assert_eq!(v["c"], Value::from("25565"));
        assert_eq!(v["d"], Value::from("007"));
        assert_eq!(v["e"], Value::from(31));
        assert_eq!(v["f"], Value::from(1.5));
        assert_eq!(v["g"], Value::Bool(true));
        assert_eq!(v["h"], Value::Null);
    }

    #[test]
    fn index_locates_keys_values_and_falls_back_to_ancestors() {
        let docs = parse_stream("spec:\n  list:\n    - x: 1\n").unwrap();
        let (_, index, _) = resolve(docs[0].as_ref().unwrap(), &env);
        let loc = index.find("spec.list[0].x");
        assert_eq!(loc.key, Some(Pos { line: 3, col: 7 }));
        assert_eq!(loc.value, Pos { line: 3, col: 10 });
        assert_eq!(
            index.find("spec.list[0].missing"),
            index.find("spec.list[0]")
        );
        assert_eq!(
            index.find("spec.other.deep").key,
            Some(Pos { line: 1, col: 1 })
        );
    }

    #[test]
    fn errors_carry_path_and_position() {
        let docs = parse_stream("spec:\n  a: ${MISSING}\n  b: !weird x\n").unwrap();
        let (_, _, errs) = resolve(docs[0].as_ref().unwrap(), &env);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].path, "spec.a");
        assert_eq!(errs[0].pos.line, 2);
        assert!(errs[1].message.contains("unknown tag"));
    }
}
