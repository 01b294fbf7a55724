//! CloudWatch Logs filter patterns for unstructured log events, written from AWS's
//! documentation ("Filter pattern syntax for metric filters, subscription filters, filter log
//! events and Live Tail": "Matching terms in unstructured log events"), so the tests can run
//! a subscription filter over log lines the way CloudWatch Logs does:
//!
//! - an empty pattern matches every event;
//! - a term is a word, or a phrase in double quotes (which may hold spaces and punctuation);
//!   terms are case-sensitive and match anywhere in the event;
//! - terms separated by spaces must all match (AND);
//! - terms with a leading `?` match if any of them does (OR);
//! - a term with a leading `-` must not match (exclusion).
//!
//! JSON (`{ ... }`), space-delimited (`[ ... ]`) and regular-expression (`%...%`) patterns are
//! not implemented: [`matches`] refuses them rather than guess.

/// One term of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    All(String),
    Any(String),
    Not(String),
}

/// A pattern this implementation does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

fn terms(pattern: &str) -> Result<Vec<Term>, Unsupported> {
    let trimmed = pattern.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('%') {
        return Err(Unsupported(pattern.to_string()));
    }
    let mut out = Vec::new();
    let mut chars = trimmed.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let kind = match c {
            '?' | '-' => {
                chars.next();
                c
            }
            _ => ' ',
        };
        let mut word = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.push(chars.next().unwrap_or('\\')),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => word.push(c),
                }
            }
            if !closed {
                return Err(Unsupported(pattern.to_string()));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(match kind {
            '?' => Term::Any(word),
            '-' => Term::Not(word),
            _ => Term::All(word),
        });
    }
    Ok(out)
}

/// Whether the log event `message` matches the filter `pattern`.
pub fn matches(pattern: &str, message: &str) -> Result<bool, Unsupported> {
    let terms = terms(pattern)?;
    let all = terms.iter().all(|t| match t {
        Term::All(w) => message.contains(w.as_str()),
        Term::Not(w) => !message.contains(w.as_str()),
        Term::Any(_) => true,
    });
    let any: Vec<&String> = terms
        .iter()
        .filter_map(|t| match t {
            Term::Any(w) => Some(w),
            _ => None,
        })
        .collect();
    Ok(all && (any.is_empty() || any.iter().any(|w| message.contains(w.as_str()))))
}

#[cfg(test)]
mod tests {
    //! Examples in the manner of the documentation's, on log lines like its samples.
    use super::*;

    const EVENTS: [&str; 3] = [
        "[ERROR 400] BAD REQUEST",
        "[ERROR 401] UNAUTHORIZED REQUEST",
        "[WARN] Exiting with status 1",
    ];

    fn hits(pattern: &str) -> Vec<usize> {
        (0..EVENTS.len())
            .filter(|i| matches(pattern, EVENTS[*i]).unwrap())
            .collect()
    }

    #[test]
    fn an_empty_pattern_matches_everything() {
        assert_eq!(hits(""), [0, 1, 2]);
    }

    #[test]
    fn a_term_is_case_sensitive_and_matches_anywhere() {
        assert_eq!(hits("ERROR"), [0, 1]);
        assert_eq!(hits("error"), Vec::<usize>::new());
        assert_eq!(hits("UNAUTHORIZED"), [1]);
    }

    #[test]
    fn terms_separated_by_spaces_must_all_match() {
        assert_eq!(hits("ERROR REQUEST"), [0, 1]);
        assert_eq!(hits("ERROR UNAUTHORIZED"), [1]);
    }

    #[test]
    fn a_quoted_phrase_matches_as_written_with_its_spaces() {
        assert_eq!(hits("\"BAD REQUEST\""), [0]);
        assert_eq!(hits("\"[ERROR 401]\""), [1]);
        assert_eq!(hits("\" REQUEST \""), Vec::<usize>::new());
        assert!(matches(
            "\" A \"",
            "1.0 t Z mc.example.com A NOERROR UDP IAD 192.0.2.1 -"
        )
        .unwrap());
        assert!(!matches(
            "\" A \"",
            "1.0 t Z mc.example.com AAAA NOERROR UDP IAD 192.0.2.1 -"
        )
        .unwrap());
    }

    #[test]
    fn question_marked_terms_match_if_any_does() {
        assert_eq!(hits("?UNAUTHORIZED ?WARN"), [1, 2]);
    }

    #[test]
    fn a_minus_excludes() {
        assert_eq!(hits("ERROR -UNAUTHORIZED"), [0]);
    }

    #[test]
    fn structured_patterns_are_refused() {
        for p in ["{ $.a = 1 }", "[ip, user]", "%ERR.*%", "\"open"] {
            assert!(matches(p, "x").is_err(), "{p}");
        }
    }
}
