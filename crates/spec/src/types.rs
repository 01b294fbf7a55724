//! The document types users write. Their doc comments become the JSON Schema descriptions, so
//! they are what an editor shows on hover: write them for the user, not for the code.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `apiVersion` every document carries.
pub const API_VERSION: &str = "reconciler.dev/v1alpha1";

/// Version of the document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// The current format.
    #[serde(rename = "reconciler.dev/v1alpha1")]
    V1Alpha1,
}

/// Identity of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Name of this object, unique per kind. For a ContainerSpec it is the server's id: it names
    /// every AWS resource of the server and, unless `spec.dnsName` is set, the DNS label players
    /// look up (`<name>.<domain>`). Lower-case letters, digits and `-`; 1 to 32 characters;
    /// starts with a letter and does not end with `-`.
    #[schemars(regex(pattern = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"))]
    pub name: String,
}

/// The `kind` of a Base document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BaseKind {
    /// Shared infrastructure for a group of servers.
    Base,
}

/// The `kind` of a ContainerSpec document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ContainerSpecKind {
    /// One on-demand container server.
    ContainerSpec,
}

/// Shared infrastructure for the servers of one AWS account and region: the VPC, the admin
/// alert topic and the imported root DNS zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseDocument {
    /// Document format version: `reconciler.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `Base`.
    pub kind: BaseKind,
    /// The Base's name; servers refer to it with `spec.baseRef`.
    pub metadata: Metadata,
    /// What the Base provides.
    pub spec: BaseSpec,
}

/// One on-demand container server: it costs nothing while nobody plays, wakes when a player
/// looks up its DNS name, and goes back to sleep when its traffic stays idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpecDocument {
    /// Document format version: `reconciler.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Always `ContainerSpec`.
    pub kind: ContainerSpecKind,
    /// The server's name; see `metadata.name`.
    pub metadata: Metadata,
    /// The server.
    pub spec: ServerSpec,
}

/// The `spec` of a Base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseSpec {
    /// AWS region of the VPC and of every server's compute, storage and alarms (for example
    /// `us-west-2`). The DNS pieces always live in `us-east-1`, where Route 53 writes query logs.
    pub region: String,
    /// The shared VPC: public subnets only, no NAT gateway (a NAT gateway would cost more per
    /// month than a lightly used server).
    #[serde(default)]
    pub vpc: Vpc,
    /// The root domain whose sub-names wake the servers. The hosted zone must already exist.
    pub domain: Domain,
    /// Who is alerted about every server (instance left up too long, crash loops, failed
    /// launches). Confirm e-mail subscriptions from the message AWS sends.
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// Optional SSH access to the servers' hosts. Without it, hosts are reached through SSM
    /// Session Manager only and port 22 stays closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
    /// Name of a managed IAM policy of the account that every role the reconciler creates
    /// carries as its permissions boundary, for example `reconciler-boundary`: the policy in
    /// `docs/iam/boundary.json`, which the deployer policy in `docs/iam/deployer.json` requires
    /// on every role it creates. Off by default (roles get no boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_+=,.@-]{1,128}$"))]
    pub permissions_boundary: Option<String>,
}

/// The shared VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Vpc {
    /// Number of availability zones (one public subnet each). Every extra zone adds an EFS
    /// mount target and so cost; 1 is enough for a game server.
    #[serde(default = "default_max_azs")]
    #[schemars(range(min = 1, max = 6))]
    pub max_azs: u32,
}

impl Default for Vpc {
    fn default() -> Self {
        Vpc {
            max_azs: default_max_azs(),
        }
    }
}

fn default_max_azs() -> u32 {
    1
}

/// The root domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Domain {
    /// The domain name, for example `example.com`. Servers answer at `<name>.<domain>`.
    pub name: String,
    /// Id of the existing public Route 53 hosted zone of `name`, for example `Z0123456789ABC`.
    pub hosted_zone_id: String,
    /// Where the servers' DNS names live, which decides how a lookup reaches the server it
    /// wakes. `perServer` (the default): each server gets its own hosted zone, delegated from
    /// this one, with its own query log and subscription filter; that costs one hosted zone
    /// (USD 0.50 a month) per server. `shared`: the servers' A records live in this zone, whose
    /// query log feeds one subscription filter and one dispatcher Lambda that wakes the server
    /// a lookup names; no zone per server. In `shared` mode the zone's query log holds every
    /// lookup of the domain, and the zone must not already have a query logging config (AWS
    /// allows one per zone).
    #[serde(default, skip_serializing_if = "WakeZone::is_per_server")]
    pub wake_zone: WakeZone,
}

/// Where a Base's servers' DNS names live (see `spec.domain.wakeZone`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WakeZone {
    /// One hosted zone per server, delegated from the root zone, each with its own query log.
    #[default]
    PerServer,
    /// The root zone holds every server's record; one query log, filter and dispatcher Lambda
    /// per Base.
    Shared,
}

impl WakeZone {
    /// True for the default, which is left out when a spec is written back.
    pub fn is_per_server(&self) -> bool {
        *self == WakeZone::PerServer
    }
}

/// SSH access to server hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ssh {
    /// IPv4 CIDR blocks allowed to reach port 22, for example `203.0.113.7/32`. A key pair is
    /// created in the Base; its private key is kept in SSM Parameter Store by AWS.
    #[schemars(length(min = 1))]
    pub allow_from: Vec<String>,
}

/// Alert subscriptions by protocol. Each entry becomes one SNS subscription. Every list also
/// accepts one string of entries separated by spaces or newlines, which suits a single
/// `${VAR}` holding several addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alerts {
    /// E-mail addresses.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    #[schemars(with = "StringOrList")]
    pub email: Vec<String>,
    /// Phone numbers for SMS, in E.164 form such as `+15555550123`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    #[schemars(with = "StringOrList")]
    pub sms: Vec<String>,
    /// HTTPS endpoints that receive the SNS message as a POST (chat webhooks and the like).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    #[schemars(with = "StringOrList")]
    pub https: Vec<String>,
}

/// Schema of a list that may also be written as one whitespace-separated string.
struct StringOrList;

impl JsonSchema for StringOrList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StringOrList".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "array", "items": { "type": "string" } },
                { "type": "string", "description": "Entries separated by spaces or newlines." }
            ]
        })
    }
}

fn string_or_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings or one whitespace-separated string")
        }
        fn visit_str<E>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(v.split_whitespace().map(str::to_string).collect())
        }
        fn visit_unit<E>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_any(Visitor)
}

impl Alerts {
    /// True when no subscription of any protocol is configured.
    pub fn is_empty(&self) -> bool {
        self.email.is_empty() && self.sms.is_empty() && self.https.is_empty()
    }
}

/// The `spec` of a ContainerSpec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// Name of the Base this server runs in. May be left out when exactly one Base is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    /// `prod` keeps data safe by default (volume backups on, file systems kept when the server
    /// is deleted); `devel` defaults both off for throw-away servers.
    #[serde(default)]
    pub maturity: Maturity,
    /// Full DNS name that wakes this server, when it should differ from
    /// `<metadata.name>.<domain>`. Must lie inside the Base's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// The EC2 host.
    pub ec2: Ec2,
    /// The container that runs the game.
    pub container: Container,
    /// EFS volumes by id, at most 8: the idle alarm reads each volume's EFS reads besides
    /// network in and DNS hits, and a CloudWatch metric-math alarm reads at most 10 metrics
    /// (mount several paths from one volume instead). The id names the file system: changing
    /// it creates a new, empty volume. Letters, digits and `_`, starting with a letter. A
    /// volume taken out of the spec loses its mount targets on the next apply; its file
    /// system, the data, is kept.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(extend("maxProperties" = 8))]
    pub volumes: IndexMap<String, Volume>,
    /// When the server goes back to sleep.
    pub watchdog: Watchdog,
    /// Who is alerted about this server besides the Base's admins (start-up, stop).
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// The server's section of its Base's CloudWatch dashboard.
    #[serde(default)]
    pub dashboard: Dashboard,
}

/// Maturity of a server; it picks safe or throw-away defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Maturity {
    /// Production: data-keeping defaults.
    #[default]
    Prod,
    /// Development: nothing kept by default.
    Devel,
}

/// The EC2 host of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ec2 {
    /// EC2 instance type, for example `m5.large`. It needs at least 3 GiB of memory: 2 GiB stay
    /// with the host and the rest is reserved for the container.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"))]
    pub instance_type: String,
    /// How the instance is bought. `spot` costs roughly a third of `on-demand` but AWS may
    /// take the instance back with two minutes' notice (players are disconnected; the world
    /// on EFS is kept, and the next DNS lookup starts a new instance). Switching is an update of
    /// the group, not a replacement.
    #[serde(default, skip_serializing_if = "Capacity::is_on_demand")]
    pub capacity: Capacity,
}

/// How a server's instance is bought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    /// On-Demand: never interrupted.
    #[default]
    OnDemand,
    /// Spot: spare capacity at a discount; AWS may reclaim it.
    Spot,
}

impl Capacity {
    /// True for the default, which is left out when a spec is written back.
    pub fn is_on_demand(&self) -> bool {
        *self == Capacity::OnDemand
    }
}

/// The container of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// Image from a public registry, for example `itzg/minecraft-server:java21`. Kept exactly
    /// as written (tags are case-sensitive).
    pub image: String,
    /// Ports the game listens on. Each is published on the host under the same number and
    /// opened to the internet; nothing else is opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Plain environment variables. Numbers and booleans are passed as their text. Plans and
    /// rendered resources hide their values unless `--show-values` is given. Put passwords in
    /// `secrets`, not here: validation warns about names that look secret, and their values
    /// are shown as `(sensitive)` even then.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, EnvValue>,
    /// Secret environment variables: name -> SSM parameter (`/path/name` or its ARN) or Secrets
    /// Manager secret ARN (optionally with `:json-key::`). ECS injects them at start; their
    /// values never appear in plans, logs or task definitions.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, String>,
}

/// A port the container listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// Port number; the same on the host and in the container.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
    /// Transport protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lower-case name AWS APIs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// An environment variable's value: text, a number or a boolean. It reaches the container as
/// text (`true`, `25565`, `1.5`).
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    /// Text, passed as is.
    String(String),
    /// A boolean, passed as `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
}

impl EnvValue {
    /// The text the container sees.
    pub fn as_env_string(&self) -> String {
        match self {
            EnvValue::String(s) => s.clone(),
            EnvValue::Bool(b) => b.to_string(),
            EnvValue::Int(i) => i.to_string(),
            EnvValue::Float(f) => f.to_string(),
        }
    }
}

impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvValue::String(s) => serializer.serialize_str(s),
            EnvValue::Bool(b) => serializer.serialize_bool(*b),
            EnvValue::Int(i) => serializer.serialize_i64(*i),
            EnvValue::Float(f) => serializer.serialize_f64(*f),
        }
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = EnvValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::String(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
                i64::try_from(v)
                    .map(EnvValue::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue::Float(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EnvValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Text, a number or a boolean; the container receives it as text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// An EFS volume of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Storage type. Only `efs` today.
    #[serde(default, rename = "type")]
    pub kind: VolumeType,
    /// Paths in the container backed by this volume. Each gets its own directory on the file
    /// system. An empty list mounts the file system on the host only (reachable through Session
    /// Manager, and backed up like any volume), as the original project's `Paths: []` did.
    pub paths: Vec<VolumePath>,
    /// Daily AWS Backup copies of the file system. Default: on for `prod`, off for `devel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_backups: Option<bool>,
    /// Keep the file system (and its backups) when the server is deleted. Default: on for
    /// `prod` and for an adopted file system (its data was there before the reconciler), off for
    /// `devel`. Even when off, deleting data needs an explicit command-line confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_on_delete: Option<bool>,
    /// An existing EFS file system (`fs-...`, in the Base's region) to use for this volume
    /// instead of creating one: `apply` checks that it exists and belongs to no other server,
    /// then tags it as this volume's. Its data stays: it is kept on delete unless
    /// `keepOnDelete: false` is set and the command line allows data loss. Not with
    /// `restoreFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<String>,
    /// An AWS Backup recovery point of an EFS file system (its ARN, in the Base's region) to
    /// start this volume from: `apply` restores it into a new file system and uses that. Read
    /// only while the volume does not exist yet; once restored, the volume is like any other.
    /// Not with `adopt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<String>,
}

impl Volume {
    /// Whether backups are on, after maturity defaults.
    pub fn backups_enabled(&self, maturity: Maturity) -> bool {
        self.enable_backups.unwrap_or(maturity == Maturity::Prod)
    }

    /// Whether the file system is kept on delete, after the defaults: kept for `prod`, and for
    /// an adopted file system whatever the maturity.
    pub fn kept_on_delete(&self, maturity: Maturity) -> bool {
        self.keep_on_delete
            .unwrap_or(maturity == Maturity::Prod || self.adopt.is_some())
    }
}

/// Storage type of a volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// Amazon EFS, encrypted, mounted on the host with TLS.
    #[default]
    Efs,
}

/// A container path backed by a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumePath {
    /// Absolute path inside the container, for example `/data`.
    pub path: String,
    /// Mount the path read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// When the server goes back to sleep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Watchdog {
    /// Traffic in bytes per second at or below which the server counts as idle (network in,
    /// minus EFS reads). It depends on the game: watch the dashboard while nobody plays and
    /// set it just above the idle peak.
    pub threshold: u64,
    /// Idle minutes in a row before the server is stopped.
    #[serde(default = "default_minutes_without_connections")]
    #[schemars(range(min = 1, max = 1440))]
    pub minutes_without_connections: u32,
    /// Alert (and optionally stop) when the instance has been up this long.
    #[serde(default)]
    pub instance_left_up: InstanceLeftUp,
    /// Minutes after an instance launches during which the idle alarm cannot stop it, however
    /// quiet it is: slow (modded) servers download and generate worlds before anyone can join.
    /// Counted from the instance's launch time, separately from
    /// `minutesWithoutConnections`. Unset or 0: no grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub boot_grace_minutes: Option<u32>,
    /// Minutes after a DNS wake during which further DNS lookups do not wake the server again
    /// once it has stopped, so stray lookups (crawlers, resolvers refreshing) cannot start it
    /// right after it went to sleep. `reconciler wake` ignores it. Unset or 0: no cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub wake_cooldown_minutes: Option<u32>,
    /// At most this many DNS wakes in any sliding hour; further lookups are ignored until the
    /// oldest wake is an hour old. `reconciler wake` ignores it. Unset or 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 60))]
    pub max_wakes_per_hour: Option<u32>,
}

impl Watchdog {
    /// The boot grace in minutes, 0 when unset.
    pub fn boot_grace(&self) -> u32 {
        self.boot_grace_minutes.unwrap_or(0)
    }
}

fn default_minutes_without_connections() -> u32 {
    7
}

/// The instance-left-up guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceLeftUp {
    /// Hours of uptime before the alert.
    #[serde(default = "default_duration_hours")]
    #[schemars(range(min = 1, max = 24))]
    pub duration_hours: u32,
    /// Also stop the server when the alert fires.
    #[serde(default)]
    pub should_stop: bool,
}

impl Default for InstanceLeftUp {
    fn default() -> Self {
        InstanceLeftUp {
            duration_hours: default_duration_hours(),
            should_stop: false,
        }
    }
}

fn default_duration_hours() -> u32 {
    8
}

/// The server's section of its Base's CloudWatch dashboard. A Base's dashboard shows up to ten
/// servers, one section each (CloudWatch bills USD 3 a month per dashboard beyond an account's
/// first three).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dashboard {
    /// Show the server on its Base's dashboard. A dashboard no server shows on any more is
    /// deleted by the next apply.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Minutes of history the dashboard shows when it opens (the longest of its servers').
    #[serde(default = "default_interval_minutes")]
    #[schemars(range(min = 1, max = 44640))]
    pub interval_minutes: u32,
    /// Show timestamps in the container-log widget.
    #[serde(default = "default_true")]
    pub show_container_log_timestamp: bool,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            enabled: true,
            interval_minutes: default_interval_minutes(),
            show_container_log_timestamp: true,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_interval_minutes() -> u32 {
    30
}

/// Any document the reconciler reads; used to generate the combined JSON Schema (never held
/// in bulk, so the size difference between variants does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AnyDocument {
    /// A Base.
    Base(BaseDocument),
    /// A ContainerSpec.
    ContainerSpec(ContainerSpecDocument),
}

#[cfg(test)]
mod volume_defaults {
    use super::*;

    fn volume(adopt: Option<&str>, keep: Option<bool>) -> Volume {
        Volume {
            kind: VolumeType::default(),
            paths: Vec::new(),
            enable_backups: None,
            keep_on_delete: keep,
            adopt: adopt.map(str::to_string),
            restore_from: None,
        }
    }

    #[test]
    fn an_adopted_file_system_is_kept_unless_said_otherwise() {
        assert!(!volume(None, None).kept_on_delete(Maturity::Devel));
        assert!(volume(None, None).kept_on_delete(Maturity::Prod));
        assert!(volume(Some("fs-12345678"), None).kept_on_delete(Maturity::Devel));
        assert!(!volume(Some("fs-12345678"), Some(false)).kept_on_delete(Maturity::Devel));
    }
}
