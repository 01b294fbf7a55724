//! The game container is treated as hostile (third-party images, mods with remote code
//! execution holes): whatever credentials it can reach must not read a parameter, a secret or
//! a key, nor touch IAM, and it must not share the host's network.
//!
//! A container reaches the role of its instance (through the metadata service, if nothing keeps
//! it away) and its task's role (`taskRoleArn`, served to the task by the ECS agent). The task
//! execution role is not among them: the agent uses it for the image, the logs and the secrets
//! it injects, and never hands its credentials to a container.

use std::collections::BTreeMap;

use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::support::{self, actions_overlap, allowed_actions, referenced};

/// What no role a container can reach may allow, as IAM action patterns.
const FORBIDDEN: &[&str] = &[
    "ssm:GetParameter*",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
    "iam:*",
];

/// The metadata service block the instance's boot script must install (ECS's advice for the
/// `bridge` network mode), and the ordering that puts it before Docker and the ECS agent.
const METADATA_DROP: &str = "DOCKER-USER -d 169.254.169.254/32 -j DROP";
const BEFORE_DOCKER_AND_AGENT: &str = "Before=docker.service ecs.service";

/// The roles of `graph` a container can reach, by resource id, with how it reaches each.
fn reachable_roles(graph: &DesiredGraph) -> BTreeMap<String, String> {
    let by_id: BTreeMap<&str, &DesiredResource> =
        graph.iter().map(|r| (r.id.as_str(), r)).collect();
    let role_named = |name: &str| {
        graph
            .iter()
            .find(|r| r.kind.as_str() == kinds::ROLE && r.name == name)
            .map(|r| r.id.to_string())
    };
    let mut out = BTreeMap::new();
    for r in graph.iter() {
        match r.kind.as_str() {
            kinds::LAUNCH_TEMPLATE => {
                let profile = referenced(&r.properties["iamInstanceProfileArn"])
                    .and_then(|id| by_id.get(id))
                    .unwrap_or_else(|| panic!("{}: its instance profile is rendered", r.id));
                for role in profile.properties["roles"].as_array().unwrap() {
                    let role = referenced(role).expect("the profile's role by reference");
                    out.insert(role.to_string(), format!("instance role of {}", r.id));
                }
            }
            kinds::TASK_DEFINITION => match r.properties.get("taskRoleArn") {
                None | Some(Value::Null) => {}
                Some(value) => {
                    let role = referenced(value)
                        .map(str::to_string)
                        .or_else(|| {
                            value
                                .as_str()
                                .and_then(|arn| role_named(arn.rsplit('/').next()?))
                        })
                        .unwrap_or_else(|| panic!("{}: task role {value} is rendered", r.id));
                    out.insert(role, format!("task role of {}", r.id));
                }
            },
            _ => {}
        }
    }
    out
}

/// Every way `graph` lets a container read what it must not: a reachable role with a managed
/// policy (whose grants the render cannot see) or an inline statement whose actions overlap a
/// forbidden pattern, and a task definition on the host's network.
fn container_exposure(graph: &DesiredGraph) -> Vec<String> {
    let mut problems = Vec::new();
    let reachable = reachable_roles(graph);
    for (id, how) in &reachable {
        let role = graph.get(&id.as_str().into()).unwrap();
        let managed = &role.properties["managedPolicyArns"];
        if managed.as_array().is_some_and(|m| !m.is_empty()) {
            problems.push(format!("{id} ({how}) holds managed policies {managed}"));
        }
        for (name, policy) in role.properties["inlinePolicies"].as_object().unwrap() {
            for (sid, action) in allowed_actions(policy) {
                for forbidden in FORBIDDEN.iter().filter(|f| actions_overlap(&action, f)) {
                    problems.push(format!(
                        "{id} ({how}): {name}/{sid} allows `{action}`, which covers `{forbidden}`"
                    ));
                }
            }
        }
    }
    for td in graph
        .iter()
        .filter(|r| r.kind.as_str() == kinds::TASK_DEFINITION)
    {
        if td.properties["networkMode"] == "host" {
            problems.push(format!("{}: host networking", td.id));
        }
    }
    problems
}

/// The example specs, every policy-shaping option over 64 servers, and the longest names.
fn renders() -> Vec<(&'static str, DesiredGraph)> {
    vec![
        ("examples", support::rendered(&support::examples())),
        ("every option", support::rendered(&support::policy_set().0)),
        (
            "longest names",
            support::rendered(&crate::names::longest_set().0),
        ),
    ]
}

#[test]
fn no_role_a_container_reaches_reads_secrets_and_no_task_shares_the_host_network() {
    for (what, graph) in renders() {
        let launch_templates = graph
            .iter()
            .filter(|r| r.kind.as_str() == kinds::LAUNCH_TEMPLATE)
            .count();
        let reachable = reachable_roles(&graph);
        assert!(
            launch_templates > 0 && reachable.len() >= launch_templates,
            "{what}: every instance's role is found ({} roles, {launch_templates} instances)",
            reachable.len()
        );
        let problems = container_exposure(&graph);
        assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
    }
}

#[test]
fn every_task_publishes_its_ports_on_a_bridge_and_every_instance_keeps_containers_off_the_metadata_service(
) {
    for (what, graph) in renders() {
        for td in graph
            .iter()
            .filter(|r| r.kind.as_str() == kinds::TASK_DEFINITION)
        {
            assert_eq!(td.properties["networkMode"], "bridge", "{what}: {}", td.id);
            for container in td.properties["containerDefinitions"].as_array().unwrap() {
                for mapping in container["portMappings"].as_array().unwrap() {
                    // The instance's security group opens the declared ports: the same port and
                    // protocol on the host.
                    assert_eq!(
                        mapping["hostPort"], mapping["containerPort"],
                        "{what}: {}",
                        td.id
                    );
                    assert!(mapping["protocol"].is_string(), "{what}: {}", td.id);
                }
            }
        }
        for lt in graph
            .iter()
            .filter(|r| r.kind.as_str() == kinds::LAUNCH_TEMPLATE)
        {
            let metadata = &lt.properties["metadataOptions"];
            // IMDSv2 only, and its answers do not cross the bridge (one hop).
            assert_eq!(metadata["httpTokens"], "required", "{what}: {}", lt.id);
            assert_eq!(metadata["httpPutResponseHopLimit"], 1, "{what}: {}", lt.id);
            let script: String = lt.properties["userData"]["$join"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let block = script.find(METADATA_DROP).unwrap_or_else(|| {
                panic!(
                    "{what}: {} drops no container traffic to the metadata service",
                    lt.id
                )
            });
            assert!(
                script.contains(BEFORE_DOCKER_AND_AGENT),
                "{what}: {}",
                lt.id
            );
            assert!(
                script.contains("systemctl enable --now"),
                "{what}: {}: installed at boot and now",
                lt.id
            );
            // Before the agent is told its cluster, so no task runs without it.
            let cluster = script.find("ECS_CLUSTER=").unwrap();
            assert!(block < cluster, "{what}: {}", lt.id);
        }
    }
}

/// The check itself: each way a role could hand a container a secret is found, and the grants
/// the instance needs are not mistaken for one.
#[test]
fn the_exposure_check_finds_each_forbidden_grant_and_host_networking() {
    let statement = |sid: &str, action: Value| json!({ "Sid": sid, "Effect": "Allow", "Action": action, "Resource": "*" });
    let role = |local: &str, managed: Value, statements: Vec<Value>| {
        DesiredResource::new(kinds::ROLE, local, "us-east-1", format!("rc-{local}"))
            .with_properties(json!({
                "managedPolicyArns": managed,
                "inlinePolicies": { "p": { "Version": "2012-10-17", "Statement": statements } }
            }))
    };
    let profile = DesiredResource::new(kinds::INSTANCE_PROFILE, "mc", "us-east-1", "rc-mc")
        .with_properties(json!({ "roles": [{ "$ref": "iam.role/mc-instance", "attr": "name" }] }));
    let lt = DesiredResource::new(kinds::LAUNCH_TEMPLATE, "mc", support::REGION, "rc-mc")
        .with_properties(json!({ "iamInstanceProfileArn": { "$ref": "iam.instance-profile/mc", "attr": "arn" } }));
    let td = |mode: &str, task_role: Value| {
        DesiredResource::new(kinds::TASK_DEFINITION, "mc", support::REGION, "rc-mc")
            .with_properties(json!({ "networkMode": mode, "taskRoleArn": task_role }))
    };
    let instance = role(
        "mc-instance",
        json!([]),
        vec![
            statement("Ecs", json!(["ecs:Submit*", "ecs:Poll"])),
            statement("Ssm", json!("ssm:UpdateInstanceInformation")),
            statement("Wide", json!("ssm:Get*")),
            statement("Star", json!("*")),
            statement("Case", json!("SecretsManager:GetSecret*")),
            statement("Pass", json!("iam:PassRole")),
            statement("Kms", json!("kms:*")),
            statement("Path", json!("ssm:GetParametersByPath")),
            json!({ "Sid": "Not", "Effect": "Allow", "NotAction": "s3:*", "Resource": "*" }),
            json!({ "Sid": "Deny", "Effect": "Deny", "Action": "*", "Resource": "*" }),
        ],
    );
    let task = role(
        "mc-task",
        json!(["arn:aws:iam::aws:policy/ReadOnlyAccess"]),
        Vec::new(),
    );
    let execution = role(
        "mc-task-execution",
        json!([]),
        vec![statement("Secrets", json!("ssm:GetParameters"))],
    );
    let graph = |task_definition: DesiredResource| {
        DesiredGraph::new(vec![
            instance.clone(),
            task.clone(),
            execution.clone(),
            profile.clone(),
            lt.clone(),
            task_definition,
        ])
        .unwrap()
    };

    let problems = container_exposure(&graph(td(
        "host",
        json!(format!("arn:aws:iam::{}:role/rc-mc-task", support::ACCOUNT)),
    )));
    let found = |needle: &str| problems.iter().filter(|p| p.contains(needle)).count();
    assert_eq!(found("Ecs"), 0, "{problems:#?}");
    assert_eq!(found("/Ssm "), 0, "{problems:#?}");
    assert_eq!(found("p/Wide allows `ssm:Get*`"), 1, "{problems:#?}");
    assert_eq!(found("p/Star allows `*`"), FORBIDDEN.len(), "{problems:#?}");
    assert_eq!(found("p/Case "), 1, "{problems:#?}");
    assert_eq!(found("p/Pass "), 1, "{problems:#?}");
    assert_eq!(found("p/Kms "), 1, "{problems:#?}");
    assert_eq!(found("p/Path "), 1, "{problems:#?}");
    assert_eq!(found("p/Not "), FORBIDDEN.len(), "{problems:#?}");
    assert_eq!(found("Deny"), 0, "{problems:#?}");
    assert_eq!(found("iam.role/mc-task (task role"), 1, "{problems:#?}");
    assert_eq!(
        found("mc-task-execution"),
        0,
        "not reachable: {problems:#?}"
    );
    assert_eq!(found("host networking"), 1, "{problems:#?}");

    let bridge = container_exposure(&graph(td("bridge", Value::Null)));
    assert!(
        !bridge
            .iter()
            .any(|p| p.contains("mc-task") || p.contains("host")),
        "{bridge:#?}"
    );
}

#[test]
fn action_patterns_overlap_as_iam_matches_them() {
    for (a, b, overlap) in [
        ("ssm:GetParameter*", "ssm:GetParameters", true),
        ("ssm:Get*", "ssm:GetParameter*", true),
        ("ssm:GetParameter*", "ssm:G?tParam*", true),
        ("*", "kms:Decrypt", true),
        ("KMS:decrypt", "kms:Decrypt", true),
        ("iam:*", "iam:PassRole", true),
        ("i*:*Role", "iam:*", true),
        ("ecs:Submit*", "ssm:GetParameter*", false),
        ("ssm:UpdateInstanceInformation", "ssm:GetParameter*", false),
        ("kms:DescribeKey", "kms:Decrypt", false),
        ("ssm:GetParameter?", "ssm:GetParameter", false),
        ("iam:*", "sts:AssumeRole", false),
    ] {
        assert_eq!(support::actions_overlap(a, b), overlap, "{a} vs {b}");
        assert_eq!(support::actions_overlap(b, a), overlap, "{b} vs {a}");
    }
}
