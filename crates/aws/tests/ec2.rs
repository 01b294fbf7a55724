//! The EC2 clients against the local emulator: the Base network and the servers' security
//! groups rendered from the example specs, key pairs and launch templates built by hand, each
//! test in its own emulator account.
//!
//! Emulator gaps these tests live with (the clients keep AWS's behaviour):
//! * Every VPC and subnet is `available` at once, so the wait for `pending` objects is only
//!   unit-tested (`ec2::tests`).
//! * No dependency checks: deleting a security group that another group's rule references,
//!   or a VPC out of order, succeeds. On AWS those answer `DependencyViolation`, which the
//!   engine retries; the delete order here comes from the engine, not from the emulator.
//! * Availability zones carry no opt-in status (read as "not required").
//! * `DescribeSecurityGroupRules` has no description for rules whose peer is a security group;
//!   the client takes it from the group's permissions, as AWS would also answer.
//! * `DeleteKeyPair` honours only the key name (the client deletes by name).

mod common;

use std::path::Path;
use std::sync::Arc;

use aws_sdk_ec2::types::{
    Filter, InstanceType, IpPermission, IpRange, LaunchTemplateBlockDeviceMappingRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateHttpTokensState,
    LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplatesMonitoringRequest,
    RequestLaunchTemplateData, ResourceType, Tag, UserIdGroupPair, VolumeType,
};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use base64::Engine as _;
use reconciler_aws::{CallCounter, ClientPool};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::provider::{ErrorClass, Provider};
use reconciler_engine::{Action, ApplyEvent, EventKind, Options, Plan, Reconciler};
use reconciler_render::naming::{BaseNames, ServerNames, TAG_MANAGED_BY};
use reconciler_render::{kinds, render_resources, Context};
use reconciler_spec::{check, collect_inputs, InstanceCatalog};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

/// A test's account: a call counter on the clients' pool, plain EC2 and SSM clients for out-of-band
/// changes, and the engine over the EC2 clients.
struct Harness {
    account: String,
    counter: CallCounter,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    engine: Reconciler,
}

fn harness(region: &str) -> Harness {
    let account = fresh_account_id();
    let config = Emulator::shared().sdk_config(region, &account);
    let counter = CallCounter::new();
    let pool = Arc::new(
        ClientPool::new(config.clone()).with_interceptor(SharedInterceptor::new(counter.clone())),
    );
    let mut provider = Provider::new();
    provider.on_observation(reconciler_aws::observation_hook(&pool));
    for client in reconciler_aws::ec2::clients(&pool) {
        provider.register(client);
    }
    Harness {
        account,
        ec2: aws_sdk_ec2::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        engine: Reconciler::new(provider, Options::default()),
        counter,
    }
}

impl Harness {
    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.engine, graph).await
    }

    /// Applies a plan; every call must succeed at its first attempt (the emulator has no
    /// eventual consistency, so a retry would hide a client bug).
    async fn apply(&self, plan: &Plan) {
        let retries = std::sync::Mutex::new(Vec::new());
        let sink = |event: ApplyEvent| {
            if let EventKind::Retrying { class, message, .. } = &event.kind {
                retries
                    .lock()
                    .unwrap()
                    .push(format!("{}: {class}: {message}", event.id));
            }
        };
        let report = self.engine.apply(plan, &sink).await;
        let retries = retries.into_inner().unwrap();
        assert!(retries.is_empty(), "calls were retried: {retries:#?}");
        let failures: Vec<String> = report
            .failures()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        assert!(failures.is_empty(), "apply failed: {failures:#?}");
    }

    /// Plans and applies until nothing is left to do; returns the first plan.
    async fn converge(&self, graph: &DesiredGraph) -> Plan {
        let plan = self.plan(graph).await;
        self.apply(&plan).await;
        let again = self.plan(graph).await;
        assert!(
            again.is_empty(),
            "a plan right after apply must be empty: {:#?}",
            changes_of(&again)
        );
        plan
    }

    /// A second apply makes no mutating call.
    async fn assert_no_op_apply(&self, graph: &DesiredGraph) {
        self.counter.reset();
        let plan = self.plan(graph).await;
        self.apply(&plan).await;
        let counts = self.counter.snapshot();
        assert!(counts.reads > 0, "the counter sees the calls");
        assert_eq!(
            counts.mutations,
            0,
            "a no-op apply must not change anything: {:?}",
            counts.mutating_operations()
        );
    }

    async fn destroy(&self, graph: &DesiredGraph) {
        let plan = common::plan_destroy(&self.engine, graph).await;
        self.apply(&plan).await;
        let observed = self.engine.observe(graph).await.expect("observe");
        assert!(
            observed.is_empty(),
            "destroy left {:?}",
            observed
                .iter()
                .map(|o| o.id.to_string())
                .collect::<Vec<_>>()
        );
    }

    /// Ids of every object carrying the ownership tag, per EC2 describe call.
    async fn owned_objects(&self) -> Vec<String> {
        let f = || {
            Filter::builder()
                .name(format!("tag:{TAG_MANAGED_BY}"))
                .values("reconciler")
                .build()
        };
        let mut ids = Vec::new();
        let ec2 = &self.ec2;
        let out = ec2.describe_vpcs().filters(f()).send().await.unwrap();
        ids.extend(
            out.vpcs()
                .iter()
                .filter_map(|v| v.vpc_id().map(String::from)),
        );
        let out = ec2.describe_subnets().filters(f()).send().await.unwrap();
        ids.extend(
            out.subnets()
                .iter()
                .filter_map(|v| v.subnet_id().map(String::from)),
        );
        let out = ec2
            .describe_internet_gateways()
            .filters(f())
            .send()
            .await
            .unwrap();
        ids.extend(
            out.internet_gateways()
                .iter()
                .filter_map(|v| v.internet_gateway_id().map(String::from)),
        );
        let out = ec2
            .describe_route_tables()
            .filters(f())
            .send()
            .await
            .unwrap();
        ids.extend(
            out.route_tables()
                .iter()
                .filter_map(|v| v.route_table_id().map(String::from)),
        );
        let out = ec2
            .describe_security_groups()
            .filters(f())
            .send()
            .await
            .unwrap();
        ids.extend(
            out.security_groups()
                .iter()
                .filter_map(|v| v.group_id().map(String::from)),
        );
        let out = ec2.describe_key_pairs().filters(f()).send().await.unwrap();
        ids.extend(
            out.key_pairs()
                .iter()
                .filter_map(|v| v.key_pair_id().map(String::from)),
        );
        let out = ec2
            .describe_launch_templates()
            .filters(f())
            .send()
            .await
            .unwrap();
        ids.extend(
            out.launch_templates()
                .iter()
                .filter_map(|v| v.launch_template_id().map(String::from)),
        );
        ids
    }
}

/// `(id, action, changed paths)` of every entry that changes something.
fn changes_of(plan: &Plan) -> Vec<(String, Action, Vec<String>)> {
    plan.resources()
        .iter()
        .filter(|r| r.action != Action::NoOp)
        .map(|r| {
            (
                r.id.to_string(),
                r.action,
                r.changes.iter().map(|c| c.path.clone()).collect(),
            )
        })
        .collect()
}

/// The EC2 network (the VPC's default security group included) and the servers' security
/// groups of the rendered example specs.
fn example_network(account: &str) -> Vec<DesiredResource> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let inputs = collect_inputs(&[root]).expect("example specs");
    let (set, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let all = render_resources(&Context::new(account), &set, &InstanceCatalog::offline())
        .expect("render");
    all.into_iter()
        .filter(|r| {
            [
                kinds::VPC,
                kinds::INTERNET_GATEWAY,
                kinds::SUBNET,
                kinds::ROUTE_TABLE,
                kinds::SECURITY_GROUP,
                kinds::DEFAULT_SECURITY_GROUP,
            ]
            .contains(&r.kind.as_str())
        })
        .collect()
}

fn output(plan_or_obs: &reconciler_engine::ObservedState, id: &str, attr: &str) -> String {
    plan_or_obs
        .get(&id.into())
        .and_then(|o| o.output(attr))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{id} has no output {attr}"))
        .to_string()
}

#[tokio::test]
async fn example_network_applies_converges_heals_drift_and_destroys() {
    let resources = example_network("000000000000");
    let region = resources[0].region.clone();
    let h = harness(&region);
    let resources = example_network(&h.account);
    let graph = DesiredGraph::new(resources).unwrap();

    // From nothing: everything is created.
    let first = h.converge(&graph).await;
    assert_eq!(
        first.summary().add,
        graph.len(),
        "{:#?}",
        changes_of(&first)
    );
    h.assert_no_op_apply(&graph).await;

    // Observation is batched: one describe per kind (plus the per-VPC attribute reads), one
    // listing of the owned security groups for both kinds of groups, the rules of the six
    // server groups in one call, the zones from the run's cache.
    h.counter.reset();
    let observed = h.engine.observe(&graph).await.unwrap();
    let reads: Vec<(String, u64)> = h.counter.snapshot().by_operation.into_iter().collect();
    let expected: Vec<(String, u64)> = [
        ("EC2.DescribeInternetGateways", 1),
        ("EC2.DescribeRouteTables", 1),
        ("EC2.DescribeSecurityGroupRules", 1),
        ("EC2.DescribeSecurityGroups", 1),
        ("EC2.DescribeSubnets", 1),
        ("EC2.DescribeVpcAttribute", 2),
        ("EC2.DescribeVpcs", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(reads, expected);

    // The objects are as rendered.
    let vpc = output(&observed, "ec2.vpc/main", "id");
    let subnet = output(&observed, "ec2.subnet/main-0", "id");
    let zones = h
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .unwrap()
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(String::from))
        .min()
        .unwrap();
    assert_eq!(
        output(&observed, "ec2.subnet/main-0", "availabilityZone"),
        zones,
        "zone index 0 is the first zone by name"
    );
    let attr = h
        .ec2
        .describe_vpc_attribute()
        .vpc_id(&vpc)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attr.enable_dns_hostnames().and_then(|a| a.value()),
        Some(true)
    );
    let efs_sg = output(&observed, "ec2.security-group/minecraft-efs", "id");
    let instance_sg = output(&observed, "ec2.security-group/minecraft-instance", "id");
    let rules = h
        .ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(&efs_sg).build())
        .send()
        .await
        .unwrap();
    assert!(
        rules
            .security_group_rules()
            .iter()
            .all(|r| r.is_egress() == Some(false)),
        "egress [] revokes the default allow-all rule"
    );
    let ingress = &observed
        .get(&"ec2.security-group/minecraft-efs".into())
        .unwrap()
        .properties["ingress"];
    assert_eq!(
        ingress,
        &json!([{
            "ipProtocol": "tcp", "fromPort": 2049, "toPort": 2049,
            "sourceSecurityGroupId": instance_sg,
            "description": "NFS from the server's instance"
        }])
    );

    // Drift 1: a game port rule revoked out of band.
    let rules = h
        .ec2
        .describe_security_group_rules()
        .filters(
            Filter::builder()
                .name("group-id")
                .values(&instance_sg)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let game_rule = rules
        .security_group_rules()
        .iter()
        .find(|r| r.is_egress() == Some(false) && r.from_port() == Some(25565))
        .and_then(|r| r.security_group_rule_id())
        .expect("the minecraft port rule")
        .to_string();
    h.ec2
        .revoke_security_group_ingress()
        .group_id(&instance_sg)
        .security_group_rule_ids(&game_rule)
        .send()
        .await
        .unwrap();
    // Drift 2: the subnet stops mapping public addresses.
    h.ec2
        .modify_subnet_attribute()
        .subnet_id(&subnet)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = h.plan(&graph).await;
    assert_eq!(
        changes_of(&drift),
        vec![
            (
                "ec2.subnet/main-0".to_string(),
                Action::Update,
                vec!["/mapPublicIpOnLaunch".to_string()]
            ),
            (
                "ec2.security-group/minecraft-instance".to_string(),
                Action::Update,
                vec!["/ingress".to_string()]
            ),
        ]
    );
    h.counter.reset();
    h.converge(&graph).await;
    let counts = h.counter.snapshot();
    assert_eq!(
        counts.mutating_operations(),
        vec![
            "EC2.AuthorizeSecurityGroupIngress x1".to_string(),
            "EC2.ModifySubnetAttribute x1".to_string()
        ],
        "only the drifted fields are written"
    );
    h.assert_no_op_apply(&graph).await;

    // Destroy in reverse order leaves nothing of ours.
    h.destroy(&graph).await;
    assert_eq!(h.owned_objects().await, Vec::<String>::new());
}

/// The default security group of the VPC with id `vpc`, as AWS describes it.
async fn default_group(h: &Harness, vpc: &str) -> aws_sdk_ec2::types::SecurityGroup {
    let out = h
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(
            Filter::builder()
                .name("group-name")
                .values("default")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.security_groups()[0].clone()
}

#[tokio::test]
async fn the_default_security_group_is_stripped_and_rules_added_back_are_drift() {
    let resources = example_network("000000000000");
    let region = resources[0].region.clone();
    let h = harness(&region);
    let resources: Vec<DesiredResource> = example_network(&h.account)
        .into_iter()
        .filter(|r| [kinds::VPC, kinds::DEFAULT_SECURITY_GROUP].contains(&r.kind.as_str()))
        .collect();
    let graph = DesiredGraph::new(resources).unwrap();
    let id = "ec2.default-security-group/main";

    // Adopted: tagged as ours and stripped of AWS's allow-all egress rule.
    let first = h.converge(&graph).await;
    assert_eq!(first.summary().add, 2, "{:#?}", changes_of(&first));
    let observed = h.engine.observe(&graph).await.unwrap();
    let vpc = output(&observed, "ec2.vpc/main", "id");
    let group = default_group(&h, &vpc).await;
    assert_eq!(group.group_id(), Some(output(&observed, id, "id").as_str()));
    assert!(group.ip_permissions().is_empty(), "{group:?}");
    assert!(group.ip_permissions_egress().is_empty(), "{group:?}");
    assert!(
        group
            .tags()
            .iter()
            .any(|t| t.key() == Some(TAG_MANAGED_BY) && t.value() == Some("reconciler")),
        "{group:?}"
    );
    h.assert_no_op_apply(&graph).await;

    // Out of band, AWS's defaults come back: members reach each other, and anything goes out.
    let group_id = group.group_id().unwrap();
    h.ec2
        .authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(group_id).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    h.ec2
        .authorize_security_group_egress()
        .group_id(group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = h.plan(&graph).await;
    assert_eq!(
        changes_of(&drift),
        vec![(
            id.to_string(),
            Action::Update,
            vec!["/ingress".to_string(), "/egress".to_string()]
        )]
    );
    h.counter.reset();
    h.converge(&graph).await;
    assert_eq!(
        h.counter.snapshot().mutating_operations(),
        vec![
            "EC2.RevokeSecurityGroupEgress x1".to_string(),
            "EC2.RevokeSecurityGroupIngress x1".to_string()
        ],
        "both rules are revoked, nothing else is written"
    );
    let group = default_group(&h, &vpc).await;
    assert!(group.ip_permissions().is_empty(), "{group:?}");
    assert!(group.ip_permissions_egress().is_empty(), "{group:?}");

    // Destroying leaves the group to go with its VPC.
    h.destroy(&graph).await;
    assert_eq!(h.owned_objects().await, Vec::<String>::new());
}

/// A small network by hand: two VPCs, so the gateway can move.
fn two_vpcs(region: &str, attach_to: &str, subnets_in_table: &[&str]) -> Vec<DesiredResource> {
    let names = BaseNames::new("net");
    let tagged = |mut r: DesiredResource| {
        r.tags.extend(names.tags("network"));
        r
    };
    let mut out = Vec::new();
    for (vpc, cidr) in [("a", "10.1.0.0/16"), ("b", "10.2.0.0/16")] {
        out.push(tagged(
            DesiredResource::new(kinds::VPC, vpc, region, names.name(vpc))
                .with_properties(json!({
                    "cidrBlock": cidr,
                    "enableDnsSupport": true,
                    "enableDnsHostnames": false
                }))
                .with_tag("Name", names.name(vpc)),
        ));
    }
    out.push(tagged(
        DesiredResource::new(kinds::INTERNET_GATEWAY, "igw", region, names.name("igw"))
            .with_properties(
                json!({ "vpcId": reference(format!("ec2.vpc/{attach_to}").as_str(), "id") }),
            )
            .with_tag("Name", names.name("igw")),
    ));
    for (i, cidr) in ["10.1.0.0/20", "10.1.16.0/20"].iter().enumerate() {
        let name = names.name(&format!("public-{i}"));
        out.push(tagged(
            DesiredResource::new(kinds::SUBNET, &format!("s{i}"), region, &name)
                .with_properties(json!({
                    "vpcId": reference("ec2.vpc/a", "id"),
                    "cidrBlock": cidr,
                    "availabilityZoneIndex": i,
                    "mapPublicIpOnLaunch": true
                }))
                .with_tag("Name", name),
        ));
    }
    // The table lives in VPC a; it routes to the gateway only while the gateway is there.
    let routes = if attach_to == "a" {
        json!([{ "destinationCidrBlock": "0.0.0.0/0", "gatewayId": reference("ec2.internet-gateway/igw", "id") }])
    } else {
        json!([])
    };
    out.push(tagged(
        DesiredResource::new(kinds::ROUTE_TABLE, "public", region, names.name("public"))
            .with_properties(json!({
                "vpcId": reference("ec2.vpc/a", "id"),
                "routes": routes,
                "subnetIds": subnets_in_table
                    .iter()
                    .map(|s| reference(format!("ec2.subnet/{s}").as_str(), "id"))
                    .collect::<Vec<_>>()
            }))
            .with_tag("Name", names.name("public")),
    ));
    out
}

#[tokio::test]
async fn network_updates_move_the_gateway_and_reassociate_subnets() {
    let region = "eu-west-1";
    let h = harness(region);
    let graph = DesiredGraph::new(two_vpcs(region, "a", &["s0"])).unwrap();
    h.converge(&graph).await;
    h.assert_no_op_apply(&graph).await;

    // Out of band: the route is deleted and DNS host names turned on.
    let observed = h.engine.observe(&graph).await.unwrap();
    let table = output(&observed, "ec2.route-table/public", "id");
    let vpc_a = output(&observed, "ec2.vpc/a", "id");
    h.ec2
        .delete_route()
        .route_table_id(&table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    h.ec2
        .modify_vpc_attribute()
        .vpc_id(&vpc_a)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = h.plan(&graph).await;
    assert_eq!(
        changes_of(&drift),
        vec![
            (
                "ec2.vpc/a".to_string(),
                Action::Update,
                vec!["/enableDnsHostnames".to_string()]
            ),
            (
                "ec2.route-table/public".to_string(),
                Action::Update,
                vec!["/routes".to_string()]
            ),
        ]
    );
    h.converge(&graph).await;

    // The spec changes: the second subnet joins the table instead of the first, and the
    // gateway moves to the other VPC (its route goes with it).
    let moved = DesiredGraph::new(two_vpcs(region, "b", &["s1"])).unwrap();
    let plan = h.plan(&moved).await;
    let changes = changes_of(&plan);
    assert!(
        changes.contains(&(
            "ec2.internet-gateway/igw".to_string(),
            Action::Update,
            vec!["/vpcId".to_string()]
        )),
        "{changes:#?}"
    );
    h.apply(&plan).await;
    let again = h.plan(&moved).await;
    assert!(again.is_empty(), "{:#?}", changes_of(&again));
    let observed = h.engine.observe(&moved).await.unwrap();
    let vpc_b = output(&observed, "ec2.vpc/b", "id");
    let igw = output(&observed, "ec2.internet-gateway/igw", "id");
    let gateways = h
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw)
        .send()
        .await
        .unwrap();
    let attached: Vec<&str> = gateways.internet_gateways()[0]
        .attachments()
        .iter()
        .filter_map(|a| a.vpc_id())
        .collect();
    assert_eq!(attached, vec![vpc_b.as_str()]);
    let s1 = output(&observed, "ec2.subnet/s1", "id");
    let tables = h
        .ec2
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await
        .unwrap();
    let associated: Vec<&str> = tables.route_tables()[0]
        .associations()
        .iter()
        .filter(|a| a.main() != Some(true))
        .filter_map(|a| a.subnet_id())
        .collect();
    assert_eq!(associated, vec![s1.as_str()]);

    h.destroy(&moved).await;
    assert_eq!(h.owned_objects().await, Vec::<String>::new());
}

const AMI_PARAMETER: &str = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id";

/// A VPC, the instance's security group, the SSH key pair and a launch template using them.
fn compute(region: &str, account: &str) -> Vec<DesiredResource> {
    let base = BaseNames::new("lt");
    let server = ServerNames::new("lt", "game");
    let vpc = DesiredResource::new(kinds::VPC, "lt", region, base.name(""))
        .with_properties(json!({ "cidrBlock": "10.9.0.0/16" }))
        .with_tag("Name", base.name(""));
    let mut sg = DesiredResource::new(kinds::SECURITY_GROUP, "game", region, server.name("instance"))
        .with_properties(json!({
            "groupName": server.name("instance"),
            "description": "game: traffic to the instance",
            "vpcId": reference("ec2.vpc/lt", "id"),
            "ingress": [
                { "ipProtocol": "udp", "fromPort": 2456, "toPort": 2458, "cidrIpv4": "0.0.0.0/0", "description": "game" },
                { "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "192.0.2.0/24", "description": "ssh" }
            ],
            "egress": [{ "ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "description": "anything out" }]
        }))
        .with_tag("Name", server.name("instance"));
    sg.tags.extend(server.tags("network"));
    let mut vpc = vpc;
    vpc.tags.extend(base.tags("network"));
    let mut key = DesiredResource::new(kinds::KEY_PAIR, "lt", region, base.name(""))
        .with_properties(json!({ "keyType": "ed25519" }));
    key.tags.extend(base.tags("access"));
    let mut instance_tags = server.tags("compute");
    instance_tags.insert("Name".into(), server.name(""));
    let mut lt = DesiredResource::new(kinds::LAUNCH_TEMPLATE, "game", region, server.name(""))
        .with_properties(json!({
            "imageParameter": AMI_PARAMETER,
            "instanceType": "m5.large",
            // Only the ARN string goes into the template; the profile need not exist here.
            "iamInstanceProfileArn": format!("arn:aws:iam::{account}:instance-profile/{}", server.name("instance")),
            "securityGroupIds": [reference("ec2.security-group/game", "id")],
            "metadataOptions": { "httpTokens": "required", "httpEndpoint": "enabled", "httpPutResponseHopLimit": 1 },
            "monitoring": true,
            "blockDeviceMappings": [{
                "deviceName": "/dev/xvda",
                "ebs": { "encrypted": true, "volumeType": "gp3", "deleteOnTermination": true }
            }],
            "userData": { "$join": ["#!/bin/bash\necho 'vpc ", reference("ec2.vpc/lt", "id"), "' > /etc/motd\n"] },
            "instanceTags": instance_tags,
            "keyName": reference("ec2.key-pair/lt", "name")
        }));
    lt.tags.extend(server.tags("compute"));
    vec![vpc, sg, key, lt]
}

/// Launch template data as the test wrote it, with another instance type and image.
fn out_of_band_data(
    account: &str,
    sg: &str,
    key: &str,
    image: &str,
    instance_type: &str,
    user_data: &str,
) -> RequestLaunchTemplateData {
    let server = ServerNames::new("lt", "game");
    let mut tags: Vec<Tag> = server
        .tags("compute")
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    tags.push(Tag::builder().key("Name").value(server.name("")).build());
    RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(InstanceType::from(instance_type))
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(format!(
                    "arn:aws:iam::{account}:instance-profile/{}",
                    server.name("instance")
                ))
                .build(),
        )
        .security_group_ids(sg)
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .monitoring(
            LaunchTemplatesMonitoringRequest::builder()
                .enabled(true)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name("/dev/xvda")
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .encrypted(true)
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
        .tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .key_name(key)
        .build()
}

#[tokio::test]
async fn key_pair_and_launch_template_round_trip_and_heal_drift() {
    let region = "us-east-1";
    let h = harness(region);
    let graph = DesiredGraph::new(compute(region, &h.account)).unwrap();
    h.converge(&graph).await;
    h.assert_no_op_apply(&graph).await;

    let observed = h.engine.observe(&graph).await.unwrap();
    let vpc = output(&observed, "ec2.vpc/lt", "id");
    let sg = output(&observed, "ec2.security-group/game", "id");
    let key_id = output(&observed, "ec2.key-pair/lt", "id");
    let key_name = output(&observed, "ec2.key-pair/lt", "name");
    let lt = output(&observed, "ec2.launch-template/game", "id");

    // The private key is kept in SSM as a SecureString.
    let parameter = format!("/ec2/keypair/{key_id}");
    assert_eq!(
        output(&observed, "ec2.key-pair/lt", "privateKeyParameter"),
        parameter
    );
    let stored = h
        .ssm
        .get_parameter()
        .name(&parameter)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let stored = stored.parameter().unwrap();
    assert_eq!(stored.r#type().map(|t| t.as_str()), Some("SecureString"));
    assert!(stored.value().unwrap_or_default().contains("PRIVATE KEY"));

    // The template holds the resolved AMI, the user data as base64 and the instance tags.
    let ami = h
        .ssm
        .get_parameter()
        .name(AMI_PARAMETER)
        .send()
        .await
        .unwrap()
        .parameter()
        .and_then(|p| p.value())
        .unwrap()
        .to_string();
    let versions = h
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0]
        .launch_template_data()
        .unwrap()
        .clone();
    assert_eq!(data.image_id(), Some(ami.as_str()));
    assert_eq!(data.key_name(), Some(key_name.as_str()));
    let user_data = format!("#!/bin/bash\necho 'vpc {vpc}' > /etc/motd\n");
    assert_eq!(
        data.user_data(),
        Some(
            base64::engine::general_purpose::STANDARD
                .encode(&user_data)
                .as_str()
        )
    );
    let props = &observed
        .get(&"ec2.launch-template/game".into())
        .unwrap()
        .properties;
    assert_eq!(props["imageParameter"], json!(AMI_PARAMETER));
    assert_eq!(props["userData"], json!(user_data));
    assert_eq!(props["instanceTags"]["Name"], json!("rc-game"));

    // Drift: a new default version with another instance type, made out of band.
    let made = h
        .ec2
        .create_launch_template_version()
        .launch_template_id(&lt)
        .launch_template_data(out_of_band_data(
            &h.account, &sg, &key_name, &ami, "t3.small", &user_data,
        ))
        .send()
        .await
        .unwrap();
    let version = made
        .launch_template_version()
        .unwrap()
        .version_number()
        .unwrap();
    h.ec2
        .modify_launch_template()
        .launch_template_id(&lt)
        .default_version(version.to_string())
        .send()
        .await
        .unwrap();
    let drift = h.plan(&graph).await;
    assert_eq!(
        changes_of(&drift),
        vec![(
            "ec2.launch-template/game".to_string(),
            Action::Update,
            vec!["/instanceType".to_string()]
        )]
    );
    h.counter.reset();
    h.converge(&graph).await;
    assert_eq!(
        h.counter.snapshot().mutating_operations(),
        vec![
            "EC2.CreateLaunchTemplateVersion x1".to_string(),
            "EC2.ModifyLaunchTemplate x1".to_string()
        ]
    );
    let templates = h
        .ec2
        .describe_launch_templates()
        .launch_template_ids(&lt)
        .send()
        .await
        .unwrap();
    let t = &templates.launch_templates()[0];
    assert_eq!(t.latest_version_number(), Some(version + 1));
    assert_eq!(t.default_version_number(), Some(version + 1));

    // Drift: the template points at another image than the parameter's: the plan shows the
    // AMI id, and apply goes back to the parameter's image.
    // (Any id will do: templates are not checked against the image catalogue.)
    let other_image = "ami-0123456789abcdef0".to_string();
    let made = h
        .ec2
        .create_launch_template_version()
        .launch_template_id(&lt)
        .launch_template_data(out_of_band_data(
            &h.account,
            &sg,
            &key_name,
            &other_image,
            "m5.large",
            &user_data,
        ))
        .send()
        .await
        .unwrap();
    let version = made
        .launch_template_version()
        .unwrap()
        .version_number()
        .unwrap();
    h.ec2
        .modify_launch_template()
        .launch_template_id(&lt)
        .default_version(version.to_string())
        .send()
        .await
        .unwrap();
    let drift = h.plan(&graph).await;
    let entry = drift.get(&"ec2.launch-template/game".into()).unwrap();
    assert_eq!(entry.action, Action::Update);
    assert_eq!(entry.changes.len(), 1);
    assert_eq!(entry.changes[0].path, "/imageParameter");
    assert_eq!(entry.changes[0].before, Some(json!(other_image)));
    h.converge(&graph).await;
    h.assert_no_op_apply(&graph).await;

    // Destroy removes the template, the key pair with its stored private key, the group and
    // the VPC.
    h.destroy(&graph).await;
    assert_eq!(h.owned_objects().await, Vec::<String>::new());
    let gone = h.ssm.get_parameter().name(&parameter).send().await;
    assert!(gone.is_err(), "the private key parameter is deleted too");
}

#[tokio::test]
async fn creating_what_exists_is_a_conflict_the_engine_adopts() {
    let region = "us-west-2";
    let h = harness(region);
    let graph = DesiredGraph::new(compute(region, &h.account)).unwrap();
    h.converge(&graph).await;
    let observed = h.engine.observe(&graph).await.unwrap();
    let vpc = output(&observed, "ec2.vpc/lt", "id");

    let provider = h.engine.provider();
    for id in [
        "ec2.vpc/lt",
        "ec2.security-group/game",
        "ec2.key-pair/lt",
        "ec2.launch-template/game",
    ] {
        let mut desired = graph.get(&id.into()).unwrap().clone();
        // Creates receive resolved references.
        reconciler_engine::model::resolve_refs(&mut desired.properties, &|r| {
            observed.get(&r.id).and_then(|o| o.output(&r.attr)).cloned()
        });
        let client = provider.client(&desired.kind).unwrap();
        let err = client.create(&desired).await.expect_err(id);
        assert_eq!(err.class, ErrorClass::Conflict, "{id}: {err}");
    }
    // Nothing was duplicated.
    let vpcs = h
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values("rc-lt").build())
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    assert_eq!(vpcs.vpcs()[0].vpc_id(), Some(vpc.as_str()));
    h.destroy(&graph).await;
}

#[tokio::test]
async fn spot_capacity_is_a_template_setting_and_switching_back_is_an_update() {
    let region = "us-east-1";
    let h = harness(region);
    let with_market = |market: &str| {
        let mut resources = compute(region, &h.account);
        let lt = resources
            .iter_mut()
            .find(|r| r.kind.as_str() == kinds::LAUNCH_TEMPLATE)
            .unwrap();
        lt.properties["instanceMarketType"] = json!(market);
        DesiredGraph::new(resources).unwrap()
    };
    let spot = with_market("spot");
    h.converge(&spot).await;
    h.assert_no_op_apply(&spot).await;
    let observed = h.engine.observe(&spot).await.unwrap();
    let lt = output(&observed, "ec2.launch-template/game", "id");
    let data = latest_template_data(&h.ec2, &lt).await;
    let market = data.instance_market_options().expect("spot market options");
    assert_eq!(market.market_type().map(|m| m.as_str()), Some("spot"));
    let options = market.spot_options().unwrap();
    assert_eq!(
        options.instance_interruption_behavior().map(|b| b.as_str()),
        Some("terminate")
    );

    // Back to on-demand: an update of the template (a new version), not a replacement.
    let on_demand = with_market("on-demand");
    let plan = h.plan(&on_demand).await;
    assert_eq!(
        changes_of(&plan),
        [(
            "ec2.launch-template/game".to_string(),
            Action::Update,
            vec!["/instanceMarketType".to_string()]
        )]
    );
    h.converge(&on_demand).await;
    h.assert_no_op_apply(&on_demand).await;
    let data = latest_template_data(&h.ec2, &lt).await;
    assert!(data.instance_market_options().is_none(), "{data:?}");
}

async fn latest_template_data(
    ec2: &aws_sdk_ec2::Client,
    lt: &str,
) -> aws_sdk_ec2::types::ResponseLaunchTemplateData {
    ec2.describe_launch_template_versions()
        .launch_template_id(lt)
        .versions("$Latest")
        .send()
        .await
        .unwrap()
        .launch_template_versions()[0]
        .launch_template_data()
        .unwrap()
        .clone()
}
