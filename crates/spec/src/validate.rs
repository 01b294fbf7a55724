//! Semantic validation: what the types accept but AWS (or the running system) would reject
//! later. Every check reports a located diagnostic; all documents are checked in one run.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use crate::diag::Diagnostic;
use crate::instance_types::{InstanceCatalog, Lookup, MIN_INSTANCE_MEMORY_MIB};
use crate::load::{DocSource, Loaded, SpecSet};
use crate::resolve::{join_index, join_key};
use crate::types::{Alerts, BaseDocument, ContainerSpecDocument, WakeZone};

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("validation patterns are valid")
}

static NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"));
static REGION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$"));
// AWS documents only "up to 32 characters"; ids it issues are upper-case letters and digits
// (today starting with `Z`, which is not promised, and emulators issue others).
static ZONE_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Z0-9]{1,32}$"));
/// An IAM policy name (`CreatePolicy`'s `PolicyName`).
static POLICY_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]{1,128}$"));
static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
    )
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| re(r"^\+[1-9][0-9]{6,14}$"));
static HTTPS_URL: LazyLock<Regex> =
    LazyLock::new(|| re(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$"));
static INSTANCE_TYPE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"));
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    // [registry[:port]/]path[:tag][@digest]
    re(
        r"^([A-Za-z0-9.-]+(:[0-9]+)?/)?[A-Za-z0-9._/-]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
    )
});
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z_][A-Za-z0-9_]*$"));
static VOLUME_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z][A-Za-z0-9_]{0,31}$"));
/// EFS file system ids: `fs-` and 8 or 17 hexadecimal digits.
static FILE_SYSTEM_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^fs-([0-9a-f]{8}|[0-9a-f]{17})$"));
/// AWS Backup recovery point ARNs (region in group 1).
static RECOVERY_POINT_ARN: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^arn:aws[a-z-]*:backup:([a-z0-9-]+):[0-9]{12}:recovery-point:[A-Za-z0-9_.-]+$")
});
static CONTAINER_PATH: LazyLock<Regex> = LazyLock::new(|| re(r"^/[A-Za-z0-9._@+/-]*$"));
static SSM_PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*|arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_./-]+)$",
    )
});
static SECRETS_MANAGER_ARN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+(:[^:]*:[^:]*:[^:]*)?$",
    )
});

/// Whether an environment variable's name says it holds a secret (`RCON_PASSWORD`,
/// `API_TOKEN`, `STEAM_API_KEY`). Such values belong in `secrets`; when one is written as a
/// plain variable anyway, validation warns and the CLI shows its value as `(sensitive)`.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || upper
            .split('_')
            .any(|word| matches!(word, "PASS" | "PWD" | "KEY"))
}

/// Checks every loaded document and the references between them.
pub fn validate(set: &SpecSet, catalog: &InstanceCatalog) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for base in &set.bases {
        validate_base(base, &mut out);
    }
    for server in &set.servers {
        validate_server(server, catalog, &mut out);
        let region = base_of(set, &server.doc).map(|b| b.doc.spec.region.as_str());
        validate_volume_sources(&server.source, &server.doc, region, &mut out);
    }
    check_unique_names(
        set.bases.iter().map(|b| (&b.doc.metadata.name, &b.source)),
        "Base",
        &mut out,
    );
    check_unique_names(
        set.servers
            .iter()
            .map(|s| (&s.doc.metadata.name, &s.source)),
        "ContainerSpec",
        &mut out,
    );
    check_references(set, &mut out);
    check_shared_wake_routes(set, &mut out);
    set.redactor().redact_all(&mut out);
    out
}

/// Bytes of the dispatcher's environment the routes may take: Lambda allows 4 KB for all
/// variables, keys included, and the dispatcher has two more small ones.
const ROUTES_BUDGET: usize = 3800;

/// A Base in the shared wake mode routes every server's DNS name to its start function through
/// one environment variable of its dispatcher (`{"name":"rc-<server>-start-system",...}`), so
/// the number of servers such a Base can hold is bounded by Lambda's 4 KB environment.
fn check_shared_wake_routes(set: &SpecSet, out: &mut Vec<Diagnostic>) {
    for base in &set.bases {
        if base.doc.spec.domain.wake_zone != WakeZone::Shared {
            continue;
        }
        let servers: Vec<&ContainerSpecDocument> = set
            .servers
            .iter()
            .filter(|s| {
                base_of(set, &s.doc).map(|b| b.doc.metadata.name.as_str())
                    == Some(base.doc.metadata.name.as_str())
            })
            .map(|s| &s.doc)
            .collect();
        // `"<dns>":"rc-<server>-start-system",` per server, and the braces.
        let bytes: usize = 2 + servers
            .iter()
            .map(|s| {
                dns_name_of(s, &base.doc).len()
                    + s.metadata.name.len()
                    + "rc--start-system".len()
                    + 6
            })
            .sum::<usize>();
        if bytes > ROUTES_BUDGET {
            out.push(
                base.source
                    .error_at(
                        "spec.domain.wakeZone",
                        format!(
                            "the shared wake zone's routes for {} servers take {bytes} bytes of \
                             the dispatcher's environment; Lambda allows 4 KB in all",
                            servers.len()
                        ),
                    )
                    .with_hint("split the servers over two Bases, or use `wakeZone: perServer`"),
            );
        }
    }
}

fn check_unique_names<'a>(
    names: impl Iterator<Item = (&'a String, &'a std::sync::Arc<DocSource>)>,
    kind: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: HashMap<&String, &DocSource> = HashMap::new();
    for (name, source) in names {
        if let Some(first) = seen.get(name) {
            out.push(
                source
                    .error_at("metadata.name", format!("duplicate {kind} name `{name}`"))
                    .with_hint(format!(
                        "also defined at {}; names must be unique per kind",
                        first.where_()
                    )),
            );
        } else {
            seen.insert(name, source);
        }
    }
}

/// The Base a server belongs to, by `baseRef` or as the only Base given.
pub fn base_of<'a>(
    set: &'a SpecSet,
    server: &ContainerSpecDocument,
) -> Option<&'a Loaded<BaseDocument>> {
    match &server.spec.base_ref {
        Some(name) => set.bases.iter().find(|b| &b.doc.metadata.name == name),
        None if set.bases.len() == 1 => set.bases.first(),
        None => None,
    }
}

/// The DNS name that wakes a server.
pub fn dns_name_of(server: &ContainerSpecDocument, base: &BaseDocument) -> String {
    match &server.spec.dns_name {
        Some(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        None => format!(
            "{}.{}",
            server.metadata.name,
            base.spec
                .domain
                .name
                .trim_end_matches('.')
                .to_ascii_lowercase()
        ),
    }
}

fn check_references(set: &SpecSet, out: &mut Vec<Diagnostic>) {
    let mut dns_names: BTreeMap<String, &DocSource> = BTreeMap::new();
    for server in &set.servers {
        let spec = &server.doc.spec;
        let src = &server.source;
        let base = match &spec.base_ref {
            Some(name) => {
                let found = set.bases.iter().find(|b| &b.doc.metadata.name == name);
                if found.is_none() && !set.broken_base_names.contains(name) {
                    let known: Vec<&str> = set
                        .bases
                        .iter()
                        .map(|b| b.doc.metadata.name.as_str())
                        .collect();
                    out.push(
                        src.error_at("spec.baseRef", format!("no Base named `{name}` was given"))
                            .with_hint(if known.is_empty() {
                                "pass the file holding the Base too, e.g. `-f specs/`".to_string()
                            } else {
                                format!("Bases given: {}", known.join(", "))
                            }),
                    );
                }
                found
            }
            None => match set.bases.len() + set.broken_base_names.len() {
                0 => {
                    out.push(
                        src.error_at_key("spec", "no Base was given for this server")
                            .with_hint("pass the file holding the Base too, e.g. `-f specs/`"),
                    );
                    None
                }
                1 => set.bases.first(),
                _ => {
                    out.push(
                        src.error_at_key(
                            "spec",
                            "several Bases were given; say which one this server uses",
                        )
                        .with_hint("set `spec.baseRef` to the Base's `metadata.name`"),
                    );
                    None
                }
            },
        };
        let Some(base) = base else { continue };
        let domain = base
            .doc
            .spec
            .domain
            .name
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Some(dns) = &spec.dns_name {
            let dns_l = dns.trim_end_matches('.').to_ascii_lowercase();
            if !valid_dns_name(&dns_l) {
                out.push(
                    src.error_at("spec.dnsName", format!("`{dns}` is not a valid DNS name"))
                        .with_hint("labels of 1 to 63 letters, digits and `-` (not first or last), separated by single dots"),
                );
                continue;
            }
            if !dns_l.ends_with(&format!(".{domain}")) {
                out.push(
                    src.error_at(
                        "spec.dnsName",
                        format!("`{dns}` is not inside the Base's domain `{domain}`"),
                    )
                    .with_hint(format!("use a name ending in `.{domain}`")),
                );
                continue;
            }
        }
        let dns = dns_name_of(&server.doc, &base.doc);
        // The name and the domain are each checked, but not what they make together.
        if spec.dns_name.is_none() && dns.len() > MAX_DNS_NAME {
            out.push(
                src.error_at(
                    "metadata.name",
                    format!(
                        "the server's DNS name `{}…{}` has {} characters; a DNS name has at most {MAX_DNS_NAME}",
                        &dns[..20],
                        &dns[dns.len() - 20..],
                        dns.len()
                    ),
                )
                .with_hint(format!(
                    "it is `<metadata.name>.{domain}`: shorten the name or the Base's domain, or set `spec.dnsName`"
                )),
            );
            continue;
        }
        if let Some(first) = dns_names.get(&dns) {
            out.push(
                src.error_at(
                    "metadata.name",
                    format!("DNS name `{dns}` is used by two servers"),
                )
                .with_hint(format!(
                    "also used at {}; set `spec.dnsName` on one of them",
                    first.where_()
                )),
            );
        } else {
            dns_names.insert(dns, src);
        }
    }
}

/// The longest DNS name, written without the final dot: 255 octets on the wire (RFC 1035,
/// and Route 53's "DNS domain name format").
const MAX_DNS_NAME: usize = 253;

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_DNS_NAME && name.split('.').all(|l| DNS_LABEL.is_match(l))
}

fn validate_name(src: &DocSource, name: &str, out: &mut Vec<Diagnostic>) {
    if !NAME.is_match(name) {
        out.push(
            src.error_at("metadata.name", format!("`{name}` is not a valid name"))
                .with_hint("1 to 32 lower-case letters, digits and `-`, starting with a letter and not ending with `-`; it names AWS resources and a DNS label"),
        );
    }
}

fn validate_base(base: &Loaded<BaseDocument>, out: &mut Vec<Diagnostic>) {
    let src = &base.source;
    let spec = &base.doc.spec;
    validate_name(src, &base.doc.metadata.name, out);
    if !REGION.is_match(&spec.region) {
        out.push(
            src.error_at(
                "spec.region",
                format!("`{}` is not an AWS region", spec.region),
            )
            .with_hint("for example `us-east-1`, `eu-west-1`, `ap-southeast-2`"),
        );
    }
    if !(1..=6).contains(&spec.vpc.max_azs) {
        out.push(
            src.error_at(
                "spec.vpc.maxAzs",
                format!("expected 1 to 6 zones, got {}", spec.vpc.max_azs),
            )
            .with_hint(
                "one zone is enough for a game server; each extra zone adds EFS mount-target cost",
            ),
        );
    }
    let domain = spec.domain.name.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        out.push(
            src.error_at("spec.domain.name", "the domain name is empty")
                .with_hint("if it comes from `${VAR}`, check that the variable holds the domain"),
        );
    } else if !valid_dns_name(&domain) || !domain.contains('.') {
        out.push(
            src.error_at(
                "spec.domain.name",
                format!("`{}` is not a valid domain name", spec.domain.name),
            )
            .with_hint("for example `example.com`"),
        );
    }
    if !ZONE_ID.is_match(&spec.domain.hosted_zone_id) {
        let hint = if spec.domain.hosted_zone_id.starts_with("/hostedzone/") {
            "drop the `/hostedzone/` prefix".to_string()
        } else {
            "Route 53 zone ids look like `Z0123456789ABCDEFGHIJ`".to_string()
        };
        out.push(
            src.error_at(
                "spec.domain.hostedZoneId",
                format!("`{}` is not a hosted zone id", spec.domain.hosted_zone_id),
            )
            .with_hint(hint),
        );
    }
    validate_alerts(src, "spec.alerts", &spec.alerts, out);
    if let Some(boundary) = &spec.permissions_boundary {
        validate_boundary(src, boundary, out);
    }
    if let Some(ssh) = &spec.ssh {
        if ssh.allow_from.is_empty() {
            out.push(
                src.error_at("spec.ssh.allowFrom", "list at least one CIDR block")
                    .with_hint("for example `203.0.113.7/32`; leave `ssh` out to use SSM Session Manager only"),
            );
        }
        for (i, cidr) in ssh.allow_from.iter().enumerate() {
            let path = join_index("spec.ssh.allowFrom", i);
            match parse_cidr(cidr) {
                None => out.push(
                    src.error_at(&path, format!("`{cidr}` is not an IPv4 CIDR block"))
                        .with_hint("for example `203.0.113.7/32`"),
                ),
                Some(0) => out.push(
                    src.error_at(&path, "this opens SSH to the whole internet")
                        .with_hint("narrow it to your own address, e.g. `203.0.113.7/32`")
                        .warning(),
                ),
                Some(_) => {}
            }
        }
    }
}

/// The Base's permissions boundary names a managed policy of the account by name.
fn validate_boundary(src: &DocSource, boundary: &str, out: &mut Vec<Diagnostic>) {
    if !POLICY_NAME.is_match(boundary) {
        out.push(
            src.error_at(
                "spec.permissionsBoundary",
                format!("`{boundary}` is not an IAM policy name"),
            )
            .with_hint(
                "the policy's name, not its ARN: 1 to 128 letters, digits and `_+=,.@-`, for \
                 example `reconciler-boundary`",
            ),
        );
    }
}

/// Parses `a.b.c.d/n`, returning the prefix length.
fn parse_cidr(cidr: &str) -> Option<u8> {
    let (ip, len) = cidr.split_once('/')?;
    ip.parse::<Ipv4Addr>().ok()?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(len)
}

fn validate_alerts(src: &DocSource, at: &str, alerts: &Alerts, out: &mut Vec<Diagnostic>) {
    let protocols: [(&str, &Vec<String>, &Regex, &str); 3] = [
        (
            "email",
            &alerts.email,
            &EMAIL,
            "an e-mail address such as `admin@example.com`",
        ),
        (
            "sms",
            &alerts.sms,
            &PHONE,
            "a phone number in E.164 form such as `+15555550123`",
        ),
        (
            "https",
            &alerts.https,
            &HTTPS_URL,
            "an https:// URL such as `https://hooks.example.com/alerts`",
        ),
    ];
    for (protocol, entries, pattern, expected) in protocols {
        let list = join_key(at, protocol);
        let mut seen = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let path = join_index(&list, i);
            if !pattern.is_match(entry) {
                out.push(
                    src.error_at(&path, format!("`{entry}` is not {expected}"))
                        .with_hint(format!(
                            "each `{protocol}` entry becomes one SNS subscription"
                        )),
                );
            } else if let Some(first) = seen.insert(entry.to_ascii_lowercase(), i) {
                out.push(
                    src.error_at(&path, format!("`{entry}` is listed twice"))
                        .with_hint(format!("it is already entry {first} of `{list}`")),
                );
            }
        }
    }
}

fn validate_server(
    server: &Loaded<ContainerSpecDocument>,
    catalog: &InstanceCatalog,
    out: &mut Vec<Diagnostic>,
) {
    let src = &server.source;
    let spec = &server.doc.spec;
    validate_name(src, &server.doc.metadata.name, out);

    let ty = &spec.ec2.instance_type;
    if ty.is_empty() {
        out.push(
            src.error_at("spec.ec2.instanceType", "the instance type is empty")
                .with_hint("for example `m5.large`; if it comes from `${VAR}`, check that the variable is set"),
        );
    } else if !INSTANCE_TYPE.is_match(ty) {
        out.push(
            src.error_at(
                "spec.ec2.instanceType",
                format!("`{ty}` is not an EC2 instance type"),
            )
            .with_hint("for example `m5.large`; written in lower case"),
        );
    } else {
        match catalog.lookup(ty) {
            Lookup::Known(info) if info.memory_mib < MIN_INSTANCE_MEMORY_MIB => out.push(
                src.error_at(
                    "spec.ec2.instanceType",
                    format!("`{ty}` has {} MiB of memory; at least {MIN_INSTANCE_MEMORY_MIB} MiB (3 GiB) is needed", info.memory_mib),
                )
                .with_hint("2 GiB stay with the host; pick a larger type such as `t3.medium` or `m5.large`"),
            ),
            Lookup::Known(_) => {}
            Lookup::Rejected => out.push(
                src.error_at("spec.ec2.instanceType", format!("EC2 does not offer instance type `{ty}`"))
                    .with_hint("check the spelling, e.g. `m5.large`"),
            ),
            Lookup::Unknown => out.push(
                src.error_at(
                    "spec.ec2.instanceType",
                    format!("`{ty}` is not in the offline table, so its memory was not checked"),
                )
                .with_hint("run with AWS credentials to check it against EC2")
                .warning(),
            ),
        }
    }

    validate_container(src, server, out);
    validate_volumes(src, server, out);

    let wd = &spec.watchdog;
    if !(1..=1440).contains(&wd.minutes_without_connections) {
        out.push(
            src.error_at(
                "spec.watchdog.minutesWithoutConnections",
                format!(
                    "expected 1 to 1440 minutes, got {}",
                    wd.minutes_without_connections
                ),
            )
            .with_hint("CloudWatch alarms evaluate at most one day of one-minute periods"),
        );
    }
    if !(1..=24).contains(&wd.instance_left_up.duration_hours) {
        out.push(
            src.error_at(
                "spec.watchdog.instanceLeftUp.durationHours",
                format!(
                    "expected 1 to 24 hours, got {}",
                    wd.instance_left_up.duration_hours
                ),
            )
            .with_hint("CloudWatch alarms on one-minute periods can look back at most 24 hours"),
        );
    }
    for (field, value, max, hint) in [
        (
            "bootGraceMinutes",
            wd.boot_grace_minutes,
            1440,
            "a grace longer than a day would keep an idle server up all day",
        ),
        (
            "wakeCooldownMinutes",
            wd.wake_cooldown_minutes,
            1440,
            "a cooldown longer than a day would block wakes by DNS for days",
        ),
        (
            "maxWakesPerHour",
            wd.max_wakes_per_hour,
            60,
            "more than one wake a minute is no limit; leave it unset instead",
        ),
    ] {
        if let Some(v) = value.filter(|v| *v > max) {
            out.push(
                src.error_at(
                    &format!("spec.watchdog.{field}"),
                    format!("expected 0 to {max}, got {v}"),
                )
                .with_hint(hint),
            );
        }
    }
    if let (Some(grace), true) = (wd.boot_grace_minutes, wd.instance_left_up.should_stop) {
        if grace >= wd.instance_left_up.duration_hours * 60 {
            out.push(
                src.error_at(
                    "spec.watchdog.bootGraceMinutes",
                    format!(
                        "a boot grace of {grace} minutes outlasts the {}-hour instance-left-up stop",
                        wd.instance_left_up.duration_hours
                    ),
                )
                .with_hint("the grace only holds off the idle alarm; shorten it")
                .warning(),
            );
        }
    }
    if wd.threshold == 0 {
        out.push(
            src.error_at("spec.watchdog.threshold", "a threshold of 0 only counts a server as idle when it has no traffic at all, so it may never sleep")
                .with_hint("watch the dashboard while nobody plays and set it just above the idle peak")
                .warning(),
        );
    }
    if !(1..=44640).contains(&spec.dashboard.interval_minutes) {
        out.push(src.error_at(
            "spec.dashboard.intervalMinutes",
            format!(
                "expected 1 to 44640 minutes (31 days), got {}",
                spec.dashboard.interval_minutes
            ),
        ));
    }
    validate_alerts(src, "spec.alerts", &spec.alerts, out);
}

fn validate_container(
    src: &DocSource,
    server: &Loaded<ContainerSpecDocument>,
    out: &mut Vec<Diagnostic>,
) {
    let c = &server.doc.spec.container;
    if c.image.trim().is_empty() {
        out.push(
            src.error_at("spec.container.image", "the image is empty")
                .with_hint("for example `itzg/minecraft-server`"),
        );
    } else if !IMAGE.is_match(&c.image) {
        out.push(
            src.error_at("spec.container.image", format!("`{}` is not an image reference", c.image))
                .with_hint("`[registry/]repository[:tag][@sha256:digest]`, for example `itzg/minecraft-server:java21`"),
        );
    } else {
        let repository = repository_of(&c.image);
        if repository.chars().any(|ch| ch.is_ascii_uppercase()) {
            out.push(
                src.error_at("spec.container.image", format!("repository `{repository}` has upper-case letters; registries only accept lower case"))
                    .with_hint("write the repository in lower case (tags may keep their case)"),
            );
        }
    }

    let mut ports = HashMap::new();
    for (i, port) in c.ports.iter().enumerate() {
        let path = join_index("spec.container.ports", i);
        if !(1..=65535).contains(&port.port) {
            out.push(src.error_at(
                &join_key(&path, "port"),
                format!("expected a port from 1 to 65535, got {}", port.port),
            ));
        } else if let Some(first) = ports.insert((port.port, port.protocol), i) {
            out.push(
                src.error_at(
                    &path,
                    format!("{}/{} is listed twice", port.port, port.protocol.as_str()),
                )
                .with_hint(format!(
                    "it is already entry {first} of `spec.container.ports`"
                )),
            );
        }
    }

    for key in c.environment.keys() {
        let path = join_key("spec.container.environment", key);
        if !ENV_NAME.is_match(key) {
            out.push(
                src.error_at_key(
                    &path,
                    format!("`{key}` is not a valid environment variable name"),
                )
                .with_hint("letters, digits and `_`, not starting with a digit"),
            );
        }
        if looks_secret(key) {
            out.push(
                src.error_at_key(&path, format!("`{key}` looks like a secret but is a plain environment variable"))
                    .with_hint("move it to `spec.container.secrets` (an SSM parameter or Secrets Manager ARN) so its value stays out of the task definition")
                    .warning(),
            );
        }
    }
    for (key, reference) in &c.secrets {
        let path = join_key("spec.container.secrets", key);
        if !ENV_NAME.is_match(key) {
            out.push(
                src.error_at_key(
                    &path,
                    format!("`{key}` is not a valid environment variable name"),
                )
                .with_hint("letters, digits and `_`, not starting with a digit"),
            );
        }
        if c.environment.contains_key(key) {
            out.push(
                src.error_at_key(
                    &path,
                    format!("`{key}` is both a plain environment variable and a secret"),
                )
                .with_hint("keep it in one place: `secrets` for sensitive values"),
            );
        }
        if !(SSM_PARAMETER.is_match(reference) || SECRETS_MANAGER_ARN.is_match(reference)) {
            out.push(
                src.error_at(&path, "not an SSM parameter name or ARN, nor a Secrets Manager secret ARN")
                    .with_hint("for example `/games/palworld/admin-password` or `arn:aws:secretsmanager:us-west-2:123456789012:secret:palworld-AbCdEf`"),
            );
        }
    }
}

/// The repository part of an image reference, without registry host, tag and digest.
fn repository_of(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let (registry_and_path, _tag) = match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => (&no_digest[..i], Some(&no_digest[i + 1..])),
        _ => (no_digest, None),
    };
    match registry_and_path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => registry_and_path,
    }
}

/// The most volumes a server may have: its idle alarm reads network in, DNS hits and one
/// metric per volume, and `PutMetricAlarm` takes at most 10 metrics (`MetricStat` entries).
pub const MAX_VOLUMES: usize = 8;

fn validate_volumes(
    src: &DocSource,
    server: &Loaded<ContainerSpecDocument>,
    out: &mut Vec<Diagnostic>,
) {
    let spec = &server.doc.spec;
    if spec.volumes.len() > MAX_VOLUMES {
        out.push(
            src.error_at_key("spec.volumes", format!(
                "{} volumes; a server can have at most {MAX_VOLUMES}",
                spec.volumes.len()
            ))
            .with_hint("the idle alarm reads each volume's EFS reads, and a CloudWatch metric-math alarm reads at most 10 metrics (network in, DNS hits and 8 volumes); mount several paths from one volume instead"),
        );
    }
    let mut ids: HashMap<String, &str> = HashMap::new();
    let mut paths: HashMap<&str, String> = HashMap::new();
    for (id, volume) in &spec.volumes {
        let at = join_key("spec.volumes", id);
        if !VOLUME_ID.is_match(id) {
            out.push(
                src.error_at_key(&at, format!("`{id}` cannot be a volume id"))
                    .with_hint("1 to 32 letters, digits and `_`, starting with a letter: the id becomes part of AWS names and CloudWatch metric ids, which do not allow `-`"),
            );
        } else if let Some(first) = ids.insert(id.to_ascii_lowercase(), id) {
            out.push(
                src.error_at_key(&at, format!("volume id `{id}` clashes with `{first}`"))
                    .with_hint("AWS names are case-insensitive here; use ids that differ in more than case"),
            );
        }
        for (i, p) in volume.paths.iter().enumerate() {
            let path_at = join_key(&join_index(&join_key(&at, "paths"), i), "path");
            if !CONTAINER_PATH.is_match(&p.path) || p.path.split('/').any(|s| s == "..") {
                out.push(
                    src.error_at(
                        &path_at,
                        format!("`{}` is not an absolute container path", p.path),
                    )
                    .with_hint("start with `/`; letters, digits and `._@+-/` only, no `..`"),
                );
            } else if p.path == "/" {
                out.push(src.error_at(&path_at, "the container's root cannot be a volume"));
            } else if let Some(first) = paths.insert(p.path.as_str(), path_at.clone()) {
                out.push(
                    src.error_at(&path_at, format!("`{}` is mounted twice", p.path))
                        .with_hint(format!("already mounted by `{first}`")),
                );
            }
        }
    }
}

/// `adopt` and `restoreFrom`: one or the other, well formed, and in the Base's region (EFS
/// and AWS Backup calls are regional).
fn validate_volume_sources(
    src: &DocSource,
    doc: &ContainerSpecDocument,
    region: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    for (id, volume) in &doc.spec.volumes {
        let at = join_key("spec.volumes", id);
        if let (Some(_), Some(_)) = (&volume.adopt, &volume.restore_from) {
            out.push(
                src.error_at_key(&join_key(&at, "restoreFrom"), "`adopt` and `restoreFrom` exclude each other")
                    .with_hint("`adopt` uses an existing file system as it is; `restoreFrom` creates a new one from a backup. Keep one"),
            );
        }
        if let Some(fs) = &volume.adopt {
            if !FILE_SYSTEM_ID.is_match(fs) {
                out.push(
                    src.error_at(&join_key(&at, "adopt"), format!("`{fs}` is not an EFS file system id"))
                        .with_hint("for example `fs-0123456789abcdef0`, as the EFS console or `aws efs describe-file-systems` shows it"),
                );
            }
        }
        if let Some(arn) = &volume.restore_from {
            let rp_at = join_key(&at, "restoreFrom");
            match RECOVERY_POINT_ARN.captures(arn) {
                None => out.push(
                    src.error_at(&rp_at, format!("`{arn}` is not an AWS Backup recovery point ARN"))
                        .with_hint("for example `arn:aws:backup:us-west-2:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45`, as `aws backup list-recovery-points-by-backup-vault` shows it"),
                ),
                Some(c) => {
                    if let Some(region) = region.filter(|r| *r != &c[1]) {
                        out.push(
                            src.error_at(&rp_at, format!("the recovery point is in `{}`, the server in `{region}`", &c[1]))
                                .with_hint("a restore happens in the recovery point's region; copy the recovery point to the server's region first (AWS Backup copy job)"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load, Input};
    use crate::WakeZone;

    const BASE: &str = "apiVersion: reconciler.dev/v1alpha1\nkind: Base\nmetadata:\n  name: main\nspec:\n  region: us-west-2\n  domain:\n    name: example.com\n    hostedZoneId: Z0123456789ABC\n";

    const SERVER: &str = "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: mc\nspec:\n  ec2:\n    instanceType: m5.large\n  container:\n    image: itzg/minecraft-server\n    ports:\n      - port: 25565\n  volumes:\n    Data:\n      paths:\n        - path: /data\n  watchdog:\n    threshold: 1175\n";

    fn check(docs: &[&str]) -> Vec<Diagnostic> {
        let inputs: Vec<Input> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| Input {
                name: format!("f{i}.yaml"),
                bytes: d.as_bytes().to_vec(),
            })
            .collect();
        let (set, mut diags) = load(&inputs, &|_| None);
        diags.extend(validate(&set, &InstanceCatalog::offline()));
        diags
    }

    fn errors(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}:{}:{} {}: {}", d.file, d.line, d.col, d.path, d.message))
            .collect()
    }

    #[test]
    fn a_shared_wake_zone_refuses_more_routes_than_the_dispatcher_environment_holds() {
        let shared = BASE.replace(
            "    hostedZoneId: Z0123456789ABC\n",
            "    hostedZoneId: Z0123456789ABC\n    wakeZone: shared\n",
        );
        let servers = |n: usize| -> Vec<String> {
            (0..n)
                .map(|i| SERVER.replace("name: mc\n", &format!("name: server{i:03}\n")))
                .collect()
        };
        let fits = servers(40);
        let mut docs: Vec<&str> = vec![&shared];
        docs.extend(fits.iter().map(String::as_str));
        assert!(
            errors(&check(&docs)).is_empty(),
            "{:?}",
            errors(&check(&docs))
        );

        let too_many = servers(80);
        let mut docs: Vec<&str> = vec![&shared];
        docs.extend(too_many.iter().map(String::as_str));
        let e = errors(&check(&docs));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "f0.yaml:10:15 spec.domain.wakeZone: the shared wake zone's routes for 80 servers"
            ),
            "{e:?}"
        );
        // The same servers per server: no limit.
        let mut docs: Vec<&str> = vec![BASE];
        docs.extend(too_many.iter().map(String::as_str));
        assert!(errors(&check(&docs)).is_empty());
    }

    #[test]
    fn wake_zone_defaults_to_per_server_and_takes_only_its_two_values() {
        let shared = BASE.replace(
            "    hostedZoneId: Z0123456789ABC\n",
            "    hostedZoneId: Z0123456789ABC\n    wakeZone: shared\n",
        );
        assert!(check(&[&shared, SERVER]).is_empty());
        let (set, _) = load(
            &[Input {
                name: "b.yaml".into(),
                bytes: shared.into_bytes(),
            }],
            &|_| None,
        );
        assert_eq!(set.bases[0].doc.spec.domain.wake_zone, WakeZone::Shared);
        let (set, _) = load(
            &[Input {
                name: "b.yaml".into(),
                bytes: BASE.as_bytes().to_vec(),
            }],
            &|_| None,
        );
        assert_eq!(set.bases[0].doc.spec.domain.wake_zone, WakeZone::PerServer);
        let bad = BASE.replace(
            "    hostedZoneId: Z0123456789ABC\n",
            "    hostedZoneId: Z0123456789ABC\n    wakeZone: root\n",
        );
        let e = errors(&check(&[&bad, SERVER]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("f0.yaml:10:15 spec.domain.wakeZone: unknown value `root`"),
            "{e:?}"
        );
        assert!(
            e[0].contains("perServer") && e[0].contains("shared"),
            "{e:?}"
        );
    }

    #[test]
    fn a_good_pair_is_clean() {
        let d = check(&[BASE, SERVER]);
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn out_of_range_watchdog_values_are_located() {
        let s = SERVER.replace(
            "    threshold: 1175\n",
            "    threshold: 1175\n    minutesWithoutConnections: 0\n    instanceLeftUp:\n      durationHours: 30\n",
        );
        let e = errors(&check(&[BASE, &s]));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(
                "f1.yaml:18:32 spec.watchdog.minutesWithoutConnections: expected 1 to 1440"
            ),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(
                "f1.yaml:20:22 spec.watchdog.instanceLeftUp.durationHours: expected 1 to 24"
            ),
            "{e:?}"
        );
    }

    #[test]
    fn wake_noise_and_boot_grace_ranges_are_located() {
        let s = SERVER.replace(
            "    threshold: 1175\n",
            "    threshold: 1175\n    bootGraceMinutes: 2000\n    wakeCooldownMinutes: 30\n    maxWakesPerHour: 61\n",
        );
        let e = errors(&check(&[BASE, &s]));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("f1.yaml:18:23 spec.watchdog.bootGraceMinutes: expected 0 to 1440"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("f1.yaml:20:22 spec.watchdog.maxWakesPerHour: expected 0 to 60"),
            "{e:?}"
        );
        let ok = SERVER.replace(
            "    threshold: 1175\n",
            "    threshold: 1175\n    bootGraceMinutes: 15\n    wakeCooldownMinutes: 30\n    maxWakesPerHour: 4\n",
        );
        assert!(check(&[BASE, &ok]).is_empty());
    }

    #[test]
    fn volume_ids_that_cannot_form_aws_names_and_duplicates() {
        let s = SERVER.replace(
            "    Data:\n      paths:\n        - path: /data\n",
            "    my-data:\n      paths:\n        - path: /a\n    Data:\n      paths:\n        - path: /data\n    data:\n      paths:\n        - path: /data\n",
        );
        let e = errors(&check(&[BASE, &s]));
        assert!(
            e.iter()
                .any(|m| m.contains("spec.volumes.my-data: `my-data` cannot be a volume id")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("volume id `data` clashes with `Data`")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("`/data` is mounted twice")),
            "{e:?}"
        );
    }

    /// The idle alarm reads one metric per volume besides network in and DNS hits, and AWS
    /// refuses a metric-math alarm of more than 10 metrics: nine volumes would validate and
    /// then fail at apply.
    #[test]
    fn at_most_eight_volumes_fit_the_idle_alarm() {
        let volumes = |n: usize| {
            let list: String = (0..n)
                .map(|i| format!("    V{i}:\n      paths:\n        - path: /v{i}\n"))
                .collect();
            SERVER.replace("    Data:\n      paths:\n        - path: /data\n", &list)
        };
        assert!(check(&[BASE, &volumes(MAX_VOLUMES)]).is_empty());
        let e = errors(&check(&[BASE, &volumes(MAX_VOLUMES + 1)]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("spec.volumes: 9 volumes; a server can have at most 8"),
            "{e:?}"
        );
    }

    #[test]
    fn a_volume_without_paths_is_mounted_on_the_host_only() {
        let s = SERVER.replace("      paths:\n        - path: /data\n", "      paths: []\n");
        assert!(check(&[BASE, &s]).is_empty());
    }

    #[test]
    fn adopt_and_restore_from_are_checked_and_located() {
        let volume = |extra: &str| {
            SERVER.replace(
                "        - path: /data\n",
                &format!("        - path: /data\n{extra}"),
            )
        };
        let ok = volume("      adopt: fs-0123456789abcdef0\n");
        assert!(check(&[BASE, &ok]).is_empty());
        let ok = volume("      restoreFrom: arn:aws:backup:us-west-2:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45\n");
        assert!(check(&[BASE, &ok]).is_empty());

        let e = errors(&check(&[BASE, &volume("      adopt: fs-xyz\n")]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "f1.yaml:16:14 spec.volumes.Data.adopt: `fs-xyz` is not an EFS file system id"
            ),
            "{e:?}"
        );
        let e = errors(&check(&[
            BASE,
            &volume(
                "      restoreFrom: arn:aws:backup:eu-west-1:123456789012:recovery-point:abc\n",
            ),
        ]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("f1.yaml:16:20 spec.volumes.Data.restoreFrom: the recovery point is in `eu-west-1`, the server in `us-west-2`"),
            "{e:?}"
        );
        let e = errors(&check(&[
            BASE,
            &volume("      restoreFrom: fs-0123456789abcdef0\n"),
        ]));
        assert!(
            e[0].contains("is not an AWS Backup recovery point ARN"),
            "{e:?}"
        );
        let both = volume("      adopt: fs-01234567\n      restoreFrom: arn:aws:backup:us-west-2:123456789012:recovery-point:abc\n");
        let e = errors(&check(&[BASE, &both]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("f1.yaml:17:7 spec.volumes.Data.restoreFrom: `adopt` and `restoreFrom` exclude each other"),
            "{e:?}"
        );
    }

    #[test]
    fn small_instances_ports_and_alerts() {
        let s = SERVER
            .replace("m5.large", "t3.micro")
            .replace("      - port: 25565\n", "      - port: 70000\n      - port: 2456\n        protocol: udp\n      - port: 2456\n        protocol: udp\n")
            + "  alerts:\n    email: [not-an-address]\n    sms: ['12345']\n    https: ['http://insecure.example.com']\n";
        let e = errors(&check(&[BASE, &s]));
        assert!(
            e.iter().any(|m| m.contains("`t3.micro` has 1024 MiB")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("ports[0].port: expected a port from 1 to 65535, got 70000")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("ports[2]: 2456/udp is listed twice")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("alerts.email[0]")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("alerts.sms[0]")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("alerts.https[0]")), "{e:?}");
    }

    #[test]
    fn references_between_documents() {
        let s = SERVER.replace("spec:\n  ec2", "spec:\n  baseRef: other\n  ec2");
        let e = errors(&check(&[BASE, &s]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("no Base named `other`"));

        let e = errors(&check(&[SERVER]));
        assert!(e[0].contains("no Base was given"), "{e:?}");

        let base2 = BASE.replace("name: main", "name: second");
        let e = errors(&check(&[BASE, &base2, SERVER]));
        assert!(e[0].contains("several Bases"), "{e:?}");

        let e = errors(&check(&[BASE, BASE, SERVER, SERVER]));
        assert!(
            e.iter().any(|m| m.contains("duplicate Base name `main`")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("duplicate ContainerSpec name `mc`")),
            "{e:?}"
        );
    }

    #[test]
    fn dns_name_override_must_be_inside_the_domain() {
        let s = SERVER.replace("spec:\n  ec2", "spec:\n  dnsName: mc.example.org\n  ec2");
        let e = errors(&check(&[BASE, &s]));
        assert!(e[0].contains("not inside the Base's domain"), "{e:?}");
        let s2 = SERVER
            .replace("name: mc", "name: other")
            .replace("spec:\n  ec2", "spec:\n  dnsName: mc.example.com\n  ec2");
        let e = errors(&check(&[BASE, SERVER, &s2]));
        assert!(
            e[0].contains("DNS name `mc.example.com` is used by two servers"),
            "{e:?}"
        );
    }

    #[test]
    fn a_server_name_and_domain_that_make_too_long_a_dns_name_are_refused() {
        // Four labels of 63, 63, 63 and 61: the longest domain, and valid alone.
        let domain = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(domain.len(), 253);
        let base = BASE.replace("name: example.com", &format!("name: {domain}"));
        let e = errors(&check(&[&base, SERVER]));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("f1.yaml:4:9 metadata.name: the server's DNS name `mc.aaaa")
                && e[0].ends_with("has 256 characters; a DNS name has at most 253"),
            "{e:?}"
        );
        let shorter = BASE.replace("name: example.com", &format!("name: {}", &domain[3..]));
        assert!(errors(&check(&[&shorter, SERVER])).is_empty());
    }

    #[test]
    fn secrets_env_names_and_images() {
        let s = SERVER.replace(
            "    image: itzg/minecraft-server\n",
            "    image: Itzg/Minecraft-Server:Latest\n    environment:\n      1BAD: x\n      ADMIN_PASSWORD: hunter2\n    secrets:\n      ADMIN_PASSWORD: /games/mc/admin\n      RCON: not a ref\n",
        );
        let d = check(&[BASE, &s]);
        let e = errors(&d);
        assert!(
            e.iter()
                .any(|m| m.contains("repository `Itzg/Minecraft-Server` has upper-case")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("`1BAD` is not a valid environment variable name")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("both a plain environment variable and a secret")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("secrets.RCON: not an SSM parameter")),
            "{e:?}"
        );
        assert!(d
            .iter()
            .any(|x| !x.is_error() && x.message.contains("looks like a secret")));
        assert!(d.iter().all(|x| !x.message.contains("hunter2")));
    }

    #[test]
    fn base_fields() {
        let b = BASE
            .replace("us-west-2", "mars-1")
            .replace("Z0123456789ABC", "/hostedzone/Z1")
            .replace("example.com", "''")
            + "  ssh:\n    allowFrom: ['0.0.0.0/0', 'nope']\n";
        let d = check(&[&b]);
        let e = errors(&d);
        assert!(
            e.iter()
                .any(|m| m.contains("`mars-1` is not an AWS region")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("domain name is empty")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("is not a hosted zone id")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("`nope` is not an IPv4 CIDR")),
            "{e:?}"
        );
        assert!(d
            .iter()
            .any(|x| !x.is_error() && x.message.contains("whole internet")));
    }

    #[test]
    fn the_permissions_boundary_is_a_policy_name() {
        let with = |name: &str| format!("{BASE}  permissionsBoundary: '{name}'\n");
        assert!(errors(&check(&[&with("reconciler-boundary")])).is_empty());
        assert!(errors(&check(&[&with(&"b".repeat(128))])).is_empty());
        for bad in [
            "arn:aws:iam::123456789012:policy/reconciler-boundary".to_string(),
            "boundaries/reconciler".to_string(),
            "b".repeat(129),
        ] {
            let e = errors(&check(&[&with(&bad)]));
            assert!(
                e.iter().any(|m| m.contains("is not an IAM policy name")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn image_repository_parsing() {
        assert_eq!(
            repository_of("itzg/minecraft-server:Java21"),
            "itzg/minecraft-server"
        );
        assert_eq!(repository_of("ghcr.io/Owner/img:tag"), "Owner/img");
        assert_eq!(repository_of("localhost:5000/img"), "img");
        assert_eq!(repository_of("img@sha256:abc"), "img");
    }
}
