//! IAM and resource policy documents. Each grants the least its user needs; every wildcard
//! here is one AWS requires, and says why.

use serde_json::{json, Value};

use crate::Context;

/// A trust policy letting one AWS service assume a role.
pub fn assume_role(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// An AWS managed policy's ARN.
pub fn managed(cx: &Context, name: &str) -> String {
    format!("arn:{}:iam::aws:policy/{name}", cx.partition)
}

/// The ARN of the account's managed policy `name`, as a permissions boundary names it.
pub fn boundary_arn(cx: &Context, name: &str) -> String {
    format!("arn:{}:iam::{}:policy/{name}", cx.partition, cx.account_id)
}

/// An SNS topic policy: publishing only over TLS, and only by the given AWS services acting
/// for this account (alarms, EventBridge rules).
pub fn topic_policy(cx: &Context, topic_arn: &str, services: &[&str]) -> Value {
    let mut statements = vec![json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": topic_arn,
        "Condition": { "Bool": { "aws:SecureTransport": "false" } }
    })];
    for service in services {
        let sid = format!(
            "Allow{}",
            service
                .split('.')
                .next()
                .unwrap_or_default()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        statements.push(json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": { "StringEquals": { "aws:SourceAccount": cx.account_id } }
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The EFS file system policy: no access without TLS, and mounting only by the server's
/// instance role through a mount target (no anonymous NFS clients).
pub fn file_system_policy(instance_role_arn: Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "*",
                "Condition": { "Bool": { "aws:SecureTransport": "false" } }
            },
            {
                "Sid": "AllowServerInstance",
                "Effect": "Allow",
                "Principal": { "AWS": instance_role_arn },
                "Action": [
                    "elasticfilesystem:ClientMount",
                    "elasticfilesystem:ClientWrite",
                    "elasticfilesystem:ClientRootAccess"
                ],
                "Condition": { "Bool": { "elasticfilesystem:AccessedViaMountTarget": "true" } }
            }
        ]
    })
}

/// The instance role's own policy, and all the role holds: mount the server's file systems
/// (selected by the server tag, so the policy does not depend on file-system ids), run its
/// ECS agent, and keep Session Manager's channel open. Nothing reads a parameter, a secret or
/// a key: whatever reaches this role's credentials gets no more than the host's own duties.
pub fn instance_policy(cx: &Context, region: &str, server: &str, cluster_arn: &str) -> Value {
    // Any container instance of the account and region: the ARN names the cluster only in the
    // long ARN format, and the `ecs:cluster` condition scopes the grant to the server's cluster
    // whichever format an account uses.
    let container_instances = format!(
        "arn:{}:ecs:{region}:{}:container-instance/*",
        cx.partition, cx.account_id
    );
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MountServerVolumes",
                "Effect": "Allow",
                "Action": [
                    "elasticfilesystem:ClientMount",
                    "elasticfilesystem:ClientWrite",
                    "elasticfilesystem:ClientRootAccess"
                ],
                "Resource": format!("arn:{}:elasticfilesystem:{region}:{}:file-system/*", cx.partition, cx.account_id),
                "Condition": { "StringEquals": { "aws:ResourceTag/reconciler.dev/server": server } }
            },
            {
                "Sid": "RegisterWithServerCluster",
                "Effect": "Allow",
                "Action": [
                    "ecs:DeregisterContainerInstance",
                    "ecs:RegisterContainerInstance",
                    "ecs:Submit*"
                ],
                "Resource": cluster_arn
            },
            {
                "Sid": "PollServerCluster",
                "Effect": "Allow",
                "Action": ["ecs:Poll", "ecs:StartTelemetrySession"],
                // These act on a container instance (`container-instance/<cluster>/<id>` in
                // AWS's service authorization reference); the condition names the cluster.
                "Resource": container_instances,
                "Condition": { "ArnEquals": { "ecs:cluster": cluster_arn } }
            },
            {
                "Sid": "DiscoverEcsEndpoint",
                "Effect": "Allow",
                // DiscoverPollEndpoint has no resource type: AWS requires `*`.
                "Action": "ecs:DiscoverPollEndpoint",
                "Resource": "*"
            },
            {
                "Sid": "RegisterWithSessionManager",
                "Effect": "Allow",
                // The SSM agent reports the instance (the `instance` resource type); Session
                // Manager needs this and the channels below, and none of the managed policy's
                // parameter, document or association reads.
                "Action": "ssm:UpdateInstanceInformation",
                "Resource": format!("arn:{}:ec2:{region}:{}:instance/*", cx.partition, cx.account_id)
            },
            {
                "Sid": "OpenSessionChannels",
                "Effect": "Allow",
                // Session Manager's message channels have no resource type: AWS requires `*`.
                "Action": [
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel"
                ],
                "Resource": "*"
            }
        ]
    })
}

/// The Base's backup role policy: what AWS Backup needs to back up the Base's EFS file systems
/// into its vault and to restore them from it. These are the EFS, tag, vault and key
/// statements of AWS's managed `AWSBackupServiceRolePolicyForBackup` and
/// `AWSBackupServiceRolePolicyForRestores`, scoped to the Base's region, account and vault;
/// none of those policies' grants on other services (launching instances and passing any role
/// to EC2, reading DynamoDB tables, RDS, FSx, EKS, ...), which this role never needs.
pub fn backup_policy(cx: &Context, region: &str, vault_name: &str) -> Value {
    let (partition, account) = (cx.partition.as_str(), cx.account_id.as_str());
    let file_systems =
        format!("arn:{partition}:elasticfilesystem:{region}:{account}:file-system/*");
    let keys = format!("arn:{partition}:kms:{region}:{account}:key/*");
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "BackUpFileSystems",
                "Effect": "Allow",
                "Action": ["elasticfilesystem:Backup", "elasticfilesystem:DescribeTags"],
                "Resource": file_systems
            },
            {
                "Sid": "FindSelectedFileSystems",
                "Effect": "Allow",
                // The plan selects file systems by tag; GetResources has no resource type.
                "Action": "tag:GetResources",
                "Resource": "*"
            },
            {
                "Sid": "UseBaseVault",
                "Effect": "Allow",
                "Action": ["backup:DescribeBackupVault", "backup:CopyIntoBackupVault"],
                "Resource": format!("arn:{partition}:backup:{region}:{account}:backup-vault:{vault_name}")
            },
            {
                "Sid": "TagRecoveryPoints",
                "Effect": "Allow",
                "Action": "backup:TagResource",
                "Resource": format!("arn:{partition}:backup:{region}:{account}:recovery-point:*")
            },
            {
                "Sid": "RestoreFileSystems",
                "Effect": "Allow",
                // A restore makes a new file system (and deletes it again if the job fails).
                "Action": [
                    "elasticfilesystem:Restore",
                    "elasticfilesystem:DescribeFileSystems",
                    "elasticfilesystem:DeleteFileSystem",
                    "elasticfilesystem:TagResource"
                ],
                "Resource": file_systems
            },
            {
                "Sid": "CreateRestoredFileSystems",
                "Effect": "Allow",
                // CreateFileSystem has no resource type: AWS requires `*`.
                "Action": "elasticfilesystem:CreateFileSystem",
                "Resource": "*"
            },
            {
                "Sid": "DescribeKeys",
                "Effect": "Allow",
                "Action": "kms:DescribeKey",
                "Resource": keys
            },
            {
                "Sid": "GrantKeysToAwsResources",
                "Effect": "Allow",
                // The vault's key for recovery points, a restored file system's key for EFS.
                "Action": "kms:CreateGrant",
                "Resource": keys,
                "Condition": { "Bool": { "kms:GrantIsForAWSResource": "true" } }
            },
            {
                "Sid": "EncryptRestoredFileSystems",
                "Effect": "Allow",
                "Action": "kms:GenerateDataKeyWithoutPlaintext",
                "Resource": keys,
                "Condition": { "StringEquals": { "kms:ViaService": format!("elasticfilesystem.{region}.amazonaws.com") } }
            }
        ]
    })
}

/// The task execution role's policy: write the container's logs and read exactly the secrets
/// the spec names.
pub fn execution_policy(
    log_group_arn: Value,
    ssm_parameters: &[String],
    secrets: &[String],
) -> Value {
    let mut statements = vec![json!({
        "Sid": "WriteContainerLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": log_group_arn
    })];
    if !ssm_parameters.is_empty() {
        statements.push(json!({
            "Sid": "ReadSecretParameters",
            "Effect": "Allow",
            "Action": "ssm:GetParameters",
            "Resource": ssm_parameters
        }));
    }
    if !secrets.is_empty() {
        statements.push(json!({
            "Sid": "ReadSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secrets
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}
