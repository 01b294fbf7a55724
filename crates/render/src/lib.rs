//! Render: a pure function from the validated documents to the desired resource graph.
//!
//! No network call happens here. Everything AWS assigns (ids, ARNs with random parts) is a
//! reference the engine resolves at apply time; everything deterministic (names, ARNs built
//! from account, region and name) is written out, so a plan can show it. The resource kinds and
//! the shape of their properties are the contract with the provider (`crates/aws`): the
//! `reconciler-kinds` crate, one module per kind.

pub mod base;
pub mod naming;
pub mod policies;
pub mod record;
pub mod server;
pub mod user_data;
pub mod wake;

use crate::naming::{Owner, TAG_MANAGED_BY, TAG_OWNER};
use reconciler_engine::model::{DesiredGraph, DesiredResource, GraphErrors};
use reconciler_spec::{
    base_of, Alerts, BaseDocument, ContainerSpecDocument, InstanceCatalog, Lookup, SpecSet,
};
use serde_json::{json, Value};

/// The resource kinds by name. Each kind's properties, diff rules and outputs are its module in
/// `reconciler-kinds` (linked from each name here), shared by render and the provider.
pub mod kinds {
    use reconciler_kinds::Properties;

    /// [`reconciler_kinds::ec2::Vpc`].
    pub const VPC: &str = <reconciler_kinds::ec2::Vpc as Properties>::KIND;
    /// [`reconciler_kinds::ec2::InternetGateway`].
    pub const INTERNET_GATEWAY: &str = <reconciler_kinds::ec2::InternetGateway as Properties>::KIND;
    /// [`reconciler_kinds::ec2::Subnet`].
    pub const SUBNET: &str = <reconciler_kinds::ec2::Subnet as Properties>::KIND;
    /// [`reconciler_kinds::ec2::RouteTable`].
    pub const ROUTE_TABLE: &str = <reconciler_kinds::ec2::RouteTable as Properties>::KIND;
    /// [`reconciler_kinds::ec2::SecurityGroup`].
    pub const SECURITY_GROUP: &str = <reconciler_kinds::ec2::SecurityGroup as Properties>::KIND;
    /// [`reconciler_kinds::ec2::DefaultSecurityGroup`].
    pub const DEFAULT_SECURITY_GROUP: &str =
        <reconciler_kinds::ec2::DefaultSecurityGroup as Properties>::KIND;
    /// [`reconciler_kinds::ec2::KeyPair`].
    pub const KEY_PAIR: &str = <reconciler_kinds::ec2::KeyPair as Properties>::KIND;
    /// [`reconciler_kinds::ec2::LaunchTemplate`].
    pub const LAUNCH_TEMPLATE: &str = <reconciler_kinds::ec2::LaunchTemplate as Properties>::KIND;
    /// [`reconciler_kinds::autoscaling::Group`].
    pub const AUTO_SCALING_GROUP: &str = <reconciler_kinds::autoscaling::Group as Properties>::KIND;
    /// [`reconciler_kinds::iam::Role`].
    pub const ROLE: &str = <reconciler_kinds::iam::Role as Properties>::KIND;
    /// [`reconciler_kinds::iam::InstanceProfile`].
    pub const INSTANCE_PROFILE: &str = <reconciler_kinds::iam::InstanceProfile as Properties>::KIND;
    /// [`reconciler_kinds::logs::LogGroup`].
    pub const LOG_GROUP: &str = <reconciler_kinds::logs::LogGroup as Properties>::KIND;
    /// [`reconciler_kinds::efs::FileSystem`].
    pub const FILE_SYSTEM: &str = <reconciler_kinds::efs::FileSystem as Properties>::KIND;
    /// [`reconciler_kinds::efs::MountTarget`].
    pub const MOUNT_TARGET: &str = <reconciler_kinds::efs::MountTarget as Properties>::KIND;
    /// [`reconciler_kinds::backup::Vault`].
    pub const BACKUP_VAULT: &str = <reconciler_kinds::backup::Vault as Properties>::KIND;
    /// [`reconciler_kinds::backup::Plan`].
    pub const BACKUP_PLAN: &str = <reconciler_kinds::backup::Plan as Properties>::KIND;
    /// [`reconciler_kinds::backup::Selection`].
    pub const BACKUP_SELECTION: &str = <reconciler_kinds::backup::Selection as Properties>::KIND;
    /// [`reconciler_kinds::sns::Topic`].
    pub const TOPIC: &str = <reconciler_kinds::sns::Topic as Properties>::KIND;
    /// [`reconciler_kinds::ecs::Cluster`].
    pub const CLUSTER: &str = <reconciler_kinds::ecs::Cluster as Properties>::KIND;
    /// [`reconciler_kinds::ecs::CapacityProvider`].
    pub const CAPACITY_PROVIDER: &str =
        <reconciler_kinds::ecs::CapacityProvider as Properties>::KIND;
    /// [`reconciler_kinds::ecs::ClusterCapacityProviders`].
    pub const CLUSTER_CAPACITY_PROVIDERS: &str =
        <reconciler_kinds::ecs::ClusterCapacityProviders as Properties>::KIND;
    /// [`reconciler_kinds::ecs::TaskDefinition`].
    pub const TASK_DEFINITION: &str = <reconciler_kinds::ecs::TaskDefinition as Properties>::KIND;
    /// [`reconciler_kinds::ecs::Service`].
    pub const SERVICE: &str = <reconciler_kinds::ecs::Service as Properties>::KIND;
    /// [`reconciler_kinds::logs::ResourcePolicy`].
    pub const LOG_RESOURCE_POLICY: &str =
        <reconciler_kinds::logs::ResourcePolicy as Properties>::KIND;
    /// [`reconciler_kinds::logs::SubscriptionFilter`].
    pub const SUBSCRIPTION_FILTER: &str =
        <reconciler_kinds::logs::SubscriptionFilter as Properties>::KIND;
    /// [`reconciler_kinds::route53::HostedZone`].
    pub const HOSTED_ZONE: &str = <reconciler_kinds::route53::HostedZone as Properties>::KIND;
    /// [`reconciler_kinds::route53::RecordSet`].
    pub const RECORD_SET: &str = <reconciler_kinds::route53::RecordSet as Properties>::KIND;
    /// [`reconciler_kinds::route53::QueryLoggingConfig`].
    pub const QUERY_LOGGING_CONFIG: &str =
        <reconciler_kinds::route53::QueryLoggingConfig as Properties>::KIND;
    /// [`reconciler_kinds::lambda::Function`].
    pub const FUNCTION: &str = <reconciler_kinds::lambda::Function as Properties>::KIND;
    /// [`reconciler_kinds::lambda::Permission`].
    pub const LAMBDA_PERMISSION: &str = <reconciler_kinds::lambda::Permission as Properties>::KIND;
    /// [`reconciler_kinds::autoscaling::ScalingPolicy`].
    pub const SCALING_POLICY: &str =
        <reconciler_kinds::autoscaling::ScalingPolicy as Properties>::KIND;
    /// [`reconciler_kinds::cloudwatch::Alarm`].
    pub const ALARM: &str = <reconciler_kinds::cloudwatch::Alarm as Properties>::KIND;
    /// [`reconciler_kinds::events::Rule`].
    pub const EVENT_RULE: &str = <reconciler_kinds::events::Rule as Properties>::KIND;
    /// [`reconciler_kinds::cloudwatch::Dashboard`].
    pub const DASHBOARD: &str = <reconciler_kinds::cloudwatch::Dashboard as Properties>::KIND;
    /// [`reconciler_kinds::ssm::Parameter`].
    pub const PARAMETER: &str = <reconciler_kinds::ssm::Parameter as Properties>::KIND;
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
    render_resources_owned(cx, set, catalog, None)
}

/// [`render`], every tagged resource also tagged with its `owner` when there is one.
pub fn render_owned(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
    owner: Option<&Owner>,
) -> Result<DesiredGraph, RenderError> {
    Ok(DesiredGraph::new(render_resources_owned(
        cx, set, catalog, owner,
    )?)?)
}

/// Tags each resource that carries the ownership tags with its [`TAG_OWNER`]. Applied before
/// the apply records are made, so their fingerprints cover the tag.
fn own(owner: Option<&Owner>, resources: &mut [DesiredResource]) {
    let Some(owner) = owner else {
        return;
    };
    for r in resources {
        if !r.tags.contains_key(TAG_MANAGED_BY) {
            continue;
        }
        if let Some(value) = owner.tag_value(&r.tags) {
            r.tags.insert(TAG_OWNER.to_string(), value);
        }
    }
}

/// [`render_resources`], every tagged resource also tagged with its `owner` when there is one.
pub fn render_resources_owned(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
    owner: Option<&Owner>,
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
        bound_roles(cx, &base.doc, &mut resources);
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
        bound_roles(cx, &base.doc, &mut resources);
        if let Some(section) = wake_refs.dashboard {
            sections
                .entry(base.doc.metadata.name.clone())
                .or_default()
                .push(section);
        }
        own(owner, &mut resources);
        let mut server_record = [record::server_record(&base.doc, &server.doc, &resources)];
        own(owner, &mut server_record);
        servers_out.extend(server_record);
        servers_out.extend(resources);
    }
    // The servers' dashboards are the Base's: one dashboard shows many servers.
    for (base, mut resources) in bases {
        let base_sections = sections.remove(&base.metadata.name).unwrap_or_default();
        resources.extend(wake::base_dashboards(base, &base_sections));
        own(owner, &mut resources);
        let mut base_record = [record::base_record(base, &resources)];
        own(owner, &mut base_record);
        out.extend(base_record);
        out.extend(resources);
    }
    out.extend(servers_out);
    if !set.servers.is_empty() {
        // One account-wide policy covers every server's query log group.
        out.push(wake::route53_log_policy(cx));
    }
    Ok(out)
}

/// Caps every role of `resources` with the Base's permissions boundary, when it names one.
fn bound_roles(cx: &Context, base: &BaseDocument, resources: &mut [DesiredResource]) {
    let Some(name) = &base.spec.permissions_boundary else {
        return;
    };
    let arn = policies::boundary_arn(cx, name);
    for role in resources
        .iter_mut()
        .filter(|r| r.kind.as_str() == kinds::ROLE)
    {
        role.properties["permissionsBoundary"] = Value::String(arn.clone());
    }
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
