//! Secret values kept out of what the CLI prints.
//!
//! Secrets belong in `spec.container.secrets`: their values stay in SSM Parameter Store or
//! Secrets Manager, ECS injects them at start, and `reconciler` only ever handles their names.
//! A secret written as a plain environment variable instead (`ADMIN_TOKEN: ${ADMIN_TOKEN}`)
//! does pass through: it is part of the task definition, and validation warns about it. So
//! wherever resources or plans are printed, the value of an environment entry whose name
//! says it is secret ([`reconciler_spec::looks_secret`]) is shown as [`SENSITIVE`], as
//! Terraform shows sensitive values; plans still compare the real values, so changing one is
//! still an update.

use reconciler_engine::model::DesiredResource;
use reconciler_engine::{Plan, PlannedValue};
use reconciler_spec::looks_secret;
use serde_json::Value;

/// What a redacted value is shown as.
pub const SENSITIVE: &str = "(sensitive)";

/// Redacts a value in place: in every `{"name": N, "value": V}` object (the shape of ECS
/// environment entries, the only place an environment value reaches a resource) whose `N`
/// looks secret, `V` becomes [`SENSITIVE`].
pub fn value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let secret_entry = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(looks_secret);
            if secret_entry {
                if let Some(value) = map.get_mut("value") {
                    if !value.is_null() {
                        *value = Value::String(SENSITIVE.into());
                    }
                }
            }
            for child in map.values_mut() {
                self::value(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(value),
        _ => {}
    }
}

/// Redacts the properties of rendered resources, for `render`.
pub fn resources(resources: &mut [DesiredResource]) {
    for r in resources {
        value(&mut r.properties);
    }
}

/// A copy of a plan for printing: the values before and after each change redacted. The plan
/// that is applied is the original.
pub fn plan(plan: &Plan) -> Plan {
    let resources = plan
        .resources()
        .iter()
        .cloned()
        .map(|mut r| {
            for change in &mut r.changes {
                if let Some(before) = &mut change.before {
                    value(before);
                }
                if let Some(PlannedValue::Known(after)) = &mut change.after {
                    value(after);
                }
            }
            r
        })
        .collect();
    Plan::from_resources(resources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_named_environment_values_are_hidden_and_others_kept() {
        let mut v = json!({
            "containerDefinitions": [{
                "environment": [
                    { "name": "ADMIN_TOKEN", "value": "hunter2" },
                    { "name": "RCON_PASSWORD", "value": "hunter3" },
                    { "name": "DIFFICULTY", "value": "normal" }
                ],
                "secrets": [{ "name": "SERVER_PASSWORD", "valueFrom": "/games/pw" }]
            }],
            "metadataOptions": { "httpTokens": "required" }
        });
        value(&mut v);
        let env = &v["containerDefinitions"][0]["environment"];
        assert_eq!(env[0]["value"], SENSITIVE);
        assert_eq!(env[1]["value"], SENSITIVE);
        assert_eq!(env[2]["value"], "normal");
        assert_eq!(
            v["containerDefinitions"][0]["secrets"][0]["valueFrom"], "/games/pw",
            "secret references are names, not values"
        );
        assert_eq!(v["metadataOptions"]["httpTokens"], "required");
    }
}
