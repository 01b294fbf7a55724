//! The instance's boot script: mount each EFS volume on the host over TLS with IAM
//! authentication, prepare the container paths, and configure the ECS agent.
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
