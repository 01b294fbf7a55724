//! A server's compute and storage: security groups, IAM, EFS volumes, the launch template and
//! Auto Scaling group (0 or 1 instance), the ECS cluster, capacity provider, task definition and
//! daemon service, the container's log group, and the server's alert topic.

use reconciler_engine::model::{reference, DesiredResource};
use reconciler_spec::instance_types::HOST_RESERVED_MIB;
use reconciler_spec::{BaseDocument, ContainerSpecDocument, InstanceTypeInfo, Protocol};
use serde_json::{json, Value};

use crate::base::{tagged, BaseRefs};
use crate::naming::{ServerNames, BACKUP_DAILY, GLOBAL_REGION, TAG_BACKUP};
use crate::{kinds, policies, user_data, Context};

/// Retention of the container's logs.
pub const CONTAINER_LOG_RETENTION_DAYS: u32 = 7;

/// Public SSM parameter naming the current ECS-optimized Amazon Linux 2023 AMI.
pub fn ecs_ami_parameter(arm64: bool) -> &'static str {
    if arm64 {
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id"
    } else {
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
    }
}

/// Ids of server resources other parts of the render refer to.
#[derive(Debug, Clone)]
pub struct ServerRefs {
    /// The Auto Scaling group.
    pub asg: String,
    /// The ECS cluster.
    pub cluster: String,
    /// The server's alert topic.
    pub topic: String,
    /// The server's file systems by volume id.
    pub file_systems: Vec<(String, String)>,
}

/// The local part of a volume's file system resource id (`<server>-<volume, lower case>`).
/// Others that read a server's file systems (the idle alarm, `calibrate`) name them with it.
pub fn file_system_local(server: &str, volume: &str) -> String {
    format!("{server}-{}", volume.to_ascii_lowercase())
}

/// Renders a server's compute and storage.
pub fn render(
    cx: &Context,
    base: &BaseDocument,
    base_refs: &BaseRefs,
    doc: &ContainerSpecDocument,
    instance: InstanceTypeInfo,
) -> (Vec<DesiredResource>, ServerRefs) {
    let spec = &doc.spec;
    let names = ServerNames::new(&base.metadata.name, &doc.metadata.name);
    let region = base.spec.region.as_str();
    let local = doc.metadata.name.as_str();
    let account = cx.account_id.as_str();
    let partition = cx.partition.as_str();
    let mut out = Vec::new();

    // Alerts for the server's own subscribers (start-up, stop, failures).
    let topic_name = names.name("alerts");
    let topic_arn = format!("arn:{partition}:sns:{region}:{account}:{topic_name}");
    let topic = DesiredResource::new(kinds::TOPIC, &format!("{local}-alerts"), region, &topic_name)
        .with_properties(json!({
            "displayName": format!("{local} alerts"),
            "policy": policies::topic_policy(cx, &topic_arn, &["cloudwatch.amazonaws.com", "events.amazonaws.com"]),
            "subscriptions": crate::subscriptions(&spec.alerts)
        }));
    let topic_id = topic.id.to_string();
    out.push(tagged(topic, names.tags("alerts")));

    // Security groups: the instance takes only the declared ports (and SSH when the Base opens
    // it); EFS takes NFS only from the instance.
    let mut ingress: Vec<Value> = spec
        .container
        .ports
        .iter()
        .map(|p| {
            json!({
                "ipProtocol": p.protocol.as_str(),
                "fromPort": p.port,
                "toPort": p.port,
                "cidrIpv4": "0.0.0.0/0",
                "description": format!("game port {}/{}", p.port, p.protocol.as_str())
            })
        })
        .collect();
    if let Some(ssh) = &base.spec.ssh {
        for cidr in &ssh.allow_from {
            ingress.push(json!({
                "ipProtocol": Protocol::Tcp.as_str(),
                "fromPort": 22,
                "toPort": 22,
                "cidrIpv4": cidr,
                "description": "ssh"
            }));
        }
    }
    let instance_sg_name = names.name("instance");
    let instance_sg = DesiredResource::new(kinds::SECURITY_GROUP, &format!("{local}-instance"), region, &instance_sg_name)
        .with_properties(json!({
            "groupName": instance_sg_name,
            "description": format!("{local}: game traffic to the instance"),
            "vpcId": reference(base_refs.vpc.as_str(), "id"),
            "ingress": ingress,
            "egress": [{ "ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "description": "image pulls, AWS APIs, game updates" }]
        }))
        .with_tag("Name", instance_sg_name.clone());
    let instance_sg_id = instance_sg.id.to_string();
    out.push(tagged(instance_sg, names.tags("network")));

    let efs_sg_name = names.name("efs");
    let efs_sg = DesiredResource::new(
        kinds::SECURITY_GROUP,
        &format!("{local}-efs"),
        region,
        &efs_sg_name,
    )
    .with_properties(json!({
        "groupName": efs_sg_name,
        "description": format!("{local}: NFS from the instance to EFS"),
        "vpcId": reference(base_refs.vpc.as_str(), "id"),
        "ingress": [{
            "ipProtocol": "tcp",
            "fromPort": 2049,
            "toPort": 2049,
            "sourceSecurityGroupId": reference(instance_sg_id.as_str(), "id"),
            "description": "NFS from the server's instance"
        }],
        "egress": []
    }))
    .with_tag("Name", efs_sg_name.clone());
    let efs_sg_id = efs_sg.id.to_string();
    out.push(tagged(efs_sg, names.tags("network")));

    // IAM: the instance (ECS agent, EFS mounts, Session Manager's channel) and the task
    // execution role (logs, the named secrets). The container itself gets no AWS permissions,
    // and no managed policy widens the instance role: the container is kept from the metadata
    // service, but the host's own grants stay what a compromised host could use.
    let cluster_name = names.cluster();
    let cluster_arn = names.cluster_arn(partition, account, region);
    let instance_role_name = names.name("instance");
    let instance_role = DesiredResource::new(
        kinds::ROLE,
        &format!("{local}-instance"),
        GLOBAL_REGION,
        &instance_role_name,
    )
    .with_properties(json!({
        "description": format!("Host of server {local}: ECS agent, EFS mounts, Session Manager"),
        "assumeRolePolicyDocument": policies::assume_role("ec2.amazonaws.com"),
        "managedPolicyArns": [],
        "inlinePolicies": {
            "server-host": policies::instance_policy(cx, region, local, &cluster_arn)
        }
    }));
    let instance_role_id = instance_role.id.to_string();
    out.push(tagged(instance_role, names.tags("compute")));

    let profile = DesiredResource::new(
        kinds::INSTANCE_PROFILE,
        &format!("{local}-instance"),
        GLOBAL_REGION,
        &instance_role_name,
    )
    .with_properties(json!({ "roles": [reference(instance_role_id.as_str(), "name")] }));
    let profile_id = profile.id.to_string();
    out.push(tagged(profile, names.tags("compute")));

    let log_group_name = format!("/reconciler/{local}/container");
    let log_group_arn =
        format!("arn:{partition}:logs:{region}:{account}:log-group:{log_group_name}:*");
    let log_group = DesiredResource::new(
        kinds::LOG_GROUP,
        &format!("{local}-container"),
        region,
        &log_group_name,
    )
    .with_properties(json!({ "retentionInDays": CONTAINER_LOG_RETENTION_DAYS }));
    out.push(tagged(log_group, names.tags("compute")));

    let (ssm_parameters, secret_arns) =
        secret_resources(cx, region, spec.container.secrets.values());
    let execution_role_name = names.name("task-execution");
    let execution_role = DesiredResource::new(kinds::ROLE, &format!("{local}-task-execution"), GLOBAL_REGION, &execution_role_name)
        .with_properties(json!({
            "description": format!("ECS task execution for server {local}: logs and its secrets"),
            "assumeRolePolicyDocument": policies::assume_role("ecs-tasks.amazonaws.com"),
            "managedPolicyArns": [],
            "inlinePolicies": {
                "task-execution": policies::execution_policy(Value::String(log_group_arn), &ssm_parameters, &secret_arns)
            }
        }));
    let execution_role_id = execution_role.id.to_string();
    out.push(tagged(execution_role, names.tags("compute")));

    // Volumes: one encrypted file system each, a mount target per zone.
    let mut file_systems = Vec::new();
    let mut fs_refs = Vec::new();
    for (volume, v) in &spec.volumes {
        let token = names.efs_creation_token(volume);
        let fs_local = file_system_local(local, volume);
        let mut fs = DesiredResource::new(kinds::FILE_SYSTEM, &fs_local, region, &token)
            .with_properties(json!({
                "encrypted": true,
                "performanceMode": "generalPurpose",
                "throughputMode": "bursting",
                "fileSystemPolicy": policies::file_system_policy(reference(instance_role_id.as_str(), "arn"))
            }))
            .with_tag("Name", token.clone());
        if v.backups_enabled(spec.maturity) {
            fs = fs.with_tag(TAG_BACKUP, BACKUP_DAILY);
        }
        if v.kept_on_delete(spec.maturity) {
            fs = fs.retained();
        }
        // An existing file system (adopted) or a recovery point (restored) instead of a new,
        // empty one: the provider's create does that, everything downstream is the same.
        if let Some(existing) = &v.adopt {
            fs.properties["adopt"] = json!(existing);
        }
        if let Some(arn) = &v.restore_from {
            fs.properties["restoreFrom"] = json!({
                "recoveryPointArn": arn,
                "backupVaultName": reference(base_refs.backup_vault.as_str(), "name"),
                "iamRoleArn": reference(base_refs.backup_role.as_str(), "arn")
            });
        }
        let fs = tagged(fs, names.tags("storage"));
        let fs_id = fs.id.to_string();
        out.push(fs);
        for (zone, subnet) in base_refs.subnets.iter().enumerate() {
            let mt = DesiredResource::new(
                kinds::MOUNT_TARGET,
                &format!("{fs_local}-{zone}"),
                region,
                format!("{token}-{zone}"),
            )
            .with_properties(json!({
                "fileSystemId": reference(fs_id.as_str(), "id"),
                "subnetId": reference(subnet.as_str(), "id"),
                "securityGroups": [reference(efs_sg_id.as_str(), "id")]
            }));
            out.push(mt);
        }
        fs_refs.push((volume.clone(), reference(fs_id.as_str(), "id")));
        file_systems.push((volume.clone(), fs_id));
    }

    // Compute: a launch template and a group of zero or one instance. The group's desired
    // capacity belongs to the running system (wake and sleep), never to apply.
    let lt_name = names.name("");
    let mut lt_props = json!({
        "imageParameter": ecs_ami_parameter(instance.arm64),
        "instanceType": spec.ec2.instance_type,
        // Always stated, so a switch back to on-demand is a change (a new template version).
        "instanceMarketType": match spec.ec2.capacity {
            reconciler_spec::Capacity::OnDemand => "on-demand",
            reconciler_spec::Capacity::Spot => "spot",
        },
        "iamInstanceProfileArn": reference(profile_id.as_str(), "arn"),
        "securityGroupIds": [reference(instance_sg_id.as_str(), "id")],
        "metadataOptions": { "httpTokens": "required", "httpEndpoint": "enabled", "httpPutResponseHopLimit": 1 },
        "monitoring": true,
        "blockDeviceMappings": [{
            "deviceName": "/dev/xvda",
            "ebs": { "encrypted": true, "volumeType": "gp3", "deleteOnTermination": true }
        }],
        "userData": user_data::user_data(doc, &names, &fs_refs),
        "instanceTags": names.tags("compute").into_iter().chain([("Name".to_string(), names.name(""))]).collect::<indexmap::IndexMap<_, _>>()
    });
    // An explicit null when SSH is off, so a key pair set earlier (or out of band) is removed.
    lt_props["keyName"] = base_refs
        .key_pair
        .clone()
        .map_or(Value::Null, Value::String);
    let mut lt = DesiredResource::new(kinds::LAUNCH_TEMPLATE, local, region, &lt_name)
        .with_properties(lt_props);
    if base_refs.key_pair.is_some() {
        lt = lt.with_dependency(format!("{}/{}", kinds::KEY_PAIR, base.metadata.name).as_str());
    }
    let lt_id = lt.id.to_string();
    out.push(tagged(lt, names.tags("compute")));

    let asg_name = names.name("");
    let asg = DesiredResource::new(kinds::AUTO_SCALING_GROUP, local, region, &asg_name)
        .with_properties(json!({
            "launchTemplateId": reference(lt_id.as_str(), "id"),
            "launchTemplateVersion": "$Latest",
            "minSize": 0,
            "maxSize": 1,
            "vpcZoneIdentifier": base_refs.subnets.iter().map(|s| reference(s.as_str(), "id")).collect::<Vec<Value>>(),
            "healthCheckType": "EC2",
            "newInstancesProtectedFromScaleIn": false,
            "notifications": [
                { "topicArn": reference(base_refs.admin_topic.as_str(), "arn"), "types": ["autoscaling:EC2_INSTANCE_LAUNCH_ERROR", "autoscaling:EC2_INSTANCE_TERMINATE_ERROR"] },
                { "topicArn": reference(topic_id.as_str(), "arn"), "types": ["autoscaling:EC2_INSTANCE_LAUNCH_ERROR", "autoscaling:EC2_INSTANCE_TERMINATE_ERROR"] }
            ]
        }))
        .with_tag("Name", asg_name.clone());
    let asg = tagged(asg, names.tags("compute"));
    let asg_id = asg.id.to_string();
    out.push(asg);

    // ECS: the cluster, its capacity provider over the group (managed draining holds a
    // terminating instance until the task has stopped), a task definition and a daemon service
    // that places the task on whatever instance joins.
    let cluster = DesiredResource::new(kinds::CLUSTER, local, region, &cluster_name)
        .with_properties(json!({ "containerInsights": "disabled" }));
    let cluster_id = cluster.id.to_string();
    out.push(tagged(cluster, names.tags("compute")));

    let cp_name = names.name("");
    let cp = DesiredResource::new(kinds::CAPACITY_PROVIDER, local, region, &cp_name)
        .with_properties(json!({
            "autoScalingGroupArn": reference(asg_id.as_str(), "arn"),
            "managedDraining": "ENABLED",
            "managedTerminationProtection": "DISABLED"
        }));
    let cp_id = cp.id.to_string();
    out.push(tagged(cp, names.tags("compute")));

    let association = DesiredResource::new(
        kinds::CLUSTER_CAPACITY_PROVIDERS,
        local,
        region,
        &cluster_name,
    )
    .with_properties(json!({
        "cluster": reference(cluster_id.as_str(), "name"),
        "capacityProviders": [reference(cp_id.as_str(), "name")],
        "defaultCapacityProviderStrategy": []
    }));
    out.push(association);

    let mut volumes = Vec::new();
    let mut mount_points = Vec::new();
    for (volume, v) in &spec.volumes {
        for (i, p) in v.paths.iter().enumerate() {
            let name = format!("{volume}-{i}");
            volumes.push(json!({
                "name": name,
                "host": { "sourcePath": format!("{}/{}", names.host_mount(volume), p.path.trim_start_matches('/')) }
            }));
            mount_points.push(
                json!({ "sourceVolume": name, "containerPath": p.path, "readOnly": p.read_only }),
            );
        }
    }
    let container = json!({
        "name": local,
        "image": spec.container.image,
        "essential": true,
        "memoryReservation": instance.memory_mib.saturating_sub(HOST_RESERVED_MIB),
        "portMappings": spec.container.ports.iter().map(|p| json!({
            "containerPort": p.port, "hostPort": p.port, "protocol": p.protocol.as_str()
        })).collect::<Vec<_>>(),
        "environment": spec.container.environment.iter().map(|(k, v)| json!({ "name": k, "value": v.as_env_string() })).collect::<Vec<_>>(),
        "secrets": spec.container.secrets.iter().map(|(k, v)| json!({ "name": k, "valueFrom": v })).collect::<Vec<_>>(),
        "mountPoints": mount_points,
        "privileged": false,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group_name,
                "awslogs-region": region,
                "awslogs-stream-prefix": "container"
            }
        }
    });
    // The execution role by its known ARN rather than a reference: the definition is then
    // complete when observed, so the digest its revision is tagged with can vouch for it
    // without describing it (see the ECS provider).
    let execution_role_arn = format!("arn:{partition}:iam::{account}:role/{execution_role_name}");
    let task = DesiredResource::new(kinds::TASK_DEFINITION, local, region, names.name(""))
        .with_dependency(execution_role_id.as_str())
        .with_properties(json!({
            "family": names.name(""),
            // Bridge, not host: the container gets its own network namespace, so it cannot
            // reach the host's loopback services, and the instance drops what it sends to the
            // metadata service (see `user_data`). Each port is published on the same host port
            // and protocol, so players still connect to the instance's address.
            "networkMode": "bridge",
            "requiresCompatibilities": ["EC2"],
            "executionRoleArn": execution_role_arn,
            "containerDefinitions": [container],
            "volumes": volumes
        }));
    let task_id = task.id.to_string();
    out.push(tagged(task, names.tags("compute")));

    // The cluster by its known ARN rather than a reference: observation can then describe the
    // service in its own cluster in one call, instead of searching every managed cluster.
    let service = DesiredResource::new(kinds::SERVICE, local, region, names.name(""))
        .with_dependency(cluster_id.as_str())
        .with_properties(json!({
            "cluster": cluster_arn,
            "taskDefinition": reference(task_id.as_str(), "arn"),
            "launchType": "EC2",
            "schedulingStrategy": "DAEMON",
            "deploymentConfiguration": { "maximumPercent": 100, "minimumHealthyPercent": 0 },
            "enableEcsManagedTags": true,
            "propagateTags": "SERVICE"
        }));
    out.push(tagged(service, names.tags("compute")));

    let refs = ServerRefs {
        asg: asg_id,
        cluster: cluster_id,
        topic: topic_id,
        file_systems,
    };
    (out, refs)
}

/// The IAM resources of the secrets a container reads: SSM parameter ARNs and Secrets Manager
/// secret ARNs (without the JSON-key suffix ECS accepts).
fn secret_resources<'a>(
    cx: &Context,
    region: &str,
    refs: impl Iterator<Item = &'a String>,
) -> (Vec<String>, Vec<String>) {
    let mut parameters = Vec::new();
    let mut secrets = Vec::new();
    for r in refs {
        if r.starts_with("arn:") && r.contains(":secretsmanager:") {
            // arn:aws:secretsmanager:region:account:secret:name-AbCdEf[:json-key:version-stage:version-id]
            let arn: Vec<&str> = r.splitn(8, ':').collect();
            secrets.push(arn[..arn.len().min(7)].join(":"));
        } else if r.starts_with("arn:") {
            parameters.push(r.clone());
        } else {
            let name = r.trim_start_matches('/');
            parameters.push(format!(
                "arn:{}:ssm:{region}:{}:parameter/{name}",
                cx.partition, cx.account_id
            ));
        }
    }
    parameters.sort();
    parameters.dedup();
    secrets.sort();
    secrets.dedup();
    (parameters, secrets)
}
