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
        assert_eq!(
            lt.properties["keyName"],
            Value::Null,
            "no SSH key unless the Base opens SSH (an explicit null removes an old one)"
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

#[test]
fn dashboards_only_where_enabled_and_pointing_at_the_servers_own_objects() {
    let g = graph();
    let names: Vec<&str> = of_kind(&g, kinds::DASHBOARD)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["rc-minecraft-dashboard", "rc-palworld-dashboard"]);
    let body = &get(&g, "cloudwatch.dashboard/minecraft").properties["body"];
    assert_eq!(body["start"], "-PT30M");
    let text = body.to_string();
    assert!(text.contains("SOURCE '/aws/route53/rc-minecraft'"));
    assert!(text.contains("arn:aws:cloudwatch:us-west-2:123456789012:alarm:rc-minecraft-idle"));
    assert!(text.contains("/reconciler/minecraft/container"));
    assert!(!text.contains("valheim") && !text.contains("palworld"));
}

#[test]
fn wake_path_is_complete_and_in_the_right_regions() {
    let g = graph();
    let server: Vec<&DesiredResource> = g
        .iter()
        .filter(|r| r.id.as_str().ends_with("/minecraft") || r.id.as_str().contains("/minecraft-"))
        .collect();
    let count = |kind: &str, region: &str| {
        server
            .iter()
            .filter(|r| r.kind.as_str() == kind && r.region == region)
            .count()
    };
    let home = "us-west-2";
    for (kind, region, n) in [
        (kinds::HOSTED_ZONE, "us-east-1", 1),
        (kinds::RECORD_SET, "us-east-1", 2),
        (kinds::QUERY_LOGGING_CONFIG, "us-east-1", 1),
        (kinds::SUBSCRIPTION_FILTER, "us-east-1", 1),
        (kinds::FUNCTION, "us-east-1", 1),
        (kinds::FUNCTION, home, 2),
        (kinds::LAMBDA_PERMISSION, "us-east-1", 1),
        (kinds::LAMBDA_PERMISSION, home, 3),
        (kinds::SCALING_POLICY, home, 1),
        (kinds::ALARM, home, 3),
        (kinds::EVENT_RULE, home, 3),
        (kinds::DASHBOARD, home, 1),
    ] {
        assert_eq!(count(kind, region), n, "{kind} in {region}");
    }
    // One account-wide Route 53 log policy for all servers, covering every query log group.
    let policies = of_kind(&g, kinds::LOG_RESOURCE_POLICY);
    assert_eq!(policies.len(), 1);
    let resource = policies[0].properties["policyDocument"]["Statement"][0]["Resource"]
        .as_str()
        .unwrap();
    for group in of_kind(&g, kinds::LOG_GROUP)
        .iter()
        .filter(|l| l.name.starts_with("/aws/route53/"))
    {
        assert!(group
            .name
            .starts_with(resource.trim_end_matches('*').rsplit(':').next().unwrap()));
    }
    // The A record starts unavailable, with TTL 1, and is left to the running system.
    let a = get(&g, "route53.record-set/minecraft-address");
    assert_eq!(
        a.properties["initialValues"],
        serde_json::json!(["0.0.0.0"])
    );
    assert!(a.properties.get("values").is_none());
    assert_eq!(a.properties["ttl"], 1);
    // The filter takes only this server's A queries.
    let filter = get(&g, "logs.subscription-filter/minecraft-queries");
    assert_eq!(
        filter.properties["filterPattern"],
        "\" minecraft.games.example.com A \""
    );
    // The idle alarm uses the spec's threshold and minutes and acts through the zero policy.
    let idle = get(&g, "cloudwatch.alarm/minecraft-idle");
    assert_eq!(
        idle.properties["evaluationPeriods"],
        idle.properties["datapointsToAlarm"]
    );
    assert_eq!(
        idle.properties["alarmActions"][0]["$ref"],
        "autoscaling.scaling-policy/minecraft"
    );
}

#[test]
fn lambdas_are_scoped_to_their_own_group_zone_and_metric() {
    let g = graph();
    let start = get(&g, "iam.role/minecraft-start-system");
    let text = start.properties["inlinePolicies"].to_string();
    assert!(text.contains("autoScalingGroupName/rc-minecraft\""));
    assert!(text.contains("\"cloudwatch:namespace\":\"Reconciler/minecraft\""));
    let state = get(&g, "iam.role/minecraft-instance-state-change");
    let statements = &state.properties["inlinePolicies"]["instance-state-change"]["Statement"];
    let record = statements
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "UpdateServerRecord")
        .unwrap();
    assert_eq!(record["Action"], "route53:ChangeResourceRecordSets");
    assert_eq!(
        record["Resource"]["$join"][1]["$ref"],
        "route53.hosted-zone/minecraft"
    );
    for f in of_kind(&g, kinds::FUNCTION) {
        assert!(
            f.properties.get("vpcConfig").is_none(),
            "{} stays out of the VPC",
            f.id
        );
        assert_eq!(f.properties["runtime"], "provided.al2023");
    }
}

#[test]
fn apply_records_cover_exactly_their_servers_resources_and_hold_no_environment_values() {
    use reconciler_render::record::ApplyRecord;
    let g = graph();
    let records = of_kind(&g, kinds::PARAMETER);
    // One per server and one for the Base.
    assert_eq!(records.len(), 4, "{records:#?}");
    for record in records {
        let value = ApplyRecord::from_value(&record.properties["value"]).expect("a record");
        let covered: Vec<String> = record.depends_on.iter().map(|d| d.to_string()).collect();
        let listed: Vec<String> = value.resources.keys().cloned().collect();
        let mut sorted = covered.clone();
        sorted.sort();
        assert_eq!(sorted, listed, "{}: lists what it depends on", record.id);
        for id in &record.depends_on {
            let r = get(&g, id.as_str());
            assert_eq!(value.resources[id.as_str()], r.fingerprint(), "{id}");
            if let Some(owner) = r.tags.get("reconciler.dev/server") {
                assert_eq!(
                    Some(owner),
                    record.tags.get("reconciler.dev/server"),
                    "{id}"
                );
            }
        }
        match record.tags.get("reconciler.dev/server") {
            Some(server) => {
                let spec = value.spec.expect("a server record holds its spec");
                assert_eq!(&spec.metadata.name, server);
                assert!(spec
                    .spec
                    .container
                    .environment
                    .values()
                    .all(|v| v.as_env_string().is_empty()));
                assert!(record.name.ends_with(&format!("/servers/{server}")));
            }
            None => assert!(value.spec.is_none()),
        }
    }
    // Every resource but the account-wide log policy belongs to a record.
    let covered: std::collections::BTreeSet<_> = of_kind(&g, kinds::PARAMETER)
        .iter()
        .flat_map(|r| r.depends_on.iter().cloned().chain([r.id.clone()]))
        .collect();
    let uncovered: Vec<_> = g.ids().filter(|id| !covered.contains(*id)).collect();
    assert_eq!(uncovered.len(), 1, "{uncovered:?}");
}

#[test]
fn a_recorded_spec_renders_the_same_resources_again() {
    use reconciler_render::record::ApplyRecord;
    let set = examples();
    let g = graph();
    for server in &set.servers {
        let name = &server.doc.metadata.name;
        let record = get(&g, &format!("ssm.parameter/{name}.record"));
        let spec = ApplyRecord::from_value(&record.properties["value"])
            .unwrap()
            .spec
            .unwrap();
        // What a prune renders: the Base and the recorded spec only.
        let mut again = set.clone();
        again.servers.retain(|s| &s.doc.metadata.name == name);
        again.servers[0].doc = spec;
        let g2 = render(
            &Context::new("123456789012"),
            &again,
            &InstanceCatalog::offline(),
        )
        .unwrap();
        let record2 = get(&g2, &format!("ssm.parameter/{name}.record"));
        assert_eq!(
            record.depends_on, record2.depends_on,
            "{name}: same resources"
        );
        for id in &record.depends_on {
            let (a, b) = (get(&g, id.as_str()), get(&g2, id.as_str()));
            assert_eq!(
                (&a.name, &a.region, a.retain_on_delete),
                (&b.name, &b.region, b.retain_on_delete),
                "{id}"
            );
        }
    }
}
