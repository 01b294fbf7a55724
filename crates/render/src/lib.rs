//! Render: a pure function from the validated documents to the desired resource graph.
//!
//! No network call happens here. Everything AWS assigns (ids, ARNs with random parts) is a
//! reference the engine resolves at apply time; everything deterministic (names, ARNs built
//! from account, region and name) is written out, so a plan can show it. The resource kinds and
//! the shape of their properties are the contract with the provider (`crates/aws`): see
//! [`kinds`].

pub mod base;
pub mod naming;
pub mod policies;
pub mod record;
pub mod server;
pub mod user_data;
pub mod wake;

use reconciler_engine::model::{DesiredGraph, DesiredResource, GraphErrors};
use reconciler_spec::{base_of, Alerts, ContainerSpecDocument, InstanceCatalog, Lookup, SpecSet};
use serde_json::{json, Value};

/// Resource kinds (`<service>.<type>`) and the provider client each maps to.
pub mod kinds {
    /// VPC: `cidrBlock`, `enableDnsSupport`, `enableDnsHostnames`. Outputs `id`.
    pub const VPC: &str = "ec2.vpc";
    /// Internet gateway attached to `vpcId`. Outputs `id`.
    pub const INTERNET_GATEWAY: &str = "ec2.internet-gateway";
    /// Subnet: `vpcId`, `cidrBlock`, `availabilityZoneIndex` (index into the region's zones in
    /// name order), `mapPublicIpOnLaunch`. Outputs `id`, `availabilityZone`.
    pub const SUBNET: &str = "ec2.subnet";
    /// Route table: `vpcId`, `routes` [{`destinationCidrBlock`, `gatewayId`}], `subnetIds`
    /// (associations). Outputs `id`.
    pub const ROUTE_TABLE: &str = "ec2.route-table";
    /// Security group: `groupName`, `description`, `vpcId`, `ingress`/`egress` rules
    /// [{`ipProtocol`, `fromPort`, `toPort`, `cidrIpv4` | `sourceSecurityGroupId`,
    /// `description`}]. Outputs `id`.
    pub const SECURITY_GROUP: &str = "ec2.security-group";
    /// Key pair: `keyType`; the private key goes to SSM `/ec2/keypair/<key-pair-id>`.
    /// Outputs `id`, `name`.
    pub const KEY_PAIR: &str = "ec2.key-pair";
    /// Launch template: `imageParameter` (public SSM parameter of the AMI), `instanceType`,
    /// `iamInstanceProfileArn`, `securityGroupIds`, `metadataOptions`, `monitoring`,
    /// `blockDeviceMappings`, `userData` (plain text), `instanceTags`, optional `keyName`.
    /// Outputs `id`, `latestVersion`.
    pub const LAUNCH_TEMPLATE: &str = "ec2.launch-template";
    /// Auto Scaling group: `launchTemplateId`, `launchTemplateVersion`, `minSize`, `maxSize`,
    /// `vpcZoneIdentifier`, `healthCheckType`, `newInstancesProtectedFromScaleIn`,
    /// `notifications` [{`topicArn`, `types`}]. `desiredCapacity` is runtime-owned. Outputs
    /// `arn`, `name`.
    pub const AUTO_SCALING_GROUP: &str = "autoscaling.group";
    /// IAM role: `description`, `assumeRolePolicyDocument`, `managedPolicyArns`,
    /// `inlinePolicies` {name: document}. Outputs `arn`, `name`.
    pub const ROLE: &str = "iam.role";
    /// IAM instance profile: `roles`. Outputs `arn`, `name`.
    pub const INSTANCE_PROFILE: &str = "iam.instance-profile";
    /// CloudWatch Logs log group: `retentionInDays`. Outputs `arn`, `name`.
    pub const LOG_GROUP: &str = "logs.log-group";
    /// EFS file system, found by creation token (its name), or by its `Name` tag when adopted
    /// or restored: `encrypted`, `performanceMode`, `throughputMode`, `fileSystemPolicy`;
    /// optional `adopt` (an existing file system id, used instead of creating one) or
    /// `restoreFrom` {`recoveryPointArn`, `backupVaultName`, `iamRoleArn`} (create by restoring
    /// a recovery point; read at create only). Outputs `id`, `arn`.
    pub const FILE_SYSTEM: &str = "efs.file-system";
    /// EFS mount target: `fileSystemId`, `subnetId`, `securityGroups`. Outputs `id`.
    pub const MOUNT_TARGET: &str = "efs.mount-target";
    /// AWS Backup vault. Outputs `arn`, `name`.
    pub const BACKUP_VAULT: &str = "backup.vault";
    /// AWS Backup plan: `rules` [{`ruleName`, `targetBackupVaultName`, `scheduleExpression`,
    /// `startWindowMinutes`, `completionWindowMinutes`, `lifecycle`}]. Outputs `id`, `arn`.
    pub const BACKUP_PLAN: &str = "backup.plan";
    /// AWS Backup selection: `backupPlanId`, `iamRoleArn`, `resources`, `conditions`.
    /// Outputs `id`.
    pub const BACKUP_SELECTION: &str = "backup.selection";
    /// SNS topic: `displayName`, `policy`, `subscriptions` [{`protocol`, `endpoint`}].
    /// Outputs `arn`.
    pub const TOPIC: &str = "sns.topic";
    /// ECS cluster: `containerInsights`. Outputs `arn`, `name`.
    pub const CLUSTER: &str = "ecs.cluster";
    /// ECS capacity provider: `autoScalingGroupArn`, `managedDraining`,
    /// `managedTerminationProtection`. Outputs `arn`, `name`.
    pub const CAPACITY_PROVIDER: &str = "ecs.capacity-provider";
    /// A cluster's capacity providers: `cluster`, `capacityProviders`,
    /// `defaultCapacityProviderStrategy`.
    pub const CLUSTER_CAPACITY_PROVIDERS: &str = "ecs.cluster-capacity-providers";
    /// ECS task definition family (its latest active revision): `family`, `networkMode`,
    /// `requiresCompatibilities`, `executionRoleArn`, `containerDefinitions`, `volumes`.
    /// Outputs `arn`, `revision`.
    pub const TASK_DEFINITION: &str = "ecs.task-definition";
    /// ECS service: `cluster`, `taskDefinition`, `launchType`, `schedulingStrategy`,
    /// `deploymentConfiguration`, `enableEcsManagedTags`, `propagateTags`. Outputs `arn`.
    pub const SERVICE: &str = "ecs.service";
    /// CloudWatch Logs resource policy (account-wide, by name): `policyDocument`.
    pub const LOG_RESOURCE_POLICY: &str = "logs.resource-policy";
    /// CloudWatch Logs subscription filter, by name: `logGroupName` (the deterministic name, so
    /// observe can list the group's filters), `filterPattern`, `destinationArn`.
    pub const SUBSCRIPTION_FILTER: &str = "logs.subscription-filter";
    /// Route 53 public hosted zone, by name (`<dns name>.`): `comment`. Outputs `id`,
    /// `nameServers`.
    pub const HOSTED_ZONE: &str = "route53.hosted-zone";
    /// Route 53 record set: `hostedZoneId`, `name`, `type`, `ttl`, and either `values`
    /// (managed: the NS delegation) or `initialValues` (runtime-owned: written at create, then
    /// owned by the running system, as the A record is). Named `<name> <type>`; when
    /// `hostedZoneId` is a reference, observe finds the zone by the record's name.
    pub const RECORD_SET: &str = "route53.record-set";
    /// Route 53 query logging config, by its zone's name: `hostedZoneId`,
    /// `cloudWatchLogsLogGroupArn`. Outputs `id`.
    pub const QUERY_LOGGING_CONFIG: &str = "route53.query-logging-config";
    /// Lambda function: `description`, `runtime`, `handler`, `architecture`, `memorySize`,
    /// `timeout`, `roleArn`, `artifact` (the binary to package; the code hash decides updates),
    /// `environment`, `logGroup`. Outputs `arn`, `name`.
    pub const FUNCTION: &str = "lambda.function";
    /// Lambda permission, by statement id: `functionName` (the deterministic name, so observe
    /// can find the function's policy), `action`, `principal`, `sourceArn`.
    pub const LAMBDA_PERMISSION: &str = "lambda.permission";
    /// Auto Scaling policy, by name: `autoScalingGroupName` (the deterministic name),
    /// `policyType`, `adjustmentType`, `stepAdjustments`. Outputs `arn`.
    pub const SCALING_POLICY: &str = "autoscaling.scaling-policy";
    /// CloudWatch metric-math alarm: `alarmDescription`, `metrics`, `comparisonOperator`,
    /// `threshold`, `evaluationPeriods`, `datapointsToAlarm`, `treatMissingData`,
    /// `alarmActions`. Alarm state is runtime-owned. Outputs `arn`.
    pub const ALARM: &str = "cloudwatch.alarm";
    /// EventBridge rule on the default bus: `description`, `state`, `eventPattern`, `targets`
    /// [{`id`, `arn`, `input`}]. Outputs `arn`.
    pub const EVENT_RULE: &str = "events.rule";
    /// CloudWatch dashboard: `body`.
    pub const DASHBOARD: &str = "cloudwatch.dashboard";
    /// SSM parameter holding JSON: `value` (any JSON, stored serialized).
    /// Used for apply records (see [`crate::record`]). Outputs `name`, `version`.
    pub const PARAMETER: &str = "ssm.parameter";
}

/// Account facts that go into ARNs. Passing them in keeps render pure: the CLI reads them once
/// (STS `GetCallerIdentity`) before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The AWS account id.
    pub account_id: String,
    /// The ARN partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
}

impl Context {
    /// A context for an account in the standard partition.
    pub fn new(account_id: impl Into<String>) -> Self {
        Context {
            account_id: account_id.into(),
            partition: "aws".into(),
        }
    }
}

/// Why a spec set could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A server's Base is missing (validation reports this first).
    #[error("server `{server}` has no Base")]
    MissingBase {
        /// The server.
        server: String,
    },
    /// A server's instance type is not known, so its memory cannot be reserved.
    #[error("instance type `{instance_type}` of server `{server}` is unknown; check it online or pick a listed type")]
    UnknownInstanceType {
        /// The server.
        server: String,
        /// The type.
        instance_type: String,
    },
    /// The graph failed the engine's checks (duplicate names, cycles): a bug in render.
    #[error(transparent)]
    Graph(#[from] GraphErrors),
}

/// Renders every Base and server into one graph.
pub fn render(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
) -> Result<DesiredGraph, RenderError> {
    Ok(DesiredGraph::new(render_resources(cx, set, catalog)?)?)
}

/// The resources of every Base and server, in dependency-friendly order.
pub fn render_resources(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
) -> Result<Vec<DesiredResource>, RenderError> {
    let mut out = Vec::new();
    let mut base_refs = std::collections::HashMap::new();
    let mut bases = Vec::new();
    for base in &set.bases {
        let (mut resources, refs) = base::render(cx, &base.doc);
        // A shared wake zone's query log, filter and dispatcher belong to the Base, and its
        // record covers them.
        let servers: Vec<&ContainerSpecDocument> = set
            .servers
            .iter()
            .filter(|s| {
                base_of(set, &s.doc).is_some_and(|b| b.doc.metadata.name == base.doc.metadata.name)
            })
            .map(|s| &s.doc)
            .collect();
        resources.extend(wake::render_shared(cx, &base.doc, &servers));
        bases.push((&base.doc, resources));
        base_refs.insert(base.doc.metadata.name.clone(), refs);
    }
    let mut servers_out = Vec::new();
    let mut sections: std::collections::HashMap<String, Vec<wake::DashboardSection>> =
        std::collections::HashMap::new();
    for server in &set.servers {
        let name = server.doc.metadata.name.clone();
        let base = base_of(set, &server.doc).ok_or_else(|| RenderError::MissingBase {
            server: name.clone(),
        })?;
        let refs = &base_refs[&base.doc.metadata.name];
        let info = match catalog.lookup(&server.doc.spec.ec2.instance_type) {
            Lookup::Known(info) => info,
            _ => {
                return Err(RenderError::UnknownInstanceType {
                    server: name,
                    instance_type: server.doc.spec.ec2.instance_type.clone(),
                })
            }
        };
        let (mut resources, server_refs) = server::render(cx, &base.doc, refs, &server.doc, info);
        let (wake_resources, wake_refs) =
            wake::render(cx, &base.doc, refs, &server.doc, &server_refs);
        resources.extend(wake_resources);
        if let Some(section) = wake_refs.dashboard {
            sections
                .entry(base.doc.metadata.name.clone())
                .or_default()
                .push(section);
        }
        servers_out.push(record::server_record(&base.doc, &server.doc, &resources));
        servers_out.extend(resources);
    }
    // The servers' dashboards are the Base's: one dashboard shows many servers.
    for (base, mut resources) in bases {
        let base_sections = sections.remove(&base.metadata.name).unwrap_or_default();
        resources.extend(wake::base_dashboards(base, &base_sections));
        out.push(record::base_record(base, &resources));
        out.extend(resources);
    }
    out.extend(servers_out);
    if !set.servers.is_empty() {
        // One account-wide policy covers every server's query log group.
        out.push(wake::route53_log_policy(cx));
    }
    Ok(out)
}

/// SNS subscriptions of an alert list, in a stable order.
pub fn subscriptions(alerts: &Alerts) -> Value {
    let mut subs = Vec::new();
    for (protocol, entries) in [
        ("email", &alerts.email),
        ("sms", &alerts.sms),
        ("https", &alerts.https),
    ] {
        for endpoint in entries {
            subs.push(json!({ "protocol": protocol, "endpoint": endpoint }));
        }
    }
    Value::Array(subs)
}
