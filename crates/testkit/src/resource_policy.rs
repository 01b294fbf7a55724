//! A small evaluator of resource-based policies, for tests that hand a deployed function an
//! event an AWS service would deliver: whether the function's policy lets that service
//! principal invoke it from that source.
//!
//! Written from AWS's IAM documentation and independent of the product's own permission code,
//! so a wrong grant fails the test instead of agreeing with itself. It covers what Lambda
//! permissions use: `Principal` (service or `*`), `Action`/`NotAction`, `Resource`/
//! `NotResource`, and conditions on `aws:SourceArn` and `aws:SourceAccount` with the
//! `String*` and `Arn*` operators (and their `Not…` and `…IfExists` forms). An explicit Deny
//! wins; an operator it does not know makes its statement grant nothing.

use serde_json::Value;

/// One request an AWS service makes on a resource, as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The service principal, such as `logs.amazonaws.com`.
    pub principal_service: &'a str,
    /// The action, such as `lambda:InvokeFunction`.
    pub action: &'a str,
    /// The resource's ARN, such as the function's.
    pub resource: &'a str,
    /// `aws:SourceArn`: the ARN of what triggers the call (a log group, rule or alarm).
    pub source_arn: Option<&'a str>,
    /// `aws:SourceAccount`: the account that owns the source.
    pub source_account: Option<&'a str>,
}

/// Whether `policy` (a policy document) allows `request`: some Allow statement applies and no
/// Deny statement does.
pub fn allows(policy: &Value, request: &Request<'_>) -> bool {
    let mut allowed = false;
    for statement in as_list(&policy["Statement"]) {
        if !applies(statement, request) {
            continue;
        }
        match statement["Effect"].as_str() {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// IAM's `ArnLike` and `ArnEquals`: the six colon-separated parts of the ARN are compared one
/// by one, each with `*` and `?` wildcards; the last part (the resource) may hold colons.
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    let wanted: Vec<&str> = pattern.splitn(6, ':').collect();
    let actual: Vec<&str> = arn.splitn(6, ':').collect();
    if wanted.len() != 6 || actual.len() != 6 {
        return pattern == "*";
    }
    wanted
        .iter()
        .zip(&actual)
        .all(|(w, a)| wildcard(w, a, false))
}

/// `*` matches any run of characters (also none), `?` exactly one.
pub fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, v) = (fold(pattern), fold(value));
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((star_p, star_v)) = star {
            // Let the last `*` take one more character and retry.
            pi = star_p + 1;
            vi = star_v + 1;
            star = Some((star_p, star_v + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn strings(value: &Value) -> Vec<&str> {
    as_list(value)
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

fn applies(statement: &Value, request: &Request<'_>) -> bool {
    principal_matches(&statement["Principal"], request.principal_service)
        && element_matches(statement, "Action", |p| wildcard(p, request.action, true))
        && element_matches(statement, "Resource", |p| arn_like(p, request.resource))
        && conditions_hold(&statement["Condition"], request)
}

fn principal_matches(principal: &Value, service: &str) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => {
            map.get("Service")
                .is_some_and(|v| strings(v).contains(&service))
                || map.get("AWS").is_some_and(|v| strings(v).contains(&"*"))
        }
        _ => false,
    }
}

/// `Action` (or `Resource`) must match; `NotAction` (or `NotResource`) must not.
fn element_matches(statement: &Value, name: &str, test: impl Fn(&str) -> bool) -> bool {
    if let Some(listed) = statement.get(name) {
        return strings(listed).into_iter().any(&test);
    }
    match statement.get(format!("Not{name}")) {
        Some(excluded) => !strings(excluded).into_iter().any(&test),
        None => false,
    }
}

fn conditions_hold(conditions: &Value, request: &Request<'_>) -> bool {
    let Some(operators) = conditions.as_object() else {
        return conditions.is_null();
    };
    operators.iter().all(|(operator, tests)| {
        tests
            .as_object()
            .is_some_and(|tests| operator_holds(operator, tests, request))
    })
}

fn context_value<'a>(key: &str, request: &Request<'a>) -> Option<&'a str> {
    match key.to_ascii_lowercase().as_str() {
        "aws:sourcearn" => request.source_arn,
        "aws:sourceaccount" => request.source_account,
        _ => None,
    }
}

fn operator_holds(
    operator: &str,
    tests: &serde_json::Map<String, Value>,
    request: &Request<'_>,
) -> bool {
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let (base, negated) = match base.split_once("Not") {
        Some((head, tail)) => (format!("{head}{tail}"), true),
        None => (base.to_string(), false),
    };
    let test: fn(&str, &str) -> bool = match base.as_str() {
        "StringEquals" => |want, have| want == have,
        "StringEqualsIgnoreCase" => |want, have| want.eq_ignore_ascii_case(have),
        "StringLike" => |want, have| wildcard(want, have, false),
        "ArnEquals" | "ArnLike" => arn_like,
        _ => return false,
    };
    tests.iter().all(|(key, wanted)| {
        let Some(have) = context_value(key, request) else {
            return if_exists || negated;
        };
        let hit = strings(wanted).into_iter().any(|w| test(w, have));
        hit != negated
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GROUP: &str = "arn:aws:logs:us-east-1:111122223333:log-group:/aws/route53/game";
    const FUNCTION: &str = "arn:aws:lambda:us-east-1:111122223333:function:start";

    fn request<'a>(source_arn: &'a str, account: &'a str) -> Request<'a> {
        Request {
            principal_service: "logs.amazonaws.com",
            action: "lambda:InvokeFunction",
            resource: FUNCTION,
            source_arn: Some(source_arn),
            source_account: Some(account),
        }
    }

    fn permission(source_arn: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "logs",
            "Effect": "Allow",
            "Principal": {"Service": "logs.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": FUNCTION,
            "Condition": {
                "ArnLike": {"AWS:SourceArn": source_arn},
                "StringEquals": {"AWS:SourceAccount": "111122223333"}
            }
        }]})
    }

    #[test]
    fn a_log_group_permission_needs_the_streams_wildcard() {
        let events = format!("{GROUP}:*");
        assert!(allows(
            &permission(&events),
            &request(&events, "111122223333")
        ));
        assert!(!allows(
            &permission(GROUP),
            &request(&events, "111122223333")
        ));
        assert!(!allows(
            &permission(&events),
            &request(&events, "444455556666")
        ));
        let other = "arn:aws:logs:us-east-1:111122223333:log-group:/aws/route53/other:*";
        assert!(!allows(
            &permission(&events),
            &request(other, "111122223333")
        ));
    }

    #[test]
    fn the_principal_and_action_must_match() {
        let events = format!("{GROUP}:*");
        let mut other = request(&events, "111122223333");
        other.principal_service = "events.amazonaws.com";
        assert!(!allows(&permission(&events), &other));
        let mut other = request(&events, "111122223333");
        other.action = "lambda:GetFunction";
        assert!(!allows(&permission(&events), &other));
        let mut wildcard_action = permission(&events);
        wildcard_action["Statement"][0]["Action"] = json!("lambda:*");
        assert!(allows(&wildcard_action, &request(&events, "111122223333")));
    }

    #[test]
    fn arn_like_compares_each_part_with_wildcards() {
        assert!(arn_like("arn:aws:logs:*:*:log-group:/aws/*", GROUP));
        assert!(arn_like(
            "arn:aws:logs:us-east-?:111122223333:log-group:*",
            GROUP
        ));
        // A `*` does not stretch over the colons between parts.
        assert!(!arn_like("arn:aws:*:log-group:/aws/route53/game", GROUP));
        assert!(!arn_like(
            "arn:aws:logs:us-east-1:111122223333:log-group:/aws/route53/gam",
            GROUP
        ));
        assert!(arn_like("*", GROUP));
    }

    #[test]
    fn deny_wins_and_unknown_operators_grant_nothing() {
        let events = format!("{GROUP}:*");
        let mut policy = permission(&events);
        let deny =
            json!({"Effect": "Deny", "Principal": "*", "Action": "lambda:*", "Resource": "*"});
        policy["Statement"].as_array_mut().unwrap().push(deny);
        assert!(!allows(&policy, &request(&events, "111122223333")));
        let mut policy = permission(&events);
        policy["Statement"][0]["Condition"] =
            json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}});
        assert!(!allows(&policy, &request(&events, "111122223333")));
        let mut policy = permission(&events);
        policy["Statement"][0]["Condition"] =
            json!({"StringNotEquals": {"aws:SourceAccount": "444455556666"}});
        assert!(allows(&policy, &request(&events, "111122223333")));
    }
}
