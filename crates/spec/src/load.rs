//! Reading spec files: collecting inputs, parsing every document, and deserializing each into
//! its kind, with every problem located and all of them reported in one run.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Diagnostic, SourceFile};
use crate::redact::Redactor;
use crate::resolve::{
    join_index, join_key, resolve_tracked, EnvLookup, Environment, LocationIndex, Substitution,
};
use crate::types::{BaseDocument, ContainerSpecDocument};
use crate::yaml::{parse_stream, Pos};

/// Largest spec file accepted; a real one is a few KiB.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// One input: a file's display name and its bytes.
#[derive(Debug, Clone)]
pub struct Input {
    /// How the file is named in messages.
    pub name: String,
    /// Raw content; it may turn out not to be UTF-8.
    pub bytes: Vec<u8>,
}

/// Collects the inputs named on the command line: files as given, directories recursively
/// (`*.yaml` and `*.yml`, sorted), and `-` for standard input.
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, Vec<Diagnostic>> {
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    let mut stdin_used = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_used {
                continue;
            }
            stdin_used = true;
            match read_limited(std::io::stdin().lock()) {
                Ok(bytes) => inputs.push(Input {
                    name: "<stdin>".into(),
                    bytes,
                }),
                Err(message) => problems.push(file_problem("<stdin>", message)),
            }
            continue;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                problems.push(file_problem(&path.display().to_string(), describe_io(&e)));
                continue;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = walk_yaml(path, &mut files) {
                problems.push(file_problem(&path.display().to_string(), describe_io(&e)));
                continue;
            }
            if files.is_empty() {
                problems.push(
                    file_problem(
                        &path.display().to_string(),
                        "directory has no *.yaml or *.yml files",
                    )
                    .with_hint("point -f at the spec files or at the directory holding them"),
                );
            }
            files.sort();
            for file in files {
                read_file(&file, &mut inputs, &mut problems);
            }
        } else {
            read_file(path, &mut inputs, &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(problems)
    }
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("cannot read: {e}"),
    }
}

fn file_problem(name: &str, message: impl Into<String>) -> Diagnostic {
    let file = Arc::new(SourceFile {
        name: name.to_string(),
        text: String::new(),
    });
    Diagnostic::error(&file, Pos { line: 1, col: 1 }, "", message)
}

fn read_file(path: &Path, inputs: &mut Vec<Input>, problems: &mut Vec<Diagnostic>) {
    let name = path.display().to_string();
    let read = std::fs::File::open(path)
        .map_err(|e| describe_io(&e))
        .and_then(|file| {
            // A regular file's size is known: refuse a big one before reading a byte of it.
            match file.metadata() {
                Ok(meta) if meta.is_file() && meta.len() > MAX_FILE_BYTES as u64 => {
                    Err(too_big(&meta.len().to_string()))
                }
                _ => read_limited(file),
            }
        });
    match read {
        Ok(bytes) => inputs.push(Input { name, bytes }),
        Err(message) => problems.push(file_problem(&name, message)),
    }
}

/// Reads at most [`MAX_FILE_BYTES`] from `reader`: a device or a stream with no end
/// (`/dev/zero`, an endless pipe) fails as soon as it passes the limit instead of filling
/// memory. The error is the message for the file's diagnostic.
fn read_limited(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let limit = MAX_FILE_BYTES as u64 + 1;
    match reader.take(limit).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() > MAX_FILE_BYTES => {
            Err(too_big(&format!("more than {MAX_FILE_BYTES}")))
        }
        Ok(_) => Ok(bytes),
        Err(e) => Err(describe_io(&e)),
    }
}

fn too_big(size: &str) -> String {
    format!("file is {size} bytes; spec files are limited to {MAX_FILE_BYTES} bytes")
}

fn walk_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Where a loaded document came from: its file and the positions of its keys.
#[derive(Debug)]
pub struct DocSource {
    /// The file.
    pub file: Arc<SourceFile>,
    /// Key path to position.
    pub index: LocationIndex,
    /// Position of the document's first node.
    pub start: Pos,
}

impl DocSource {
    /// An error about the value at `path` (or the nearest ancestor present in the source).
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let loc = self.index.find(path);
        Diagnostic::error(&self.file, loc.value, path, message)
    }

    /// An error about the key at `path` (its value's position when it has no key).
    pub fn error_at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let loc = self.index.find(path);
        Diagnostic::error(&self.file, loc.key.unwrap_or(loc.value), path, message)
    }

    /// `file:line` of the document, for "also defined at" notes.
    pub fn where_(&self) -> String {
        format!("{}:{}", self.file.name, self.start.line)
    }
}

/// A document and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The typed document.
    pub doc: T,
    /// Its source.
    pub source: Arc<DocSource>,
}

/// Everything read from the inputs.
#[derive(Debug, Clone, Default)]
pub struct SpecSet {
    /// Base documents, in input order.
    pub bases: Vec<Loaded<BaseDocument>>,
    /// ContainerSpec documents, in input order.
    pub servers: Vec<Loaded<ContainerSpecDocument>>,
    /// Names of Bases that failed to load, so references to them are not reported twice.
    pub broken_base_names: BTreeSet<String>,
    /// Names of ContainerSpecs that failed to load.
    pub broken_server_names: BTreeSet<String>,
    /// Every value the inputs took from the environment, so that no message repeats one.
    pub substituted: Vec<Substitution>,
}

impl SpecSet {
    /// What keeps this set's environment values out of messages.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(&self.substituted)
    }
}

/// Parses every input and deserializes every document. Returns what loaded and every problem
/// found; the caller decides to stop when there are errors.
pub fn load(inputs: &[Input], env: EnvLookup<'_>) -> (SpecSet, Vec<Diagnostic>) {
    load_from(inputs, &env)
}

/// [`load`] with `${VAR}` values from an [`Environment`] that may refuse some names (the
/// operator's allow-list).
pub fn load_from(inputs: &[Input], env: &dyn Environment) -> (SpecSet, Vec<Diagnostic>) {
    let mut set = SpecSet::default();
    let mut diags = Vec::new();
    for input in inputs {
        load_input(input, env, &mut set, &mut diags);
    }
    set.redactor().redact_all(&mut diags);
    (set, diags)
}

fn load_input(
    input: &Input,
    env: &dyn Environment,
    set: &mut SpecSet,
    diags: &mut Vec<Diagnostic>,
) {
    if input.bytes.len() > MAX_FILE_BYTES {
        diags.push(file_problem(
            &input.name,
            format!(
                "file is {} bytes; spec files are limited to {MAX_FILE_BYTES} bytes",
                input.bytes.len()
            ),
        ));
        return;
    }
    let text = match std::str::from_utf8(&input.bytes) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t).to_string(),
        Err(e) => {
            let valid = &input.bytes[..e.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() + 1;
            let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let file = Arc::new(SourceFile {
                name: input.name.clone(),
                text: String::new(),
            });
            diags.push(
                Diagnostic::error(
                    &file,
                    Pos { line, col },
                    "",
                    format!("file is not valid UTF-8 (byte {})", e.valid_up_to()),
                )
                .with_hint("save the file as UTF-8"),
            );
            return;
        }
    };
    if let Some((pos, ch)) = first_control_character(&text) {
        let file = Arc::new(SourceFile {
            name: input.name.clone(),
            text,
        });
        diags.push(
            Diagnostic::error(
                &file,
                pos,
                "",
                format!(
                    "control character U+{:04X} is not allowed in YAML",
                    u32::from(ch)
                ),
            )
            .with_hint("remove it; write tabs, line breaks and other special characters as escapes inside double quotes (`\\t`, `\\n`, `\\u0000`)"),
        );
        return;
    }
    let file = Arc::new(SourceFile {
        name: input.name.clone(),
        text,
    });
    let docs = match parse_stream(&file.text) {
        Ok(docs) => docs,
        Err(e) => {
            diags.push(Diagnostic::error(
                &file,
                e.pos,
                "",
                format!("invalid YAML: {}", e.message),
            ));
            return;
        }
    };
    let mut any = false;
    for node in docs.into_iter().flatten() {
        any = true;
        let (value, index, errors) = resolve_tracked(&node, env, &mut set.substituted);
        let source = Arc::new(DocSource {
            file: file.clone(),
            index,
            start: node.pos,
        });
        if !errors.is_empty() {
            for e in errors {
                diags
                    .push(Diagnostic::error(&file, e.pos, e.path, e.message).with_hint_opt(e.hint));
            }
            note_broken(&value, set);
            continue;
        }
        load_document(value, source, set, diags);
    }
    if !any {
        diags.push(
            Diagnostic::error(&file, Pos { line: 1, col: 1 }, "", "file has no documents")
                .with_hint("a spec file holds one or more `kind: Base` or `kind: ContainerSpec` documents separated by `---`"),
        );
    }
}

/// The first character YAML does not allow in a stream (C0 and C1 controls other than tab, line
/// breaks and NEL; DEL; U+FFFE and U+FFFF), with its position. The parser would otherwise stop
/// at it with a message about something else (a NUL reads as the end of the stream).
fn first_control_character(text: &str) -> Option<(Pos, char)> {
    let mut line = 1;
    let mut col = 1;
    for ch in text.chars() {
        let allowed = matches!(ch, '\t' | '\n' | '\r' | '\u{85}')
            || !(ch.is_control() || ch == '\u{FFFE}' || ch == '\u{FFFF}');
        if !allowed {
            return Some((Pos { line, col }, ch));
        }
        if ch == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn note_broken(value: &Value, set: &mut SpecSet) {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (value.get("kind").and_then(Value::as_str), name) {
        (Some("Base"), Some(n)) => {
            set.broken_base_names.insert(n);
        }
        (Some("ContainerSpec"), Some(n)) => {
            set.broken_server_names.insert(n);
        }
        _ => {}
    }
}

const KIND_HINT: &str = "every document starts with `apiVersion: reconciler.dev/v1alpha1` and `kind: Base` or `kind: ContainerSpec`";

fn load_document(
    value: Value,
    source: Arc<DocSource>,
    set: &mut SpecSet,
    diags: &mut Vec<Diagnostic>,
) {
    if !value.is_object() {
        diags.push(
            source
                .error_at("", format!("expected a mapping, found {}", kind_of(&value)))
                .with_hint(KIND_HINT),
        );
        return;
    }
    match value.get("kind") {
        Some(Value::String(k)) if k == "Base" => {
            match deserialize::<BaseDocument>(&value, &source) {
                Ok(doc) => set.bases.push(Loaded { doc, source }),
                Err(d) => {
                    diags.extend(d);
                    note_broken(&value, set);
                }
            }
        }
        Some(Value::String(k)) if k == "ContainerSpec" => {
            match deserialize::<ContainerSpecDocument>(&value, &source) {
                Ok(doc) => set.servers.push(Loaded { doc, source }),
                Err(d) => {
                    diags.extend(d);
                    note_broken(&value, set);
                }
            }
        }
        Some(other) => diags.push(
            source
                .error_at(
                    "kind",
                    format!("unknown kind {other}; expected `Base` or `ContainerSpec`"),
                )
                .with_hint(KIND_HINT),
        ),
        None => diags.push(
            source
                .error_at("", "missing `kind`; expected `Base` or `ContainerSpec`")
                .with_hint(KIND_HINT),
        ),
    }
}

/// Most problems reported for one document; past them the user has enough to fix first.
const MAX_PROBLEMS_PER_DOCUMENT: usize = 50;
/// Most deserialization rounds for one document.
const MAX_ROUNDS: usize = 200;
/// Bound on rounds times document size (in values), so a huge document full of errors takes
/// seconds, not minutes: every round copies and reads the whole document.
const ROUND_BUDGET: usize = 4_000_000;

/// Deserializes a document, turning serde's errors into located diagnostics (never none: a
/// document that does not load always says why).
fn deserialize<T: DeserializeOwned>(
    value: &Value,
    source: &DocSource,
) -> Result<T, Vec<Diagnostic>> {
    let rounds = (ROUND_BUDGET / count_values(value)).clamp(10, MAX_ROUNDS);
    deserialize_rounds(value, source, rounds).map_err(|(mut diags, complete)| {
        if diags.is_empty() {
            diags.push(source.error_at("", "this document does not match its kind's format"));
        }
        if !complete {
            diags.push(
                source
                    .error_at_key(
                        "",
                        format!(
                            "stopped after {} problems in this document; there may be more",
                            diags.len()
                        ),
                    )
                    .with_hint("fix these and run again")
                    .warning(),
            );
        }
        diags
    })
}

/// Values in a JSON tree, counted without recursion.
fn count_values(value: &Value) -> usize {
    let mut count = 0;
    let mut todo = vec![value];
    while let Some(v) = todo.pop() {
        count += 1;
        match v {
            Value::Array(items) => todo.extend(items),
            Value::Object(map) => todo.extend(map.values()),
            _ => {}
        }
    }
    count
}

/// Serde stops at the first problem, so each offending key is taken out of a copy and the
/// document retried: every problem of the document is reported in one run (up to `rounds`
/// tries and [`MAX_PROBLEMS_PER_DOCUMENT`]). A required key taken out this way gets a
/// placeholder value, and errors at or under a placeholder are not reported (they would only
/// repeat the first one). The error side says whether the search for problems was complete.
fn deserialize_rounds<T: DeserializeOwned>(
    value: &Value,
    source: &DocSource,
    rounds: usize,
) -> Result<T, (Vec<Diagnostic>, bool)> {
    const PLACEHOLDERS: usize = 5;
    let placeholder = |i: usize| match i {
        0 => Value::String(String::new()),
        1 => Value::from(0),
        2 => Value::Bool(false),
        3 => Value::Object(Default::default()),
        _ => Value::Array(Vec::new()),
    };
    let mut diags = Vec::new();
    let mut work = value.clone();
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut shifted = Shifted::default();
    let mut placed: Vec<(Vec<Seg>, usize)> = Vec::new();
    for _ in 0..rounds {
        if diags.len() >= MAX_PROBLEMS_PER_DOCUMENT {
            return Err((diags, false));
        }
        let err = match serde_path_to_error::deserialize::<_, T>(work.clone()) {
            Ok(doc) if diags.is_empty() => return Ok(doc),
            Ok(_) => return Err((diags, true)),
            Err(err) => err,
        };
        let (diag, segs, missing) = located_serde_error(&err, source, &shifted);
        let under_placeholder = placed.iter().position(|(p, _)| segs.starts_with(p));
        if let Some(i) = under_placeholder {
            if missing.is_none() && placed[i].0 == segs {
                // The placeholder has the wrong type: try the next one.
                placed[i].1 += 1;
                if placed[i].1 >= PLACEHOLDERS {
                    return Err((diags, true));
                }
                let next = placeholder(placed[i].1);
                if !set_path(&mut work, &segs, next) {
                    return Err((diags, true));
                }
                continue;
            }
        }
        match missing {
            Some(path) if under_placeholder.is_some() || removed.contains(&path) => {
                if !set_path(&mut work, &path, placeholder(0)) {
                    return Err((diags, true));
                }
                placed.push((path, 0));
            }
            Some(_) => {
                // Genuinely missing: report it, then stand a placeholder in.
                diags.push(diag);
                let path = segs;
                if !set_path(&mut work, &path, placeholder(0)) {
                    return Err((diags, true));
                }
                placed.push((path, 0));
            }
            None => {
                if under_placeholder.is_none() {
                    diags.push(diag);
                }
                let original = shifted.to_original(&segs);
                if segs.is_empty() || !remove_path(&mut work, &segs) {
                    return Err((diags, true));
                }
                shifted.record(&original);
                removed.push(segs);
            }
        }
    }
    Err((diags, false))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

/// List elements taken out of the working copy, by the list's path in the user's document.
/// Later errors come with indices into the shortened list; reporting them as such would point
/// at the wrong element, so they are mapped back to the user's indices.
#[derive(Default)]
struct Shifted {
    gone: std::collections::HashMap<Vec<Seg>, BTreeSet<usize>>,
}

impl Shifted {
    /// The user's path for a path into the working copy.
    fn to_original(&self, segs: &[Seg]) -> Vec<Seg> {
        let mut out: Vec<Seg> = Vec::with_capacity(segs.len());
        for seg in segs {
            let seg = match (seg, self.gone.get(&out)) {
                (Seg::Index(work), Some(gone)) => {
                    // The `work`-th index (from 0) that was not taken out.
                    let mut index = *work;
                    for g in gone {
                        if *g <= index {
                            index += 1;
                        } else {
                            break;
                        }
                    }
                    Seg::Index(index)
                }
                _ => seg.clone(),
            };
            out.push(seg);
        }
        out
    }

    /// Notes that the element at `original` (a user's path) was taken out.
    fn record(&mut self, original: &[Seg]) {
        if let Some((Seg::Index(i), list)) = original.split_last() {
            self.gone.entry(list.to_vec()).or_default().insert(*i);
        }
    }
}

fn segments_of(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push(Seg::Index(*index)),
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Enum { variant } => out.push(Seg::Key(variant.clone())),
            Segment::Unknown => break,
        }
    }
    out
}

fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        s = match seg {
            Seg::Key(k) => join_key(&s, k),
            Seg::Index(i) => join_index(&s, *i),
        };
    }
    s
}

fn remove_path(value: &mut Value, segs: &[Seg]) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => m.shift_remove(k).is_some(),
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

fn set_path(value: &mut Value, segs: &[Seg], new: Value) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.insert(k.clone(), new);
            true
        }
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a[*i] = new;
            true
        }
        _ => false,
    }
}

/// Turns serde's message into one that speaks the user's language. Returns the diagnostic, the
/// path of the offending key, and for a missing key its path.
fn located_serde_error(
    err: &serde_path_to_error::Error<serde_json::Error>,
    source: &DocSource,
    shifted: &Shifted,
) -> (Diagnostic, Vec<Seg>, Option<Vec<Seg>>) {
    let mut segs = segments_of(err.path());
    let shown = |segs: &[Seg]| path_string(&shifted.to_original(segs));
    let raw = err.inner().to_string();
    let raw = raw.split(" at line ").next().unwrap_or(&raw).to_string();
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        if segs.last() != Some(&Seg::Key(field.clone())) {
            segs.push(Seg::Key(field.clone()));
        }
        let path = shown(&segs);
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| e.replace("one of ", ""));
        let mut diag = source.error_at_key(&path, format!("unknown key `{field}`"));
        if let Some(expected) = expected {
            let suggestion = suggest(&field, &expected);
            let hint = match suggestion {
                Some(s) => format!("did you mean `{s}`? Keys here: {expected}"),
                None => format!("keys allowed here: {expected}"),
            };
            diag = diag.with_hint(hint);
        }
        return (diag, segs, None);
    }
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        let parent = shown(&segs);
        let path = join_key(&parent, &field);
        let diag = source
            .error_at_key(&parent, format!("missing required key `{field}`"))
            .with_hint(format!("add `{field}:` here"));
        let diag = Diagnostic { path, ..diag };
        let mut missing = segs.clone();
        missing.push(Seg::Key(field));
        return (diag, missing.clone(), Some(missing));
    }
    let path = shown(&segs);
    let message = humanize(&raw);
    let diag = source.error_at(&path, message);
    let diag = if raw.contains("reconciler.dev/v1alpha1") {
        diag.with_hint(KIND_HINT)
    } else {
        diag
    };
    (diag, segs, None)
}

/// Rewrites serde's wording (`invalid type: string "x", expected u32`) into ours (`expected a
/// non-negative integer, found a string`) without echoing string values, which may be secrets.
fn humanize(raw: &str) -> String {
    // Whole words only: `struct VolumePath` names a Rust type the user never wrote, and a
    // plain substring replacement of `a map` would also hit `a mapping`.
    static WORDS: LazyLock<[(Regex, &str); 6]> = LazyLock::new(|| {
        let re = |p: &str| Regex::new(p).expect("valid pattern");
        [
            (re(r"\bu(32|64)\b"), "a non-negative integer"),
            (re(r"\bi64\b"), "an integer"),
            (re(r"\ba boolean\b"), "true or false"),
            (re(r"\ba sequence\b"), "a list"),
            (re(r"\bstruct [A-Za-z0-9_]+"), "a mapping"),
            (re(r"\ba map\b"), "a mapping"),
        ]
    });
    let rename = |s: &str| -> String {
        WORDS.iter().fold(s.to_string(), |acc, (re, with)| {
            re.replace_all(&acc, *with).into_owned()
        })
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                let found = if found.starts_with("string ") {
                    "a string".to_string()
                } else if found == "sequence" {
                    "a list".to_string()
                } else if found == "map" {
                    "a mapping".to_string()
                } else if let Some(number) = found
                    .strip_prefix("integer ")
                    .or_else(|| found.strip_prefix("floating point "))
                {
                    number.trim_matches('`').to_string()
                } else {
                    found.replace("unit value", "null")
                };
                return format!("expected {}, found {found}", rename(expected));
            }
        }
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "unknown value {found}; expected {}",
                expected.replace("one of ", "one of: ")
            );
        }
    }
    rename(raw)
}

/// The allowed key closest to a mistyped one, for "did you mean" hints.
fn suggest(field: &str, expected: &str) -> Option<String> {
    let candidates = expected.split(", ").map(|c| {
        c.trim_matches('`')
            .trim_start_matches("or `")
            .trim_matches('`')
    });
    let lower = field.to_ascii_lowercase();
    candidates
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn load_text(text: &str) -> (SpecSet, Vec<Diagnostic>) {
        load(
            &[Input {
                name: "t.yaml".into(),
                bytes: text.as_bytes().to_vec(),
            }],
            &no_env,
        )
    }

    const BASE: &str = "apiVersion: reconciler.dev/v1alpha1\nkind: Base\nmetadata:\n  name: main\nspec:\n  region: us-west-2\n  domain:\n    name: example.com\n    hostedZoneId: Z123\n";

    #[test]
    fn loads_a_base() {
        let (set, diags) = load_text(BASE);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(set.bases.len(), 1);
        assert_eq!(set.bases[0].doc.spec.vpc.max_azs, 1);
    }

    #[test]
    fn unknown_keys_are_located_at_the_key_with_a_suggestion() {
        let text = BASE.replace("  region:", "  regoin: x\n  region:");
        let (_, diags) = load_text(&text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!((d.line, d.col), (6, 3));
        assert_eq!(d.path, "spec.regoin");
        assert!(d.message.contains("unknown key `regoin`"), "{}", d.message);
        assert!(
            d.hint.as_deref().unwrap().contains("did you mean `region`"),
            "{:?}",
            d.hint
        );
    }

    #[test]
    fn every_problem_of_a_document_is_reported() {
        let text = BASE.replace(
            "  region: us-west-2\n",
            "  region: us-west-2\n  vpc:\n    maxAzs: many\n  extra: 1\n",
        );
        let (set, diags) = load_text(&text);
        assert!(set.bases.is_empty());
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(diags.iter().any(|d| d.path == "spec.vpc.maxAzs"
            && d.message == "expected a non-negative integer, found a string"));
        assert!(diags.iter().any(|d| d.path == "spec.extra"));
        assert!(set.broken_base_names.contains("main"));
    }

    #[test]
    fn missing_keys_point_at_the_parent() {
        let text = BASE.replace("    hostedZoneId: Z123\n", "");
        let (_, diags) = load_text(&text);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].path, "spec.domain.hostedZoneId");
        assert_eq!(diags[0].line, 7);
        assert!(diags[0]
            .message
            .contains("missing required key `hostedZoneId`"));
    }

    #[test]
    fn wrong_kind_api_version_and_shape_are_explained() {
        let (_, d) = load_text("kind: Server\n");
        assert!(d[0].message.contains("unknown kind"), "{:?}", d);
        let (_, d) = load_text("- a\n");
        assert!(d[0].message.contains("expected a mapping"), "{:?}", d);
        let (_, d) = load_text(&BASE.replace("v1alpha1", "v9"));
        assert_eq!(d[0].path, "apiVersion");
        let (_, d) = load_text("# only a comment\n");
        assert!(d[0].message.contains("no documents"));
    }

    #[test]
    fn non_utf8_is_located() {
        let (_, d) = load(
            &[Input {
                name: "bad.yaml".into(),
                bytes: b"a: 1\nb: \xff\n".to_vec(),
            }],
            &no_env,
        );
        assert_eq!((d[0].line, d[0].col), (2, 4));
        assert!(d[0].message.contains("UTF-8"));
    }

    #[test]
    fn control_characters_are_located() {
        let (_, d) = load_text("a: 1\nb: \"x\u{0}y\"\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].line, d[0].col), (2, 6));
        assert!(d[0].message.contains("U+0000"), "{}", d[0].message);
    }

    #[test]
    fn list_items_after_a_removed_item_keep_their_own_index() {
        let text = BASE.replace(
            "  region: us-west-2\n",
            "  region: us-west-2\n  alerts:\n    email: [[a], ok@example.com, {b: c}]\n",
        );
        let (_, d) = load_text(&text);
        let paths: Vec<(&str, usize, usize)> =
            d.iter().map(|d| (d.path.as_str(), d.line, d.col)).collect();
        assert_eq!(
            paths,
            [
                ("spec.alerts.email[0]", 8, 13),
                ("spec.alerts.email[2]", 8, 34)
            ],
            "{d:?}"
        );
    }

    #[test]
    fn type_errors_name_no_rust_types() {
        let text = "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata: {name: x}\nspec:\n  ec2: {instanceType: m5.large}\n  container: {image: x}\n  volumes: {data: {paths: [/data]}}\n  watchdog: {threshold: 1}\n";
        let (_, d) = load_text(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "spec.volumes.data.paths[0]");
        assert_eq!(d[0].message, "expected a mapping, found a string");
    }

    #[test]
    fn a_huge_document_full_of_errors_is_cut_short() {
        let mut text = String::from("apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata: {name: x}\nspec:\n  ec2: {instanceType: m5.large}\n  container:\n    image: x\n    ports:\n");
        for i in 0..20_000 {
            text.push_str(&format!("      - {{port: p{i}}}\n"));
        }
        text.push_str("  watchdog: {threshold: 1}\n");
        let (set, d) = load_text(&text);
        assert!(set.servers.is_empty());
        let errors = d.iter().filter(|d| d.is_error()).count();
        assert!(
            (1..=MAX_PROBLEMS_PER_DOCUMENT).contains(&errors),
            "{errors}"
        );
        let last = d.last().unwrap();
        assert!(
            !last.is_error() && last.message.starts_with("stopped after"),
            "{last:?}"
        );
        assert_eq!((last.line, last.col), (1, 1));
    }

    /// Values from the environment are never quoted back, whichever check refuses them: a
    /// wrong type, an unknown enum value, an out-of-range number, a failed validation, a
    /// value inside a longer string.
    #[test]
    fn environment_values_never_appear_in_diagnostics() {
        let env = |name: &str| match name {
            "REGION" => Some("Sup3rSecretRegion".to_string()),
            "AZS" => Some("987654".to_string()),
            "ZONE" => Some("Zsecret-zone".to_string()),
            "MAILS" => Some("ok@example.com s3cret-not-an-address".to_string()),
            _ => None,
        };
        let text = BASE
            .replace("region: us-west-2", "region: ${REGION}")
            .replace("hostedZoneId: Z123", "hostedZoneId: x-${ZONE}-y")
            + "  vpc:\n    maxAzs: ${AZS}\n  alerts:\n    email: ${MAILS}\n";
        let inputs = [Input {
            name: "t.yaml".into(),
            bytes: text.into_bytes(),
        }];
        let (set, mut diags) = load(&inputs, &env);
        diags.extend(crate::validate(&set, &crate::InstanceCatalog::offline()));
        assert!(diags.len() >= 4, "{diags:#?}");
        let shown: String = diags.iter().map(|d| format!("{d}\n{d:?}\n")).collect();
        for secret in [
            "Sup3rSecretRegion",
            "987654",
            "Zsecret-zone",
            "s3cret-not-an-address",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("`${REGION}` is not an AWS region"),
            "{shown}"
        );
        assert!(
            shown.contains("`x-${ZONE}-y` is not a hosted zone id"),
            "{shown}"
        );
        assert!(shown.contains("got ${AZS}"), "{shown}");

        // A wrong type and an unknown enum value, from the loader itself.
        let env = |name: &str| (name == "PORT").then(|| "hunter2hunter2".to_string());
        let server = "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata: {name: x}\nspec:\n  ec2: {instanceType: m5.large}\n  container:\n    image: x\n    ports:\n      - port: ${PORT}\n      - port: 25565\n        protocol: ${PORT}\n";
        let inputs = [Input {
            name: "s.yaml".into(),
            bytes: server.as_bytes().to_vec(),
        }];
        let (_, diags) = load(&inputs, &env);
        let shown: String = diags.iter().map(|d| format!("{d}\n")).collect();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("unknown value `${PORT}`"), "{shown}");
    }

    #[test]
    fn string_values_are_not_echoed_in_type_errors() {
        let text = BASE.replace(
            "  region: us-west-2\n",
            "  region: us-west-2\n  vpc:\n    maxAzs: hunter2\n",
        );
        let (_, d) = load_text(&text);
        assert!(!d[0].to_string().contains("hunter2") || d[0].source_line.is_some());
        assert!(!d[0].message.contains("hunter2"));
    }
}
