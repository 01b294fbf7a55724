//! The instance's boot script: keep containers from the instance metadata service, mount each
//! EFS volume on the host over TLS with IAM authentication, prepare the container paths, and
//! configure the ECS agent.
//!
//! File-system ids are only known once the file systems exist, so the script is rendered as a
//! `$join` of text and references that the engine resolves before it calls AWS.

use reconciler_spec::ContainerSpecDocument;
use serde_json::{json, Value};

use crate::naming::ServerNames;

/// The script as a `{"$join": [...]}` value. `file_systems` pairs each volume id with a
/// reference to its file system's id, in spec order.
pub fn user_data(
    server: &ContainerSpecDocument,
    names: &ServerNames,
    file_systems: &[(String, Value)],
) -> Value {
    let mut parts: Vec<Value> = Vec::new();
    let mut text = String::from("#!/bin/bash\nset -euo pipefail\n");
    text.push_str(&block_container_metadata_access());
    if !file_systems.is_empty() {
        // The ECS-optimized AMI ships the EFS mount helper; install it if an AMI ever does not.
        text.push_str("command -v mount.efs >/dev/null || dnf install -y amazon-efs-utils\n");
    }
    for (volume, fs_id) in file_systems {
        let mount = names.host_mount(volume);
        text.push_str(&format!("mkdir -p '{mount}'\necho '"));
        parts.push(Value::String(std::mem::take(&mut text)));
        parts.push(fs_id.clone());
        text.push_str(&format!(
            ":/ {mount} efs _netdev,noresvport,tls,iam 0 0' >> /etc/fstab\nmount '{mount}'\n"
        ));
        if let Some(v) = server.spec.volumes.get(volume) {
            for p in &v.paths {
                // Container users differ per image (UID 1000, steam, root...): the directory is
                // writable by all, and only the container and the host can reach it.
                let dir = format!("{mount}/{}", p.path.trim_start_matches('/'));
                text.push_str(&format!("mkdir -p -m 777 '{dir}'\n"));
            }
        }
    }
    // SELinux enforcing, as the ECS agent is told below (containers get labelled volumes).
    text.push_str(
        "setenforce 1 || true\nsed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config\n",
    );
    text.push_str(&format!(
        "cat >> /etc/ecs/ecs.config <<'ECS'\nECS_CLUSTER={}\nECS_DISABLE_PRIVILEGED=true\nECS_SELINUX_CAPABLE=true\nECS_DISABLE_IMAGE_CLEANUP=true\nECS_ENABLE_CONTAINER_METADATA=true\nECS\n",
        names.cluster()
    ));
    parts.push(Value::String(text));
    json!({ "$join": parts })
}

/// The metadata service's address.
pub const METADATA_ADDRESS: &str = "169.254.169.254";

/// The systemd unit that drops what containers send to the metadata service.
pub const METADATA_BLOCK_UNIT: &str = "reconciler-block-container-metadata.service";

/// The rule: any packet the host forwards (a bridge-mode container's) to the metadata service
/// is dropped, before Docker's own rules, in the `DOCKER-USER` chain Docker keeps for the
/// host's rules. This is ECS's advice for the `bridge` network mode (its agent setting
/// `ECS_AWSVPC_BLOCK_IMDS` acts on `awsvpc` tasks only); the host's own processes (the ECS and
/// SSM agents) reach the service directly, not through that chain.
pub fn metadata_block_rule() -> String {
    format!("DOCKER-USER -d {METADATA_ADDRESS}/32 -j DROP")
}

/// The commands that install the rule now and on every boot before Docker and the ECS agent
/// start: a oneshot unit ordered before both, enabled and started at once. Creating the chain
/// first lets the unit run before Docker ever has (Docker keeps an existing `DOCKER-USER`
/// chain and its rules); the check makes it idempotent. The script runs before the ECS agent's
/// first start, so no task runs without the rule.
fn block_container_metadata_access() -> String {
    let rule = metadata_block_rule();
    format!(
        "cat > /etc/systemd/system/{METADATA_BLOCK_UNIT} <<'UNIT'\n\
         [Unit]\n\
         Description=Drop container traffic to the instance metadata service\n\
         Before=docker.service ecs.service\n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh -c 'iptables -w -N DOCKER-USER 2>/dev/null; \
         iptables -w -C {rule} 2>/dev/null || iptables -w -I {rule_at_top}'\n\
         [Install]\n\
         WantedBy=multi-user.target\n\
         UNIT\n\
         systemctl daemon-reload\n\
         systemctl enable --now {METADATA_BLOCK_UNIT}\n",
        rule_at_top = rule.replacen("DOCKER-USER", "DOCKER-USER 1", 1),
    )
}
