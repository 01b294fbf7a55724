//! EventBridge's event-pattern matching, written from AWS's documentation of it (the
//! EventBridge User Guide: "Creating event patterns", "Arrays in event patterns", "Content
//! filtering" and "Comparison operators"), so the tests can match a rule's pattern against an
//! event the way AWS does without calling `TestEventPattern`. Each rule it implements has a
//! unit test built on the documentation's own examples (below).
//!
//! - A pattern is an object; every field it names must be in the event, with the same
//!   nesting, and match (AND across fields). `$or` at any level takes a list of patterns, one
//!   of which must match besides the rest.
//! - A leaf is a list of values or comparisons; the field matches if any of them matches (OR).
//! - When the event's field is an array, the field matches if any element matches; an array of
//!   objects is searched element by element for a nested pattern.
//! - Values match exactly, by type and case (strings, numbers by value, `true`, `false`,
//!   `null`); `""` matches the empty string.
//! - Comparisons: `prefix`, `suffix` (each also as `{"equals-ignore-case": ...}`),
//!   `equals-ignore-case`, `wildcard` (`*` for any run of characters, `\*` for a star),
//!   `anything-but` (a value, a list, or `prefix`/`suffix`/`equals-ignore-case`/`wildcard`),
//!   `numeric` (one or two of `=`, `<`, `<=`, `>`, `>=` with a number), `cidr` and `exists`.
//! - Every comparison but `exists: false` needs the field to be present: `anything-but` does
//!   not match an event that lacks the field.

use std::net::IpAddr;

use serde_json::{Map, Value};

/// A pattern EventBridge would refuse (`InvalidEventPatternException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid event pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

fn bad<T>(what: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(what.into()))
}

/// Whether `event` matches `pattern`, as EventBridge decides it.
pub fn matches(pattern: &Value, event: &Value) -> Result<bool, PatternError> {
    match pattern {
        Value::Object(p) if !p.is_empty() => object(p, Some(event)),
        _ => bad("a pattern is a non-empty JSON object"),
    }
}

/// `pattern` (an object) against `event`'s value at the same place (`None`: absent).
fn object(pattern: &Map<String, Value>, event: Option<&Value>) -> Result<bool, PatternError> {
    // Check every field (so a bad pattern fails however the event looks), then combine.
    let mut all = true;
    for (key, p) in pattern {
        let ok = if key == "$or" {
            let Some(branches) = p.as_array().filter(|b| b.len() >= 2) else {
                return bad("$or takes a list of at least two patterns");
            };
            let mut any = false;
            for branch in branches {
                let Value::Object(b) = branch else {
                    return bad("each $or branch is an object");
                };
                any |= object(b, event)?;
            }
            any
        } else {
            let field = match event {
                Some(Value::Object(e)) => e.get(key),
                _ => None,
            };
            match p {
                Value::Object(sub) => nested(sub, field)?,
                Value::Array(leaf) => leaf_matches(leaf, field)?,
                _ => return bad(format!("`{key}`: a value to match must be in a list")),
            }
        };
        all &= ok;
    }
    Ok(all)
}

fn nested(pattern: &Map<String, Value>, field: Option<&Value>) -> Result<bool, PatternError> {
    match field {
        // An array of objects: any element may match the nested pattern.
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut any = false;
            for item in items {
                any |= object(pattern, Some(item))?;
            }
            Ok(any)
        }
        Some(v @ Value::Object(_)) => object(pattern, Some(v)),
        // Absent or a scalar: only comparisons that accept absence (`exists: false`) match.
        _ => object(pattern, None),
    }
}

/// The values of a leaf field: its elements when it is an array, else itself.
fn values(field: Option<&Value>) -> Vec<&Value> {
    match field {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    }
}

fn leaf_matches(leaf: &[Value], field: Option<&Value>) -> Result<bool, PatternError> {
    if leaf.is_empty() {
        return bad("a list of values to match is empty");
    }
    let vals = values(field);
    let mut any = false;
    for m in leaf {
        any |= match m {
            Value::Object(op) => {
                if let Some(exists) = op.get("exists") {
                    let Some(want) = exists.as_bool().filter(|_| op.len() == 1) else {
                        return bad("exists takes true or false");
                    };
                    // An empty array holds no value: it does not exist as a leaf.
                    want != vals.is_empty()
                } else {
                    let mut hit = false;
                    for v in &vals {
                        hit |= comparison(op, v)?;
                    }
                    // Validate the comparison even when the field is absent.
                    if vals.is_empty() {
                        comparison(op, &Value::Null)?;
                    }
                    hit
                }
            }
            Value::Array(_) => return bad("a value to match cannot be a list"),
            exact => vals.iter().any(|v| same(exact, v)),
        };
    }
    Ok(any)
}

/// Exact equality as EventBridge has it: by type, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str, PatternError> {
    v.as_str()
        .map_or_else(|| bad(format!("{what} takes a string")), Ok)
}

/// `prefix`/`suffix` operand: a string, or `{"equals-ignore-case": string}`.
fn affix(v: &Value, what: &str) -> Result<(String, bool), PatternError> {
    match v {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(o) if o.len() == 1 => Ok((
            text(
                o.get("equals-ignore-case").ok_or_else(|| {
                    PatternError(format!("{what} takes a string or equals-ignore-case"))
                })?,
                what,
            )?
            .to_string(),
            true,
        )),
        _ => bad(format!("{what} takes a string")),
    }
}

fn starts(value: &str, prefix: &str, fold: bool) -> bool {
    if fold {
        value.to_lowercase().starts_with(&prefix.to_lowercase())
    } else {
        value.starts_with(prefix)
    }
}

fn ends(value: &str, suffix: &str, fold: bool) -> bool {
    if fold {
        value.to_lowercase().ends_with(&suffix.to_lowercase())
    } else {
        value.ends_with(suffix)
    }
}

fn comparison(op: &Map<String, Value>, v: &Value) -> Result<bool, PatternError> {
    if op.len() != 1 {
        return bad(format!(
            "one comparison per object, got {}",
            Value::Object(op.clone())
        ));
    }
    let (name, arg) = op.iter().next().expect("one entry");
    let s = v.as_str();
    Ok(match name.as_str() {
        "prefix" => {
            let (p, fold) = affix(arg, "prefix")?;
            s.is_some_and(|s| starts(s, &p, fold))
        }
        "suffix" => {
            let (p, fold) = affix(arg, "suffix")?;
            s.is_some_and(|s| ends(s, &p, fold))
        }
        "equals-ignore-case" => {
            let want = text(arg, "equals-ignore-case")?;
            s.is_some_and(|s| s.to_lowercase() == want.to_lowercase())
        }
        "wildcard" => {
            let glob = text(arg, "wildcard")?;
            s.is_some_and(|s| wildcard(glob, s))
        }
        "anything-but" => anything_but(arg, v)?,
        "numeric" => numeric(arg, v)?,
        "cidr" => cidr(text(arg, "cidr")?, v)?,
        other => return bad(format!("unknown comparison `{other}`")),
    })
}

fn anything_but(arg: &Value, v: &Value) -> Result<bool, PatternError> {
    Ok(match arg {
        // One value, or a list of strings or of numbers (not mixed).
        Value::String(_) | Value::Number(_) => !same(arg, v),
        Value::Array(items) => {
            let strings = items.iter().all(Value::is_string);
            let numbers = items.iter().all(Value::is_number);
            if items.is_empty() || !(strings || numbers) {
                return bad("anything-but takes a list of strings or a list of numbers");
            }
            !items.iter().any(|x| same(x, v))
        }
        // One comparison, on one string or a list of them.
        Value::Object(o) if o.len() == 1 => {
            let (name, inner) = o.iter().next().expect("one entry");
            let operands: Vec<&Value> = match inner {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            let mut hit = false;
            for operand in operands {
                let p = text(operand, "anything-but")?;
                hit |= v.as_str().is_some_and(|s| match name.as_str() {
                    "prefix" => s.starts_with(p),
                    "suffix" => s.ends_with(p),
                    "equals-ignore-case" => s.to_lowercase() == p.to_lowercase(),
                    "wildcard" => wildcard(p, s),
                    _ => false,
                });
                if !["prefix", "suffix", "equals-ignore-case", "wildcard"].contains(&name.as_str())
                {
                    return bad(format!("anything-but cannot take `{name}`"));
                }
            }
            !hit
        }
        _ => return bad("anything-but takes a value, a list or one comparison"),
    })
}

fn numeric(arg: &Value, v: &Value) -> Result<bool, PatternError> {
    let Some(terms) = arg.as_array().filter(|t| t.len() == 2 || t.len() == 4) else {
        return bad("numeric takes one or two pairs of an operator and a number");
    };
    let x = v.as_f64();
    let mut ok = x.is_some();
    for pair in terms.chunks(2) {
        let (Some(op), Some(n)) = (pair[0].as_str(), pair[1].as_f64()) else {
            return bad("numeric takes an operator and a number");
        };
        let x = x.unwrap_or(f64::NAN);
        ok &= match op {
            "=" => x == n,
            "<" => x < n,
            "<=" => x <= n,
            ">" => x > n,
            ">=" => x >= n,
            other => return bad(format!("unknown numeric operator `{other}`")),
        };
    }
    Ok(ok)
}

fn cidr(block: &str, v: &Value) -> Result<bool, PatternError> {
    let (net, len) = block
        .split_once('/')
        .ok_or_else(|| PatternError(format!("`{block}` is not a CIDR block")))?;
    let net: IpAddr = net
        .parse()
        .map_err(|_| PatternError(format!("`{block}` is not a CIDR block")))?;
    let len: u32 = len
        .parse()
        .map_err(|_| PatternError(format!("`{block}` is not a CIDR block")))?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    if len > max {
        return bad(format!("`{block}` is not a CIDR block"));
    }
    let Some(ip) = v.as_str().and_then(|s| s.parse::<IpAddr>().ok()) else {
        return Ok(false);
    };
    Ok(match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    })
}

/// `glob` (`*` any run of characters, `\*` a star, `\\` a backslash) against all of `s`.
fn wildcard(glob: &str, s: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Any,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => toks.push(Tok::Any),
            '\\' => toks.push(Tok::Char(chars.next().unwrap_or('\\'))),
            c => toks.push(Tok::Char(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic glob matching with backtracking to the last star.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < toks.len() && toks[i] == Tok::Char(s[j]) {
            i += 1;
            j += 1;
        } else if i < toks.len() && toks[i] == Tok::Any {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    toks[i..].iter().all(|t| *t == Tok::Any)
}

#[cfg(test)]
mod tests {
    //! One test per documented rule, on the documentation's examples where it gives one.
    use super::*;
    use serde_json::json;

    fn m(pattern: Value, event: Value) -> bool {
        matches(&pattern, &event).unwrap()
    }

    /// The EC2 event of the EventBridge User Guide's "Amazon EventBridge events" page.
    fn ec2_event() -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "111122223333",
            "time": "2017-12-22T18:43:48Z",
            "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
            "detail": { "instance-id": "i-1234567890abcdef0", "state": "terminated" }
        })
    }

    #[test]
    fn fields_must_all_match_with_the_same_nesting() {
        let p = json!({ "source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": { "state": ["terminated"] } });
        assert!(m(p.clone(), ec2_event()));
        let mut e = ec2_event();
        e["detail"]["state"] = json!("running");
        assert!(!m(p.clone(), e));
        // Not nested under detail: no match.
        assert!(!m(json!({ "state": ["terminated"] }), ec2_event()));
        // A field the event lacks: no match.
        assert!(!m(json!({ "detail": { "color": ["red"] } }), ec2_event()));
    }

    #[test]
    fn a_pattern_list_matches_if_any_value_matches() {
        assert!(m(
            json!({ "detail": { "state": ["running", "terminated"] } }),
            ec2_event()
        ));
        assert!(!m(
            json!({ "detail": { "state": ["running", "stopped"] } }),
            ec2_event()
        ));
    }

    #[test]
    fn an_event_array_matches_if_the_intersection_is_not_empty() {
        // The "Arrays in event patterns" example.
        let p = json!({ "resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
        ] });
        let e = json!({ "resources": [
            "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
        ] });
        assert!(m(p.clone(), e));
        assert!(!m(
            p,
            json!({ "resources": ["arn:aws:ec2:us-east-1:999999999999:instance/i-b188560f"] })
        ));
    }

    #[test]
    fn an_array_of_objects_matches_if_any_element_matches() {
        let e = json!({ "detail": { "containers": [ { "name": "app", "exitCode": 0 }, { "name": "sidecar", "exitCode": 137 } ] } });
        assert!(m(
            json!({ "detail": { "containers": { "exitCode": [137] } } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "containers": { "exitCode": [1] } } }),
            e.clone()
        ));
        assert!(m(
            json!({ "detail": { "containers": { "exitCode": [{ "anything-but": 0 }] } } }),
            e.clone()
        ));
        // Fields of one nested pattern must match in the same element.
        assert!(m(
            json!({ "detail": { "containers": { "name": ["sidecar"], "exitCode": [137] } } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "containers": { "name": ["app"], "exitCode": [137] } } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "containers": { "exitCode": [{ "exists": false }] } } }),
            e
        ));
    }

    #[test]
    fn values_match_exactly_by_type_and_case() {
        let e = json!({ "a": "Terminated", "n": 5, "f": 5.0, "t": true, "z": null, "s": "5", "empty": "" });
        assert!(!m(json!({ "a": ["terminated"] }), e.clone()));
        assert!(m(json!({ "n": [5] }), e.clone()));
        assert!(m(json!({ "f": [5] }), e.clone()));
        assert!(!m(json!({ "s": [5] }), e.clone()));
        assert!(m(json!({ "t": [true] }), e.clone()));
        assert!(!m(json!({ "t": ["true"] }), e.clone()));
        // null matches a null value, not an absent field.
        assert!(m(json!({ "z": [null] }), e.clone()));
        assert!(!m(json!({ "absent": [null] }), e.clone()));
        // The empty string matches only itself.
        assert!(m(json!({ "empty": [""] }), e.clone()));
        assert!(!m(json!({ "a": [""] }), e));
    }

    #[test]
    fn prefix_and_suffix_with_and_without_case() {
        // "Prefix matching": time starting with 2017-10-02.
        let e = json!({ "time": "2017-10-02T18:43:48Z", "FileName": "image.PNG", "service": "EventBridge" });
        assert!(m(
            json!({ "time": [{ "prefix": "2017-10-02" }] }),
            e.clone()
        ));
        assert!(!m(
            json!({ "time": [{ "prefix": "2017-10-03" }] }),
            e.clone()
        ));
        assert!(!m(json!({ "FileName": [{ "suffix": ".png" }] }), e.clone()));
        assert!(m(
            json!({ "FileName": [{ "suffix": { "equals-ignore-case": ".png" } }] }),
            e.clone()
        ));
        assert!(m(
            json!({ "service": [{ "prefix": { "equals-ignore-case": "eventb" } }] }),
            e.clone()
        ));
        assert!(m(
            json!({ "service": [{ "equals-ignore-case": "EVENTBRIDGE" }] }),
            e
        ));
        // On a number: no match.
        assert!(!m(json!({ "n": [{ "prefix": "5" }] }), json!({ "n": 5 })));
    }

    #[test]
    fn wildcard_matches_runs_of_characters_and_escapes() {
        let e =
            json!({ "EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/myEventBus" });
        assert!(m(
            json!({ "EventBusArn": [{ "wildcard": "arn:aws:events:us-east-1:*:event-bus/*" }] }),
            e.clone()
        ));
        assert!(!m(
            json!({ "EventBusArn": [{ "wildcard": "arn:aws:events:us-west-2:*:event-bus/*" }] }),
            e
        ));
        assert!(m(
            json!({ "a": [{ "wildcard": "x\\*y" }] }),
            json!({ "a": "x*y" })
        ));
        assert!(!m(
            json!({ "a": [{ "wildcard": "x\\*y" }] }),
            json!({ "a": "xzy" })
        ));
        assert!(m(json!({ "a": [{ "wildcard": "*" }] }), json!({ "a": "" })));
    }

    #[test]
    fn anything_but_values_lists_and_comparisons() {
        let e = json!({ "detail": { "state": "initializing", "x-limit": 123, "FileName": "a.png", "Region": "us-west-2" } });
        assert!(!m(
            json!({ "detail": { "state": [{ "anything-but": "initializing" }] } }),
            e.clone()
        ));
        assert!(m(
            json!({ "detail": { "state": [{ "anything-but": "running" }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "x-limit": [{ "anything-but": 123 }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "state": [{ "anything-but": ["stopped", "initializing"] }] } }),
            e.clone()
        ));
        assert!(m(
            json!({ "detail": { "x-limit": [{ "anything-but": [100, 200] }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "Region": [{ "anything-but": { "prefix": "us-" } }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "FileName": [{ "anything-but": { "suffix": ".png" } }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "state": [{ "anything-but": { "equals-ignore-case": "INITIALIZING" } }] } }),
            e.clone()
        ));
        assert!(m(
            json!({ "detail": { "state": [{ "anything-but": { "wildcard": "*lib*" } }] } }),
            e.clone()
        ));
        // An absent field is not "anything but" a value.
        assert!(!m(
            json!({ "detail": { "color": [{ "anything-but": "red" }] } }),
            e
        ));
        // Mixed lists are refused.
        assert!(matches(&json!({ "a": [{ "anything-but": ["x", 1] }] }), &json!({})).is_err());
    }

    #[test]
    fn numeric_ranges() {
        // The documentation's c-count example: > 0 and <= 5.
        let p = json!({ "detail": { "c-count": [{ "numeric": [">", 0, "<=", 5] }] } });
        for (n, want) in [(0.0, false), (0.5, true), (5.0, true), (5.1, false)] {
            assert_eq!(
                m(p.clone(), json!({ "detail": { "c-count": n } })),
                want,
                "{n}"
            );
        }
        assert!(!m(p.clone(), json!({ "detail": { "c-count": "3" } })));
        assert!(m(
            json!({ "x": [{ "numeric": ["=", 3.0e0] }] }),
            json!({ "x": 3 })
        ));
        assert!(matches(
            &json!({ "x": [{ "numeric": ["~", 3] }] }),
            &json!({ "x": 3 })
        )
        .is_err());
    }

    #[test]
    fn exists_true_and_false() {
        let e = json!({ "detail": { "c-count": 5, "list": [] } });
        assert!(m(
            json!({ "detail": { "c-count": [{ "exists": true }] } }),
            e.clone()
        ));
        assert!(!m(
            json!({ "detail": { "c-count": [{ "exists": false }] } }),
            e.clone()
        ));
        assert!(m(
            json!({ "detail": { "d-count": [{ "exists": false }] } }),
            e.clone()
        ));
        assert!(!m(json!({ "detail": { "list": [{ "exists": true }] } }), e));
    }

    #[test]
    fn cidr_blocks() {
        let p = json!({ "detail": { "sourceIPAddress": [{ "cidr": "10.0.0.0/24" }] } });
        assert!(m(
            p.clone(),
            json!({ "detail": { "sourceIPAddress": "10.0.0.255" } })
        ));
        assert!(!m(
            p.clone(),
            json!({ "detail": { "sourceIPAddress": "10.0.1.0" } })
        ));
        assert!(m(
            json!({ "ip": [{ "cidr": "2001:db8::/32" }] }),
            json!({ "ip": "2001:db8::1" })
        ));
    }

    #[test]
    fn or_matches_any_branch_besides_the_other_fields() {
        // The "$or" example of the comparison operators page.
        let p = json!({ "detail": { "$or": [ { "c-count": [{ "numeric": [">", 0, "<=", 5] }] }, { "d-count": [{ "numeric": ["<", 10] }] }, { "x-limit": [{ "numeric": [">", 0, "<=", 5] }] } ] } });
        assert!(m(p.clone(), json!({ "detail": { "d-count": 3 } })));
        assert!(!m(
            p.clone(),
            json!({ "detail": { "d-count": 30, "c-count": 9 } })
        ));
        let p = json!({ "source": ["aws.ecs"], "$or": [ { "detail": { "a": [1] } }, { "detail": { "b": [2] } } ] });
        assert!(m(
            p.clone(),
            json!({ "source": "aws.ecs", "detail": { "b": 2 } })
        ));
        assert!(!m(
            p.clone(),
            json!({ "source": "aws.rds", "detail": { "b": 2 } })
        ));
        assert!(matches(&json!({ "$or": [ { "a": [1] } ] }), &json!({})).is_err());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for p in [
            json!({}),
            json!([]),
            json!({ "a": "x" }),
            json!({ "a": [] }),
            json!({ "a": [{ "nope": 1 }] }),
            json!({ "a": [{ "prefix": 1 }] }),
        ] {
            assert!(matches(&p, &json!({ "a": "x" })).is_err(), "{p}");
        }
    }
}
