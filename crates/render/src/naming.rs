//! Deterministic names and ownership tags. A name is a function of the spec alone, so every
//! run finds the objects an earlier (or interrupted) run created, with no state file.

use indexmap::IndexMap;

/// Prefix of every AWS name the reconciler gives.
pub const PREFIX: &str = "rc";

/// Tag: who manages the object. Objects without it are never touched.
pub const TAG_MANAGED_BY: &str = "reconciler.dev/managed-by";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "reconciler";
/// Tag: the Base the object belongs to.
pub const TAG_BASE: &str = "reconciler.dev/base";
/// Tag: the server (ContainerSpec) the object belongs to; absent on Base objects.
pub const TAG_SERVER: &str = "reconciler.dev/server";
/// Tag: which part of the system the object is (`network`, `compute`, `storage`, ...).
pub const TAG_COMPONENT: &str = "reconciler.dev/component";
/// Tag: which Kubernetes object owns the object (`k8s:<namespace>/<Kind>/<name>`), on what the
/// operator makes; absent on what `reconciler apply` makes. Names ignore namespaces, so this
/// tag is what tells one namespace's objects from another's.
pub const TAG_OWNER: &str = "reconciler.dev/owner";
/// Tag on file systems that the Base's backup plan selects.
pub const TAG_BACKUP: &str = "reconciler.dev/backup";
/// Value of [`TAG_BACKUP`] for file systems with daily backups.
pub const BACKUP_DAILY: &str = "daily";

/// Who owns what a render makes when it is not `reconciler apply`: the operator's objects of
/// one namespace. Each resource is owned by the object it comes from, the Base or a
/// ContainerSpec, read from its ownership tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The objects' Kubernetes namespace.
    pub namespace: String,
}

impl Owner {
    /// The [`TAG_OWNER`] value of a resource with these tags: its server's ContainerSpec, else
    /// its Base; `None` for a resource with no Base tag (the account-wide ones).
    pub fn tag_value(&self, tags: &IndexMap<String, String>) -> Option<String> {
        let (kind, name) = match (tags.get(TAG_SERVER), tags.get(TAG_BASE)) {
            (Some(server), _) => ("ContainerSpec", server),
            (None, Some(base)) => ("Base", base),
            (None, None) => return None,
        };
        Some(format!("k8s:{}/{kind}/{name}", self.namespace))
    }
}

/// Region of the global services (IAM, Route 53) and of Route 53 query logging.
pub const GLOBAL_REGION: &str = "us-east-1";

/// The name of the dashboard with local id `local` (a Base's, `<base>` or `<base>-<n>`).
/// Dashboards carry no tags, so this one rule also finds the per-server dashboards of earlier
/// versions (`rc-<server>-dashboard`) to retire them.
pub fn dashboard_name(local: &str) -> String {
    format!("{PREFIX}-{local}-dashboard")
}

/// Names derived from a Base.
#[derive(Debug, Clone)]
pub struct BaseNames {
    /// The Base's `metadata.name`.
    pub base: String,
}

impl BaseNames {
    /// Names for a Base.
    pub fn new(base: &str) -> Self {
        BaseNames {
            base: base.to_string(),
        }
    }

    /// `rc-<base>` plus a suffix.
    pub fn name(&self, suffix: &str) -> String {
        if suffix.is_empty() {
            format!("{PREFIX}-{}", self.base)
        } else {
            format!("{PREFIX}-{}-{suffix}", self.base)
        }
    }

    /// Ownership tags of a Base object.
    pub fn tags(&self, component: &str) -> IndexMap<String, String> {
        let mut tags = IndexMap::new();
        tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
        tags.insert(TAG_BASE.into(), self.base.clone());
        tags.insert(TAG_COMPONENT.into(), component.into());
        tags
    }
}

/// Names derived from a server.
#[derive(Debug, Clone)]
pub struct ServerNames {
    /// The Base's names.
    pub base: BaseNames,
    /// The server's `metadata.name`.
    pub server: String,
}

impl ServerNames {
    /// Names for a server of a Base.
    pub fn new(base: &str, server: &str) -> Self {
        ServerNames {
            base: BaseNames::new(base),
            server: server.to_string(),
        }
    }

    /// `rc-<server>` plus a suffix.
    pub fn name(&self, suffix: &str) -> String {
        if suffix.is_empty() {
            format!("{PREFIX}-{}", self.server)
        } else {
            format!("{PREFIX}-{}-{suffix}", self.server)
        }
    }

    /// Ownership tags of a server object.
    pub fn tags(&self, component: &str) -> IndexMap<String, String> {
        let mut tags = self.base.tags(component);
        tags.insert(TAG_SERVER.into(), self.server.clone());
        tags
    }

    /// The ECS cluster's name, also written into the instance's ECS agent config.
    pub fn cluster(&self) -> String {
        self.name("")
    }

    /// The ECS cluster's ARN, known before the cluster exists (policies, event patterns and the
    /// service name it plainly).
    pub fn cluster_arn(&self, partition: &str, account: &str, region: &str) -> String {
        format!(
            "arn:{partition}:ecs:{region}:{account}:cluster/{}",
            self.cluster()
        )
    }

    /// Where a volume is mounted on the host.
    pub fn host_mount(&self, volume: &str) -> String {
        format!("/mnt/efs/{volume}")
    }

    /// The EFS creation token of a volume: the idempotency key that lets a re-run (or an
    /// interrupted one) find the file system instead of creating a second one. At most 64
    /// characters, as EFS requires.
    pub fn efs_creation_token(&self, volume: &str) -> String {
        bounded(&self.name(&volume.to_ascii_lowercase()), 64)
    }
}

/// Shortens `name` to `max` characters by replacing its tail with a hash of the whole name,
/// so distinct long names stay distinct.
pub fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = fnv1a(name.as_bytes());
    let suffix = format!("-{hash:08x}");
    let keep = max - suffix.len();
    format!("{}{suffix}", &name[..keep])
}

/// Shortens a free-text field (a description, a comment) to `max` characters, ending it with
/// `...` when cut, for fields AWS bounds that embed a name of unbounded length (a DNS name can
/// have 253 characters; a Lambda description or a hosted zone comment at most 256).
pub fn bounded_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

/// 32-bit FNV-1a: tiny, stable across releases (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_bounded() {
        let n = ServerNames::new("main", "minecraft");
        assert_eq!(n.name("instance"), "rc-minecraft-instance");
        assert_eq!(n.cluster(), "rc-minecraft");
        assert_eq!(n.efs_creation_token("Data"), "rc-minecraft-data");
        let long = ServerNames::new("main", &"a".repeat(32));
        let token = long.efs_creation_token(&"B".repeat(32));
        assert_eq!(token.len(), 64);
        assert_ne!(token, long.efs_creation_token(&"C".repeat(32)));
    }

    #[test]
    fn long_text_is_cut_to_the_limit_and_says_so() {
        assert_eq!(bounded_text("short", 256), "short");
        let cut = bounded_text(&"é".repeat(300), 256);
        assert_eq!(cut.chars().count(), 256);
        assert!(cut.ends_with("é..."));
    }

    #[test]
    fn tags_carry_ownership() {
        let tags = ServerNames::new("main", "mc").tags("compute");
        assert_eq!(tags[TAG_MANAGED_BY], "reconciler");
        assert_eq!(tags[TAG_BASE], "main");
        assert_eq!(tags[TAG_SERVER], "mc");
        assert_eq!(tags[TAG_COMPONENT], "compute");
    }
}
