//! What the AWS-rules tests share: the tool venv, the spec sets they render, and the outputs
//! AWS would assign (ids and ARNs in AWS's own formats) in place of the render's references.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reconciler_engine::model::{resolve_refs, DesiredGraph, DesiredResource, Reference};
use reconciler_render::{render, Context};
use reconciler_spec::{check, Input, InstanceCatalog, SpecSet};
use reconciler_testkit::{ensure_tool_venv, ToolVenv};
use serde_json::{json, Value};

/// The account every ARN is rendered for.
pub const ACCOUNT: &str = "123456789012";
/// The region of every Base.
pub const REGION: &str = "us-west-2";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interpreter of `.venv-aws` (parliament and botocore, pinned in
/// `tests/aws/requirements.txt`), created on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        ensure_tool_venv(
            &root(),
            &ToolVenv {
                label: "AWS rules tools",
                env_override: Some("AWS_TOOLS_PYTHON"),
                dir: ".venv-aws",
                requirements: "tests/aws/requirements.txt",
            },
        )
        .expect("the AWS rules tools (parliament, botocore)")
    })
}

/// Spec text in, checked set out; every input must validate without an error.
pub fn checked(inputs: Vec<(String, String)>) -> SpecSet {
    let inputs: Vec<Input> = inputs
        .into_iter()
        .map(|(name, text)| Input {
            name,
            bytes: text.into_bytes(),
        })
        .collect();
    let (set, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    set
}

/// The example specs in `specs/`.
pub fn examples() -> SpecSet {
    let inputs = reconciler_spec::collect_inputs(&[root().join("specs")]).unwrap();
    checked(
        inputs
            .into_iter()
            .map(|i| (i.name, String::from_utf8(i.bytes).unwrap()))
            .collect(),
    )
}

/// Whether two IAM action patterns can name a common action: `*` stands for any run of
/// characters and `?` for one, in either pattern, and IAM compares actions without regard to
/// case. `ssm:Get*` and `ssm:GetParameter*` overlap (`ssm:GetParameters`); `ecs:Submit*` and
/// `ssm:GetParameter*` do not.
pub fn actions_overlap(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // memo[i][j]: whether a[i..] and b[j..] match a common string.
    let mut memo = vec![vec![None; b.len() + 1]; a.len() + 1];
    overlap_from(&a, &b, 0, 0, &mut memo)
}

fn overlap_from(
    a: &[char],
    b: &[char],
    i: usize,
    j: usize,
    memo: &mut [Vec<Option<bool>>],
) -> bool {
    if let Some(known) = memo[i][j] {
        return known;
    }
    let result = match (a.get(i), b.get(j)) {
        (None, None) => true,
        // A star matches nothing, or the other side's next character (or star) as well.
        (Some('*'), _) => {
            overlap_from(a, b, i + 1, j, memo)
                || (j < b.len() && overlap_from(a, b, i, j + 1, memo))
        }
        (_, Some('*')) => {
            overlap_from(a, b, i, j + 1, memo)
                || (i < a.len() && overlap_from(a, b, i + 1, j, memo))
        }
        (Some(x), Some(y)) => {
            (x == y || *x == '?' || *y == '?') && overlap_from(a, b, i + 1, j + 1, memo)
        }
        _ => false,
    };
    memo[i][j] = Some(result);
    result
}

/// The actions a policy document allows, one `(Sid, action pattern)` per action of each
/// `Allow` statement; a `NotAction` allow (everything but a list) reads as `*`.
pub fn allowed_actions(document: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for st in document["Statement"].as_array().into_iter().flatten() {
        if st["Effect"] != "Allow" {
            continue;
        }
        let sid = st["Sid"].as_str().unwrap_or("-").to_string();
        if st.get("NotAction").is_some() {
            out.push((sid.clone(), "*".to_string()));
        }
        match &st["Action"] {
            Value::String(a) => out.push((sid.clone(), a.clone())),
            Value::Array(list) => out.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(|a| (sid.clone(), a.to_string())),
            ),
            _ => {}
        }
    }
    out
}

/// The resource a `{"$ref": id, "attr": ...}` value names.
pub fn referenced(value: &Value) -> Option<&str> {
    value.get("$ref").and_then(Value::as_str)
}

pub fn rendered(set: &SpecSet) -> DesiredGraph {
    render(&Context::new(ACCOUNT), set, &InstanceCatalog::offline()).unwrap()
}

/// A Base document.
pub fn base(name: &str, domain: &str, zone: &str, shared: bool, ssh: bool) -> String {
    let mut text = format!(
        "apiVersion: reconciler.dev/v1alpha1\nkind: Base\nmetadata:\n  name: {name}\nspec:\n  \
         region: {REGION}\n  domain:\n    name: {domain}\n    hostedZoneId: {zone}\n"
    );
    if shared {
        text.push_str("    wakeZone: shared\n");
    }
    text.push_str("  alerts:\n    email: admin@example.com\n");
    if ssh {
        text.push_str("  ssh:\n    allowFrom: [203.0.113.7/32]\n");
    }
    text
}

/// `base` (a Base document) with every role capped by the permissions boundary `policy`.
pub fn bounded(base: String, policy: &str) -> String {
    format!("{base}  permissionsBoundary: {policy}\n")
}

/// The options of one server that shape its resources.
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub name: String,
    pub base: String,
    pub dns_name: Option<String>,
    pub spot: bool,
    pub boot_grace: Option<u32>,
    pub cooldown: Option<u32>,
    pub max_wakes: Option<u32>,
    /// Environment name -> secret reference.
    pub secrets: Vec<(String, String)>,
    /// Volume id -> (container paths, adopt, restoreFrom).
    pub volumes: Vec<VolumeSpec>,
}

impl Server {
    pub fn yaml(&self) -> String {
        let mut t = format!(
            "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: {}\n\
             spec:\n  baseRef: {}\n",
            self.name, self.base
        );
        if let Some(dns) = &self.dns_name {
            t.push_str(&format!("  dnsName: {dns}\n"));
        }
        t.push_str("  ec2:\n    instanceType: m5.large\n");
        if self.spot {
            t.push_str("    capacity: spot\n");
        }
        t.push_str(
            "  container:\n    image: itzg/minecraft-server\n    ports:\n      - port: 25565\n",
        );
        if !self.secrets.is_empty() {
            t.push_str("    secrets:\n");
            for (k, v) in &self.secrets {
                t.push_str(&format!("      {k}: \"{v}\"\n"));
            }
        }
        if !self.volumes.is_empty() {
            t.push_str("  volumes:\n");
            for (id, paths, adopt, restore) in &self.volumes {
                t.push_str(&format!("    {id}:\n"));
                if paths.is_empty() {
                    t.push_str("      paths: []\n");
                } else {
                    t.push_str("      paths:\n");
                    for p in paths {
                        t.push_str(&format!("        - path: {p}\n"));
                    }
                }
                if let Some(fs) = adopt {
                    t.push_str(&format!("      adopt: {fs}\n"));
                }
                if let Some(rp) = restore {
                    t.push_str(&format!("      restoreFrom: {rp}\n"));
                }
            }
        }
        t.push_str("  watchdog:\n    threshold: 1000\n");
        for (key, value) in [
            ("bootGraceMinutes", self.boot_grace),
            ("wakeCooldownMinutes", self.cooldown),
            ("maxWakesPerHour", self.max_wakes),
        ] {
            if let Some(v) = value {
                t.push_str(&format!("    {key}: {v}\n"));
            }
        }
        t
    }
}

/// Every spec option that changes a policy document, in one set of four Bases (per-server and
/// shared wake zone, each with and without SSH, the ones with SSH also with a permissions
/// boundary) of sixteen servers each: every combination of
/// boot grace (the idle-stop Lambda), wake limits (none, a cooldown, a rate, both: the start
/// Lambda's tag and read grants) and capacity, while the secrets (none, an SSM name, an SSM
/// ARN, a Secrets Manager ARN with and without its JSON-key suffix, all of them) and the
/// volumes (none, one, adopted, restored, eight with one mounted on the host only) rotate
/// through the servers, and every third server names its own DNS name (the shared zone's
/// record condition).
pub fn policy_set() -> (SpecSet, Vec<String>, Vec<String>) {
    let bases = [
        (
            "alpha",
            "games.example.com",
            "Z0ALPHA0000000000000",
            false,
            false,
        ),
        (
            "bravo",
            "play.example.net",
            "Z0BRAVO0000000000000",
            false,
            true,
        ),
        (
            "charlie",
            "shared.example.org",
            "Z0CHARLIE00000000000",
            true,
            false,
        ),
        (
            "delta",
            "lan.example.io",
            "Z0DELTA0000000000000",
            true,
            true,
        ),
    ];
    let mut inputs = Vec::new();
    let mut servers = Vec::new();
    for (base_name, domain, zone, shared, ssh) in bases {
        // The Bases with SSH also cap their roles with a boundary.
        let base_text = base(base_name, domain, zone, shared, ssh);
        inputs.push((
            format!("{base_name}.yaml"),
            if ssh {
                bounded(base_text, "reconciler-boundary")
            } else {
                base_text
            },
        ));
        let mut i = 0;
        for grace in [None, Some(15)] {
            for (cooldown, max_wakes) in [
                (None, None),
                (Some(30), None),
                (None, Some(4)),
                (Some(30), Some(4)),
            ] {
                for spot in [false, true] {
                    let name = format!("{base_name}-s{i}");
                    let server = Server {
                        dns_name: (i % 3 == 0).then(|| format!("play-{name}.{domain}")),
                        base: base_name.into(),
                        spot,
                        boot_grace: grace,
                        cooldown,
                        max_wakes,
                        secrets: secrets(i, &name),
                        volumes: volumes(i, &name),
                        name: name.clone(),
                    };
                    inputs.push((format!("{name}.yaml"), server.yaml()));
                    servers.push(name);
                    i += 1;
                }
            }
        }
    }
    let bases = bases.iter().map(|b| b.0.to_string()).collect();
    (checked(inputs), servers, bases)
}

fn secrets(i: usize, server: &str) -> Vec<(String, String)> {
    let all = [
        ("RCON_PASSWORD".to_string(), format!("/games/{server}/rcon-password")),
        (
            "API_TOKEN".to_string(),
            format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/games/{server}/api-token"),
        ),
        (
            "SERVER_PASSWORD".to_string(),
            format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:games/{server}-AbCdEf"),
        ),
        (
            "ADMIN_PASSWORD".to_string(),
            format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:games/{server}/admin-GhIjKl:password::"
            ),
        ),
    ];
    match i % 6 {
        0 => Vec::new(),
        5 => all.to_vec(),
        n => vec![all[n - 1].clone()],
    }
}

/// A volume: id, container paths, `adopt`, `restoreFrom`.
pub type VolumeSpec = (String, Vec<String>, Option<String>, Option<String>);

fn volumes(i: usize, server: &str) -> Vec<VolumeSpec> {
    let fs_id = format!("fs-{:017x}", crate::support::hash(server));
    match i % 5 {
        0 => Vec::new(),
        1 => vec![("Data".into(), vec!["/data".into()], None, None)],
        2 => vec![("World".into(), vec!["/world".into()], Some(fs_id), None)],
        3 => vec![(
            "Saves".into(),
            vec!["/saves".into()],
            None,
            Some(format!(
                "arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45"
            )),
        )],
        _ => (0..8)
            .map(|n| {
                let paths = if n == 0 { Vec::new() } else { vec![format!("/v{n}")] };
                (format!("Vol{n}"), paths, None, None)
            })
            .collect(),
    }
}

/// 64-bit FNV-1a, for stable fake ids.
pub fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) & 0x0fff_ffff_ffff_ffff
}

fn uuid(seed: &str) -> String {
    let a = hash(seed);
    let b = hash(&format!("{seed}/2"));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The output `attr` AWS would report for `r`, in AWS's own format. Panics for an output this
/// table does not know yet: add it, from the service's API reference.
pub fn simulated_output(r: &DesiredResource, attr: &str) -> Value {
    let (region, name) = (r.region.as_str(), r.name.as_str());
    let seed = r.id.as_str();
    let hex17 = format!("{:017x}", hash(seed));
    let s = match (r.kind.as_str(), attr) {
        (_, "name") => name.to_string(),
        ("iam.role", "arn") => format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
        ("iam.instance-profile", "arn") => {
            format!("arn:aws:iam::{ACCOUNT}:instance-profile/{name}")
        }
        ("route53.hosted-zone", "id") => format!("Z{:020X}", hash(seed)).chars().take(21).collect(),
        ("route53.hosted-zone", "nameServers") => {
            return json!([
                "ns-2048.awsdns-64.com",
                "ns-2049.awsdns-65.net",
                "ns-2050.awsdns-66.org",
                "ns-2051.awsdns-67.co.uk"
            ])
        }
        ("efs.file-system", "id") => match r.properties.get("adopt").and_then(Value::as_str) {
            Some(adopted) => adopted.to_string(),
            None => format!("fs-{hex17}"),
        },
        ("efs.file-system", "arn") => format!(
            "arn:aws:elasticfilesystem:{region}:{ACCOUNT}:file-system/{}",
            simulated_output(r, "id").as_str().unwrap()
        ),
        ("lambda.function", "arn") => format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"),
        ("sns.topic", "arn") => format!("arn:aws:sns:{region}:{ACCOUNT}:{name}"),
        ("events.rule", "arn") => format!("arn:aws:events:{region}:{ACCOUNT}:rule/{name}"),
        // As DescribeLogGroups reports it.
        ("logs.log-group", "arn") => format!("arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}:*"),
        ("ec2.vpc", "id") => format!("vpc-{hex17}"),
        ("ec2.subnet", "id") => format!("subnet-{hex17}"),
        ("ec2.security-group", "id") => format!("sg-{hex17}"),
        ("ec2.internet-gateway", "id") => format!("igw-{hex17}"),
        ("ec2.route-table", "id") => format!("rtb-{hex17}"),
        ("ec2.launch-template", "id") => format!("lt-{hex17}"),
        ("ec2.launch-template", "latestVersion") => return json!(1),
        ("autoscaling.group", "arn") => format!(
            "arn:aws:autoscaling:{region}:{ACCOUNT}:autoScalingGroup:{}:autoScalingGroupName/{name}",
            uuid(seed)
        ),
        ("autoscaling.scaling-policy", "arn") => format!(
            "arn:aws:autoscaling:{region}:{ACCOUNT}:scalingPolicy:{}:autoScalingGroupName/{}:policyName/{name}",
            uuid(seed),
            r.properties["autoScalingGroupName"].as_str().unwrap()
        ),
        ("backup.vault", "arn") => format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}"),
        ("backup.plan", "id") => uuid(seed),
        ("ecs.cluster", "arn") => format!("arn:aws:ecs:{region}:{ACCOUNT}:cluster/{name}"),
        ("ecs.capacity-provider", "arn") => {
            format!("arn:aws:ecs:{region}:{ACCOUNT}:capacity-provider/{name}")
        }
        ("ecs.task-definition", "arn") => {
            format!("arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{name}:1")
        }
        (kind, attr) => panic!("no simulated output `{attr}` of {kind}: add it to support.rs"),
    };
    Value::String(s)
}

/// The graph's resources with every reference replaced by what AWS would report.
pub fn resolved(g: &DesiredGraph) -> Vec<DesiredResource> {
    let by_id: BTreeMap<String, &DesiredResource> =
        g.iter().map(|r| (r.id.as_str().to_string(), r)).collect();
    let lookup = |reference: &Reference| -> Option<Value> {
        let target = by_id.get(reference.id.as_str())?;
        Some(simulated_output(target, &reference.attr))
    };
    g.iter()
        .map(|r| {
            let mut r = r.clone();
            let unresolved = resolve_refs(&mut r.properties, &lookup);
            assert!(unresolved.is_empty(), "{}: {unresolved:?}", r.id);
            r
        })
        .collect()
}
