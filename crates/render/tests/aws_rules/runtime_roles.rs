//! The runtime functions that start and stop a server (start-system, idle-stop,
//! break-crash-loop) hold what that takes and no more of Auto Scaling: setting their group's
//! desired capacity (`SetDesiredCapacity`, not `UpdateAutoScalingGroup`, which would also move
//! the group to another launch template, sizes or subnets), reading groups, and for the start
//! function with wake limits, writing the one wake history tag.

use std::collections::BTreeMap;

use reconciler_engine::model::DesiredGraph;
use reconciler_kinds::lambda::WAKES_TAG;
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::support::{self, actions_overlap, referenced};

/// The handlers that change a group's capacity.
const CAPACITY_SETTERS: &[&str] = &["start-system", "idle-stop", "break-crash-loop"];

/// The Auto Scaling statements of one function's role that break the rule, by Sid.
fn capacity_setter_problems(
    graph: &DesiredGraph,
    function: &reconciler_engine::model::DesiredResource,
) -> Vec<String> {
    let env = &function.properties["environment"];
    let handler = env["RECONCILER_HANDLER"].as_str().unwrap();
    let group = env["ASG_NAME"].as_str().unwrap();
    let limited = env.get("WAKE_COOLDOWN_MINUTES").is_some();
    let role_id = referenced(&function.properties["roleArn"]).unwrap();
    let role = graph.get(&role_id.into()).unwrap();
    let policy = &role.properties["inlinePolicies"][handler];
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for st in policy["Statement"].as_array().unwrap() {
        let sid = st["Sid"].as_str().unwrap_or("-");
        let actions: Vec<&str> = match &st["Action"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for action in actions
            .iter()
            .filter(|a| actions_overlap(a, "autoscaling:*"))
        {
            let on_group = st["Resource"].as_str().is_some_and(|r| {
                r.starts_with("arn:aws:autoscaling:")
                    && r.ends_with(&format!(":autoScalingGroupName/{group}"))
            });
            let condition = st.get("Condition").cloned().unwrap_or(Value::Null);
            let ok = match *action {
                "autoscaling:DescribeAutoScalingGroups" => true,
                "autoscaling:SetDesiredCapacity" => on_group && condition.is_null(),
                "autoscaling:CreateOrUpdateTags" => {
                    handler == "start-system"
                        && limited
                        && on_group
                        && condition
                            == json!({
                                "ForAllValues:StringEquals": { "aws:TagKeys": [WAKES_TAG] },
                                "Null": { "aws:TagKeys": "false" }
                            })
                }
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "{}: {sid} allows `{action}` on {} if {condition}",
                    role.id, st["Resource"]
                ));
            }
            *seen.entry(action).or_default() += 1;
        }
    }
    if seen.get("autoscaling:SetDesiredCapacity") != Some(&1) {
        problems.push(format!(
            "{}: one SetDesiredCapacity grant expected: {seen:?}",
            role.id
        ));
    }
    let tags = seen.contains_key("autoscaling:CreateOrUpdateTags");
    if tags != (handler == "start-system" && limited) {
        problems.push(format!(
            "{}: writes tags: {tags}, wake limits: {limited}",
            role.id
        ));
    }
    problems
}

#[test]
fn functions_that_start_or_stop_a_server_only_set_its_capacity_and_write_its_wake_tag() {
    let mut handlers: BTreeMap<String, usize> = BTreeMap::new();
    for graph in [
        support::rendered(&support::examples()),
        support::rendered(&support::policy_set().0),
        support::rendered(&crate::names::longest_set().0),
    ] {
        for f in graph.iter().filter(|r| r.kind.as_str() == kinds::FUNCTION) {
            let handler = f.properties["environment"]["RECONCILER_HANDLER"]
                .as_str()
                .unwrap();
            if !CAPACITY_SETTERS.contains(&handler) {
                continue;
            }
            let limited = f.properties["environment"]
                .get("WAKE_COOLDOWN_MINUTES")
                .is_some();
            *handlers
                .entry(format!("{handler} (wake limits: {limited})"))
                .or_default() += 1;
            let problems = capacity_setter_problems(&graph, f);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
    }
    // Every kind of function was seen, the start function with and without wake limits.
    assert_eq!(handlers.len(), 4, "{handlers:?}");
}
