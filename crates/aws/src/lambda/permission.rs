//! `lambda.permission` ([`reconciler_kinds::lambda::Permission`]), by statement id in its
//! function's resource policy: one `GetPolicy` per distinct function, because a policy can only
//! be read whole, one function at a time. A statement cannot be edited, so every field is
//! immutable (a change replaces it: remove, then add). Untaggable; no outputs.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::lambda::Permission;
use serde_json::{json, Map, Value};

use super::classify_lambda;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, read_all, updated};

/// The client of permissions.
pub struct PermissionClient {
    pool: Arc<ClientPool>,
}

impl PermissionClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        PermissionClient { pool }
    }
}

/// A function's resource policy, or `None` when the function or its policy does not exist.
async fn read_policy(
    lambda: aws_sdk_lambda::Client,
    function: String,
) -> Result<Option<Value>, ProviderError> {
    match lambda.get_policy().function_name(&function).send().await {
        Ok(out) => Ok(out.policy().map(util::parse_policy)),
        Err(e) => {
            let err = classify_lambda(&format!("GetPolicy {function}"), e);
            if err.class == ErrorClass::NotFound {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// A value under `key`, ignoring the key's case (policy condition keys are case-insensitive).
fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The statement `sid` of `policy` in the desired shape.
fn statement_properties(policy: &Value, sid: &str, function: &str) -> Option<Value> {
    let statement = policy
        .get("Statement")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))?;
    let one = |v: &Value| match v {
        Value::Array(items) if items.len() == 1 => items[0].clone(),
        other => other.clone(),
    };
    let action = statement.get("Action").map(one).unwrap_or(Value::Null);
    let principal = match statement.get("Principal") {
        Some(Value::Object(p)) => p
            .get("Service")
            .or_else(|| p.get("AWS"))
            .map(one)
            .unwrap_or_else(|| Value::Object(p.clone())),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    let source_arn = statement
        .get("Condition")
        .and_then(Value::as_object)
        .and_then(|c| get_ignore_case(c, "ArnLike"))
        .and_then(Value::as_object)
        .and_then(|a| get_ignore_case(a, "AWS:SourceArn"))
        .map(one)
        .unwrap_or(Value::Null);
    Some(json!({
        "functionName": function,
        "action": action,
        "principal": principal,
        "sourceArn": source_arn,
    }))
}

#[async_trait]
impl KindClient<Permission> for PermissionClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let lambda = self.pool.lambda(region);
        // The function is a literal (render writes its deterministic name), so its policy can
        // be read before anything is resolved.
        let mut wanted = Vec::with_capacity(desired.len());
        let mut functions: Vec<String> = Vec::new();
        for d in desired {
            let function = reconciler_kinds::read::<Permission>(d)?.function_name;
            if !functions.contains(&function) {
                functions.push(function.clone());
            }
            wanted.push((d, function));
        }
        // No batch form: one `GetPolicy` per function.
        let policies = read_all(
            functions
                .iter()
                .map(|f| read_policy(lambda.clone(), f.clone()))
                .collect(),
        )
        .await?;
        let by_function: HashMap<&str, &Value> = functions
            .iter()
            .zip(&policies)
            .filter_map(|(f, p)| p.as_ref().map(|p| (f.as_str(), p)))
            .collect();
        Ok(wanted
            .into_iter()
            .filter_map(|(d, function)| {
                let policy = by_function.get(function.as_str())?;
                let properties = statement_properties(policy, &d.name, &function)?;
                Some(util::observed(d, properties, [], IndexMap::new()))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Permission,
    ) -> Result<Observed, ProviderError> {
        let function = props.function_name.as_str();
        let sid = desired.name.as_str();
        self.pool
            .lambda(&desired.region)
            .add_permission()
            .function_name(function)
            .statement_id(sid)
            .action(&props.action)
            .principal(&props.principal)
            .source_arn(props.source_arn.get("sourceArn")?)
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("AddPermission {function} {sid}"), e))?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _props: &Permission,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // Every field is immutable and there are no tags, so the engine replaces instead.
        if let Some(change) = changes.first() {
            return Err(ProviderError::terminal(format!(
                "{}: a Lambda permission cannot be changed in place (`{}`); it is replaced",
                desired.id, change.path
            )));
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let function = reconciler_kinds::read::<Permission>(desired)?.function_name;
        let sid = desired.name.as_str();
        self.pool
            .lambda(&desired.region)
            .remove_permission()
            .function_name(&function)
            .statement_id(sid)
            .send()
            .await
            .map_err(|e| classify_lambda(&format!("RemovePermission {function} {sid}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_map_back_to_the_desired_shape() {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                { "Sid": "other", "Action": "lambda:InvokeFunction", "Principal": "*" },
                {
                    "Sid": "rc-mc-crash-loop-invoke",
                    "Effect": "Allow",
                    "Principal": { "Service": "events.amazonaws.com" },
                    "Action": "lambda:InvokeFunction",
                    "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                    "Condition": { "ArnLike": { "AWS:SourceArn": "arn:aws:events:us-east-1:1:rule/r" } }
                }
            ]
        });
        assert_eq!(
            statement_properties(&policy, "rc-mc-crash-loop-invoke", "f").unwrap(),
            json!({
                "functionName": "f",
                "action": "lambda:InvokeFunction",
                "principal": "events.amazonaws.com",
                "sourceArn": "arn:aws:events:us-east-1:1:rule/r"
            })
        );
        assert_eq!(
            statement_properties(&policy, "other", "f").unwrap()["sourceArn"],
            Value::Null
        );
        assert!(statement_properties(&policy, "missing", "f").is_none());
    }
}
