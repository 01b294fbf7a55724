//! Render of the example specs: snapshot of the whole graph, and the security properties that
//! must hold for every server.

use std::path::Path;

use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_render::{kinds, render, Context};
use reconciler_spec::{check, collect_inputs, InstanceCatalog, SpecSet};
use serde_json::Value;

fn examples() -> SpecSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let inputs = collect_inputs(&[root]).unwrap();
    let (set, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    set
}

fn graph() -> DesiredGraph {
    render(
        &Context::new("123456789012"),
        &examples(),
        &InstanceCatalog::offline(),
    )
    .unwrap()
}

fn of_kind<'a>(g: &'a DesiredGraph, kind: &str) -> Vec<&'a DesiredResource> {
    g.iter().filter(|r| r.kind.as_str() == kind).collect()
}

fn get<'a>(g: &'a DesiredGraph, id: &str) -> &'a DesiredResource {
    g.get(&id.into()).unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn examples_render_to_a_stable_graph() {
    let g = graph();
    let resources: Vec<&DesiredResource> = g.iter().collect();
    insta::assert_yaml_snapshot!("examples", resources);
}

#[test]
fn render_is_deterministic() {
    let a: Vec<DesiredResource> = graph().iter().cloned().collect();
    let b: Vec<DesiredResource> = graph().iter().cloned().collect();
    assert_eq!(a, b);
}

#[test]
fn every_resource_is_owned_and_named_deterministically() {
    let g = graph();
    // AWS objects that carry no tags: they are found by name or through their parent.
    let untagged = [
        kinds::BACKUP_SELECTION,
        kinds::MOUNT_TARGET,
        kinds::CLUSTER_CAPACITY_PROVIDERS,
        kinds::RECORD_SET,
        kinds::QUERY_LOGGING_CONFIG,
        kinds::LAMBDA_PERMISSION,
        kinds::SCALING_POLICY,
        kinds::SUBSCRIPTION_FILTER,
        kinds::LOG_RESOURCE_POLICY,
        kinds::DASHBOARD,
    ];
    // Route 53 objects are named by the server's DNS name, under the Base's domain.
    let dns_named = [
        kinds::HOSTED_ZONE,
        kinds::RECORD_SET,
        kinds::QUERY_LOGGING_CONFIG,
    ];
    for r in g.iter() {
        if !untagged.contains(&r.kind.as_str()) {
            assert_eq!(
                r.tags["reconciler.dev/managed-by"], "reconciler",
                "{}",
                r.id
            );
            assert!(r.tags.contains_key("reconciler.dev/base"), "{}", r.id);
        }
        if dns_named.contains(&r.kind.as_str()) {
            let dns = r.name.split(' ').next().unwrap();
            assert!(dns.ends_with(".games.example.com."), "{}", r.name);
        } else {
            assert!(
                ["rc-", "/reconciler/", "/aws/lambda/rc-", "/aws/route53/rc-"]
                    .iter()
                    .any(|p| r.name.starts_with(p)),
                "{}",
                r.name
            );
        }
    }
}

#[test]
fn security_groups_open_only_declared_ports() {
    let g = graph();
    let sg = get(&g, "ec2.security-group/valheim-instance");
    let ingress = sg.properties["ingress"].as_array().unwrap();
    let ports: Vec<(String, u64)> = ingress
        .iter()
        .map(|r| {
            (
                r["ipProtocol"].as_str().unwrap().to_string(),
                r["fromPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("udp".into(), 2456),
            ("udp".into(), 2457),
            ("udp".into(), 2458)
        ]
    );
    assert!(ingress.iter().all(|r| r["fromPort"] == r["toPort"]));
    let efs = get(&g, "ec2.security-group/valheim-efs");
    let rules = efs.properties["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["fromPort"], 2049);
    assert!(
        rules[0].get("cidrIpv4").is_none(),
        "EFS is reachable from the instance only"
    );
    assert_eq!(efs.properties["egress"], Value::Array(vec![]));
}

#[test]
fn instances_require_imdsv2_and_encrypt_disks() {
    let g = graph();
    for lt in of_kind(&g, kinds::LAUNCH_TEMPLATE) {
        assert_eq!(lt.properties["metadataOptions"]["httpTokens"], "required");
        assert_eq!(
            lt.properties["blockDeviceMappings"][0]["ebs"]["encrypted"],
            true
        );
        assert_eq!(lt.properties["monitoring"], true);
        assert!(
            lt.properties.get("keyName").is_none(),
            "no SSH key unless the Base opens SSH"
        );
    }
}

#[test]
fn containers_are_unprivileged_with_memory_below_the_instance() {
    let g = graph();
    let td = get(&g, "ecs.task-definition/palworld");
    let c = &td.properties["containerDefinitions"][0];
    assert_eq!(c["privileged"], false);
    assert_eq!(c["memoryReservation"], 32768 - 2048);
    assert_eq!(td.properties["networkMode"], "host");
    let secrets = c["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert!(c["environment"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["name"] != "SERVER_PASSWORD"));
}

#[test]
fn file_systems_are_encrypted_and_keep_data_by_maturity() {
    let g = graph();
    let mc = get(&g, "efs.file-system/minecraft-data");
    assert_eq!(mc.properties["encrypted"], true);
    assert!(mc.retain_on_delete, "prod volumes are kept");
    assert_eq!(mc.tags["reconciler.dev/backup"], "daily");
    let config = get(&g, "efs.file-system/valheim-config");
    assert!(config.retain_on_delete, "explicit keepOnDelete in devel");
    let download = get(&g, "efs.file-system/valheim-download");
    assert!(!download.retain_on_delete, "devel default");
    assert!(!download.tags.contains_key("reconciler.dev/backup"));
    let policy = &mc.properties["fileSystemPolicy"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"], "false");
}

#[test]
fn group_capacity_is_left_to_the_runtime() {
    let g = graph();
    let asg = get(&g, "autoscaling.group/minecraft");
    assert_eq!(asg.properties["minSize"], 0);
    assert_eq!(asg.properties["maxSize"], 1);
    assert!(asg.properties.get("desiredCapacity").is_none());
}

#[test]
fn user_data_mounts_volumes_with_tls_and_joins_the_cluster() {
    let g = graph();
    let lt = get(&g, "ec2.launch-template/valheim");
    let parts = lt.properties["userData"]["$join"].as_array().unwrap();
    let text: String = parts.iter().filter_map(Value::as_str).collect();
    assert!(text.starts_with("#!/bin/bash\nset -euo pipefail\n"));
    assert!(text.contains("efs _netdev,noresvport,tls,iam 0 0"));
    assert!(text.contains("mkdir -p -m 777 '/mnt/efs/Download/home/steam/.local/share/Steam'"));
    assert!(text.contains("ECS_CLUSTER=rc-valheim\n"));
    assert!(text.contains("ECS_DISABLE_PRIVILEGED=true"));
    let refs: Vec<&Value> = parts.iter().filter(|p| p.is_object()).collect();
    assert_eq!(refs.len(), 2, "one file-system id per volume");
}

#[test]
fn iam_policies_use_no_wildcard_action_and_scope_resources() {
    let g = graph();
    for role in of_kind(&g, kinds::ROLE) {
        for (name, doc) in role.properties["inlinePolicies"].as_object().unwrap() {
            for st in doc["Statement"].as_array().unwrap() {
                let actions: Vec<&str> = match &st["Action"] {
                    Value::String(a) => vec![a.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    other => panic!("{other}"),
                };
                assert!(
                    actions.iter().all(|a| *a != "*" && !a.ends_with(":*")),
                    "{} {name}",
                    role.id
                );
                if st["Resource"] == "*" {
                    // Where AWS has no resource-level permission for the action: ECS polling
                    // and endpoint discovery, Describe calls, and PutMetricData (scoped by a
                    // namespace condition instead).
                    let sid = st["Sid"].as_str().unwrap();
                    assert!(
                        [
                            "PollServerCluster",
                            "DiscoverEcsEndpoint",
                            "ReadInstances",
                            "PushActivityMetric"
                        ]
                        .contains(&sid),
                        "{} {name}: unexpected `*` resource in {sid}",
                        role.id
                    );
                    if sid == "PushActivityMetric" {
                        assert!(
                            st["Condition"]["StringEquals"]["cloudwatch:namespace"].is_string(),
                            "{} {name}: PutMetricData without a namespace condition",
                            role.id
                        );
                    }
                }
            }
        }
    }
    let exec = get(&g, "iam.role/minecraft-task-execution");
    let st = &exec.properties["inlinePolicies"]["task-execution"]["Statement"];
    assert_eq!(
        st[1]["Resource"],
        serde_json::json!([
            "arn:aws:ssm:us-west-2:123456789012:parameter/games/minecraft/rcon-password"
        ])
    );
}
