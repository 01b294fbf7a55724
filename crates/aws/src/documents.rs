//! Policy documents as AWS hands them back: compared by meaning, not by form (IAM, SNS, EFS and
//! CloudWatch Logs reorder statements and turn `"x"` into `["x"]` or back), and written as
//! text for the APIs that take them so.

use reconciler_engine::model::{contains_ref, DesiredResource};
use reconciler_engine::provider::ProviderError;
use serde_json::Value;

/// Whether two policy documents mean the same: objects key by key, arrays as sets (IAM
/// evaluates `Action`, `Resource` and `Statement` lists without regard to order), and a
/// one-element array equal to its element (AWS services normalise `["x"]` and `"x"` either
/// way). An unresolved reference in `desired` matches any value.
pub(crate) fn policy_equivalent(observed: &Value, desired: &Value) -> bool {
    if is_ref(desired) {
        return true;
    }
    match (observed, desired) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && y.iter()
                    .all(|(k, w)| x.get(k).is_some_and(|v| policy_equivalent(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => set_pairing(x, y).is_some(),
        (Value::Array(x), other) if x.len() == 1 => policy_equivalent(&x[0], other),
        (other, Value::Array(y)) if y.len() == 1 => policy_equivalent(other, &y[0]),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => observed == desired,
    }
}

fn is_ref(value: &Value) -> bool {
    matches!(
        reconciler_engine::model::Reference::parse(value),
        Ok(Some(_))
    )
}

/// For each desired element, the index of the observed element it pairs with, when every
/// element pairs up (first fit, which suffices for policy lists).
fn set_pairing(observed: &[Value], desired: &[Value]) -> Option<Vec<usize>> {
    if observed.len() != desired.len() {
        return None;
    }
    let mut used = vec![false; observed.len()];
    desired
        .iter()
        .map(|w| {
            let j =
                (0..observed.len()).find(|&j| !used[j] && policy_equivalent(&observed[j], w))?;
            used[j] = true;
            Some(j)
        })
        .collect()
}

/// The observed document rewritten in the desired document's form (its order, its choice of
/// `"x"` or `["x"]`) when both mean the same, so the engine's structural diff sees no change
/// where AWS merely reordered or reformatted. Values standing where `desired` still holds an
/// unresolved reference are kept as observed. A document that differs is returned unchanged.
pub(crate) fn align_policy(observed: Value, desired: Option<&Value>) -> Value {
    match desired {
        Some(d) if policy_equivalent(&observed, d) => shape_like(&observed, d),
        _ => observed,
    }
}

/// [`align_policy`]'s rewrite, for documents known to be equivalent.
fn shape_like(observed: &Value, desired: &Value) -> Value {
    if is_ref(desired) {
        // References resolve to scalar outputs (ids, ARNs).
        return match observed {
            Value::Array(x) if x.len() == 1 && !x[0].is_array() && !x[0].is_object() => {
                x[0].clone()
            }
            _ => observed.clone(),
        };
    }
    match (observed, desired) {
        (Value::Object(x), Value::Object(y)) => Value::Object(
            y.iter()
                .filter_map(|(k, w)| x.get(k).map(|v| (k.clone(), shape_like(v, w))))
                .collect(),
        ),
        (Value::Array(x), Value::Array(y)) => match set_pairing(x, y) {
            Some(pairs) => Value::Array(
                pairs
                    .iter()
                    .zip(y)
                    .map(|(&j, w)| shape_like(&x[j], w))
                    .collect(),
            ),
            None => observed.clone(),
        },
        (Value::Array(x), other) if x.len() == 1 => shape_like(&x[0], other),
        (other, Value::Array(y)) if y.len() == 1 => Value::Array(vec![shape_like(other, &y[0])]),
        (Value::Number(_), Value::Number(_)) => desired.clone(),
        _ => observed.clone(),
    }
}

/// A JSON document as text for an API that takes policies as strings.
pub(crate) fn document_text(
    desired: &DesiredResource,
    value: &Value,
) -> Result<String, ProviderError> {
    if contains_ref(value) {
        return Err(ProviderError::terminal(format!(
            "{}: a policy document still holds an unresolved reference",
            desired.id
        )));
    }
    serde_json::to_string(value)
        .map_err(|e| ProviderError::terminal(format!("{}: policy document: {e}", desired.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_compare_as_sets_and_collapse_single_arrays() {
        let a = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["b", "a"], "Resource": "*"},
            {"Effect": "Deny", "Action": "c", "Resource": ["x"]}
        ]});
        let b = json!({"Statement": [
            {"Effect": "Deny", "Action": ["c"], "Resource": "x"},
            {"Resource": "*", "Action": ["a", "b"], "Effect": "Allow"}
        ], "Version": "2012-10-17"});
        assert!(policy_equivalent(&a, &b));
        let c = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["a"], "Resource": "*"},
            {"Effect": "Deny", "Action": "c", "Resource": ["x"]}
        ]});
        assert!(!policy_equivalent(&a, &c));
        assert!(!policy_equivalent(&json!(["a", "a"]), &json!(["a", "b"])));
    }

    #[test]
    fn align_keeps_desired_form_only_when_equivalent() {
        let want = json!({"Action": "a"});
        assert_eq!(align_policy(json!({"Action": ["a"]}), Some(&want)), want);
        assert_eq!(
            align_policy(json!({"Action": ["b"]}), Some(&want)),
            json!({"Action": ["b"]})
        );
        // A reference matches whatever stands in its place, which is kept as observed.
        let with_ref =
            json!({"Action": "a", "Principal": {"AWS": {"$ref": "iam.role/x", "attr": "arn"}}});
        assert_eq!(
            align_policy(
                json!({"Principal": {"AWS": ["arn:aws:iam::1:role/x"]}, "Action": ["a"]}),
                Some(&with_ref)
            ),
            json!({"Action": "a", "Principal": {"AWS": "arn:aws:iam::1:role/x"}})
        );
    }
}
