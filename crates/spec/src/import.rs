//! Import of the original project's config files (PascalCase keys, `!ENV` tags, e-mail
//! subscriptions as one whitespace-separated string) into our documents.
//!
//! `${VAR}` references are kept, not resolved: the imported file reads the same variables at
//! load time, but an unset one is now an error instead of an empty string.

use std::fmt::Write as _;

use crate::resolve::type_plain;
use crate::types::{Maturity, API_VERSION};
use crate::yaml::{parse_stream, Node, NodeValue, Pos};

/// Options of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `metadata.name` of the new document.
    pub name: String,
    /// Which kind to produce; detected from the keys when `None`.
    pub kind: Option<ImportKind>,
    /// Maturity of an imported server (the original passed it on the command line).
    pub maturity: Maturity,
    /// `spec.baseRef` of an imported server.
    pub base_ref: Option<String>,
    /// `spec.region` of an imported Base; `${AWS_REGION}` when not given, as the original took
    /// the caller's configured region.
    pub region: Option<String>,
    /// Schema location for the editor modeline.
    pub schema: String,
    /// Name of the source file, for the header comment.
    pub source_name: String,
}

/// What an original config file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// The base config.
    Base,
    /// A per-container (leaf) config.
    ContainerSpec,
}

/// A problem in the file being imported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportError {
    /// Where.
    pub pos: Pos,
    /// Key path in the original's terms.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.pos.line, self.pos.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Converts an original config file into one of our documents, as YAML text.
pub fn import(text: &str, opts: &ImportOptions) -> Result<String, Vec<ImportError>> {
    let docs = parse_stream(text).map_err(|e| {
        vec![ImportError {
            pos: e.pos,
            path: String::new(),
            message: format!("invalid YAML: {}", e.message),
        }]
    })?;
    let Some(root) = docs.into_iter().flatten().next() else {
        return Err(vec![ImportError {
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: "file has no document".into(),
        }]);
    };
    let mut cx = Cx::default();
    let entries = cx.map(&root, "");
    let kind = opts.kind.unwrap_or_else(|| {
        if entries.iter().any(|(k, _)| k.text == "Domain") {
            ImportKind::Base
        } else {
            ImportKind::ContainerSpec
        }
    });
    let spec = match kind {
        ImportKind::Base => cx.base(&root, opts),
        ImportKind::ContainerSpec => cx.leaf(&root, opts),
    };
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let kind_name = match kind {
        ImportKind::Base => "Base",
        ImportKind::ContainerSpec => "ContainerSpec",
    };
    let doc = Out::Map(vec![
        ("apiVersion".into(), Out::Str(API_VERSION.into())),
        ("kind".into(), Out::Str(kind_name.into())),
        (
            "metadata".into(),
            Out::Map(vec![("name".into(), Out::Str(opts.name.clone()))]),
        ),
        ("spec".into(), spec),
    ]);
    let mut out = String::new();
    let _ = writeln!(out, "# yaml-language-server: $schema={}", opts.schema);
    let _ = writeln!(
        out,
        "# Imported from {} by `reconciler import`.",
        opts.source_name
    );
    emit(&doc, 0, &mut out);
    Ok(out)
}

/// Output tree: ordered maps, lists and scalars with their YAML form decided.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Map(Vec<(String, Out)>),
    Seq(Vec<Out>),
    /// Text; quoted when plain YAML would read it as something else.
    Str(String),
    /// A number or boolean written as is.
    Raw(String),
}

impl Out {
    fn is_empty_collection(&self) -> bool {
        matches!(self, Out::Map(m) if m.is_empty()) || matches!(self, Out::Seq(s) if s.is_empty())
    }
}

fn needs_quotes(s: &str) -> bool {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./@+-".contains(c);
    s.is_empty()
        || !s.chars().all(|c| safe(c) || c == ' ' || c == ':')
        || s.contains(": ")
        || s.ends_with(':')
        || s.starts_with(['-', ' ', ':', '@'])
        || s.ends_with(' ')
        || !matches!(type_plain(s), serde_json::Value::String(_))
}

fn emit_scalar(out: &Out) -> String {
    match out {
        Out::Str(s) if needs_quotes(s) => serde_json::to_string(s).expect("strings serialize"),
        Out::Str(s) | Out::Raw(s) => s.clone(),
        Out::Map(_) => "{}".into(),
        Out::Seq(_) => "[]".into(),
    }
}

fn emit(node: &Out, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Out::Map(entries) => {
            for (key, value) in entries {
                match value {
                    Out::Map(_) | Out::Seq(_) if !value.is_empty_collection() => {
                        let _ = writeln!(out, "{pad}{key}:");
                        emit(value, indent + 2, out);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{key}: {}", emit_scalar(value));
                    }
                }
            }
        }
        Out::Seq(items) => {
            for item in items {
                match item {
                    Out::Map(entries) if !entries.is_empty() => {
                        // First key on the dash line, the rest aligned under it.
                        let mut nested = String::new();
                        emit(item, indent + 2, &mut nested);
                        let trimmed = nested.trim_start();
                        let _ = write!(out, "{pad}- {trimmed}");
                    }
                    Out::Seq(_) if !item.is_empty_collection() => {
                        let _ = writeln!(out, "{pad}-");
                        emit(item, indent + 2, out);
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}- {}", emit_scalar(item));
                    }
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", emit_scalar(scalar));
        }
    }
}

#[derive(Default)]
struct Cx {
    errors: Vec<ImportError>,
}

/// Rewrites the original's `${NAME:fallback}` to our `${NAME:-fallback}`.
fn convert_env_refs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}') {
            Some(end) => {
                let inner = &after[..end];
                match inner.split_once(':') {
                    Some((name, fallback)) if !fallback.starts_with('-') => {
                        let _ = write!(out, "${{{name}:-{fallback}}}");
                    }
                    _ => {
                        let _ = write!(out, "${{{inner}}}");
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Cx {
    fn error(&mut self, node_pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ImportError {
            pos: node_pos,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn map<'a>(&mut self, node: &'a Node, path: &str) -> &'a [(crate::yaml::Key, Node)] {
        match &node.value {
            NodeValue::Map(entries) => entries,
            NodeValue::Scalar { text, plain: true }
                if text.is_empty() || text == "~" || text == "null" =>
            {
                &[]
            }
            _ => {
                self.error(node.pos, path, "expected a mapping");
                &[]
            }
        }
    }

    /// Checks that a mapping has only the allowed keys (the original's mappings are closed).
    fn closed<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        allowed: &[&str],
    ) -> Vec<(&'a str, &'a Node)> {
        let entries = self.map(node, path);
        let mut out = Vec::new();
        for (k, v) in entries {
            if allowed.contains(&k.text.as_str()) {
                out.push((k.text.as_str(), v));
            } else {
                let at = join(path, &k.text);
                self.error(
                    k.pos,
                    &at,
                    format!(
                        "unknown key `{}`; expected one of: {}",
                        k.text,
                        allowed.join(", ")
                    ),
                );
            }
        }
        out
    }

    fn required<'a>(
        &mut self,
        entries: &[(&'a str, &'a Node)],
        node: &Node,
        path: &str,
        key: &str,
    ) -> Option<&'a Node> {
        let found = entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        if found.is_none() {
            self.error(node.pos, path, format!("missing key `{key}`"));
        }
        found
    }

    /// A scalar as text, with `!ENV` references converted.
    fn text(&mut self, node: &Node, path: &str) -> Option<(String, bool /* from env */)> {
        match &node.value {
            NodeValue::Scalar { text, .. } => match node.tag.as_deref() {
                Some("!ENV") => Some((convert_env_refs(text), true)),
                _ => Some((text.clone(), false)),
            },
            _ => {
                self.error(node.pos, path, "expected a single value");
                None
            }
        }
    }

    /// A scalar kept with its YAML typing: env references stay quoted text, plain scalars keep
    /// their type, quoted ones stay text.
    fn scalar(&mut self, node: &Node, path: &str) -> Option<Out> {
        let (text, from_env) = self.text(node, path)?;
        let plain = matches!(node.value, NodeValue::Scalar { plain: true, .. });
        if from_env || !plain || node.tag.as_deref() == Some("!!str") {
            return Some(Out::Str(text));
        }
        Some(match type_plain(&text) {
            serde_json::Value::String(s) => Out::Str(s),
            serde_json::Value::Null => {
                self.error(node.pos, path, "expected a value, found null");
                return None;
            }
            other => Out::Raw(other.to_string()),
        })
    }

    fn int(&mut self, node: &Node, path: &str) -> Option<Out> {
        match self.scalar(node, path)? {
            Out::Raw(r) if r.parse::<i64>().is_ok() => Some(Out::Raw(r)),
            // The original ran ports through int(), so "25565" was accepted.
            Out::Str(s) if s.trim().parse::<i64>().is_ok() => Some(Out::Raw(s.trim().to_string())),
            Out::Str(s) if s.contains("${") => Some(Out::Raw(s)),
            _ => {
                self.error(node.pos, path, "expected an integer");
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<Out> {
        match self.scalar(node, path)? {
            Out::Raw(r) if r == "true" || r == "false" => Some(Out::Raw(r)),
            _ => {
                self.error(node.pos, path, "expected true or false");
                None
            }
        }
    }

    fn alerts(&mut self, node: &Node, path: &str) -> Out {
        let entries = self.closed(node, path, &["Email"]);
        let mut out = Vec::new();
        for (key, value) in entries {
            let at = join(path, key);
            if matches!(&value.value, NodeValue::Scalar { text, plain: true } if text.is_empty() || text == "~" || text == "null")
            {
                continue;
            }
            let Some((text, from_env)) = self.text(value, &at) else {
                continue;
            };
            if from_env {
                // Split at load time: our alert lists accept one whitespace-separated string.
                out.push(("email".to_string(), Out::Str(text)));
            } else {
                let list: Vec<Out> = text
                    .split_whitespace()
                    .map(|s| Out::Str(s.to_string()))
                    .collect();
                if !list.is_empty() {
                    out.push(("email".to_string(), Out::Seq(list)));
                }
            }
        }
        Out::Map(out)
    }

    fn base(&mut self, root: &Node, opts: &ImportOptions) -> Out {
        let top = self.closed(root, "", &["Vpc", "Domain", "AlertSubscription"]);
        let mut spec = vec![(
            "region".to_string(),
            Out::Str(
                opts.region
                    .clone()
                    .unwrap_or_else(|| "${AWS_REGION}".into()),
            ),
        )];
        if let Some((_, vpc)) = top.iter().find(|(k, _)| *k == "Vpc") {
            let v = self.closed(vpc, "Vpc", &["MaxAZs"]);
            if let Some((_, n)) = v.iter().find(|(k, _)| *k == "MaxAZs") {
                if let Some(n) = self.int(n, "Vpc.MaxAZs") {
                    spec.push(("vpc".into(), Out::Map(vec![("maxAzs".into(), n)])));
                }
            }
        }
        if let Some(domain) = self.required(&top, root, "", "Domain") {
            let d = self.closed(domain, "Domain", &["Name", "HostedZoneId"]);
            let mut out = Vec::new();
            if let Some(name) = self.required(&d, domain, "Domain", "Name") {
                if let Some((text, from_env)) = self.text(name, "Domain.Name") {
                    // The original lower-cased the name; env references keep their case.
                    let text = if from_env {
                        text
                    } else {
                        text.to_ascii_lowercase()
                    };
                    out.push(("name".to_string(), Out::Str(text)));
                }
            }
            if let Some(zone) = self.required(&d, domain, "Domain", "HostedZoneId") {
                if let Some((text, _)) = self.text(zone, "Domain.HostedZoneId") {
                    out.push(("hostedZoneId".to_string(), Out::Str(text)));
                }
            }
            spec.push(("domain".into(), Out::Map(out)));
        }
        if let Some((_, alerts)) = top.iter().find(|(k, _)| *k == "AlertSubscription") {
            let a = self.alerts(alerts, "AlertSubscription");
            if !a.is_empty_collection() {
                spec.push(("alerts".into(), a));
            }
        }
        Out::Map(spec)
    }

    fn leaf(&mut self, root: &Node, opts: &ImportOptions) -> Out {
        let top = self.closed(
            root,
            "",
            &[
                "Ec2",
                "Container",
                "Volumes",
                "Watchdog",
                "AlertSubscription",
                "Dashboard",
            ],
        );
        let mut spec = Vec::new();
        if let Some(base) = &opts.base_ref {
            spec.push(("baseRef".to_string(), Out::Str(base.clone())));
        }
        if opts.maturity == Maturity::Devel {
            spec.push(("maturity".to_string(), Out::Str("devel".into())));
        }
        if let Some(ec2) = self.required(&top, root, "", "Ec2") {
            let e = self.closed(ec2, "Ec2", &["InstanceType"]);
            if let Some(ty) = self.required(&e, ec2, "Ec2", "InstanceType") {
                if let Some((text, _)) = self.text(ty, "Ec2.InstanceType") {
                    spec.push((
                        "ec2".into(),
                        Out::Map(vec![(
                            "instanceType".into(),
                            Out::Str(text.to_ascii_lowercase()),
                        )]),
                    ));
                }
            }
        }
        if let Some(container) = self.required(&top, root, "", "Container") {
            spec.push(("container".into(), self.container(container)));
        }
        if let Some((_, volumes)) = top.iter().find(|(k, _)| *k == "Volumes") {
            let v = self.volumes(volumes);
            if !v.is_empty_collection() {
                spec.push(("volumes".into(), v));
            }
        }
        if let Some(watchdog) = self.required(&top, root, "", "Watchdog") {
            spec.push(("watchdog".into(), self.watchdog(watchdog)));
        }
        if let Some((_, alerts)) = top.iter().find(|(k, _)| *k == "AlertSubscription") {
            let a = self.alerts(alerts, "AlertSubscription");
            if !a.is_empty_collection() {
                spec.push(("alerts".into(), a));
            }
        }
        if let Some((_, dash)) = top.iter().find(|(k, _)| *k == "Dashboard") {
            let d = self.closed(
                dash,
                "Dashboard",
                &["Enabled", "IntervalMinutes", "ShowContainerLogTimestamp"],
            );
            let mut out = Vec::new();
            for (key, value) in d {
                let at = join("Dashboard", key);
                let converted = match key {
                    "IntervalMinutes" => self.int(value, &at),
                    _ => self.boolean(value, &at),
                };
                if let Some(v) = converted {
                    out.push((camel(key), v));
                }
            }
            if !out.is_empty() {
                spec.push(("dashboard".into(), Out::Map(out)));
            }
        }
        Out::Map(spec)
    }

    fn container(&mut self, node: &Node) -> Out {
        let c = self.closed(node, "Container", &["Image", "Ports", "Environment"]);
        let mut out = Vec::new();
        if let Some(image) = self.required(&c, node, "Container", "Image") {
            if let Some((text, from_env)) = self.text(image, "Container.Image") {
                // The original lower-cased the whole reference; registries need only the
                // repository in lower case, so the tag keeps its case here.
                let text = if from_env {
                    text
                } else {
                    lower_repository(&text)
                };
                out.push(("image".to_string(), Out::Str(text)));
            }
        }
        if let Some(ports) = self.required(&c, node, "Container", "Ports") {
            match &ports.value {
                NodeValue::Seq(items) => {
                    let mut list = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("Container.Ports[{i}]");
                        let entries = self.map(item, &at);
                        if entries.len() != 1 {
                            self.error(
                                item.pos,
                                &at,
                                "expected one `TCP: <port>` or `UDP: <port>` entry",
                            );
                            continue;
                        }
                        let (proto, port) = (&entries[0].0, &entries[0].1);
                        let protocol = proto.text.to_ascii_lowercase();
                        if protocol != "tcp" && protocol != "udp" {
                            self.error(
                                proto.pos,
                                &at,
                                format!("unknown protocol `{}`; expected TCP or UDP", proto.text),
                            );
                            continue;
                        }
                        if let Some(n) = self.int(port, &at) {
                            list.push(Out::Map(vec![
                                ("port".into(), n),
                                ("protocol".into(), Out::Str(protocol)),
                            ]));
                        }
                    }
                    if !list.is_empty() {
                        out.push(("ports".into(), Out::Seq(list)));
                    }
                }
                _ => self.error(ports.pos, "Container.Ports", "expected a list"),
            }
        }
        if let Some((_, env)) = c.iter().find(|(k, _)| *k == "Environment") {
            let entries = self.map(env, "Container.Environment");
            let mut vars = Vec::new();
            for (k, v) in entries {
                let at = join("Container.Environment", &k.text);
                if let Some(value) = self.scalar(v, &at) {
                    vars.push((k.text.clone(), value));
                }
            }
            if !vars.is_empty() {
                out.push(("environment".into(), Out::Map(vars)));
            }
        }
        Out::Map(out)
    }

    fn volumes(&mut self, node: &Node) -> Out {
        let entries = self.map(node, "Volumes");
        let mut out = Vec::new();
        for (id, volume) in entries {
            let at = join("Volumes", &id.text);
            let v = self.closed(
                volume,
                &at,
                &["Type", "EnableBackups", "KeepOnDelete", "Paths"],
            );
            let mut fields = Vec::new();
            if let Some((_, ty)) = v.iter().find(|(k, _)| *k == "Type") {
                if let Some((text, _)) = self.text(ty, &join(&at, "Type")) {
                    if !text.eq_ignore_ascii_case("efs") {
                        self.error(
                            ty.pos,
                            &join(&at, "Type"),
                            format!("volume type `{text}` is not supported; only EFS"),
                        );
                    }
                }
            }
            if let Some(paths) = self.required(&v, volume, &at, "Paths") {
                let mut list = Vec::new();
                if let NodeValue::Seq(items) = &paths.value {
                    for (i, item) in items.iter().enumerate() {
                        let pat = format!("{at}.Paths[{i}]");
                        let p = self.closed(item, &pat, &["Path", "ReadOnly"]);
                        let mut entry = Vec::new();
                        if let Some(path) = self.required(&p, item, &pat, "Path") {
                            if let Some((text, _)) = self.text(path, &join(&pat, "Path")) {
                                entry.push(("path".to_string(), Out::Str(text)));
                            }
                        }
                        if let Some((_, ro)) = p.iter().find(|(k, _)| *k == "ReadOnly") {
                            if let Some(b) = self.boolean(ro, &join(&pat, "ReadOnly")) {
                                if b == Out::Raw("true".into()) {
                                    entry.push(("readOnly".to_string(), b));
                                }
                            }
                        }
                        list.push(Out::Map(entry));
                    }
                } else {
                    self.error(paths.pos, &join(&at, "Paths"), "expected a list");
                }
                fields.push(("paths".to_string(), Out::Seq(list)));
            }
            for key in ["EnableBackups", "KeepOnDelete"] {
                if let Some((_, b)) = v.iter().find(|(k, _)| *k == key) {
                    if let Some(b) = self.boolean(b, &join(&at, key)) {
                        fields.push((camel(key), b));
                    }
                }
            }
            out.push((id.text.clone(), Out::Map(fields)));
        }
        Out::Map(out)
    }

    fn watchdog(&mut self, node: &Node) -> Out {
        let w = self.closed(
            node,
            "Watchdog",
            &["Threshold", "MinutesWithoutConnections", "InstanceLeftUp"],
        );
        let mut out = Vec::new();
        if let Some(t) = self.required(&w, node, "Watchdog", "Threshold") {
            if let Some(t) = self.int(t, "Watchdog.Threshold") {
                out.push(("threshold".to_string(), t));
            }
        }
        if let Some((_, m)) = w.iter().find(|(k, _)| *k == "MinutesWithoutConnections") {
            if let Some(m) = self.int(m, "Watchdog.MinutesWithoutConnections") {
                out.push(("minutesWithoutConnections".to_string(), m));
            }
        }
        if let Some((_, up)) = w.iter().find(|(k, _)| *k == "InstanceLeftUp") {
            let u = self.closed(
                up,
                "Watchdog.InstanceLeftUp",
                &["DurationHours", "ShouldStop"],
            );
            let mut fields = Vec::new();
            for (key, value) in u {
                let at = join("Watchdog.InstanceLeftUp", key);
                let v = if key == "DurationHours" {
                    self.int(value, &at)
                } else {
                    self.boolean(value, &at)
                };
                if let Some(v) = v {
                    fields.push((camel(key), v));
                }
            }
            if !fields.is_empty() {
                out.push(("instanceLeftUp".to_string(), Out::Map(fields)));
            }
        }
        Out::Map(out)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `ShowContainerLogTimestamp` -> `showContainerLogTimestamp`.
fn camel(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Lower-cases the repository of an image reference and keeps the tag's case.
fn lower_repository(image: &str) -> String {
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => {
            format!("{}{}", image[..i].to_ascii_lowercase(), &image[i..])
        }
        _ => image.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_fallbacks_are_converted() {
        assert_eq!(convert_env_refs("${A}"), "${A}");
        assert_eq!(convert_env_refs("x ${A:fb} y"), "x ${A:-fb} y");
        assert_eq!(convert_env_refs("${A:-fb}"), "${A:-fb}");
    }

    #[test]
    fn quoting_keeps_types_and_references() {
        assert!(needs_quotes("true"));
        assert!(needs_quotes("25565"));
        assert!(needs_quotes("${X}"));
        assert!(needs_quotes("a: b"));
        assert!(!needs_quotes("itzg/minecraft-server"));
        assert!(!needs_quotes("/home/steam/.config"));
    }

    #[test]
    fn image_tags_keep_their_case() {
        assert_eq!(lower_repository("Repo/Img:TagV1"), "repo/img:TagV1");
        assert_eq!(lower_repository("localhost:5000/Img"), "localhost:5000/img");
    }
}
