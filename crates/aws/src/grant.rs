//! Reading a resource policy the way AWS evaluates it for a service principal, so an error
//! AWS gives without detail ("Could not execute the lambda function") can be told apart: a
//! grant that exists but has not taken effect yet (worth a short wait) from one that does not
//! match what the service presents (worth a clear error at once).
//!
//! Only what the reconciler's own permissions use is understood: `Allow` statements, service
//! principals, `ArnLike`/`ArnEquals` on `aws:SourceArn` and `StringEquals` on
//! `aws:SourceAccount`. A statement with any other condition is not counted as a grant, so the
//! answer errs towards "no grant", which only shortens a wait.

use serde_json::{Map, Value};

/// What a service presents when it calls on a resource: its principal, the ARN it acts for and
/// the account that owns that ARN.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRequest<'a> {
    /// The service principal, `logs.amazonaws.com`.
    pub principal: &'a str,
    /// The action, `lambda:InvokeFunction`.
    pub action: &'a str,
    /// `aws:SourceArn`, as the service presents it.
    pub source_arn: &'a str,
    /// `aws:SourceAccount`.
    pub source_account: &'a str,
}

/// The `Sid` of the first statement of `policy` that allows `request` (an empty string for a
/// statement without one), or `None`.
pub fn allowing_statement(policy: &Value, request: &ServiceRequest<'_>) -> Option<String> {
    statements(policy)
        .into_iter()
        .find(|s| allows(s, request))
        .map(|s| {
            s.get("Sid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
}

fn statements(policy: &Value) -> Vec<&Map<String, Value>> {
    match policy.get("Statement") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
        Some(Value::Object(one)) => vec![one],
        _ => Vec::new(),
    }
}

fn allows(statement: &Map<String, Value>, request: &ServiceRequest<'_>) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
        && principal_matches(statement.get("Principal"), request.principal)
        && action_matches(statement.get("Action"), request.action)
        && conditions_hold(statement.get("Condition"), request)
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn principal_matches(principal: Option<&Value>, service: &str) -> bool {
    match principal {
        Some(Value::String(all)) => all == "*",
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| k.as_str() == "Service")
            .any(|(_, v)| strings(Some(v)).contains(&service)),
        _ => false,
    }
}

fn action_matches(action: Option<&Value>, wanted: &str) -> bool {
    strings(action)
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), &wanted.to_ascii_lowercase()))
}

/// Every condition of the statement holds for `request`; an operator or key this module does
/// not know makes the statement not count.
fn conditions_hold(condition: Option<&Value>, request: &ServiceRequest<'_>) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    let Some(operators) = condition.as_object() else {
        return false;
    };
    operators.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, values)| {
            let values = strings(Some(values));
            let key = key.to_ascii_lowercase();
            match (operator.as_str(), key.as_str()) {
                ("ArnLike" | "ArnEquals", "aws:sourcearn") => {
                    values.iter().any(|p| arn_like(p, request.source_arn))
                }
                ("StringEquals", "aws:sourceaccount") => values.contains(&request.source_account),
                _ => false,
            }
        })
    })
}

/// IAM's `ArnLike`: both ARNs are split into their six colon-separated parts (the last keeps
/// any further colons) and each part of `value` must match the same part of `pattern`, where
/// `*` stands for any run of characters and `?` for one. So `...:log-group:name` does not match
/// the `...:log-group:name:*` that CloudWatch Logs presents.
pub fn arn_like(pattern: &str, value: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6 && v.len() == 6 && p.iter().zip(&v).all(|(p, v)| glob(p, v))
}

/// Matches `text` against `pattern` with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point for the last `*` seen.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GROUP: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/route53/mc.example.com";

    fn request(source_arn: &str) -> ServiceRequest<'_> {
        ServiceRequest {
            principal: "logs.amazonaws.com",
            action: "lambda:InvokeFunction",
            source_arn,
            source_account: "123456789012",
        }
    }

    /// The policy Lambda's AddPermission writes for a principal and a source ARN.
    fn policy(source_arn: &str) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "rc-mc-query-log-invoke",
                "Effect": "Allow",
                "Principal": { "Service": "logs.amazonaws.com" },
                "Action": "lambda:InvokeFunction",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:rc-mc-start-system",
                "Condition": { "ArnLike": { "AWS:SourceArn": source_arn } }
            }]
        })
    }

    #[test]
    fn the_bare_group_arn_does_not_grant_what_logs_presents() {
        let presented = format!("{GROUP}:*");
        assert_eq!(
            allowing_statement(&policy(GROUP), &request(&presented)),
            None
        );
        assert_eq!(
            allowing_statement(&policy(&presented), &request(&presented)).as_deref(),
            Some("rc-mc-query-log-invoke")
        );
    }

    #[test]
    fn another_principal_group_or_account_is_no_grant() {
        let presented = format!("{GROUP}:*");
        let mut other_principal = policy(&presented);
        other_principal["Statement"][0]["Principal"]["Service"] = json!("events.amazonaws.com");
        assert_eq!(
            allowing_statement(&other_principal, &request(&presented)),
            None
        );
        let other_group = format!("{GROUP}x:*");
        assert_eq!(
            allowing_statement(&policy(&presented), &request(&other_group)),
            None
        );
        let mut with_account = policy(&presented);
        with_account["Statement"][0]["Condition"]["StringEquals"] =
            json!({ "AWS:SourceAccount": "210987654321" });
        assert_eq!(
            allowing_statement(&with_account, &request(&presented)),
            None
        );
    }

    #[test]
    fn arn_like_matches_part_by_part() {
        assert!(arn_like(
            "arn:aws:logs:*:123:log-group:/a/*",
            "arn:aws:logs:us-east-1:123:log-group:/a/b:*"
        ));
        assert!(!arn_like(
            "arn:aws:logs:*:123:log-group:/a",
            "arn:aws:logs:us-east-1:123:log-group:/a:*"
        ));
        // A `*` does not reach across the region and account parts.
        assert!(!arn_like(
            "arn:aws:logs:*",
            "arn:aws:logs:us-east-1:123:log-group:x"
        ));
        assert!(glob("a?c*", "abcdef") && !glob("a?c", "abcd") && glob("*", ""));
    }
}
