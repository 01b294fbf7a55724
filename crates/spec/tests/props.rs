//! Property tests of the loader and validator: whatever bytes come in, `check` returns
//! instead of panicking or hanging, and every diagnostic points inside the input and says
//! something. The inputs are arbitrary bytes, token soup built from YAML's own punctuation and
//! the spec's keys, and the example specs in `specs/` mutated at the text and at the
//! structure level (keys deleted, duplicated, renamed and retyped, values replaced).
//!
//! Each property runs `PROPTEST_CASES` cases (256 by default, a few seconds in all); set the
//! variable higher for a longer search, e.g. `PROPTEST_CASES=20000 cargo test -p
//! reconciler-spec --test props`.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reconciler_spec::resolve::resolve;
use reconciler_spec::yaml::parse_stream;
use reconciler_spec::{check, Input, InstanceCatalog};
use serde_json::Value;

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        "NUMBER" => Some("42".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Lines of a text as YAML counts them: a line break is `\r\n`, `\r` or `\n`. The loader
/// itself quotes lines split at `\n` only, so a position is accepted when it lies inside the
/// text by either count.
fn lines_by(text: &str, yaml_breaks: bool) -> Vec<usize> {
    let mut lines = vec![0];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let brk = match c {
            '\n' => true,
            '\r' if yaml_breaks => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                true
            }
            _ => false,
        };
        if brk {
            lines.push(0);
        } else {
            *lines.last_mut().unwrap() += 1;
        }
    }
    lines
}

fn within(lines: &[usize], line: usize, col: usize) -> bool {
    line >= 1 && col >= 1 && lines.get(line - 1).is_some_and(|len| col <= len + 1)
}

/// Runs `check` on the inputs and asserts the properties every outcome must have.
fn check_inputs(inputs: &[Input]) -> Result<(), TestCaseError> {
    let (set, diags) = check(inputs, &env, &InstanceCatalog::offline());
    for d in &diags {
        let input = inputs.iter().find(|i| i.name == d.file);
        prop_assert!(input.is_some(), "unknown file in {d:?}");
        let text = String::from_utf8_lossy(&input.unwrap().bytes);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        prop_assert!(
            within(&lines_by(text, false), d.line, d.col)
                || within(&lines_by(text, true), d.line, d.col),
            "{}:{} is outside the input: {d:?}",
            d.line,
            d.col
        );
        prop_assert!(!d.message.trim().is_empty(), "no message: {d:?}");
    }
    if !diags.iter().any(|d| d.is_error()) {
        // Valid input: every document it holds was loaded, none was dropped silently.
        let mut documents = 0;
        for input in inputs {
            let text = std::str::from_utf8(&input.bytes).unwrap();
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            documents += parse_stream(text).unwrap().into_iter().flatten().count();
        }
        prop_assert_eq!(set.bases.len() + set.servers.len(), documents);
    }
    Ok(())
}

fn one(name: &str, bytes: Vec<u8>) -> Input {
    Input {
        name: name.into(),
        bytes,
    }
}

/// Pieces of YAML syntax and of the spec's vocabulary; token soup made of them reaches far
/// more of the parser and the loader than random bytes do.
const TOKENS: &[&str] = &[
    "\n",
    "\n",
    "\n",
    "  ",
    "  ",
    "    ",
    "\t",
    " ",
    "- ",
    ": ",
    ":",
    "? ",
    ",",
    "[",
    "]",
    "{",
    "}",
    "#",
    "---\n",
    "...\n",
    "'",
    "\"",
    "|",
    ">",
    "&a ",
    "*a",
    "!ENV ",
    "!!str ",
    "!!int ",
    "!!map ",
    "!foo ",
    "%YAML 1.2\n",
    "\\",
    "${SET}",
    "${UNSET}",
    "${UNSET:-d}",
    "${NUMBER}",
    "${EMPTY}",
    "${",
    "$",
    "}",
    "apiVersion",
    "reconciler.dev/v1alpha1",
    "kind",
    "Base",
    "ContainerSpec",
    "metadata",
    "name",
    "spec",
    "region",
    "us-west-2",
    "domain",
    "hostedZoneId",
    "Z0123456789ABC",
    "example.com",
    "baseRef",
    "main",
    "ec2",
    "instanceType",
    "m5.large",
    "container",
    "image",
    "ports",
    "port",
    "protocol",
    "udp",
    "environment",
    "secrets",
    "volumes",
    "paths",
    "path",
    "/data",
    "watchdog",
    "threshold",
    "alerts",
    "email",
    "dnsName",
    "0",
    "1",
    "-1",
    "65536",
    "1e400",
    ".nan",
    "true",
    "null",
    "~",
    "é",
    "\u{feff}",
    "\u{0}",
    "\u{85}",
    "\r",
    "\r\n",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..200).prop_map(|t| t.concat())
}

/// A text-level edit of a spec file.
#[derive(Debug, Clone)]
enum TextEdit {
    DeleteLine(usize),
    DuplicateLine(usize),
    Indent(usize, usize),
    Dedent(usize),
    Insert(usize, &'static str),
    Truncate(usize),
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        any::<usize>().prop_map(TextEdit::DeleteLine),
        any::<usize>().prop_map(TextEdit::DuplicateLine),
        (any::<usize>(), 1..6usize).prop_map(|(l, n)| TextEdit::Indent(l, n)),
        any::<usize>().prop_map(TextEdit::Dedent),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(at, t)| TextEdit::Insert(at, t)),
        any::<usize>().prop_map(TextEdit::Truncate),
    ]
}

fn apply_text_edit(text: &str, edit: &TextEdit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let n = lines.len();
    match edit {
        TextEdit::DeleteLine(i) => {
            lines.remove(i % n);
        }
        TextEdit::DuplicateLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        TextEdit::Indent(i, by) => lines[i % n].insert_str(0, &" ".repeat(*by)),
        TextEdit::Dedent(i) => {
            let l = &mut lines[i % n];
            let trimmed = l.trim_start().to_string();
            *l = trimmed;
        }
        TextEdit::Insert(at, token) => {
            let mut s = lines.join("\n");
            let mut at = at % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.insert_str(at, token);
            return s;
        }
        TextEdit::Truncate(at) => {
            let s = lines.join("\n");
            let mut at = at % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            return s[..at].to_string();
        }
    }
    lines.join("\n") + "\n"
}

/// A structural edit of a spec document: applied to the `n`-th value in document order.
#[derive(Debug, Clone)]
enum TreeEdit {
    Delete(usize),
    Replace(usize, Value),
    RenameKey(usize, String),
    CopyInto(usize, usize),
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, 1, 65535, 65536, 1440, 1441, 4294967296])
            .prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9 ./:_@-]{0,20}".prop_map(Value::String),
        prop::sample::select(TOKENS).prop_map(|t| Value::String(t.to_string())),
    ]
}

fn tree_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,12}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    prop_oneof![
        any::<usize>().prop_map(TreeEdit::Delete),
        (any::<usize>(), tree_value()).prop_map(|(i, v)| TreeEdit::Replace(i, v)),
        (any::<usize>(), "[a-zA-Z]{1,12}").prop_map(|(i, k)| TreeEdit::RenameKey(i, k)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| TreeEdit::CopyInto(a, b)),
    ]
}

/// JSON-pointer-like paths of every value below the root, in document order.
fn paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                at.push(k.clone());
                out.push(at.clone());
                paths(v, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(i.to_string());
                out.push(at.clone());
                paths(v, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn parent_mut<'a>(root: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = root;
    for seg in &path[..path.len() - 1] {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn get<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |cur, seg| match cur {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

fn apply_tree_edit(root: &mut Value, edit: &TreeEdit) {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let pick = |i: usize| all[i % all.len()].clone();
    match edit {
        TreeEdit::Delete(i) => {
            let path = pick(*i);
            let last = path.last().unwrap().clone();
            match parent_mut(root, &path) {
                Some(Value::Object(m)) => {
                    m.shift_remove(&last);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            a.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        TreeEdit::Replace(i, v) => {
            let path = pick(*i);
            let last = path.last().unwrap().clone();
            match parent_mut(root, &path) {
                Some(Value::Object(m)) => {
                    m.insert(last, v.clone());
                }
                Some(Value::Array(a)) => {
                    if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                        *slot = v.clone();
                    }
                }
                _ => {}
            }
        }
        TreeEdit::RenameKey(i, new) => {
            let path = pick(*i);
            let last = path.last().unwrap().clone();
            if let Some(Value::Object(m)) = parent_mut(root, &path) {
                if let Some(v) = m.shift_remove(&last) {
                    m.insert(new.clone(), v);
                }
            }
        }
        TreeEdit::CopyInto(from, to) => {
            let Some(v) = get(root, &pick(*from)).cloned() else {
                return;
            };
            let path = pick(*to);
            let last = path.last().unwrap().clone();
            match parent_mut(root, &path) {
                Some(Value::Object(m)) => {
                    m.insert(last, v);
                }
                Some(Value::Array(a)) => a.push(v),
                _ => {}
            }
        }
    }
}

/// Block-style YAML for a JSON value: strings double-quoted with JSON escapes (valid YAML),
/// keys too, so any key text survives.
fn to_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                inline_or_nested(v, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for v in a {
                out.push_str(&pad);
                out.push('-');
                inline_or_nested(v, indent, out);
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

fn inline_or_nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            to_yaml(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            to_yaml(v, indent + 2, out);
        }
        // `null`, numbers, booleans, strings, `{}` and `[]` are all valid inline.
        other => {
            out.push(' ');
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

/// The example specs as resolved JSON documents (defaults of `${VAR:-default}` applied).
fn example_trees() -> Vec<(String, Value)> {
    examples()
        .into_iter()
        .map(|(name, text)| {
            let docs = parse_stream(&text).unwrap();
            let node = docs.into_iter().flatten().next().unwrap();
            let (value, _, errors) = resolve(&node, &env);
            assert!(errors.is_empty(), "{name}: {errors:?}");
            (name, value)
        })
        .collect()
}

#[test]
fn the_examples_pass_the_properties_unchanged() {
    let inputs: Vec<Input> = examples()
        .into_iter()
        .map(|(name, text)| one(&name, text.into_bytes()))
        .collect();
    check_inputs(&inputs).unwrap();
    let (_, diags) = check(&inputs, &env, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    // The emitter used below writes YAML that reads back to the same documents.
    for (name, tree) in example_trees() {
        let mut text = String::new();
        to_yaml(&tree, 0, &mut text);
        let node = parse_stream(&text)
            .unwrap()
            .into_iter()
            .flatten()
            .next()
            .unwrap();
        let (back, _, errors) = resolve(&node, &env);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(back, tree, "{name}:\n{text}");
    }
}

/// The default configuration (which reads `PROPTEST_CASES`), without writing regression files
/// into the source tree: a failure prints its minimal input, which belongs in a unit test.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_inputs(&[one("bytes.yaml", bytes)])?;
    }

    #[test]
    fn token_soup_of_yaml_and_spec_words(text in token_soup()) {
        check_inputs(&[one("soup.yaml", text.into_bytes())])?;
    }

    #[test]
    fn example_specs_edited_as_text(
        file in 0..4usize,
        edits in prop::collection::vec(text_edit(), 1..6),
    ) {
        let examples = examples();
        let (name, text) = &examples[file % examples.len()];
        let edited = edits.iter().fold(text.clone(), |t, e| apply_text_edit(&t, e));
        let mut inputs: Vec<Input> = examples
            .iter()
            .filter(|(n, _)| n != name)
            .map(|(n, t)| one(n, t.clone().into_bytes()))
            .collect();
        inputs.push(one(name, edited.into_bytes()));
        check_inputs(&inputs)?;
    }

    #[test]
    fn example_specs_edited_as_documents(
        file in 0..4usize,
        edits in prop::collection::vec(tree_edit(), 1..6),
    ) {
        let trees = example_trees();
        let (name, tree) = &trees[file % trees.len()];
        let mut tree = tree.clone();
        for e in &edits {
            apply_tree_edit(&mut tree, e);
        }
        let mut text = String::new();
        to_yaml(&tree, 0, &mut text);
        let mut inputs: Vec<Input> = examples()
            .into_iter()
            .filter(|(n, _)| n != name)
            .map(|(n, t)| one(&n, t.into_bytes()))
            .collect();
        inputs.push(one(name, text.into_bytes()));
        check_inputs(&inputs)?;
    }
}
