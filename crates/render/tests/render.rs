//! Render of the example specs: snapshot of the whole graph, and the security properties that
//! must hold for every server.

use std::path::Path;

use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_render::{kinds, render, Context};
use reconciler_spec::{check, collect_inputs, Input, InstanceCatalog, SpecSet};
use serde_json::Value;

/// The example specs as read from `specs/`.
fn example_inputs() -> Vec<Input> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    collect_inputs(&[root]).unwrap()
}

/// Rewrites the text of the examples' Base with `edit`.
fn edit_base(inputs: &mut [Input], edit: impl FnOnce(String) -> String) {
    let base = inputs
        .iter_mut()
        .find(|i| i.name.ends_with("base.yaml"))
        .unwrap();
    base.bytes = edit(String::from_utf8(base.bytes.clone()).unwrap()).into_bytes();
}

/// `inputs` checked, which must raise no error.
fn checked(inputs: &[Input]) -> SpecSet {
    let (set, diags) = check(inputs, &|_| None, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    set
}

fn rendered(set: &SpecSet) -> DesiredGraph {
    render(
        &Context::new("123456789012"),
        set,
        &InstanceCatalog::offline(),
    )
    .unwrap()
}

fn examples() -> SpecSet {
    checked(&example_inputs())
}

fn graph() -> DesiredGraph {
    rendered(&examples())
}

/// The examples with a Base that opens SSH to two blocks: the one setting that adds a port.
fn graph_with_ssh() -> DesiredGraph {
    let mut inputs = example_inputs();
    edit_base(&mut inputs, |text| {
        format!("{text}  ssh:\n    allowFrom: [203.0.113.7/32, 198.51.100.0/24]\n")
    });
    rendered(&checked(&inputs))
}

/// The examples with the Base in shared wake zone mode and `extra` more copies of the
/// minecraft server (`mc-0`, `mc-1`, ...).
fn graph_shared(extra: usize) -> DesiredGraph {
    let mut inputs = example_inputs();
    edit_base(&mut inputs, |text| {
        let zone = "    hostedZoneId: ${HOSTED_ZONE_ID:-Z0123456789EXAMPLE}\n";
        assert!(text.contains(zone));
        text.replace(zone, &format!("{zone}    wakeZone: shared\n"))
    });
    let minecraft = inputs
        .iter()
        .find(|i| i.name.ends_with("minecraft.yaml"))
        .unwrap()
        .clone();
    for i in 0..extra {
        let mut copy = minecraft.clone();
        copy.name = format!("mc-{i}.yaml");
        copy.bytes = String::from_utf8(copy.bytes)
            .unwrap()
            .replace("name: minecraft\n", &format!("name: mc-{i}\n"))
            .into_bytes();
        inputs.push(copy);
    }
    let set = checked(&inputs);
    assert_eq!(set.servers.len(), 3 + extra);
    rendered(&set)
}

/// Every IAM-style policy document in the graph (inline policies, trust policies, topic, file
/// system and log resource policies), found by shape: an object with a `Statement` list.
fn policy_statements(g: &DesiredGraph) -> Vec<(String, Value)> {
    fn walk(at: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(statements)) = m.get("Statement") {
                    out.extend(statements.iter().map(|s| (at.to_string(), s.clone())));
                }
                for (k, child) in m {
                    walk(&format!("{at}/{k}"), child, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(&format!("{at}/{i}"), child, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in g.iter() {
        walk(r.id.as_str(), &r.properties, &mut out);
    }
    out
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
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
fn every_policy_grants_no_wildcard_action_and_trusts_one_service() {
    for g in [graph(), graph_with_ssh(), graph_shared(0)] {
        let statements = policy_statements(&g);
        assert!(statements.len() > 40, "{}", statements.len());
        for (at, st) in &statements {
            let actions = strings(&st["Action"]);
            assert!(!actions.is_empty(), "{at}: {st}");
            match st["Effect"].as_str() {
                Some("Allow") => {
                    assert!(
                        actions.iter().all(|a| *a != "*" && !a.ends_with(":*")),
                        "{at}: wildcard action in {st}"
                    );
                    for principal in [&st["Principal"], &st["Principal"]["AWS"]] {
                        assert_ne!(principal, "*", "{at}: anyone is allowed in {st}");
                    }
                    if actions == ["sts:AssumeRole"] {
                        let service = strings(&st["Principal"]["Service"]);
                        assert_eq!(service.len(), 1, "{at}: {st}");
                        assert!(service[0].ends_with(".amazonaws.com"), "{at}: {st}");
                    }
                }
                Some("Deny") => {
                    // Denials only refuse requests without TLS.
                    assert_eq!(st["Sid"], "DenyInsecureTransport", "{at}: {st}");
                    assert_eq!(
                        st["Condition"]["Bool"]["aws:SecureTransport"], "false",
                        "{at}: {st}"
                    );
                }
                other => panic!("{at}: effect {other:?} in {st}"),
            }
        }
    }
}

#[test]
fn no_role_holds_an_aws_managed_policy() {
    // A managed policy's grants are AWS's to change and cover every use of a service; each
    // role states its own (docs/reliability.md, "Roles").
    for g in [graph(), graph_with_ssh(), graph_shared(0)] {
        for role in of_kind(&g, kinds::ROLE) {
            assert_eq!(
                role.properties["managedPolicyArns"],
                serde_json::json!([]),
                "{}",
                role.id
            );
        }
    }
}

#[test]
fn the_backup_role_holds_only_efs_backup_and_restore_on_its_base() {
    let g = graph();
    let role = get(&g, "iam.role/main-backup");
    assert_eq!(role.properties["managedPolicyArns"], serde_json::json!([]));
    let policy = &role.properties["inlinePolicies"]["efs-backup"];
    let statements = policy["Statement"].as_array().unwrap();
    let mut actions = Vec::new();
    for st in statements {
        assert_eq!(st["Effect"], "Allow", "{st}");
        for action in strings(&st["Action"]) {
            let service = action.split(':').next().unwrap();
            assert!(
                ["elasticfilesystem", "backup", "tag", "kms"].contains(&service),
                "{action}: the role backs up and restores EFS only"
            );
            // Keys are used through AWS services only: the role never decrypts.
            assert!(!action.starts_with("kms:Decrypt"), "{st}");
            actions.push(action);
        }
        for resource in strings(&st["Resource"]) {
            if resource == "*" {
                // Only for actions without a resource type (the wildcard table).
                assert!(
                    matches!(
                        strings(&st["Action"])[..],
                        ["tag:GetResources"] | ["elasticfilesystem:CreateFileSystem"]
                    ),
                    "{st}"
                );
            } else {
                assert!(resource.contains(":us-west-2:123456789012:"), "{resource}");
            }
        }
    }
    for needed in [
        "elasticfilesystem:Backup",
        "tag:GetResources",
        "backup:CopyIntoBackupVault",
        "elasticfilesystem:Restore",
        "elasticfilesystem:CreateFileSystem",
    ] {
        assert!(actions.contains(&needed), "{needed}: {actions:?}");
    }
    let vault = statements
        .iter()
        .find(|st| strings(&st["Action"]).contains(&"backup:CopyIntoBackupVault"))
        .unwrap();
    assert_eq!(
        vault["Resource"],
        format!(
            "arn:aws:backup:us-west-2:123456789012:backup-vault:{}",
            get(&g, "backup.vault/main").name
        )
    );
}

#[test]
fn every_server_opens_only_its_declared_ports() {
    for (g, ssh) in [(graph(), false), (graph_with_ssh(), true)] {
        for server in &examples().servers {
            let name = &server.doc.metadata.name;
            let sg = get(&g, &format!("ec2.security-group/{name}-instance"));
            let mut open: Vec<(String, u64, u64, String)> = sg.properties["ingress"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["ipProtocol"].as_str().unwrap().to_string(),
                        r["fromPort"].as_u64().unwrap(),
                        r["toPort"].as_u64().unwrap(),
                        r["cidrIpv4"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let mut declared: Vec<(String, u64, u64, String)> = server
                .doc
                .spec
                .container
                .ports
                .iter()
                .map(|p| {
                    let port = u64::from(p.port);
                    (p.protocol.as_str().into(), port, port, "0.0.0.0/0".into())
                })
                .collect();
            if ssh {
                for cidr in ["203.0.113.7/32", "198.51.100.0/24"] {
                    declared.push(("tcp".into(), 22, 22, cidr.into()));
                }
            }
            open.sort();
            declared.sort();
            assert_eq!(open, declared, "{name}");
            let efs = get(&g, &format!("ec2.security-group/{name}-efs"));
            let rules = efs.properties["ingress"].as_array().unwrap();
            assert_eq!(rules.len(), 1, "{name}");
            assert_eq!(
                (&rules[0]["fromPort"], &rules[0]["toPort"]),
                (&2049.into(), &2049.into())
            );
            assert_eq!(
                rules[0]["sourceSecurityGroupId"]["$ref"],
                format!("ec2.security-group/{name}-instance"),
                "{name}: NFS from the server's instance only"
            );
            assert!(rules[0].get("cidrIpv4").is_none(), "{name}");
            assert_eq!(efs.properties["egress"], Value::Array(vec![]), "{name}");
        }
    }
}

#[test]
fn every_container_is_unprivileged() {
    let g = graph();
    let tds = of_kind(&g, kinds::TASK_DEFINITION);
    assert_eq!(tds.len(), 3);
    for td in tds {
        for c in td.properties["containerDefinitions"].as_array().unwrap() {
            assert_eq!(c["privileged"], false, "{}", td.id);
            assert!(
                c.get("user").is_none_or(|u| u != "root" && u != "0"),
                "{}",
                td.id
            );
            assert!(
                c.get("linuxParameters").is_none(),
                "{}: no added capabilities",
                td.id
            );
        }
    }
    for lt in of_kind(&g, kinds::LAUNCH_TEMPLATE) {
        let text: String = lt.properties["userData"]["$join"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(text.contains("ECS_DISABLE_PRIVILEGED=true"), "{}", lt.id);
    }
}

#[test]
fn every_file_system_is_encrypted_and_reached_over_tls_only() {
    let g = graph();
    for server in &examples().servers {
        let name = &server.doc.metadata.name;
        let lt = get(&g, &format!("ec2.launch-template/{name}"));
        let text: String = lt.properties["userData"]["$join"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let volumes = server.doc.spec.volumes.len();
        assert!(volumes > 0, "{name}");
        assert_eq!(
            text.matches(" efs _netdev,noresvport,tls,iam ").count(),
            volumes,
            "{name}: every volume is mounted with TLS"
        );
        assert!(!text.contains(" nfs"), "{name}: no plain NFS mount");
    }
    let fss = of_kind(&g, kinds::FILE_SYSTEM);
    assert_eq!(fss.len(), 4);
    for fs in fss {
        assert_eq!(fs.properties["encrypted"], true, "{}", fs.id);
        let statements = fs.properties["fileSystemPolicy"]["Statement"]
            .as_array()
            .unwrap();
        assert!(
            statements.iter().any(|st| st["Effect"] == "Deny"
                && st["Principal"]["AWS"] == "*"
                && st["Action"] == "*"
                && st["Condition"]["Bool"]["aws:SecureTransport"] == "false"),
            "{}",
            fs.id
        );
        for st in statements.iter().filter(|st| st["Effect"] == "Allow") {
            assert_eq!(
                st["Condition"]["Bool"]["elasticfilesystem:AccessedViaMountTarget"], "true",
                "{}",
                fs.id
            );
            assert!(st["Principal"]["AWS"]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("-instance"));
        }
    }
}

#[test]
fn every_topic_refuses_publishing_without_tls() {
    let g = graph();
    let topics = of_kind(&g, kinds::TOPIC);
    assert_eq!(topics.len(), 4, "the Base's and one per server");
    for topic in topics {
        let arn = format!("arn:aws:sns:us-west-2:123456789012:{}", topic.name);
        let statements = topic.properties["policy"]["Statement"].as_array().unwrap();
        let deny = statements
            .iter()
            .find(|st| st["Effect"] == "Deny")
            .unwrap_or_else(|| panic!("{}: no Deny statement", topic.id));
        assert_eq!(deny["Principal"], "*", "{}", topic.id);
        assert_eq!(deny["Action"], "sns:Publish", "{}", topic.id);
        assert_eq!(deny["Resource"], arn.as_str(), "{}", topic.id);
        assert_eq!(
            deny["Condition"]["Bool"]["aws:SecureTransport"], "false",
            "{}",
            topic.id
        );
        for st in statements.iter().filter(|st| st["Effect"] == "Allow") {
            assert_eq!(st["Resource"], arn.as_str(), "{}", topic.id);
            assert_eq!(
                st["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012",
                "{}: only for this account",
                topic.id
            );
            assert!(
                ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
                    .contains(&st["Principal"]["Service"].as_str().unwrap()),
                "{}",
                topic.id
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
fn the_vpc_default_security_group_allows_nothing() {
    for g in [graph(), graph_with_ssh()] {
        let vpcs = of_kind(&g, kinds::VPC);
        let defaults = of_kind(&g, kinds::DEFAULT_SECURITY_GROUP);
        assert_eq!(vpcs.len(), 1);
        assert_eq!(defaults.len(), 1, "one default group per VPC");
        let group = defaults[0];
        assert_eq!(group.properties["vpcId"]["$ref"], vpcs[0].id.as_str());
        assert_eq!(group.properties["ingress"], Value::Array(vec![]));
        assert_eq!(group.properties["egress"], Value::Array(vec![]));
    }
}

#[test]
fn instances_require_imdsv2_and_encrypt_disks() {
    let g = graph();
    let lts = of_kind(&g, kinds::LAUNCH_TEMPLATE);
    assert_eq!(lts.len(), 3);
    for lt in lts {
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
    assert_eq!(td.properties["networkMode"], "bridge");
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
fn task_execution_reads_only_the_named_secrets() {
    let g = graph();
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
fn one_base_dashboard_with_a_section_per_server_that_enables_it() {
    let g = graph();
    let names: Vec<&str> = of_kind(&g, kinds::DASHBOARD)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["rc-main-dashboard"]);
    let dashboard = get(&g, "cloudwatch.dashboard/main");
    assert_eq!(dashboard.region, "us-west-2");
    let body = &dashboard.properties["body"];
    assert_eq!(body["start"], "-PT30M");
    let widgets = body["widgets"].as_array().unwrap();
    // Each section opens with its heading; valheim turned its dashboard off.
    let headings: Vec<&str> = widgets
        .iter()
        .filter(|w| w["type"] == "text")
        .filter_map(|w| w["properties"]["markdown"].as_str())
        .collect();
    assert_eq!(
        headings,
        [
            "## Server minecraft · minecraft.games.example.com",
            "## Server palworld · pals.games.example.com"
        ]
    );
    let text = body.to_string();
    assert!(text.contains("SOURCE '/aws/route53/rc-minecraft'"));
    assert!(text.contains("arn:aws:cloudwatch:us-west-2:123456789012:alarm:rc-minecraft-idle"));
    assert!(text.contains("/reconciler/minecraft/container"));
    assert!(text.contains("/reconciler/palworld/container"));
    assert!(!text.contains("valheim"));
    // Sections stack: palworld's widgets all sit below minecraft's.
    let rows = |server: &str| -> Vec<i64> {
        widgets
            .iter()
            .filter(|w| w.to_string().contains(&format!("rc-{server}")))
            .map(|w| w["y"].as_i64().unwrap())
            .collect()
    };
    let minecraft_bottom = widgets
        .iter()
        .filter(|w| w.to_string().contains("rc-minecraft"))
        .map(|w| w["y"].as_i64().unwrap() + w["height"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(rows("palworld").iter().all(|y| *y >= minecraft_bottom));
    assert!(!rows("minecraft").is_empty());
    // The Base's record covers it; no server record does.
    let base_record = get(&g, "ssm.parameter/main.base-record");
    assert!(base_record
        .depends_on
        .iter()
        .any(|d| d.as_str() == "cloudwatch.dashboard/main"));
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
    // The filter takes the zone's answered A queries, whatever the case of the name.
    let filter = get(&g, "logs.subscription-filter/minecraft-queries");
    assert_eq!(filter.properties["filterPattern"], "\" A NOERROR \"");
    let invoke = get(&g, "lambda.permission/minecraft-query-log-invoke");
    let source = invoke.properties["sourceArn"].as_str().unwrap();
    assert!(
        source.ends_with(&format!(
            ":log-group:{}:*",
            filter.properties["logGroupName"].as_str().unwrap()
        )),
        "{source}"
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
        let g2 = rendered(&again);
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

/// `calibrate` reads a server's traffic through `IdleActivity::for_server`; it must describe
/// exactly the metrics the rendered idle alarm reads, file systems included.
#[test]
fn the_idle_activity_of_a_server_is_its_alarms_metrics() {
    let set = examples();
    let g = graph();
    for server in &set.servers {
        let base = set
            .bases
            .iter()
            .find(|b| Some(&b.doc.metadata.name) == server.doc.spec.base_ref.as_ref())
            .or(set.bases.first())
            .unwrap();
        let local = &server.doc.metadata.name;
        let alarm = get(&g, &format!("{}/{local}-idle", kinds::ALARM));
        let activity = reconciler_render::wake::IdleActivity::for_server(&base.doc, &server.doc);
        assert_eq!(
            alarm.properties["metrics"],
            Value::Array(activity.alarm_queries()),
            "{local}"
        );
        assert_eq!(activity.volume_reads.len(), server.doc.spec.volumes.len());
    }
}

/// `adopt` and `restoreFrom` reach the file system as properties; a restore names the Base's
/// vault and backup role, which it then depends on.
#[test]
fn adopted_and_restored_volumes_are_carried_to_the_file_system() {
    let mut inputs = example_inputs();
    for input in inputs.iter_mut() {
        let text = String::from_utf8(input.bytes.clone()).unwrap();
        let text = if input.name.ends_with("minecraft.yaml") {
            text.replace(
                "        - path: /data\n",
                "        - path: /data\n      adopt: fs-0123456789abcdef0\n",
            )
        } else if input.name.ends_with("palworld.yaml") {
            text.replace(
                "        - path: /palworld\n",
                "        - path: /palworld\n      restoreFrom: arn:aws:backup:us-west-2:123456789012:recovery-point:abc\n",
            )
        } else {
            text
        };
        input.bytes = text.into_bytes();
    }
    let g = rendered(&checked(&inputs));
    let mc = get(&g, &format!("{}/minecraft-data", kinds::FILE_SYSTEM));
    assert_eq!(mc.properties["adopt"], "fs-0123456789abcdef0");
    assert!(mc.properties.get("restoreFrom").is_none());
    let pw = get(&g, &format!("{}/palworld-palworld", kinds::FILE_SYSTEM));
    let restore = &pw.properties["restoreFrom"];
    assert_eq!(
        restore["recoveryPointArn"],
        "arn:aws:backup:us-west-2:123456789012:recovery-point:abc"
    );
    assert_eq!(restore["backupVaultName"]["$ref"], "backup.vault/main");
    assert_eq!(restore["iamRoleArn"]["$ref"], "iam.role/main-backup");
    assert!(g
        .dependencies(&pw.id)
        .contains(&"iam.role/main-backup".into()));
    // Without either, nothing changes: the examples' snapshot covers that.
    let vh = get(&g, &format!("{}/valheim-config", kinds::FILE_SYSTEM));
    assert!(vh.properties.get("adopt").is_none() && vh.properties.get("restoreFrom").is_none());
}

#[test]
fn a_shared_wake_zone_has_one_query_log_filter_and_dispatcher_per_base_whatever_the_servers() {
    for extra in [0, 5] {
        let g = graph_shared(extra);
        let servers = 3 + extra;
        let route53_groups: Vec<&DesiredResource> = of_kind(&g, kinds::LOG_GROUP)
            .into_iter()
            .filter(|l| l.name.starts_with("/aws/route53/"))
            .collect();
        for (what, n) in [
            (
                "query logging configs",
                of_kind(&g, kinds::QUERY_LOGGING_CONFIG).len(),
            ),
            (
                "subscription filters",
                of_kind(&g, kinds::SUBSCRIPTION_FILTER).len(),
            ),
            ("query log groups", route53_groups.len()),
            (
                "log resource policies",
                of_kind(&g, kinds::LOG_RESOURCE_POLICY).len(),
            ),
        ] {
            assert_eq!(n, 1, "{what} with {servers} servers");
        }
        assert!(
            of_kind(&g, kinds::HOSTED_ZONE).is_empty(),
            "no zone per server"
        );
        // The root zone logs to the Base's group, under the prefix the one policy covers.
        let config = get(&g, "route53.query-logging-config/main.wake");
        assert_eq!(config.name, "games.example.com.");
        assert_eq!(config.properties["hostedZoneId"], "Z0123456789EXAMPLE");
        assert_eq!(route53_groups[0].name, "/aws/route53/rc-main/queries");
        let policy = &of_kind(&g, kinds::LOG_RESOURCE_POLICY)[0];
        let covered = policy.properties["policyDocument"]["Statement"][0]["Resource"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('*');
        assert!(route53_groups[0].name.starts_with(covered), "{covered}");
        // The filter feeds the dispatcher, which logs may invoke from that group only.
        let filter = get(&g, "logs.subscription-filter/main.wake-queries");
        assert_eq!(
            filter.properties["logGroupName"],
            "/aws/route53/rc-main/queries"
        );
        assert_eq!(filter.properties["filterPattern"], "\" A \"");
        assert_eq!(
            filter.properties["destinationArn"]["$ref"],
            "lambda.function/main-wake-dispatcher"
        );
        let permissions: Vec<&DesiredResource> = of_kind(&g, kinds::LAMBDA_PERMISSION)
            .into_iter()
            .filter(|p| p.properties["principal"] == "logs.amazonaws.com")
            .collect();
        assert_eq!(permissions.len(), 1);
        assert_eq!(
            permissions[0].properties["functionName"],
            "rc-main-wake-dispatcher"
        );
        // CloudWatch Logs presents the group's ARN with `:*`; the bare ARN would never match.
        let source = permissions[0].properties["sourceArn"].as_str().unwrap();
        assert!(
            source.starts_with("arn:aws:logs:us-east-1:")
                && source.ends_with(":log-group:/aws/route53/rc-main/queries:*"),
            "{source}"
        );
        // The dispatcher routes every server's name to its start function, and may invoke
        // exactly those functions.
        let dispatcher = get(&g, "lambda.function/main-wake-dispatcher");
        let env = &dispatcher.properties["environment"];
        assert_eq!(env["RECONCILER_HANDLER"], "wake-dispatcher");
        let routes: serde_json::Map<String, Value> =
            serde_json::from_str(env["ROUTES"].as_str().unwrap()).unwrap();
        assert_eq!(routes.len(), servers);
        assert_eq!(
            routes["minecraft.games.example.com"],
            "rc-minecraft-start-system"
        );
        let role = get(&g, "iam.role/main-wake-dispatcher");
        let statements = role.properties["inlinePolicies"]["wake-dispatcher"]["Statement"]
            .as_array()
            .unwrap();
        let invoke = statements
            .iter()
            .find(|s| s["Sid"] == "WakeBaseServers")
            .unwrap();
        assert_eq!(invoke["Action"], "lambda:InvokeFunction");
        let mut allowed: Vec<&str> = strings(&invoke["Resource"]);
        allowed.sort();
        let mut expected: Vec<String> = routes
            .values()
            .map(|f| {
                format!(
                    "arn:aws:lambda:us-east-1:123456789012:function:{}",
                    f.as_str().unwrap()
                )
            })
            .collect();
        expected.sort();
        assert_eq!(allowed, expected);
        for f in routes.values() {
            assert!(g
                .iter()
                .any(|r| r.kind.as_str() == kinds::FUNCTION && r.name == f.as_str().unwrap()));
        }
        assert_eq!(
            statements.len(),
            2,
            "its own logs and the invokes: {statements:?}"
        );
        // The Base's record covers the shared resources.
        let record = get(&g, "ssm.parameter/main.base-record");
        for id in [
            "lambda.function/main-wake-dispatcher",
            "logs.subscription-filter/main.wake-queries",
            "route53.query-logging-config/main.wake",
        ] {
            assert!(record.depends_on.iter().any(|d| d.as_str() == id), "{id}");
        }
    }
}

#[test]
fn in_a_shared_wake_zone_each_server_writes_only_its_own_record_in_the_root_zone() {
    let g = graph_shared(0);
    let a = get(&g, "route53.record-set/minecraft.address");
    assert_eq!(a.properties["hostedZoneId"], "Z0123456789EXAMPLE");
    assert_eq!(a.properties["name"], "minecraft.games.example.com.");
    assert_eq!(
        a.properties["initialValues"],
        serde_json::json!(["0.0.0.0"])
    );
    assert!(g
        .get(&"route53.record-set/minecraft-delegation".into())
        .is_none());
    assert!(g
        .get(&"route53.record-set/minecraft-address".into())
        .is_none());
    assert!(g
        .get(&"lambda.permission/minecraft-query-log-invoke".into())
        .is_none());
    let state = get(&g, "lambda.function/minecraft-instance-state-change");
    assert_eq!(
        state.properties["environment"]["HOSTED_ZONE_ID"],
        "Z0123456789EXAMPLE"
    );
    let role = get(&g, "iam.role/minecraft-instance-state-change");
    let record = role.properties["inlinePolicies"]["instance-state-change"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "UpdateServerRecord")
        .unwrap()
        .clone();
    assert_eq!(
        record["Resource"],
        "arn:aws:route53:::hostedzone/Z0123456789EXAMPLE"
    );
    let only = &record["Condition"]["ForAllValues:StringEquals"];
    assert_eq!(
        only["route53:ChangeResourceRecordSetsNormalizedRecordNames"],
        serde_json::json!(["minecraft.games.example.com"])
    );
    assert_eq!(
        only["route53:ChangeResourceRecordSetsRecordTypes"],
        serde_json::json!(["A"])
    );
    assert_eq!(
        only["route53:ChangeResourceRecordSetsActions"],
        serde_json::json!(["UPSERT"])
    );
    // The dashboard reads the Base's query log.
    let dashboard = get(&g, "cloudwatch.dashboard/main");
    assert!(dashboard.properties["body"]
        .to_string()
        .contains("/aws/route53/rc-main/queries"));
}

/// The contract with the provider: every rendered resource has exactly its kind's typed shape
/// (`reconciler-kinds`), so what render writes is what the provider reads.
#[test]
fn every_resource_has_its_kinds_shape() {
    let kinds: std::collections::HashMap<&str, reconciler_kinds::KindInfo> =
        reconciler_kinds::all()
            .into_iter()
            .map(|k| (k.kind, k))
            .collect();
    let g = graph();
    for r in g.iter() {
        let info = kinds
            .get(r.kind.as_str())
            .unwrap_or_else(|| panic!("{}: no kind module for {}", r.id, r.kind));
        if let Err(e) = (info.conforms)(&r.properties) {
            panic!("{}: {e}", r.id);
        }
    }
}

/// A Base's permissions boundary caps every role it and its servers make (shared wake zone
/// included), and a Base without one leaves roles without the property, as before it existed.
#[test]
fn every_role_carries_the_bases_boundary_and_none_without_one() {
    let bounded = |shared: bool| {
        let mut inputs = example_inputs();
        edit_base(&mut inputs, |text| {
            let text = format!("{text}  permissionsBoundary: reconciler-boundary\n");
            if shared {
                text.replace(
                    "    hostedZoneId:",
                    "    wakeZone: shared\n    hostedZoneId:",
                )
            } else {
                text
            }
        });
        rendered(&checked(&inputs))
    };
    let arn = "arn:aws:iam::123456789012:policy/reconciler-boundary";
    for g in [bounded(false), bounded(true)] {
        let roles = of_kind(&g, kinds::ROLE);
        assert!(roles.len() > 5, "{}", roles.len());
        for role in roles {
            assert_eq!(role.properties["permissionsBoundary"], arn, "{}", role.id);
        }
    }
    for role in of_kind(&graph(), kinds::ROLE) {
        assert!(
            role.properties.get("permissionsBoundary").is_none(),
            "{}",
            role.id
        );
    }
}
