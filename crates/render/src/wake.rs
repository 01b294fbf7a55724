//! The wake and sleep path of a server.
//!
//! In `us-east-1` (where Route 53 writes query logs): the server's hosted zone, delegated from
//! the root zone; its A record, created once with the unavailable address and then owned by
//! the running system; the query log group and logging config; a subscription filter matching
//! only this server's A queries; and the start Lambda it invokes. With a shared wake zone
//! (`spec.domain.wakeZone: shared`) the A record lives in the root zone instead, and the zone,
//! query log and filter are the Base's, once ([`render_shared`]): one dispatcher Lambda
//! invokes the start Lambda of the server a lookup names.
//!
//! In the server's region: the scale-to-zero policy; the idle alarm (network in, minus EFS
//! reads, plus DNS hits, at or below the threshold for the configured minutes); the
//! instance-left-up alarm; the crash-loop rule, its Lambda and its invocation alarm; the
//! launch/terminate rules that keep the A record right; and the dashboard.
//!
//! The three Lambdas are one artifact (`reconciler-lambda`) started with a different
//! `RECONCILER_HANDLER`; each has its own role scoped to exactly the group, zone and metric it
//! touches, and its own log group with a short retention. Lambdas stay out of the VPC.

use reconciler_engine::model::{reference, DesiredResource};
use reconciler_kinds::lambda::WAKES_TAG;
use reconciler_spec::{dns_name_of, BaseDocument, ContainerSpecDocument, WakeZone};
use serde_json::{json, Value};

use crate::base::{tagged, BaseRefs};
use crate::naming::{bounded_text, dashboard_name, BaseNames, ServerNames, GLOBAL_REGION};
use crate::server::ServerRefs;
use crate::{kinds, policies, Context};

/// Address the A record holds while the server sleeps.
pub const UNAVAILABLE_IP: &str = "0.0.0.0";
/// TTL of the A record: resolvers ask again almost every time, so each attempt reaches
/// Route 53 and its query log.
pub const RECORD_TTL: u32 = 1;
/// TTL of the delegation in the root zone.
pub const DELEGATION_TTL: u32 = 1800;
/// Retention of the query logs: only the subscription filter reads them, at once.
pub const QUERY_LOG_RETENTION_DAYS: u32 = 1;
/// Retention of the Lambdas' logs.
pub const LAMBDA_LOG_RETENTION_DAYS: u32 = 7;
/// Name of the metric the start Lambda pushes.
pub const DNS_METRIC: &str = "DNSTraffic";
/// The Lambda artifact all three functions run.
pub const LAMBDA_ARTIFACT: &str = "reconciler-lambda";
/// Name of the account-wide log resource policy that lets Route 53 write query logs. One
/// policy covers every server (CloudWatch Logs allows only ten per region).
pub const ROUTE53_LOG_POLICY: &str = "rc-route53-query-logging";
/// Prefix of every query log group, which that one policy covers.
pub const QUERY_LOG_PREFIX: &str = "/aws/route53/rc-";

/// The longest Lambda function description (`CreateFunction`'s `Description`).
pub const LAMBDA_DESCRIPTION_MAX: usize = 256;
/// The longest hosted zone comment (`CreateHostedZone`'s `HostedZoneConfig.Comment`).
pub const HOSTED_ZONE_COMMENT_MAX: usize = 256;

/// The CloudWatch namespace of a server's own metrics.
pub fn metric_namespace(server: &str) -> String {
    format!("Reconciler/{server}")
}

/// The account-wide resource policy letting Route 53 write query logs to our log groups.
/// Rendered once per graph.
pub fn route53_log_policy(cx: &Context) -> DesiredResource {
    DesiredResource::new(kinds::LOG_RESOURCE_POLICY, "route53-query-logging", GLOBAL_REGION, ROUTE53_LOG_POLICY)
        .with_properties(json!({
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "Route53QueryLogs",
                    "Effect": "Allow",
                    "Principal": { "Service": "route53.amazonaws.com" },
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": format!("arn:{}:logs:{GLOBAL_REGION}:{}:log-group:{QUERY_LOG_PREFIX}*", cx.partition, cx.account_id),
                    "Condition": { "StringEquals": { "aws:SourceAccount": cx.account_id } }
                }]
            }
        }))
}

/// Period of every query of the idle alarm, in seconds: one minute, the resolution EC2
/// detailed monitoring (on in the launch template) gives.
pub const IDLE_PERIOD_SECONDS: u32 = 60;

/// One metric the idle alarm reads.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleMetric {
    /// The query id in the alarm's metric math.
    pub id: String,
    /// CloudWatch namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions, name and value. A file system's id is a reference until it is resolved
    /// ([`IdleActivity::resolve`]).
    pub dimensions: Vec<(String, Value)>,
    /// The statistic over each period.
    pub stat: &'static str,
}

impl IdleMetric {
    fn query(&self) -> Value {
        let dimensions: Vec<Value> = self
            .dimensions
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        json!({
            "id": self.id,
            "metric": { "namespace": self.namespace, "metricName": self.metric_name, "dimensions": dimensions },
            "period": IDLE_PERIOD_SECONDS, "stat": self.stat, "returnData": false
        })
    }
}

/// The raw values of the idle alarm's metrics in one period (`None`: no datapoint).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivitySample {
    /// Bytes received by the group's instances in the period (`Sum`).
    pub network_in: Option<f64>,
    /// The DNS wake metric (`Maximum`).
    pub dns_hits: Option<f64>,
    /// Bytes read from each volume in the period (`Sum`), in [`IdleActivity::volume_reads`]
    /// order.
    pub volume_reads: Vec<Option<f64>>,
}

/// What the idle alarm measures: bytes in per second, minus bytes read from the server's
/// volumes per second (EFS reads arrive as network traffic but are not players), plus DNS
/// hits (a lookup is a player on the way). The alarm's metric math and [`Self::activity`], the
/// same arithmetic for one period, live side by side here so `reconciler calibrate` computes
/// exactly what the alarm compares with its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleActivity {
    /// `NetworkIn` of the server's Auto Scaling group.
    pub network_in: IdleMetric,
    /// The DNS wake metric the start Lambda pushes.
    pub dns_hits: IdleMetric,
    /// `DataReadIOBytes` of each volume, in spec order.
    pub volume_reads: Vec<IdleMetric>,
}

impl IdleActivity {
    /// The idle alarm's metrics for a server whose file systems are `file_systems` (volume id,
    /// file system resource id).
    pub fn new(names: &ServerNames, file_systems: &[(String, String)]) -> Self {
        let local = names.server.as_str();
        let network_in = IdleMetric {
            id: "b_in".into(),
            namespace: "AWS/EC2".into(),
            metric_name: "NetworkIn".into(),
            dimensions: vec![("AutoScalingGroupName".into(), json!(names.name("")))],
            stat: "Sum",
        };
        let dns_hits = IdleMetric {
            id: "dns_hit".into(),
            namespace: metric_namespace(local),
            metric_name: DNS_METRIC.into(),
            dimensions: vec![("ServerName".into(), json!(local))],
            stat: "Maximum",
        };
        let volume_reads = file_systems
            .iter()
            .map(|(volume, fs_id)| IdleMetric {
                id: format!("efs_out_{}", volume.to_ascii_lowercase()),
                namespace: "AWS/EFS".into(),
                metric_name: "DataReadIOBytes".into(),
                dimensions: vec![("FileSystemId".into(), reference(fs_id.as_str(), "id"))],
                stat: "Sum",
            })
            .collect();
        IdleActivity {
            network_in,
            dns_hits,
            volume_reads,
        }
    }

    /// The idle alarm's metrics for a server of `base`, as [`render`] builds them.
    pub fn for_server(base: &BaseDocument, doc: &ContainerSpecDocument) -> Self {
        let local = doc.metadata.name.as_str();
        let file_systems: Vec<(String, String)> = doc
            .spec
            .volumes
            .keys()
            .map(|volume| {
                let local = crate::server::file_system_local(local, volume);
                (volume.clone(), format!("{}/{local}", kinds::FILE_SYSTEM))
            })
            .collect();
        IdleActivity::new(&ServerNames::new(&base.metadata.name, local), &file_systems)
    }

    /// Every raw metric: network in, DNS hits, then the volumes.
    pub fn metrics(&self) -> impl Iterator<Item = &IdleMetric> {
        [&self.network_in, &self.dns_hits]
            .into_iter()
            .chain(self.volume_reads.iter())
    }

    /// Substitutes the references in the dimensions (file system ids) with what `lookup`
    /// answers; returns those it could not answer.
    pub fn resolve(
        &mut self,
        lookup: &dyn Fn(&reconciler_engine::model::Reference) -> Option<Value>,
    ) -> Vec<reconciler_engine::model::Reference> {
        let mut unresolved = Vec::new();
        for metric in self.volume_reads.iter_mut() {
            for (_, value) in metric.dimensions.iter_mut() {
                unresolved.extend(reconciler_engine::model::resolve_refs(value, lookup));
            }
        }
        unresolved
    }

    /// The alarm's `metrics`: the raw queries and the math over them, `activity` returned.
    pub fn alarm_queries(&self) -> Vec<Value> {
        let mut metrics = vec![
            json!({ "id": "activity", "expression": "IF(traffic_in - volumes_out > 0, traffic_in - volumes_out, 0) + FILL(dns_hit, 0)", "label": "Traffic that counts as players", "returnData": true }),
            json!({ "id": "traffic_in", "expression": "b_in / PERIOD(b_in)", "label": "Bytes in per second", "returnData": false }),
            self.network_in.query(),
            self.dns_hits.query(),
        ];
        let mut efs_terms = Vec::new();
        for read in &self.volume_reads {
            metrics.push(read.query());
            efs_terms.push(format!("FILL({}, 0)", read.id));
        }
        let volumes_out = if efs_terms.is_empty() {
            "0".to_string()
        } else {
            format!("({}) / {IDLE_PERIOD_SECONDS}", efs_terms.join(" + "))
        };
        metrics.push(json!({ "id": "volumes_out", "expression": volumes_out, "label": "EFS bytes read per second", "returnData": false }));
        metrics
    }

    /// [`Self::alarm_queries`]' `activity` for one period: `None` when the group reported no
    /// network traffic (no instance ran), as the metric math yields no value then and the
    /// alarm treats the period as missing.
    pub fn activity(&self, sample: &ActivitySample) -> Option<f64> {
        let period = f64::from(IDLE_PERIOD_SECONDS);
        // traffic_in = b_in / PERIOD(b_in)
        let traffic_in = sample.network_in? / period;
        // volumes_out = (FILL(efs_out_a, 0) + ...) / 60, or 0 without volumes
        let volumes_out = sample.volume_reads.iter().flatten().sum::<f64>() / period;
        // IF(traffic_in - volumes_out > 0, traffic_in - volumes_out, 0) + FILL(dns_hit, 0)
        let players = traffic_in - volumes_out;
        Some(if players > 0.0 { players } else { 0.0 } + sample.dns_hits.unwrap_or(0.0))
    }
}

/// The handler of the Base's wake dispatcher (shared wake zone).
pub const DISPATCHER_HANDLER: &str = "wake-dispatcher";

/// The query log group of a Base whose servers share its root zone. Under
/// [`QUERY_LOG_PREFIX`], so the one log resource policy covers it; the `/` keeps it apart from
/// every server's group (`rc-<server>` never holds one).
pub fn shared_query_log_name(base: &str) -> String {
    format!("{QUERY_LOG_PREFIX}{base}/queries")
}

/// The name of a server's start function, which the dispatcher invokes.
pub fn start_function_name(server: &str) -> String {
    ServerNames::new("", server).name("start-system")
}

/// A zone's query logging: its log group and the logging config that writes to it.
struct QueryLogging {
    log_local: String,
    log_name: String,
    config_local: String,
    /// The zone's name, with the trailing dot.
    zone_name: String,
    /// The zone's id, or a reference to it.
    zone_id: Value,
    tags: indexmap::IndexMap<String, String>,
}

/// Adds a zone's query log group and logging config to `out`; returns the log group's id. The
/// config waits for the account's log resource policy, without which Route 53 may not write.
fn query_logging(out: &mut Vec<DesiredResource>, q: QueryLogging) -> String {
    let group = DesiredResource::new(kinds::LOG_GROUP, &q.log_local, GLOBAL_REGION, &q.log_name)
        .with_properties(json!({ "retentionInDays": QUERY_LOG_RETENTION_DAYS }));
    let group_id = group.id.to_string();
    out.push(tagged(group, q.tags));
    out.push(
        DesiredResource::new(
            kinds::QUERY_LOGGING_CONFIG,
            &q.config_local,
            GLOBAL_REGION,
            q.zone_name,
        )
        .with_properties(json!({
            "hostedZoneId": q.zone_id,
            "cloudWatchLogsLogGroupArn": reference(group_id.as_str(), "arn")
        }))
        .with_dependency(format!("{}/route53-query-logging", kinds::LOG_RESOURCE_POLICY).as_str()),
    );
    group_id
}

/// The Base-level wake path of a shared wake zone (`spec.domain.wakeZone: shared`), rendered
/// once per Base however many servers it has: the root zone's query logging config, its log
/// group, one subscription filter taking the A lookups under the domain, and the dispatcher
/// Lambda that routes each lookup to the server it names by invoking that server's start
/// function. The start function keeps doing the wake (metric, cooldown, rate limit), so the
/// dispatcher's role needs nothing but `lambda:InvokeFunction` on exactly those functions.
///
/// `servers` are the Base's servers in the input; with none, nothing is rendered (the
/// dispatcher would have nobody to wake, and IAM refuses a statement without resources).
pub fn render_shared(
    cx: &Context,
    base: &BaseDocument,
    servers: &[&ContainerSpecDocument],
) -> Vec<DesiredResource> {
    if base.spec.domain.wake_zone != WakeZone::Shared || servers.is_empty() {
        return Vec::new();
    }
    let names = BaseNames::new(&base.metadata.name);
    let local = base.metadata.name.as_str();
    let root = base
        .spec
        .domain
        .name
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let root_zone = base.spec.domain.hosted_zone_id.as_str();
    let mut out = Vec::new();

    let query_log_name = shared_query_log_name(local);
    let query_logs_id = query_logging(
        &mut out,
        QueryLogging {
            log_local: format!("{local}.wake-queries"),
            log_name: query_log_name.clone(),
            config_local: format!("{local}.wake"),
            zone_name: format!("{root}."),
            zone_id: json!(root_zone),
            tags: names.tags("wake"),
        },
    );

    // Routes: each server's DNS name to its start function, in name order for a stable
    // environment.
    let mut routes = std::collections::BTreeMap::new();
    for doc in servers {
        routes.insert(
            dns_name_of(doc, base),
            start_function_name(&doc.metadata.name),
        );
    }
    let function_arns: Vec<String> = routes
        .values()
        .map(|f| {
            format!(
                "arn:{}:lambda:{GLOBAL_REGION}:{}:function:{f}",
                cx.partition, cx.account_id
            )
        })
        .collect();
    let dispatcher = owned_function(
        cx,
        Owner {
            local: local.to_string(),
            fn_name: names.name(DISPATCHER_HANDLER),
            what: format!("Base {local}"),
            tags: names.tags("wake"),
        },
        GLOBAL_REGION,
        DISPATCHER_HANDLER,
        format!("Wakes the server of Base {local} whose name under {root} is looked up"),
        json!({
            "ROUTES": serde_json::to_string(&routes).expect("a map of strings serializes"),
            "FUNCTION_REGION": GLOBAL_REGION
        }),
        vec![json!({
            "Sid": "WakeBaseServers",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": function_arns
        })],
    );
    let dispatcher_id = dispatcher.id.clone();
    out.extend(dispatcher.resources.iter().cloned());
    // Names that no server's objects can take: servers never have a `dispatcher` handler.
    let statement = "wake-dispatcher-invoke";
    out.push(owned_permission(
        local,
        names.name(statement),
        &dispatcher,
        GLOBAL_REGION,
        "logs.amazonaws.com",
        json!(log_group_source_arn(cx, GLOBAL_REGION, &query_log_name)),
        statement,
    ));
    out.push(
        DesiredResource::new(
            kinds::SUBSCRIPTION_FILTER,
            &format!("{local}.wake-queries"),
            GLOBAL_REGION,
            names.name(DISPATCHER_HANDLER),
        )
        .with_properties(json!({
            "logGroupName": query_log_name,
            // The record type A as a quoted term with a space on each side: every A lookup of
            // the zone, whatever the spelling of its name. Filter terms are case-sensitive, and
            // resolvers may randomise the case of a name (DNS 0x20) or keep its trailing dot;
            // the dispatcher matches names without regard to either, so the filter only keeps
            // the other types (AAAA, TXT, ...) from invoking it.
            "filterPattern": "\" A \"",
            "destinationArn": reference(dispatcher_id.as_str(), "arn")
        }))
        .with_dependency(format!("{}/{local}-{statement}", kinds::LAMBDA_PERMISSION).as_str())
        .with_dependency(query_logs_id.as_str()),
    );
    out
}

/// Ids of the resources of the wake path that others refer to.
#[derive(Debug, Clone)]
pub struct WakeRefs {
    /// The server's hosted zone (none in shared mode: the record lives in the root zone).
    pub zone: Option<String>,
    /// The server's query log group (none in shared mode: the Base's group is used).
    pub query_log_group: Option<String>,
    /// The idle alarm, the instance-left-up alarm and the crash-loop alarm.
    pub alarms: Vec<String>,
    /// The state-change Lambda.
    pub state_change_function: String,
    /// The server's section of its Base's dashboard (none when `dashboard.enabled` is false).
    pub dashboard: Option<DashboardSection>,
}

/// Servers shown on one of a Base's dashboards. Each section runs two Logs Insights queries
/// when the dashboard loads, and an account runs at most 30 at once in the older quota (100 in
/// the newer), dashboards included; ten sections also keep a dashboard a readable length.
pub const SERVERS_PER_DASHBOARD: usize = 10;

/// One server's part of its Base's dashboard: a heading and the server's widgets, laid out
/// from the top of the section.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardSection {
    /// The server's `dashboard.intervalMinutes`.
    pub interval_minutes: u32,
    /// Widgets, their `y` counted from the section's top.
    pub widgets: Vec<Value>,
}

impl DashboardSection {
    /// Rows the section takes.
    fn height(&self) -> i64 {
        self.widgets
            .iter()
            .map(|w| w["y"].as_i64().unwrap_or(0) + w["height"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }
}

/// A Base's dashboards: the sections of its servers, [`SERVERS_PER_DASHBOARD`] to a dashboard,
/// in input order. One dashboard per Base instead of one per server: CloudWatch bills each
/// dashboard (USD 3 a month beyond an account's first three) whether anybody plays or not.
/// Each opens on the longest `intervalMinutes` among its servers.
pub fn base_dashboards(base: &BaseDocument, sections: &[DashboardSection]) -> Vec<DesiredResource> {
    sections
        .chunks(SERVERS_PER_DASHBOARD)
        .enumerate()
        .map(|(i, chunk)| {
            let local = if i == 0 {
                base.metadata.name.clone()
            } else {
                format!("{}-{}", base.metadata.name, i + 1)
            };
            let mut widgets = Vec::new();
            let mut top = 0;
            for section in chunk {
                for w in &section.widgets {
                    let mut w = w.clone();
                    w["y"] = json!(w["y"].as_i64().unwrap_or(0) + top);
                    widgets.push(w);
                }
                top += section.height();
            }
            let minutes = chunk
                .iter()
                .map(|s| s.interval_minutes)
                .max()
                .unwrap_or_default();
            DesiredResource::new(
                kinds::DASHBOARD,
                &local,
                &base.spec.region,
                dashboard_name(&local),
            )
            .with_properties(json!({
                "body": {
                    "start": format!("-PT{minutes}M"),
                    "periodOverride": "auto",
                    "widgets": widgets
                }
            }))
        })
        .collect()
}

/// A Lambda function with its log group and role.
struct Function {
    resources: Vec<DesiredResource>,
    id: String,
    name: String,
}

/// Whose a function is: a server's, or (the wake dispatcher) a Base's.
struct Owner {
    /// Prefix of the resource ids (the server's or the Base's `metadata.name`).
    local: String,
    /// `rc-<owner>-<handler>`.
    fn_name: String,
    /// What the role's description says it belongs to (`server mc`, `Base main`).
    what: String,
    /// Ownership tags.
    tags: indexmap::IndexMap<String, String>,
}

impl Owner {
    fn server(names: &ServerNames, handler: &str, component: &str) -> Owner {
        Owner {
            local: names.server.clone(),
            fn_name: names.name(handler),
            what: format!("server {}", names.server),
            tags: names.tags(component),
        }
    }
}

fn function(
    cx: &Context,
    names: &ServerNames,
    region: &str,
    handler: &str,
    description: String,
    environment: Value,
    policy_statements: Vec<Value>,
) -> Function {
    owned_function(
        cx,
        Owner::server(names, handler, "wake"),
        region,
        handler,
        description,
        environment,
        policy_statements,
    )
}

fn owned_function(
    cx: &Context,
    owner: Owner,
    region: &str,
    handler: &str,
    description: String,
    environment: Value,
    policy_statements: Vec<Value>,
) -> Function {
    let local = &owner.local;
    let fn_name = owner.fn_name.clone();
    let log_group = format!("/aws/lambda/{fn_name}");
    let log_arn = log_group_source_arn(cx, region, &log_group);
    let mut statements = vec![json!({
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": log_arn
    })];
    statements.extend(policy_statements);
    let logs = DesiredResource::new(
        kinds::LOG_GROUP,
        &format!("{local}-{handler}"),
        region,
        &log_group,
    )
    .with_properties(json!({ "retentionInDays": LAMBDA_LOG_RETENTION_DAYS }));
    let role = DesiredResource::new(
        kinds::ROLE,
        &format!("{local}-{handler}"),
        GLOBAL_REGION,
        &fn_name,
    )
    .with_properties(json!({
        "description": format!("{handler} Lambda of {}", owner.what),
        "assumeRolePolicyDocument": policies::assume_role("lambda.amazonaws.com"),
        "managedPolicyArns": [],
        "inlinePolicies": { handler: { "Version": "2012-10-17", "Statement": statements } }
    }));
    let mut env = environment;
    env["RECONCILER_HANDLER"] = Value::String(handler.to_string());
    let function = DesiredResource::new(
        kinds::FUNCTION,
        &format!("{local}-{handler}"),
        region,
        &fn_name,
    )
    .with_properties(json!({
        "description": bounded_text(&description, LAMBDA_DESCRIPTION_MAX),
        "runtime": "provided.al2023",
        "handler": "bootstrap",
        "architecture": "x86_64",
        "memorySize": 128,
        "timeout": 30,
        "roleArn": reference(role.id.as_str(), "arn"),
        "artifact": LAMBDA_ARTIFACT,
        "environment": env,
        "logGroup": log_group
    }))
    .with_dependency(logs.id.as_str());
    let id = function.id.to_string();
    Function {
        resources: vec![
            tagged(logs, owner.tags.clone()),
            tagged(role, owner.tags.clone()),
            tagged(function, owner.tags),
        ],
        id,
        name: fn_name,
    }
}

/// The source ARN CloudWatch Logs presents when a subscription filter of group `name` invokes a
/// function: the group's ARN with `:*`, as `DescribeLogGroups` spells it. A permission with the
/// bare ARN never matches, and `PutSubscriptionFilter` then fails ("Could not execute the lambda
/// function").
pub fn log_group_source_arn(cx: &Context, region: &str, name: &str) -> String {
    format!(
        "arn:{}:logs:{region}:{}:log-group:{name}:*",
        cx.partition, cx.account_id
    )
}

/// The subscription filter of a server's own zone: every successful A lookup, whatever the
/// spelling of the name. The zone holds only the server's names, and only its apex has an A
/// record, so `NOERROR` answers to A are exactly the lookups of the server's name; a deeper
/// sub-name or `_tcp.<name>` gets `NXDOMAIN`, and an AAAA lookup another type. The name is not
/// spelled, because filter terms are case-sensitive and resolvers may randomise a name's case
/// (DNS 0x20), which the query log keeps.
pub const SERVER_ZONE_FILTER: &str = "\" A NOERROR \"";

/// Lets `principal` invoke a function, only from `source_arn`. The statement id (the name) is
/// unique per server.
fn permission(
    names: &ServerNames,
    function: &Function,
    region: &str,
    principal: &str,
    source_arn: Value,
    statement: &str,
) -> DesiredResource {
    owned_permission(
        &names.server,
        names.name(statement),
        function,
        region,
        principal,
        source_arn,
        statement,
    )
}

fn owned_permission(
    local: &str,
    statement_id: String,
    function: &Function,
    region: &str,
    principal: &str,
    source_arn: Value,
    statement: &str,
) -> DesiredResource {
    DesiredResource::new(
        kinds::LAMBDA_PERMISSION,
        &format!("{local}-{statement}"),
        region,
        statement_id,
    )
    .with_properties(json!({
        "functionName": function.name,
        "action": "lambda:InvokeFunction",
        "principal": principal,
        "sourceArn": source_arn
    }))
    .with_dependency(function.id.as_str())
}

/// The grant of a function that starts or stops its server: set the group's desired capacity,
/// and nothing else of the group (`UpdateAutoScalingGroup` would let it change the launch
/// template, sizes and subnets too).
fn set_capacity_statement(sid: &str, asg_arn: &str) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": "autoscaling:SetDesiredCapacity",
        "Resource": asg_arn
    })
}

/// Renders the wake and sleep path of one server.
pub fn render(
    cx: &Context,
    base: &BaseDocument,
    base_refs: &BaseRefs,
    doc: &ContainerSpecDocument,
    server_refs: &ServerRefs,
) -> (Vec<DesiredResource>, WakeRefs) {
    let spec = &doc.spec;
    let names = ServerNames::new(&base.metadata.name, &doc.metadata.name);
    let local = doc.metadata.name.as_str();
    let region = base.spec.region.as_str();
    let account = cx.account_id.as_str();
    let partition = cx.partition.as_str();
    let dns = dns_name_of(doc, base);
    let asg_name = names.name("");
    let asg_arn = format!("arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{asg_name}");
    let namespace = metric_namespace(local);
    let wd = &spec.watchdog;
    let wake_limited =
        wd.wake_cooldown_minutes.unwrap_or(0) > 0 || wd.max_wakes_per_hour.unwrap_or(0) > 0;
    let mut out = Vec::new();

    // DNS. Per server: the server's own zone, delegated from the root zone, with its own query
    // log. Shared: the A record in the root zone, whose query log the Base renders once.
    let shared = base.spec.domain.wake_zone == WakeZone::Shared;
    let root_zone = base.spec.domain.hosted_zone_id.as_str();
    let mut zone_ref: Option<String> = None;
    let mut query_logs_ref: Option<String> = None;
    let query_log_name;
    if shared {
        query_log_name = shared_query_log_name(&base.metadata.name);
        out.push(
            DesiredResource::new(
                kinds::RECORD_SET,
                &format!("{local}.address"),
                GLOBAL_REGION,
                format!("{dns}. A in {root_zone}"),
            )
            .with_properties(json!({
                "hostedZoneId": root_zone,
                "name": format!("{dns}."),
                "type": "A",
                "ttl": RECORD_TTL,
                // Written once; from then on the instance-state-change Lambda owns the value.
                "initialValues": [UNAVAILABLE_IP]
            })),
        );
    } else {
        let zone =
            DesiredResource::new(kinds::HOSTED_ZONE, local, GLOBAL_REGION, format!("{dns}."))
                .with_properties(
                    json!({ "comment": bounded_text(&format!("Wakes server {local} when {dns} is looked up"), HOSTED_ZONE_COMMENT_MAX) }),
                );
        let zone_id = zone.id.to_string();
        out.push(tagged(zone, names.tags("wake")));

        out.push(
            DesiredResource::new(
                kinds::RECORD_SET,
                &format!("{local}-delegation"),
                GLOBAL_REGION,
                format!("{dns}. NS"),
            )
            .with_properties(json!({
                "hostedZoneId": root_zone,
                "name": format!("{dns}."),
                "type": "NS",
                "ttl": DELEGATION_TTL,
                "values": reference(zone_id.as_str(), "nameServers")
            })),
        );
        out.push(
            DesiredResource::new(
                kinds::RECORD_SET,
                &format!("{local}-address"),
                GLOBAL_REGION,
                format!("{dns}. A"),
            )
            .with_properties(json!({
                "hostedZoneId": reference(zone_id.as_str(), "id"),
                "name": format!("{dns}."),
                "type": "A",
                "ttl": RECORD_TTL,
                // Written once; from then on the instance-state-change Lambda owns the value.
                "initialValues": [UNAVAILABLE_IP]
            })),
        );

        // Query logging: the log group must exist, and Route 53 be allowed to write to it,
        // before the logging config is created.
        query_log_name = format!("{QUERY_LOG_PREFIX}{local}");
        let query_logs_id = query_logging(
            &mut out,
            QueryLogging {
                log_local: format!("{local}-queries"),
                log_name: query_log_name.clone(),
                config_local: local.to_string(),
                zone_name: format!("{dns}."),
                zone_id: reference(zone_id.as_str(), "id"),
                tags: names.tags("wake"),
            },
        );
        zone_ref = Some(zone_id);
        query_logs_ref = Some(query_logs_id);
    }

    // The start Lambda, invoked by the query log's subscription filter. With wake limits it
    // reads the group and records its wakes in a tag on it.
    let mut start_env = json!({
        "ASG_NAME": asg_name,
        "ASG_REGION": region,
        "METRIC_NAMESPACE": namespace,
        "METRIC_NAME": DNS_METRIC,
        "METRIC_DIMENSIONS": json!({ "ServerName": local }).to_string(),
        "METRIC_VALUE": (spec.watchdog.threshold + 1).to_string()
    });
    let mut start_statements = vec![
        json!({
            "Sid": "PushActivityMetric",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            // PutMetricData has no resource type: AWS requires `*`; the condition scopes it.
            "Resource": "*",
            "Condition": { "StringEquals": { "cloudwatch:namespace": namespace } }
        }),
        set_capacity_statement("WakeServerGroup", &asg_arn),
    ];
    if wake_limited {
        start_env["WAKE_COOLDOWN_MINUTES"] =
            json!(wd.wake_cooldown_minutes.unwrap_or(0).to_string());
        start_env["MAX_WAKES_PER_HOUR"] = json!(wd.max_wakes_per_hour.unwrap_or(0).to_string());
        start_statements.push(json!({
            "Sid": "RecordWakes",
            "Effect": "Allow",
            "Action": "autoscaling:CreateOrUpdateTags",
            "Resource": asg_arn,
            // The wake history tag only: every key the request writes is that one, and it
            // writes one (a `ForAllValues` condition alone holds for a request without keys).
            "Condition": {
                "ForAllValues:StringEquals": { "aws:TagKeys": [WAKES_TAG] },
                "Null": { "aws:TagKeys": "false" }
            }
        }));
        start_statements.push(json!({
            "Sid": "ReadServerGroup",
            "Effect": "Allow",
            // Describe calls have no resource-level permissions: AWS requires `*`.
            "Action": "autoscaling:DescribeAutoScalingGroups",
            "Resource": "*"
        }));
    }
    let start = function(
        cx,
        &names,
        GLOBAL_REGION,
        "start-system",
        format!("Wakes server {local}: a DNS query for {dns} raises its group to one instance"),
        start_env,
        start_statements,
    );
    let start_id = start.id.clone();
    out.extend(start.resources.iter().cloned());
    // In shared mode the Base's dispatcher invokes the start function (its role allows exactly
    // that), so the function needs no permission or filter of its own.
    if let Some(query_logs_id) = &query_logs_ref {
        out.push(permission(
            &names,
            &start,
            GLOBAL_REGION,
            "logs.amazonaws.com",
            json!(log_group_source_arn(cx, GLOBAL_REGION, &query_log_name)),
            "query-log-invoke",
        ));
        out.push(
            DesiredResource::new(
                kinds::SUBSCRIPTION_FILTER,
                &format!("{local}-queries"),
                GLOBAL_REGION,
                names.name("a-queries"),
            )
            .with_properties(json!({
                "logGroupName": query_log_name,
                "filterPattern": SERVER_ZONE_FILTER,
                "destinationArn": reference(start_id.as_str(), "arn")
            }))
            .with_dependency(
                format!("{}/{local}-query-log-invoke", kinds::LAMBDA_PERMISSION).as_str(),
            )
            .with_dependency(query_logs_id.as_str()),
        );
    }

    // Sleep: one policy that sets the group to exactly zero, whatever triggers it.
    let policy = DesiredResource::new(
        kinds::SCALING_POLICY,
        local,
        region,
        names.name("scale-to-zero"),
    )
    .with_properties(json!({
        "autoScalingGroupName": asg_name,
        "policyType": "StepScaling",
        "adjustmentType": "ExactCapacity",
        "stepAdjustments": [
            { "metricIntervalUpperBound": 0.0, "scalingAdjustment": 0 },
            { "metricIntervalLowerBound": 0.0, "scalingAdjustment": 0 }
        ]
    }))
    .with_dependency(server_refs.asg.as_str());
    let policy_id = policy.id.to_string();
    out.push(policy);

    let asg_dim = json!([{ "name": "AutoScalingGroupName", "value": asg_name }]);
    let metrics = IdleActivity::new(&names, &server_refs.file_systems).alarm_queries();

    // With a boot grace the idle alarm invokes the idle-stop Lambda, which checks the
    // instance's launch time before it scales in; without one it triggers the policy directly.
    let idle_alarm_name = names.name("idle");
    let idle_action = if wd.boot_grace() > 0 {
        let alarm_arn =
            format!("arn:{partition}:cloudwatch:{region}:{account}:alarm:{idle_alarm_name}");
        let idle_stop = function(
            cx,
            &names,
            region,
            "idle-stop",
            format!(
                "Stops server {local} when idle, unless its instance is younger than {} minutes",
                wd.boot_grace()
            ),
            json!({
                "ASG_NAME": asg_name,
                "ASG_REGION": region,
                "BOOT_GRACE_MINUTES": wd.boot_grace().to_string(),
                "ALARM_NAME": idle_alarm_name
            }),
            vec![
                set_capacity_statement("StopServerGroup", &asg_arn),
                json!({
                    "Sid": "ResetIdleAlarm",
                    "Effect": "Allow",
                    "Action": "cloudwatch:SetAlarmState",
                    "Resource": alarm_arn
                }),
                json!({
                    "Sid": "ReadInstances",
                    "Effect": "Allow",
                    // Describe calls have no resource-level permissions: AWS requires `*`.
                    "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
                    "Resource": "*"
                }),
            ],
        );
        out.extend(idle_stop.resources.iter().cloned());
        out.push(permission(
            &names,
            &idle_stop,
            region,
            "lambda.alarms.cloudwatch.amazonaws.com",
            json!(alarm_arn),
            "idle-alarm-invoke",
        ));
        reference(idle_stop.id.as_str(), "arn")
    } else {
        reference(policy_id.as_str(), "arn")
    };
    let idle_description = if wd.boot_grace() > 0 {
        format!(
            "Stops server {local} after {} idle minutes, not within {} minutes of its launch",
            wd.minutes_without_connections,
            wd.boot_grace()
        )
    } else {
        format!(
            "Stops server {local} after {} idle minutes",
            wd.minutes_without_connections
        )
    };
    let idle = DesiredResource::new(
        kinds::ALARM,
        &format!("{local}-idle"),
        region,
        &idle_alarm_name,
    )
    .with_properties(json!({
        "alarmDescription": idle_description,
        "metrics": metrics,
        "comparisonOperator": "LessThanOrEqualToThreshold",
        "threshold": wd.threshold,
        "evaluationPeriods": wd.minutes_without_connections,
        "datapointsToAlarm": wd.minutes_without_connections,
        "treatMissingData": "missing",
        "alarmActions": [idle_action]
    }));
    let idle_id = idle.id.to_string();
    out.push(tagged(idle, names.tags("sleep")));

    let mut left_up_actions = vec![reference(base_refs.admin_topic.as_str(), "arn")];
    if wd.instance_left_up.should_stop {
        left_up_actions.push(reference(policy_id.as_str(), "arn"));
    }
    let periods = wd.instance_left_up.duration_hours * 60;
    let left_up = DesiredResource::new(kinds::ALARM, &format!("{local}-left-up"), region, names.name("left-up"))
        .with_properties(json!({
            "alarmDescription": format!("Server {local} has been up {} hours", wd.instance_left_up.duration_hours),
            "metrics": [
                { "id": "up", "expression": "network_in >= 0", "label": "Instance is up", "returnData": true },
                { "id": "network_in", "metric": { "namespace": "AWS/EC2", "metricName": "NetworkIn", "dimensions": asg_dim }, "period": 60, "stat": "Sum", "returnData": false }
            ],
            "comparisonOperator": "GreaterThanOrEqualToThreshold",
            "threshold": 1,
            "evaluationPeriods": periods,
            "datapointsToAlarm": periods,
            "treatMissingData": "notBreaching",
            "alarmActions": left_up_actions
        }));
    let left_up_id = left_up.id.to_string();
    out.push(tagged(left_up, names.tags("sleep")));

    // Crash loop: a task that fails to start or whose container exits non-zero stops the server.
    let cluster_arn = names.cluster_arn(partition, account, region);
    let crash = function(
        cx,
        &names,
        region,
        "break-crash-loop",
        format!("Stops server {local} when its container crashes or cannot start"),
        json!({ "ASG_NAME": asg_name, "ASG_REGION": region }),
        vec![set_capacity_statement("StopServerGroup", &asg_arn)],
    );
    let crash_id = crash.id.clone();
    out.extend(crash.resources.iter().cloned());
    let crash_rule = DesiredResource::new(kinds::EVENT_RULE, &format!("{local}-crash-loop"), region, names.name("crash-loop"))
        .with_properties(json!({
            "description": format!("Stops server {local} when its container crashes or cannot start"),
            "state": "ENABLED",
            "eventPattern": {
                "source": ["aws.ecs"],
                "detail-type": ["ECS Task State Change"],
                "detail": {
                    "clusterArn": [cluster_arn],
                    "desiredStatus": ["STOPPED"],
                    "$or": [
                        { "stopCode": ["TaskFailedToStart"] },
                        { "stopCode": ["EssentialContainerExited"], "containers": { "exitCode": [{ "anything-but": 0 }] } }
                    ]
                }
            },
            "targets": [{ "id": "stop-server", "arn": reference(crash_id.as_str(), "arn") }]
        }));
    let crash_rule_id = crash_rule.id.to_string();
    out.push(tagged(crash_rule, names.tags("sleep")));
    out.push(permission(
        &names,
        &crash,
        region,
        "events.amazonaws.com",
        reference(crash_rule_id.as_str(), "arn"),
        "crash-loop-invoke",
    ));
    let crash_alarm = DesiredResource::new(kinds::ALARM, &format!("{local}-crash-loop"), region, names.name("crash-loop"))
        .with_properties(json!({
            "alarmDescription": format!("Server {local} was stopped because its container crashed or could not start"),
            "metrics": [
                { "id": "invocations", "metric": { "namespace": "AWS/Lambda", "metricName": "Invocations", "dimensions": [{ "name": "FunctionName", "value": names.name("break-crash-loop") }] }, "period": 60, "stat": "Maximum", "returnData": true }
            ],
            "comparisonOperator": "GreaterThanThreshold",
            "threshold": 0,
            "evaluationPeriods": 1,
            "datapointsToAlarm": 1,
            "treatMissingData": "notBreaching",
            "alarmActions": [reference(base_refs.admin_topic.as_str(), "arn"), reference(server_refs.topic.as_str(), "arn")]
        }));
    let crash_alarm_id = crash_alarm.id.to_string();
    out.push(tagged(crash_alarm, names.tags("sleep")));

    // The A record follows the instance: its public IP on launch, the unavailable address on
    // termination. Both topics hear about it.
    let (state_zone, update_record) = match &zone_ref {
        Some(zone_id) => (
            reference(zone_id.as_str(), "id"),
            json!({
                "Sid": "UpdateServerRecord",
                "Effect": "Allow",
                "Action": "route53:ChangeResourceRecordSets",
                "Resource": { "$join": [format!("arn:{partition}:route53:::hostedzone/"), reference(zone_id.as_str(), "id")] }
            }),
        ),
        // The root zone holds other records (the user's, the other servers'): the conditions
        // narrow the grant to upserts of this server's A record.
        None => (
            json!(root_zone),
            json!({
                "Sid": "UpdateServerRecord",
                "Effect": "Allow",
                "Action": "route53:ChangeResourceRecordSets",
                "Resource": format!("arn:{partition}:route53:::hostedzone/{root_zone}"),
                "Condition": {
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [dns],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
                        "route53:ChangeResourceRecordSetsActions": ["UPSERT"]
                    }
                }
            }),
        ),
    };
    let state = function(
        cx,
        &names,
        region,
        "instance-state-change",
        format!("Points {dns} at server {local}'s instance, or at {UNAVAILABLE_IP} when it stops"),
        json!({
            "ASG_REGION": region,
            "HOSTED_ZONE_ID": state_zone,
            "RECORD_NAME": dns,
            "RECORD_TTL": RECORD_TTL.to_string(),
            "UNAVAILABLE_IP": UNAVAILABLE_IP
        }),
        vec![
            update_record,
            json!({
                "Sid": "ReadInstances",
                "Effect": "Allow",
                // Describe calls have no resource-level permissions: AWS requires `*`.
                "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
                "Resource": "*"
            }),
        ],
    );
    let state_id = state.id.clone();
    out.extend(state.resources.iter().cloned());
    for (direction, detail_type, message) in [
        (
            "up",
            "EC2 Instance Launch Successful",
            format!("Server {local} is starting: connect to {dns} in a minute or two."),
        ),
        (
            "down",
            "EC2 Instance-terminate Lifecycle Action",
            format!("Server {local} has stopped."),
        ),
    ] {
        let rule = DesiredResource::new(kinds::EVENT_RULE, &format!("{local}-{direction}"), region, names.name(&format!("instance-{direction}")))
            .with_properties(json!({
                "description": format!("Keeps {dns} pointing at server {local}"),
                "state": "ENABLED",
                "eventPattern": {
                    "source": ["aws.autoscaling"],
                    "detail-type": [detail_type],
                    "detail": { "AutoScalingGroupName": [asg_name] }
                },
                "targets": [
                    { "id": "update-record", "arn": reference(state_id.as_str(), "arn") },
                    { "id": "admin-alert", "arn": reference(base_refs.admin_topic.as_str(), "arn"), "input": Value::String(message.clone()).to_string() },
                    { "id": "server-alert", "arn": reference(server_refs.topic.as_str(), "arn"), "input": Value::String(message).to_string() }
                ]
            }));
        let rule_id = rule.id.to_string();
        out.push(tagged(rule, names.tags("wake")));
        out.push(permission(
            &names,
            &state,
            region,
            "events.amazonaws.com",
            reference(rule_id.as_str(), "arn"),
            &format!("instance-{direction}-invoke"),
        ));
    }

    let section = spec.dashboard.enabled.then(|| {
        dashboard_section(
            cx,
            &names,
            doc,
            region,
            &dns,
            &query_log_name,
            &metrics_for_dashboard(&asg_dim, &namespace, local),
        )
    });

    let refs = WakeRefs {
        zone: zone_ref,
        query_log_group: query_logs_ref,
        alarms: vec![idle_id, left_up_id, crash_alarm_id],
        state_change_function: state_id,
        dashboard: section,
    };
    (out, refs)
}

/// The traffic queries the dashboard plots: bytes in per second and DNS hits.
fn metrics_for_dashboard(asg_dim: &Value, namespace: &str, local: &str) -> Vec<Value> {
    let asg = &asg_dim[0];
    vec![
        json!([{ "expression": "b_in / PERIOD(b_in)", "label": "Bytes in per second", "id": "traffic_in", "yAxis": "right" }]),
        json!(["AWS/EC2", "NetworkIn", asg["name"], asg["value"], { "id": "b_in", "visible": false, "stat": "Sum" }]),
        json!([namespace, DNS_METRIC, "ServerName", local, { "id": "dns_hit", "stat": "Maximum", "label": "DNS wake-ups", "yAxis": "right" }]),
    ]
}

/// The server's section of its Base's dashboard: a heading with its DNS name, DNS wake-ups from
/// the query log, the state-change Lambda, whether an instance is up, the alarms, traffic, the
/// container's logs and its CPU and memory.
fn dashboard_section(
    cx: &Context,
    names: &ServerNames,
    doc: &ContainerSpecDocument,
    region: &str,
    dns: &str,
    query_log_name: &str,
    traffic: &[Value],
) -> DashboardSection {
    let spec = &doc.spec;
    let local = doc.metadata.name.as_str();
    let alarm_arn = |suffix: &str| {
        format!(
            "arn:{}:cloudwatch:{region}:{}:alarm:{}",
            cx.partition,
            cx.account_id,
            names.name(suffix)
        )
    };
    let asg_name = names.name("");
    let container_logs = format!("/reconciler/{local}/container");
    let log_fields = if spec.dashboard.show_container_log_timestamp {
        "fields @timestamp, @message"
    } else {
        "fields @message"
    };
    let widgets = json!([
        {
            "type": "text", "x": 0, "y": 0, "width": 24, "height": 2,
            "properties": { "markdown": format!("## Server {local} · {dns}") }
        },
        {
            "type": "log", "x": 0, "y": 2, "width": 12, "height": 4,
            "properties": {
                "title": format!("DNS lookups that wake the server [{GLOBAL_REGION}: {query_log_name}]"),
                "region": GLOBAL_REGION,
                "view": "table",
                "query": format!("SOURCE '{query_log_name}' | fields @timestamp, substr(@message, 25) as message | filter @message like /(?i) {} A /", dns.replace('.', "\\.")),
            }
        },
        {
            "type": "metric", "x": 12, "y": 2, "width": 12, "height": 6,
            "properties": {
                "title": "(Lambda) Instance state changes",
                "region": region,
                "view": "timeSeries",
                "metrics": [["AWS/Lambda", "Invocations", "FunctionName", names.name("instance-state-change"), { "stat": "Maximum", "period": 60, "yAxis": "right" }]],
                "yAxis": { "right": { "label": "Count", "showUnits": false } },
                "legend": { "position": "right" }
            }
        },
        {
            "type": "metric", "x": 0, "y": 6, "width": 4, "height": 6,
            "properties": {
                "title": "Instance up",
                "region": region,
                "view": "gauge",
                "metrics": [
                    [{ "expression": "network_in >= 0", "label": "Instance is up", "id": "up" }],
                    ["AWS/EC2", "NetworkIn", "AutoScalingGroupName", asg_name, { "id": "network_in", "visible": false, "stat": "Sum", "period": 60 }]
                ],
                "yAxis": { "left": { "min": 0, "max": 1 } },
                "liveData": true,
                "start": "-PT1M"
            }
        },
        {
            "type": "alarm", "x": 4, "y": 6, "width": 8, "height": 6,
            "properties": {
                "title": format!("Alarms [{local}]"),
                "alarms": [alarm_arn("idle"), alarm_arn("left-up"), alarm_arn("crash-loop")],
                "sortBy": "stateUpdatedTimestamp"
            }
        },
        {
            "type": "metric", "x": 12, "y": 8, "width": 12, "height": 6,
            "properties": {
                "title": "Traffic in (bytes per second) and DNS wake-ups",
                "region": region,
                "view": "timeSeries",
                "metrics": traffic,
                "period": 60,
                "stat": "Sum",
                "yAxis": { "right": { "label": "Bytes/s", "showUnits": false } },
                "legend": { "position": "right" }
            }
        },
        {
            "type": "metric", "x": 0, "y": 12, "width": 12, "height": 6,
            "properties": {
                "title": format!("(Alarm) {}", names.name("idle")),
                "region": region,
                "annotations": { "alarms": [alarm_arn("idle")] },
                "yAxis": { "left": { "label": "Bytes/s", "showUnits": false } }
            }
        },
        {
            "type": "log", "x": 12, "y": 14, "width": 12, "height": 10,
            "properties": {
                "title": format!("Container logs [{region}: {container_logs}]"),
                "region": region,
                "view": "table",
                "query": format!("SOURCE '{container_logs}' | {log_fields} | sort @timestamp desc"),
            }
        },
        {
            "type": "metric", "x": 0, "y": 18, "width": 12, "height": 6,
            "properties": {
                "title": format!("(ECS) Container utilization [{}]", spec.ec2.instance_type),
                "region": region,
                "view": "timeSeries",
                "metrics": [
                    ["AWS/ECS", "CPUUtilization", "ClusterName", names.cluster(), "ServiceName", asg_name, { "stat": "Maximum", "period": 60, "yAxis": "right" }],
                    ["AWS/ECS", "MemoryUtilization", "ClusterName", names.cluster(), "ServiceName", asg_name, { "stat": "Maximum", "period": 60, "yAxis": "right" }]
                ],
                "yAxis": { "right": { "label": "Percent", "showUnits": false } },
                "legend": { "position": "right" }
            }
        }
    ]);
    DashboardSection {
        interval_minutes: spec.dashboard.interval_minutes,
        widgets: widgets.as_array().cloned().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(minutes: u32) -> DashboardSection {
        DashboardSection {
            interval_minutes: minutes,
            widgets: vec![
                json!({ "type": "text", "x": 0, "y": 0, "width": 24, "height": 2 }),
                json!({ "type": "log", "x": 0, "y": 2, "width": 12, "height": 4 }),
                json!({ "type": "log", "x": 12, "y": 2, "width": 12, "height": 10 }),
            ],
        }
    }

    #[test]
    fn a_base_shows_ten_servers_a_dashboard_stacked_in_order() {
        let base: BaseDocument = serde_yaml_ng::from_str(
            "apiVersion: reconciler.dev/v1alpha1\nkind: Base\nmetadata:\n  name: main\nspec:\n  region: eu-west-1\n  domain:\n    name: example.com\n    hostedZoneId: Z1\n  alerts:\n    email: a@example.com\n",
        )
        .unwrap();
        let sections: Vec<DashboardSection> = (0..25)
            .map(|i| section(if i == 12 { 90 } else { 30 }))
            .collect();
        let dashboards = base_dashboards(&base, &sections);
        let names: Vec<&str> = dashboards.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rc-main-dashboard",
                "rc-main-2-dashboard",
                "rc-main-3-dashboard"
            ]
        );
        let widgets =
            |d: &DesiredResource| d.properties["body"]["widgets"].as_array().unwrap().clone();
        assert_eq!(
            dashboards
                .iter()
                .map(|d| widgets(d).len())
                .collect::<Vec<_>>(),
            [30, 30, 15]
        );
        // Sections stack 12 rows apart; the second dashboard opens on its longest interval.
        let ys: Vec<i64> = widgets(&dashboards[0])
            .iter()
            .filter(|w| w["type"] == "text")
            .map(|w| w["y"].as_i64().unwrap())
            .collect();
        assert_eq!(ys, (0..10).map(|i| i * 12).collect::<Vec<_>>());
        assert_eq!(dashboards[0].properties["body"]["start"], "-PT30M");
        assert_eq!(dashboards[1].properties["body"]["start"], "-PT90M");
        // Logs Insights queries per dashboard stay within the account's oldest quota (30).
        for d in &dashboards {
            let logs = widgets(d).iter().filter(|w| w["type"] == "log").count();
            assert!(logs <= 20, "{logs}");
        }
        assert!(base_dashboards(&base, &[]).is_empty());
    }

    fn activity(volumes: &[&str]) -> IdleActivity {
        let fs: Vec<(String, String)> = volumes
            .iter()
            .map(|v| (v.to_string(), format!("{}/mc-{v}", kinds::FILE_SYSTEM)))
            .collect();
        IdleActivity::new(&ServerNames::new("main", "mc"), &fs)
    }

    #[test]
    fn activity_is_bytes_in_per_second_minus_volume_reads_plus_dns_hits() {
        let a = activity(&["data", "mods"]);
        let sample = ActivitySample {
            network_in: Some(60_000.0),
            dns_hits: None,
            volume_reads: vec![Some(6_000.0), None],
        };
        // 1000 B/s in, 100 B/s of it EFS reads.
        assert_eq!(a.activity(&sample), Some(900.0));
        // Reads above the traffic clamp at zero; a DNS hit counts on top.
        let sample = ActivitySample {
            network_in: Some(600.0),
            dns_hits: Some(5.0),
            volume_reads: vec![Some(6_000.0), Some(6_000.0)],
        };
        assert_eq!(a.activity(&sample), Some(5.0));
        // No network datapoint: no instance ran, no value (as the alarm's math).
        let sample = ActivitySample {
            network_in: None,
            dns_hits: Some(5.0),
            volume_reads: vec![],
        };
        assert_eq!(a.activity(&sample), None);
        assert_eq!(
            activity(&[]).activity(&ActivitySample {
                network_in: Some(120.0),
                ..ActivitySample::default()
            }),
            Some(2.0)
        );
    }

    #[test]
    fn the_alarm_math_names_every_query_it_reads() {
        let a = activity(&["Data"]);
        let queries = a.alarm_queries();
        let ids: Vec<&str> = queries.iter().filter_map(|q| q["id"].as_str()).collect();
        assert_eq!(
            ids,
            [
                "activity",
                "traffic_in",
                "b_in",
                "dns_hit",
                "efs_out_data",
                "volumes_out"
            ]
        );
        assert_eq!(queries[5]["expression"], "(FILL(efs_out_data, 0)) / 60");
        assert_eq!(queries[0]["returnData"], true);
        let mut a = a;
        let unresolved = a.resolve(&|_| Some(json!("fs-123")));
        assert!(unresolved.is_empty());
        assert_eq!(a.volume_reads[0].dimensions[0].1, json!("fs-123"));
    }
}
