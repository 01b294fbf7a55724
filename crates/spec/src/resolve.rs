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

/// Where `${VAR}` values come from. Any `Fn(&str) -> Option<String>` is one (tests pass a
/// map, the CLI the process environment); an [`AllowList`] refuses names it does not list.
pub trait Environment {
    /// The variable's value, `None` when it is unset, or why it may not be read.
    fn lookup(&self, name: &str) -> Result<Option<String>, SubstError>;
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn lookup(&self, name: &str) -> Result<Option<String>, SubstError> {
        Ok(self(name))
    }
}

/// Looks up environment variables; tests pass a map, the CLI the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment of which only the listed variables may be read: the operator's, whose own
/// environment holds its credentials and configuration, while anyone who may create an object
/// writes its `${VAR}` references. A reference to another variable is an error naming it.
pub struct AllowList<E> {
    names: std::collections::BTreeSet<String>,
    env: E,
    /// How to allow a variable, for the error's hint (`--env-allow NAME`).
    how: String,
}

impl<E> AllowList<E> {
    /// `env` restricted to `names`; `how` tells the user how a name is allowed.
    pub fn new(names: impl IntoIterator<Item = String>, env: E, how: impl Into<String>) -> Self {
        AllowList {
            names: names.into_iter().collect(),
            env,
            how: how.into(),
        }
    }
}

impl<E: Environment> Environment for AllowList<E> {
    fn lookup(&self, name: &str) -> Result<Option<String>, SubstError> {
        if self.names.contains(name) {
            return self.env.lookup(name);
        }
        Err(SubstError {
            message: format!("environment variable `{name}` is not on the allow-list"),
            hint: Some(format!(
                "{}, or write the value itself",
                self.how.replace("NAME", name)
            )),
        })
    }
}

/// A value that came from the environment, with the reference it was written as. Messages
/// show the reference instead of the value ([`crate::redact::Redactor`]): environment values
/// may be secrets, and diagnostics end up in logs, statuses and events.
#[derive(Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The text that came out of substitution.
    pub value: String,
    /// What the file says instead (`${NAME}`, or the whole scalar as written).
    pub reference: String,
}

impl std::fmt::Debug for Substitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substitution")
            .field("reference", &self.reference)
            .field("value", &"(hidden)")
            .finish()
    }
}

/// Resolves a document tree. Every problem is collected; the value is best-effort when there
/// are errors.
pub fn resolve(node: &Node, env: EnvLookup<'_>) -> (Value, LocationIndex, Vec<ResolveError>) {
    resolve_tracked(node, &env, &mut Vec::new())
}

/// [`resolve`], adding to `substituted` every value that came from the environment.
pub fn resolve_tracked(
    node: &Node,
    env: &dyn Environment,
    substituted: &mut Vec<Substitution>,
) -> (Value, LocationIndex, Vec<ResolveError>) {
    let mut index = LocationIndex::default();
    let mut errors = Vec::new();
    index.entries.insert(
        String::new(),
        Loc {
            key: None,
            value: node.pos,
        },
    );
    let mut walk = Walk {
        env,
        index: &mut index,
        errors: &mut errors,
        substituted,
    };
    let value = resolve_node(node, "", &mut walk);
    (value, index, errors)
}

/// What a resolution carries through the tree.
struct Walk<'a, 'e> {
    env: &'e dyn Environment,
    index: &'a mut LocationIndex,
    errors: &'a mut Vec<ResolveError>,
    substituted: &'a mut Vec<Substitution>,
}

fn resolve_node(node: &Node, path: &str, walk: &mut Walk<'_, '_>) -> Value {
    match &node.value {
        NodeValue::Scalar { text, plain } => resolve_scalar(node, text, *plain, path, walk),
        NodeValue::Seq(items) => {
            check_collection_tag(node, "!!seq", path, walk.errors);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let child = join_index(path, i);
                walk.index.entries.insert(
                    child.clone(),
                    Loc {
                        key: None,
                        value: item.pos,
                    },
                );
                out.push(resolve_node(item, &child, walk));
            }
            Value::Array(out)
        }
        NodeValue::Map(entries) => {
            check_collection_tag(node, "!!map", path, walk.errors);
            let mut out = Map::new();
            for (key, value) in entries {
                let child = join_key(path, &key.text);
                walk.index.entries.insert(
                    child.clone(),
                    Loc {
                        key: Some(key.pos),
                        value: value.pos,
                    },
                );
                let v = resolve_node(value, &child, walk);
                out.insert(key.text.clone(), v);
            }
            Value::Object(out)
        }
    }
}

fn resolve_scalar(
    node: &Node,
    text: &str,
    plain: bool,
    path: &str,
    walk: &mut Walk<'_, '_>,
) -> Value {
    let errors = &mut *walk.errors;
    let mut error = |message: String, hint: Option<String>| {
        errors.push(ResolveError {
            pos: node.pos,
            path: path.to_string(),
            message,
            hint,
        })
    };
    let tag = node.tag.as_deref();
    let substituted = match tag {
        None | Some("!ENV") => match substitute_tracked(text, walk.env, walk.substituted) {
            Ok(s) => s,
            Err(problems) => {
                for p in problems {
                    error(p.message, p.hint);
                }
                return Value::Null;
            }
        },
        _ => text.to_string(),
    };
    match tag {
        None if plain => {
            if substituted == text {
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
    substitute_tracked(text, &env, &mut Vec::new())
}

/// [`substitute`], adding to `substituted` each value read from the environment (as
/// `${NAME}`) and, when the text holds more than the reference, the whole result (as the text
/// written), so neither can be quoted back in a message.
pub fn substitute_tracked(
    text: &str,
    env: &dyn Environment,
    substituted: &mut Vec<Substitution>,
) -> Result<String, Vec<SubstError>> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut from_env = false;
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
            match (env.lookup(name), default) {
                (Err(refused), _) => problems.push(refused),
                (Ok(Some(v)), _) => {
                    out.push_str(&v);
                    from_env = true;
                    if !v.is_empty() {
                        substituted.push(Substitution {
                            value: v,
                            reference: format!("${{{name}}}"),
                        });
                    }
                }
                (Ok(None), Some(d)) => out.push_str(d),
                (Ok(None), None) => problems.push(SubstError {
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
    if from_env && out != text {
        substituted.push(Substitution {
            value: out.clone(),
            reference: text.to_string(),
        });
    }
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
    fn substitutions_are_tracked_and_the_allow_list_refuses_other_names() {
        let mut tracked = Vec::new();
        let out = substitute_tracked("a-${PW}-${NOPE:-d}", &env, &mut tracked).unwrap();
        assert_eq!(out, "a-s3cret-d");
        let pairs: Vec<(&str, &str)> = tracked
            .iter()
            .map(|s| (s.value.as_str(), s.reference.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("s3cret", "${PW}"), ("a-s3cret-d", "a-${PW}-${NOPE:-d}")]
        );
        // Defaults and plain text are no environment values.
        let mut tracked = Vec::new();
        substitute_tracked("${NOPE:-d} x", &env, &mut tracked).unwrap();
        assert!(tracked.is_empty());

        let allowed = AllowList::new(
            ["PORT".to_string()],
            env,
            "allow it with `--env-allow NAME`",
        );
        let mut tracked = Vec::new();
        assert_eq!(
            substitute_tracked("${PORT}", &allowed, &mut tracked).unwrap(),
            "25565"
        );
        for text in ["${PW}", "${PW:-fallback}"] {
            let errs = substitute_tracked(text, &allowed, &mut tracked).unwrap_err();
            assert_eq!(errs.len(), 1);
            assert!(errs[0].message.contains("`PW` is not on the allow-list"));
            assert!(errs[0].hint.as_deref().unwrap().contains("--env-allow PW"));
            assert!(!format!("{errs:?}").contains("s3cret"));
        }
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
