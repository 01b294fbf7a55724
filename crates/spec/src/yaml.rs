//! A YAML reader that keeps the location of every node.
//!
//! Serde-based YAML crates lose positions once a document is deserialized, but every error we
//! report must say `file:line:col`. So the text is parsed into a small tree of [`Node`]s with
//! their [`Pos`], tags and scalar styles kept. Env substitution and scalar typing happen in a
//! second pass ([`crate::resolve`]), which lets the importer read the same tree raw.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted; real specs need fewer than ten levels.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a file may expand to (aliases included), against alias bombs.
pub const MAX_NODES: usize = 200_000;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub col: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 reports 1-based lines and 0-based columns.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub pos: Pos,
    /// The node's tag as written (`!ENV`, `!!str`), if any.
    pub tag: Option<String>,
    /// The node's content.
    pub value: NodeValue,
}

/// Content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar, untyped: typing depends on style, tag and env substitution.
    Scalar {
        /// The scalar's text.
        text: String,
        /// Plain (unquoted) scalars are typed (numbers, booleans, null); quoted ones are text.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order. Keys are scalars.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// A syntax-level problem, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where it happened.
    pub pos: Pos,
    /// What went wrong.
    pub message: String,
}

/// Parses every document of a YAML stream. Empty documents come back as `None`.
///
/// The parser's events are pulled one at a time rather than through `Parser::load`, which
/// recurses once per nesting level (a line of a million `- ` overflows the stack) and asserts
/// on malformed input; here the first problem ends the parse, so every limit of the
/// [`Builder`] also bounds the work done.
pub fn parse_stream(text: &str) -> Result<Vec<Option<Node>>, SyntaxError> {
    let mut builder = Builder {
        end: end_of(text),
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(err) => {
                let message = if err.info().contains("recursion limit") {
                    format!("nesting deeper than the parser's limit ({})", err.info())
                } else {
                    err.info().to_string()
                };
                return Err(SyntaxError {
                    pos: Pos::from_marker(*err.marker()).min(builder.end),
                    message,
                });
            }
        };
        let end = event == Event::StreamEnd;
        builder.on_event(event, mark);
        if let Some(e) = builder.error.take() {
            return Err(e);
        }
        if end {
            return Ok(builder.docs);
        }
    }
}

/// The position just past the last character. At the end of a text without a final line
/// break the scanner reports the start of a line that does not exist (an empty value there, or
/// an unclosed bracket); positions are capped here so they stay inside the text.
fn end_of(text: &str) -> Pos {
    let last = text.rsplit('\n').next().unwrap_or_default();
    Pos {
        line: text.split('\n').count(),
        col: last.chars().count() + 1,
    }
}

enum Frame {
    Seq {
        pos: Pos,
        tag: Option<String>,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        tag: Option<String>,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
        /// Line of each key so far: duplicates are found in constant time (a search through
        /// `entries` is quadratic in a mapping of 100k keys).
        lines: HashMap<String, usize>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Option<Node>>,
    current: Option<Node>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    error: Option<SyntaxError>,
    /// See [`end_of`].
    end: Pos,
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| {
        if t.handle == "tag:yaml.org,2002:" {
            format!("!!{}", t.suffix)
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    })
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        count += 1;
        match &n.value {
            NodeValue::Scalar { .. } => {}
            NodeValue::Seq(items) => todo.extend(items),
            NodeValue::Map(entries) => todo.extend(entries.iter().map(|(_, v)| v)),
        }
    }
    count
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos,
                message: message.into(),
            });
        }
        self.stack.clear();
    }

    /// Attaches a finished node to its parent, or finishes the document.
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.current = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                pos,
                entries,
                pending_key,
                lines,
                ..
            }) => match pending_key.take() {
                Some(key) => {
                    if let Some(first) = lines.get(&key.text) {
                        let message = format!(
                            "duplicate key `{}` (first defined at line {first})",
                            key.text
                        );
                        let pos = key.pos;
                        self.fail(pos, message);
                        return;
                    }
                    lines.insert(key.text.clone(), key.pos.line);
                    entries.push((key, node));
                }
                None => match node.value {
                    NodeValue::Scalar { text, .. } => {
                        // yaml-rust2 places a block mapping's start at its first `:`; the
                        // mapping starts at its first key.
                        if entries.is_empty() && node.pos < *pos {
                            *pos = node.pos;
                        }
                        *pending_key = Some(Key {
                            text,
                            pos: node.pos,
                        })
                    }
                    _ => {
                        let pos = node.pos;
                        self.fail(
                            pos,
                            "a mapping key must be a plain value, not a list or map",
                        )
                    }
                },
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from_marker(mark).min(self.end);
        let is_seq = matches!(ev, Event::SequenceStart(..));
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            // Anchors belong to their document.
            Event::DocumentStart => self.anchors.clear(),
            Event::DocumentEnd => {
                // An empty document (`---` followed by nothing) arrives as a null scalar.
                let doc = self.current.take().filter(|n| {
                    !matches!(&n.value, NodeValue::Scalar { text, plain: true }
                        if n.tag.is_none() && matches!(text.as_str(), "" | "~" | "null"))
                });
                self.docs.push(doc);
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.nodes += 1;
                let node = Node {
                    pos,
                    tag: tag_text(tag),
                    value: NodeValue::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                };
                self.push_node(node, anchor);
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                self.nodes += 1;
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(
                        pos,
                        format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
                    );
                    return;
                }
                let tag = tag_text(tag);
                let frame = if is_seq {
                    Frame::Seq {
                        pos,
                        tag,
                        anchor,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos,
                        tag,
                        anchor,
                        entries: Vec::new(),
                        pending_key: None,
                        lines: HashMap::new(),
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    pos,
                    tag,
                    anchor,
                    items,
                }) => self.push_node(
                    Node {
                        pos,
                        tag,
                        value: NodeValue::Seq(items),
                    },
                    anchor,
                ),
                Some(Frame::Map {
                    pos,
                    tag,
                    anchor,
                    entries,
                    ..
                }) => self.push_node(
                    Node {
                        pos,
                        tag,
                        value: NodeValue::Map(entries),
                    },
                    anchor,
                ),
                None => self.fail(pos, "unbalanced end of a list or map"),
            },
            Event::Alias(anchor) => {
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    self.fail(pos, "alias to an unknown anchor");
                    return;
                };
                self.nodes += count_nodes(&node);
                if self.nodes > MAX_NODES {
                    self.fail(
                        pos,
                        format!(
                            "the file expands to more than {MAX_NODES} values (aliases included)"
                        ),
                    );
                    return;
                }
                // The alias is reported where it is used, which is where the user looks.
                let node = Node { pos, ..node };
                self.push_node(node, 0);
            }
        }
        if self.nodes > MAX_NODES && self.error.is_none() {
            self.fail(pos, format!("the file has more than {MAX_NODES} values"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &str {
        match &node.value {
            NodeValue::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn keeps_positions_tags_and_styles() {
        let docs = parse_stream("a: 1\nb:\n  - !ENV ${X}\n  - 'q'\n").unwrap();
        let NodeValue::Map(entries) = &docs[0].as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(entries[0].0.text, "a");
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let NodeValue::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[0].tag.as_deref(), Some("!ENV"));
        assert_eq!(scalar(&items[0]), "${X}");
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert!(matches!(
            items[1].value,
            NodeValue::Scalar { plain: false, .. }
        ));
    }

    #[test]
    fn multi_document_streams_keep_empty_documents() {
        let docs = parse_stream("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[1].is_none());
    }

    #[test]
    fn duplicate_keys_are_errors_at_the_second_key() {
        let err = parse_stream("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("duplicate key `a`"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse_stream("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn errors_at_the_end_of_the_text_point_inside_it() {
        let err = parse_stream("[apiVersion").unwrap_err();
        assert_eq!(err.pos, Pos { line: 1, col: 12 });
        let err = parse_stream("a: [1\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("nesting"), "{}", err.message);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("more than"), "{}", err.message);
    }

    #[test]
    fn block_mappings_start_at_their_first_key() {
        let docs = parse_stream("top:\n  inner: 1\n  other: 2\n").unwrap();
        let root = docs[0].as_ref().unwrap();
        assert_eq!(root.pos, Pos { line: 1, col: 1 });
        let NodeValue::Map(entries) = &root.value else {
            panic!()
        };
        assert_eq!(entries[0].1.pos, Pos { line: 2, col: 3 });
        let docs = parse_stream("a: {b: 1}\n").unwrap();
        let NodeValue::Map(entries) = &docs[0].as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(
            entries[0].1.pos,
            Pos { line: 1, col: 4 },
            "a flow mapping starts at its brace"
        );
    }

    #[test]
    fn deep_block_nesting_on_one_line_is_refused_without_overflowing() {
        // `Parser::load` recursed once per level here and overflowed the stack.
        let text = format!("{}x\n", "- ".repeat(1_000_000));
        let err = parse_stream(&text).unwrap_err();
        assert!(err.message.contains("nesting"), "{}", err.message);
    }

    #[test]
    fn a_mapping_of_many_keys_parses_in_linear_time() {
        let text: String = (0..90_000).map(|i| format!("k{i}: {i}\n")).collect();
        let started = std::time::Instant::now();
        let docs = parse_stream(&text).unwrap();
        let NodeValue::Map(entries) = &docs[0].as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(entries.len(), 90_000);
        // A quadratic duplicate-key check took tens of seconds here.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let err = parse_stream(&format!("{text}k5: again\n")).unwrap_err();
        assert_eq!(err.pos.line, 90_001);
        assert!(
            err.message.contains("first defined at line 6"),
            "{}",
            err.message
        );
    }

    #[test]
    fn aliases_do_not_reach_into_another_document() {
        let err = parse_stream("a: &x 1\n---\nb: *x\n").unwrap_err();
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let docs = parse_stream("a: &x {k: v}\nb: *x\n").unwrap();
        let NodeValue::Map(entries) = &docs[0].as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(entries[1].1.value, entries[0].1.value);
        assert_eq!(entries[1].1.pos.line, 2);
    }
}
