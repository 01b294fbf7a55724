//! Container environment values kept out of what the CLI prints.
//!
//! Secrets belong in `spec.container.secrets`: their values stay in SSM Parameter Store or
//! Secrets Manager, ECS injects them at start, and `reconciler` only ever handles their names.
//! The container's plain environment is configuration, but its values often come from the
//! environment of whoever runs the command (`${VAR}`) and end up in CI logs, so wherever
//! resources or plans are printed every environment value is shown as [`HIDDEN`] unless the
//! user asks for them with `--show-values`. An entry whose name says it is secret
//! ([`reconciler_spec::looks_secret`], `ADMIN_TOKEN: ${ADMIN_TOKEN}`) is shown as
//! [`SENSITIVE`] even then, as Terraform shows sensitive values. Plans still compare the real
//! values, so changing one is still an update.

use std::sync::LazyLock;

use reconciler_engine::model::DesiredResource;
use reconciler_engine::{Plan, PlannedValue};
use reconciler_spec::looks_secret;
use regex::Regex;
use serde_json::Value;

/// What the value of a secret-named entry is shown as, always.
pub const SENSITIVE: &str = "(sensitive)";
/// What any other environment value is shown as without `--show-values`.
pub const HIDDEN: &str = "(hidden; --show-values shows it)";

/// A container environment value's JSON pointer in a resource's properties (the ECS task
/// definition's `containerDefinitions[i].environment[j].value`), with the entry's pointer.
static ENV_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(/containerDefinitions/\d+/environment/\d+)/value$").expect("valid pattern")
});

/// Redacts `v`, found at JSON pointer `at` of a resource whose properties are `properties`
/// (where the entries' names are read): every container environment value becomes
/// [`SENSITIVE`] or, unless `show_values`, [`HIDDEN`].
fn redact_at(v: &mut Value, at: &str, properties: &Value, show_values: bool) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let key = key.replace('~', "~0").replace('/', "~1");
                redact_at(child, &format!("{at}/{key}"), properties, show_values);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                redact_at(child, &format!("{at}/{i}"), properties, show_values);
            }
        }
        Value::Null => {}
        _ => {
            let Some(entry) = ENV_VALUE.captures(at).and_then(|c| c.get(1)) else {
                return;
            };
            let name = properties
                .pointer(&format!("{}/name", entry.as_str()))
                .and_then(Value::as_str);
            // An entry whose name is unknown is treated as secret.
            if name.is_none_or(looks_secret) {
                *v = Value::String(SENSITIVE.into());
            } else if !show_values {
                *v = Value::String(HIDDEN.into());
            }
        }
    }
}

/// Redacts the properties of rendered resources, for `render`.
pub fn resources(resources: &mut [DesiredResource], show_values: bool) {
    for r in resources {
        let names = r.properties.clone();
        redact_at(&mut r.properties, "", &names, show_values);
    }
}

/// A copy of a plan for printing: the values before and after each change redacted. The plan
/// that is applied is the original.
pub fn plan(plan: &Plan, show_values: bool) -> Plan {
    let resources = plan
        .resources()
        .iter()
        .cloned()
        .map(|mut r| {
            let names = r.desired().properties.clone();
            for change in &mut r.changes {
                if change.is_tag() {
                    continue;
                }
                if let Some(before) = &mut change.before {
                    redact_at(before, &change.path, &names, show_values);
                }
                if let Some(PlannedValue::Known(after)) = &mut change.after {
                    redact_at(after, &change.path, &names, show_values);
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

    fn task() -> Value {
        json!({
            "containerDefinitions": [{
                "environment": [
                    { "name": "ADMIN_TOKEN", "value": "hunter2" },
                    { "name": "RCON_PASSWORD", "value": "hunter3" },
                    { "name": "DIFFICULTY", "value": "normal" }
                ],
                "secrets": [{ "name": "SERVER_PASSWORD", "valueFrom": "/games/pw" }]
            }],
            "metadataOptions": { "httpTokens": "required" },
            "dimensions": [{ "name": "AutoScalingGroupName", "value": "rc-mc" }]
        })
    }

    #[test]
    fn environment_values_are_hidden_and_others_kept() {
        let mut v = task();
        let names = v.clone();
        redact_at(&mut v, "", &names, false);
        let env = &v["containerDefinitions"][0]["environment"];
        assert_eq!(env[0]["value"], SENSITIVE);
        assert_eq!(env[1]["value"], SENSITIVE);
        assert_eq!(env[2]["value"], HIDDEN);
        assert_eq!(env[2]["name"], "DIFFICULTY");
        assert_eq!(
            v["containerDefinitions"][0]["secrets"][0]["valueFrom"], "/games/pw",
            "secret references are names, not values"
        );
        assert_eq!(v["metadataOptions"]["httpTokens"], "required");
        assert_eq!(v["dimensions"][0]["value"], "rc-mc", "not an environment");
    }

    #[test]
    fn show_values_shows_ordinary_values_but_never_secret_named_ones() {
        let mut v = task();
        let names = v.clone();
        redact_at(&mut v, "", &names, true);
        let env = &v["containerDefinitions"][0]["environment"];
        assert_eq!(env[0]["value"], SENSITIVE);
        assert_eq!(env[2]["value"], "normal");
    }

    #[test]
    fn a_changed_value_alone_is_hidden_by_its_entry_s_name() {
        let names = task();
        for (at, want) in [
            ("/containerDefinitions/0/environment/2/value", HIDDEN),
            ("/containerDefinitions/0/environment/0/value", SENSITIVE),
        ] {
            let mut v = json!("changed");
            redact_at(&mut v, at, &names, false);
            assert_eq!(v, want, "{at}");
        }
        let mut entry = json!({ "name": "DIFFICULTY", "value": "hard" });
        redact_at(
            &mut entry,
            "/containerDefinitions/0/environment/2",
            &names,
            false,
        );
        assert_eq!(entry["value"], HIDDEN);
    }
}
