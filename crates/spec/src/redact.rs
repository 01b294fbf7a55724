//! Keeps environment values out of messages. A `${VAR}` value may be a secret, and a message
//! about the value it gave (`<value>` is not an AWS region) ends up in a terminal, a CI log,
//! or an object's status and events for anyone who may read them. Every message built from
//! the documents goes through a [`Redactor`], which writes each value back as the reference it
//! came from.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::diag::Diagnostic;
use crate::resolve::Substitution;

/// Replaces every value that came from the environment by its reference.
///
/// A value is found wherever it stands in a message, in any ASCII case, unless it is part of a
/// longer word (so a variable holding `1` does not turn `1440` into `${VAR}440`); the whole
/// scalar a value was written into is found too, so `pre${VAR}post` quoted back is caught, and
/// each whitespace- or comma-separated part of a value, because lists written as one string
/// (e-mail addresses) are checked entry by entry.
#[derive(Default)]
pub struct Redactor {
    matcher: Option<AhoCorasick>,
    /// Per pattern: the text matched and what replaces it.
    patterns: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these substitutions.
    pub fn new<'a>(substituted: impl IntoIterator<Item = &'a Substitution>) -> Self {
        let mut patterns: Vec<(String, String)> = Vec::new();
        for s in substituted {
            patterns.push((s.value.clone(), s.reference.clone()));
            let parts: Vec<&str> = s
                .value
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .filter(|p| !p.is_empty())
                .collect();
            if parts.len() > 1 {
                patterns.extend(
                    parts
                        .into_iter()
                        .map(|p| (p.to_string(), s.reference.clone())),
                );
            }
        }
        patterns.retain(|(needle, _)| !needle.is_empty());
        patterns.sort();
        patterns.dedup_by(|a, b| a.0 == b.0);
        if patterns.is_empty() {
            return Redactor::default();
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|(needle, _)| needle))
            .ok();
        Redactor { matcher, patterns }
    }

    /// True when nothing came from the environment.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every value replaced by its reference. Overlapping matches are replaced
    /// together, so no part of either value is left.
    pub fn redact(&self, text: &str) -> String {
        let Some(matcher) = &self.matcher else {
            return text.to_string();
        };
        let bytes = text.as_bytes();
        let mut found: Vec<(usize, usize, usize)> = matcher
            .find_overlapping_iter(text)
            .filter(|m| stands_alone(bytes, m.start(), m.end()))
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect();
        if found.is_empty() {
            return text.to_string();
        }
        found.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut i = 0;
        while i < found.len() {
            let (start, mut end, pattern) = found[i];
            let mut references = vec![self.patterns[pattern].1.as_str()];
            i += 1;
            while i < found.len() && found[i].0 < end {
                // A match inside one already taken is covered by its reference.
                if found[i].1 > end {
                    end = found[i].1;
                    let reference = self.patterns[found[i].2].1.as_str();
                    if !references.contains(&reference) {
                        references.push(reference);
                    }
                }
                i += 1;
            }
            // Matches are whole characters (the patterns are), so these are char boundaries.
            out.push_str(&text[at..start]);
            out.push_str(&references.concat());
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// The diagnostic's message and hint, redacted.
    pub fn redact_diagnostic(&self, diag: &mut Diagnostic) {
        if self.is_empty() {
            return;
        }
        diag.message = self.redact(&diag.message);
        if let Some(hint) = &diag.hint {
            diag.hint = Some(self.redact(hint));
        }
    }

    /// Every diagnostic, redacted.
    pub fn redact_all(&self, diags: &mut [Diagnostic]) {
        for diag in diags {
            self.redact_diagnostic(diag);
        }
    }
}

/// Whether the match at `start..end` is not part of a longer word: an alphanumeric edge of the
/// match must not continue into an alphanumeric neighbour.
fn stands_alone(text: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric();
    let left_ok = start == 0 || !word(text[start]) || !word(text[start - 1]);
    let right_ok = end == text.len() || !word(text[end - 1]) || !word(text[end]);
    left_ok && right_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(value: &str, reference: &str) -> Substitution {
        Substitution {
            value: value.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn values_become_their_references_in_any_case() {
        let r = Redactor::new(&[sub("hunter2", "${PW}")]);
        assert_eq!(
            r.redact("`hunter2` is not a region"),
            "`${PW}` is not a region"
        );
        assert_eq!(r.redact("HUNTER2, Hunter2"), "${PW}, ${PW}");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_short_value_inside_a_longer_word_is_left() {
        let r = Redactor::new(&[sub("1", "${N}")]);
        assert_eq!(
            r.redact("expected 1 to 1440, got 1"),
            "expected ${N} to 1440, got ${N}"
        );
    }

    #[test]
    fn whole_scalars_and_list_parts_are_found() {
        let r = Redactor::new(&[
            sub("abc", "${X}"),
            sub("preabcpost", "pre${X}post"),
            sub("a@x.io b@y.io", "${MAILS}"),
        ]);
        assert_eq!(r.redact("`preabcpost` is bad"), "`pre${X}post` is bad");
        assert_eq!(
            r.redact("`b@y.io` is not an address"),
            "`${MAILS}` is not an address"
        );
    }

    #[test]
    fn overlapping_values_leave_no_part_of_either() {
        let r = Redactor::new(&[sub("ab-cd", "${A}"), sub("cd-ef", "${B}")]);
        assert_eq!(r.redact("got ab-cd-ef!"), "got ${A}${B}!");
    }

    #[test]
    fn debug_output_hides_values() {
        let s = sub("hunter2", "${PW}");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Redactor::new(&[s])).contains("hunter2"));
    }
}
