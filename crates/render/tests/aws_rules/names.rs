//! The longest names the validator allows, rendered, against the constraints of AWS's API
//! models: every name, identifier, description, tag and document the provider sends is checked
//! against the input member it is sent as, read at test time from botocore's `service-2.json`
//! (`tests/aws/check_names.py`: the model's length, pattern, enum and range, and for the
//! services whose model states a limit only in its documentation, that stated length).
//!
//! Reading the models at test time rather than copying numbers into a fixture keeps the source
//! AWS's: a new botocore pin brings AWS's current rules, and nothing here can drift from them.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use reconciler_engine::model::DesiredResource;
use reconciler_render::kinds;
use reconciler_spec::{check, Input, InstanceCatalog};
use serde_json::{json, Value};

use crate::support::{self, Server};

/// One value to check: where it comes from, and the API input member it is sent as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sent {
    #[serde(rename = "where")]
    pub at: String,
    pub service: &'static str,
    pub operation: &'static str,
    pub member: &'static str,
    pub value: Value,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Violation {
    #[serde(rename = "where")]
    pub at: String,
    pub service: String,
    pub operation: String,
    pub member: String,
    pub value: Value,
    pub problem: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct Checked {
    pub violations: Vec<Violation>,
    pub constraints: BTreeMap<String, Value>,
}

/// Checks every value in one run of `check_names.py`.
pub fn check_sent(sent: &[Sent]) -> Checked {
    let mut child = Command::new(support::python())
        .arg(support::root().join("tests/aws/check_names.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running check_names.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(sent).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "check_names.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check_names.py's JSON")
}

fn text(v: &Value) -> Value {
    match v {
        Value::String(_) | Value::Number(_) => v.clone(),
        // Documents are sent serialized.
        other => Value::String(other.to_string()),
    }
}

/// Every value the provider sends for `resources` (references resolved), with the API member
/// it is sent as. Panics on a resource kind it does not map: a new kind must be added here.
pub fn sent(resources: &[DesiredResource]) -> Vec<Sent> {
    let mut out = Vec::new();
    for r in resources {
        let id = r.id.as_str();
        let p = &r.properties;
        let mut put = |what: &str, service, operation, member, value: &Value| {
            out.push(Sent {
                at: format!("{id} {what}"),
                service,
                operation,
                member,
                value: text(value),
            })
        };
        let name = Value::String(r.name.clone());
        // Tags, as each service takes them.
        let tag_members: Option<(&str, &str, &str, &str)> = match r.kind.as_str() {
            kinds::ROLE => Some(("iam", "CreateRole", "Tags[].Key", "Tags[].Value")),
            kinds::INSTANCE_PROFILE => {
                Some(("iam", "CreateInstanceProfile", "Tags[].Key", "Tags[].Value"))
            }
            kinds::LOG_GROUP => Some(("logs", "CreateLogGroup", "tags{}", "tags{value}")),
            kinds::FUNCTION => Some(("lambda", "CreateFunction", "Tags{}", "Tags{value}")),
            kinds::EVENT_RULE => Some(("events", "PutRule", "Tags[].Key", "Tags[].Value")),
            kinds::ALARM => Some(("cloudwatch", "PutMetricAlarm", "Tags[].Key", "Tags[].Value")),
            kinds::AUTO_SCALING_GROUP => Some((
                "autoscaling",
                "CreateAutoScalingGroup",
                "Tags[].Key",
                "Tags[].Value",
            )),
            kinds::VPC
            | kinds::SUBNET
            | kinds::INTERNET_GATEWAY
            | kinds::ROUTE_TABLE
            | kinds::SECURITY_GROUP
            | kinds::DEFAULT_SECURITY_GROUP
            | kinds::KEY_PAIR
            | kinds::LAUNCH_TEMPLATE => Some(("ec2", "CreateTags", "Tags[].Key", "Tags[].Value")),
            kinds::CLUSTER | kinds::CAPACITY_PROVIDER | kinds::TASK_DEFINITION | kinds::SERVICE => {
                Some(("ecs", "CreateCluster", "tags[].key", "tags[].value"))
            }
            kinds::FILE_SYSTEM => Some(("efs", "CreateFileSystem", "Tags[].Key", "Tags[].Value")),
            kinds::BACKUP_VAULT => Some((
                "backup",
                "CreateBackupVault",
                "BackupVaultTags{}",
                "BackupVaultTags{value}",
            )),
            kinds::BACKUP_PLAN => Some((
                "backup",
                "CreateBackupPlan",
                "BackupPlanTags{}",
                "BackupPlanTags{value}",
            )),
            kinds::TOPIC => Some(("sns", "CreateTopic", "Tags[].Key", "Tags[].Value")),
            kinds::HOSTED_ZONE => Some((
                "route53",
                "ChangeTagsForResource",
                "AddTags[].Key",
                "AddTags[].Value",
            )),
            kinds::PARAMETER => Some(("ssm", "PutParameter", "Tags[].Key", "Tags[].Value")),
            _ => None,
        };
        if let Some((service, operation, key, value)) = tag_members {
            for (k, v) in &r.tags {
                put(&format!("tag {k}"), service, operation, key, &json!(k));
                put(
                    &format!("tag {k} value"),
                    service,
                    operation,
                    value,
                    &json!(v),
                );
            }
        } else {
            assert!(
                r.tags.is_empty(),
                "{id}: tags of a kind the names test does not map"
            );
        }
        match r.kind.as_str() {
            kinds::VPC | kinds::SUBNET | kinds::INTERNET_GATEWAY | kinds::ROUTE_TABLE => {}
            // Adopted, not created: its name is the `Name` tag, checked with the tags.
            kinds::DEFAULT_SECURITY_GROUP => {}
            kinds::MOUNT_TARGET | kinds::CLUSTER_CAPACITY_PROVIDERS => {}
            kinds::SECURITY_GROUP => {
                put(
                    "name",
                    "ec2",
                    "CreateSecurityGroup",
                    "GroupName",
                    &p["groupName"],
                );
                put(
                    "description",
                    "ec2",
                    "CreateSecurityGroup",
                    "Description",
                    &p["description"],
                );
                for rule in p["ingress"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .chain(p["egress"].as_array().unwrap())
                {
                    put(
                        "rule description",
                        "ec2",
                        "AuthorizeSecurityGroupIngress",
                        "IpPermissions[].IpRanges[].Description",
                        &rule["description"],
                    );
                }
            }
            kinds::KEY_PAIR => put("name", "ec2", "CreateKeyPair", "KeyName", &name),
            kinds::LAUNCH_TEMPLATE => {
                put(
                    "name",
                    "ec2",
                    "CreateLaunchTemplate",
                    "LaunchTemplateName",
                    &name,
                );
                put(
                    "instance type",
                    "ec2",
                    "CreateLaunchTemplate",
                    "LaunchTemplateData.InstanceType",
                    &p["instanceType"],
                );
                for (k, v) in p["instanceTags"].as_object().unwrap() {
                    put(
                        "instance tag",
                        "ec2",
                        "CreateLaunchTemplate",
                        "LaunchTemplateData.TagSpecifications[].Tags[].Key",
                        &json!(k),
                    );
                    put(
                        "instance tag value",
                        "ec2",
                        "CreateLaunchTemplate",
                        "LaunchTemplateData.TagSpecifications[].Tags[].Value",
                        v,
                    );
                }
            }
            kinds::AUTO_SCALING_GROUP => {
                put(
                    "name",
                    "autoscaling",
                    "CreateAutoScalingGroup",
                    "AutoScalingGroupName",
                    &name,
                );
                put(
                    "launch template version",
                    "autoscaling",
                    "CreateAutoScalingGroup",
                    "LaunchTemplate.Version",
                    &p["launchTemplateVersion"],
                );
                put(
                    "health check",
                    "autoscaling",
                    "CreateAutoScalingGroup",
                    "HealthCheckType",
                    &p["healthCheckType"],
                );
                let zones: Vec<&str> = p["vpcZoneIdentifier"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect();
                put(
                    "subnets",
                    "autoscaling",
                    "CreateAutoScalingGroup",
                    "VPCZoneIdentifier",
                    &json!(zones.join(",")),
                );
                for n in p["notifications"].as_array().unwrap() {
                    put(
                        "notification topic",
                        "autoscaling",
                        "PutNotificationConfiguration",
                        "TopicARN",
                        &n["topicArn"],
                    );
                    for t in n["types"].as_array().unwrap() {
                        put(
                            "notification type",
                            "autoscaling",
                            "PutNotificationConfiguration",
                            "NotificationTypes[]",
                            t,
                        );
                    }
                }
            }
            kinds::SCALING_POLICY => {
                put(
                    "name",
                    "autoscaling",
                    "PutScalingPolicy",
                    "PolicyName",
                    &name,
                );
                put(
                    "group",
                    "autoscaling",
                    "PutScalingPolicy",
                    "AutoScalingGroupName",
                    &p["autoScalingGroupName"],
                );
                put(
                    "type",
                    "autoscaling",
                    "PutScalingPolicy",
                    "PolicyType",
                    &p["policyType"],
                );
                put(
                    "adjustment",
                    "autoscaling",
                    "PutScalingPolicy",
                    "AdjustmentType",
                    &p["adjustmentType"],
                );
            }
            kinds::ROLE => {
                put("name", "iam", "CreateRole", "RoleName", &name);
                put(
                    "description",
                    "iam",
                    "CreateRole",
                    "Description",
                    &p["description"],
                );
                put(
                    "trust policy",
                    "iam",
                    "CreateRole",
                    "AssumeRolePolicyDocument",
                    &p["assumeRolePolicyDocument"],
                );
                for (policy, doc) in p["inlinePolicies"].as_object().unwrap() {
                    put(
                        "inline policy name",
                        "iam",
                        "PutRolePolicy",
                        "PolicyName",
                        &json!(policy),
                    );
                    put(
                        "inline policy",
                        "iam",
                        "PutRolePolicy",
                        "PolicyDocument",
                        doc,
                    );
                }
                for arn in p["managedPolicyArns"].as_array().unwrap() {
                    put(
                        "managed policy",
                        "iam",
                        "AttachRolePolicy",
                        "PolicyArn",
                        arn,
                    );
                }
                if let Some(boundary) = p.get("permissionsBoundary") {
                    put(
                        "permissions boundary",
                        "iam",
                        "CreateRole",
                        "PermissionsBoundary",
                        boundary,
                    );
                }
            }
            kinds::INSTANCE_PROFILE => put(
                "name",
                "iam",
                "CreateInstanceProfile",
                "InstanceProfileName",
                &name,
            ),
            kinds::LOG_GROUP => {
                put("name", "logs", "CreateLogGroup", "logGroupName", &name);
                put(
                    "retention",
                    "logs",
                    "PutRetentionPolicy",
                    "retentionInDays",
                    &p["retentionInDays"],
                );
            }
            kinds::FILE_SYSTEM => {
                put(
                    "creation token",
                    "efs",
                    "CreateFileSystem",
                    "CreationToken",
                    &name,
                );
                put(
                    "performance mode",
                    "efs",
                    "CreateFileSystem",
                    "PerformanceMode",
                    &p["performanceMode"],
                );
                put(
                    "throughput mode",
                    "efs",
                    "CreateFileSystem",
                    "ThroughputMode",
                    &p["throughputMode"],
                );
                put(
                    "policy",
                    "efs",
                    "PutFileSystemPolicy",
                    "Policy",
                    &p["fileSystemPolicy"],
                );
                if let Some(restore) = p.get("restoreFrom") {
                    put(
                        "recovery point",
                        "backup",
                        "StartRestoreJob",
                        "RecoveryPointArn",
                        &restore["recoveryPointArn"],
                    );
                    put(
                        "restore role",
                        "backup",
                        "StartRestoreJob",
                        "IamRoleArn",
                        &restore["iamRoleArn"],
                    );
                }
                if let Some(fs) = p.get("adopt") {
                    put(
                        "adopted file system",
                        "efs",
                        "DescribeFileSystems",
                        "FileSystemId",
                        fs,
                    );
                }
            }
            kinds::BACKUP_VAULT => put(
                "name",
                "backup",
                "CreateBackupVault",
                "BackupVaultName",
                &name,
            ),
            kinds::BACKUP_PLAN => {
                put(
                    "name",
                    "backup",
                    "CreateBackupPlan",
                    "BackupPlan.BackupPlanName",
                    &name,
                );
                for rule in p["rules"].as_array().unwrap() {
                    put(
                        "rule name",
                        "backup",
                        "CreateBackupPlan",
                        "BackupPlan.Rules[].RuleName",
                        &rule["ruleName"],
                    );
                    put(
                        "rule vault",
                        "backup",
                        "CreateBackupPlan",
                        "BackupPlan.Rules[].TargetBackupVaultName",
                        &rule["targetBackupVaultName"],
                    );
                    put(
                        "rule schedule",
                        "backup",
                        "CreateBackupPlan",
                        "BackupPlan.Rules[].ScheduleExpression",
                        &rule["scheduleExpression"],
                    );
                }
            }
            kinds::BACKUP_SELECTION => {
                put(
                    "name",
                    "backup",
                    "CreateBackupSelection",
                    "BackupSelection.SelectionName",
                    &name,
                );
                put(
                    "role",
                    "backup",
                    "CreateBackupSelection",
                    "BackupSelection.IamRoleArn",
                    &p["iamRoleArn"],
                );
                for c in p["conditions"]["stringEquals"].as_array().unwrap() {
                    put(
                        "condition key",
                        "backup",
                        "CreateBackupSelection",
                        "BackupSelection.Conditions.StringEquals[].ConditionKey",
                        &c["conditionKey"],
                    );
                    put(
                        "condition value",
                        "backup",
                        "CreateBackupSelection",
                        "BackupSelection.Conditions.StringEquals[].ConditionValue",
                        &c["conditionValue"],
                    );
                }
            }
            kinds::TOPIC => put("name", "sns", "CreateTopic", "Name", &name),
            kinds::CLUSTER => put("name", "ecs", "CreateCluster", "clusterName", &name),
            kinds::CAPACITY_PROVIDER => put("name", "ecs", "CreateCapacityProvider", "name", &name),
            kinds::TASK_DEFINITION => {
                put(
                    "family",
                    "ecs",
                    "RegisterTaskDefinition",
                    "family",
                    &p["family"],
                );
                for c in p["containerDefinitions"].as_array().unwrap() {
                    put(
                        "container name",
                        "ecs",
                        "RegisterTaskDefinition",
                        "containerDefinitions[].name",
                        &c["name"],
                    );
                    for (k, _) in c["logConfiguration"]["options"].as_object().unwrap() {
                        put(
                            "log option",
                            "ecs",
                            "RegisterTaskDefinition",
                            "containerDefinitions[].logConfiguration.options{}",
                            &json!(k),
                        );
                    }
                }
                for v in p["volumes"].as_array().unwrap() {
                    put(
                        "volume name",
                        "ecs",
                        "RegisterTaskDefinition",
                        "volumes[].name",
                        &v["name"],
                    );
                }
            }
            kinds::SERVICE => put("name", "ecs", "CreateService", "serviceName", &name),
            kinds::LOG_RESOURCE_POLICY => {
                put("name", "logs", "PutResourcePolicy", "policyName", &name);
                put(
                    "document",
                    "logs",
                    "PutResourcePolicy",
                    "policyDocument",
                    &p["policyDocument"],
                );
            }
            kinds::SUBSCRIPTION_FILTER => {
                put("name", "logs", "PutSubscriptionFilter", "filterName", &name);
                put(
                    "group",
                    "logs",
                    "PutSubscriptionFilter",
                    "logGroupName",
                    &p["logGroupName"],
                );
                put(
                    "pattern",
                    "logs",
                    "PutSubscriptionFilter",
                    "filterPattern",
                    &p["filterPattern"],
                );
                put(
                    "destination",
                    "logs",
                    "PutSubscriptionFilter",
                    "destinationArn",
                    &p["destinationArn"],
                );
            }
            kinds::HOSTED_ZONE => {
                put("name", "route53", "CreateHostedZone", "Name", &name);
                put(
                    "comment",
                    "route53",
                    "CreateHostedZone",
                    "HostedZoneConfig.Comment",
                    &p["comment"],
                );
            }
            kinds::RECORD_SET => {
                put(
                    "zone",
                    "route53",
                    "ChangeResourceRecordSets",
                    "HostedZoneId",
                    &p["hostedZoneId"],
                );
                put(
                    "name",
                    "route53",
                    "ChangeResourceRecordSets",
                    "ChangeBatch.Changes[].ResourceRecordSet.Name",
                    &p["name"],
                );
                put(
                    "type",
                    "route53",
                    "ChangeResourceRecordSets",
                    "ChangeBatch.Changes[].ResourceRecordSet.Type",
                    &p["type"],
                );
                put(
                    "ttl",
                    "route53",
                    "ChangeResourceRecordSets",
                    "ChangeBatch.Changes[].ResourceRecordSet.TTL",
                    &p["ttl"],
                );
                for v in p
                    .get("values")
                    .or(p.get("initialValues"))
                    .and_then(Value::as_array)
                    .unwrap()
                {
                    put(
                        "value",
                        "route53",
                        "ChangeResourceRecordSets",
                        "ChangeBatch.Changes[].ResourceRecordSet.ResourceRecords[].Value",
                        v,
                    );
                }
            }
            kinds::QUERY_LOGGING_CONFIG => {
                put(
                    "zone",
                    "route53",
                    "CreateQueryLoggingConfig",
                    "HostedZoneId",
                    &p["hostedZoneId"],
                );
                put(
                    "log group",
                    "route53",
                    "CreateQueryLoggingConfig",
                    "CloudWatchLogsLogGroupArn",
                    &p["cloudWatchLogsLogGroupArn"],
                );
            }
            kinds::FUNCTION => {
                put("name", "lambda", "CreateFunction", "FunctionName", &name);
                put(
                    "description",
                    "lambda",
                    "CreateFunction",
                    "Description",
                    &p["description"],
                );
                put(
                    "runtime",
                    "lambda",
                    "CreateFunction",
                    "Runtime",
                    &p["runtime"],
                );
                put(
                    "handler",
                    "lambda",
                    "CreateFunction",
                    "Handler",
                    &p["handler"],
                );
                put(
                    "architecture",
                    "lambda",
                    "CreateFunction",
                    "Architectures[]",
                    &p["architecture"],
                );
                put(
                    "memory",
                    "lambda",
                    "CreateFunction",
                    "MemorySize",
                    &p["memorySize"],
                );
                put(
                    "timeout",
                    "lambda",
                    "CreateFunction",
                    "Timeout",
                    &p["timeout"],
                );
                put("role", "lambda", "CreateFunction", "Role", &p["roleArn"]);
                put(
                    "log group",
                    "lambda",
                    "CreateFunction",
                    "LoggingConfig.LogGroup",
                    &p["logGroup"],
                );
                for (k, v) in p["environment"].as_object().unwrap() {
                    put(
                        "environment name",
                        "lambda",
                        "CreateFunction",
                        "Environment.Variables{}",
                        &json!(k),
                    );
                    put(
                        "environment value",
                        "lambda",
                        "CreateFunction",
                        "Environment.Variables{value}",
                        v,
                    );
                }
            }
            kinds::LAMBDA_PERMISSION => {
                put(
                    "statement id",
                    "lambda",
                    "AddPermission",
                    "StatementId",
                    &name,
                );
                put(
                    "function",
                    "lambda",
                    "AddPermission",
                    "FunctionName",
                    &p["functionName"],
                );
                put("action", "lambda", "AddPermission", "Action", &p["action"]);
                put(
                    "principal",
                    "lambda",
                    "AddPermission",
                    "Principal",
                    &p["principal"],
                );
                put(
                    "source",
                    "lambda",
                    "AddPermission",
                    "SourceArn",
                    &p["sourceArn"],
                );
            }
            kinds::ALARM => {
                put("name", "cloudwatch", "PutMetricAlarm", "AlarmName", &name);
                put(
                    "description",
                    "cloudwatch",
                    "PutMetricAlarm",
                    "AlarmDescription",
                    &p["alarmDescription"],
                );
                put(
                    "comparison",
                    "cloudwatch",
                    "PutMetricAlarm",
                    "ComparisonOperator",
                    &p["comparisonOperator"],
                );
                put(
                    "missing data",
                    "cloudwatch",
                    "PutMetricAlarm",
                    "TreatMissingData",
                    &p["treatMissingData"],
                );
                put(
                    "periods",
                    "cloudwatch",
                    "PutMetricAlarm",
                    "EvaluationPeriods",
                    &p["evaluationPeriods"],
                );
                put(
                    "datapoints",
                    "cloudwatch",
                    "PutMetricAlarm",
                    "DatapointsToAlarm",
                    &p["datapointsToAlarm"],
                );
                for a in p["alarmActions"].as_array().unwrap() {
                    put(
                        "action",
                        "cloudwatch",
                        "PutMetricAlarm",
                        "AlarmActions[]",
                        a,
                    );
                }
                for q in p["metrics"].as_array().unwrap() {
                    put(
                        "query id",
                        "cloudwatch",
                        "PutMetricAlarm",
                        "Metrics[].Id",
                        &q["id"],
                    );
                    if let Some(e) = q.get("expression") {
                        put(
                            "expression",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].Expression",
                            e,
                        );
                    }
                    if let Some(l) = q.get("label") {
                        put(
                            "label",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].Label",
                            l,
                        );
                    }
                    if let Some(m) = q.get("metric") {
                        put(
                            "namespace",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].MetricStat.Metric.Namespace",
                            &m["namespace"],
                        );
                        put(
                            "metric",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].MetricStat.Metric.MetricName",
                            &m["metricName"],
                        );
                        put(
                            "stat",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].MetricStat.Stat",
                            &q["stat"],
                        );
                        put(
                            "period",
                            "cloudwatch",
                            "PutMetricAlarm",
                            "Metrics[].MetricStat.Period",
                            &q["period"],
                        );
                        for d in m["dimensions"].as_array().unwrap() {
                            put(
                                "dimension",
                                "cloudwatch",
                                "PutMetricAlarm",
                                "Metrics[].MetricStat.Metric.Dimensions[].Name",
                                &d["name"],
                            );
                            put(
                                "dimension value",
                                "cloudwatch",
                                "PutMetricAlarm",
                                "Metrics[].MetricStat.Metric.Dimensions[].Value",
                                &d["value"],
                            );
                        }
                    }
                }
            }
            kinds::EVENT_RULE => {
                put("name", "events", "PutRule", "Name", &name);
                put(
                    "description",
                    "events",
                    "PutRule",
                    "Description",
                    &p["description"],
                );
                put("state", "events", "PutRule", "State", &p["state"]);
                put(
                    "pattern",
                    "events",
                    "PutRule",
                    "EventPattern",
                    &p["eventPattern"],
                );
                for t in p["targets"].as_array().unwrap() {
                    put(
                        "target id",
                        "events",
                        "PutTargets",
                        "Targets[].Id",
                        &t["id"],
                    );
                    put("target", "events", "PutTargets", "Targets[].Arn", &t["arn"]);
                    if let Some(input) = t.get("input") {
                        put(
                            "target input",
                            "events",
                            "PutTargets",
                            "Targets[].Input",
                            input,
                        );
                    }
                }
            }
            kinds::DASHBOARD => {
                put("name", "cloudwatch", "PutDashboard", "DashboardName", &name);
                put(
                    "body",
                    "cloudwatch",
                    "PutDashboard",
                    "DashboardBody",
                    &p["body"],
                );
            }
            kinds::PARAMETER => {
                put("name", "ssm", "PutParameter", "Name", &name);
                put("value", "ssm", "PutParameter", "Value", &p["value"]);
            }
            other => panic!("{id}: the names test does not map kind {other}; add it"),
        }
    }
    out
}

/// DNS names as Route 53 takes them (its Developer Guide, "DNS domain name format", after
/// RFC 1035): labels of 1 to 63 octets, at most 255 octets on the wire, so at most 253
/// characters written without the final dot. The API model only says 1024.
fn dns_problems(resources: &[DesiredResource]) -> Vec<String> {
    let mut out = Vec::new();
    for r in resources {
        let names: Vec<&str> = match r.kind.as_str() {
            kinds::HOSTED_ZONE | kinds::QUERY_LOGGING_CONFIG => vec![r.name.as_str()],
            kinds::RECORD_SET => vec![r.properties["name"].as_str().unwrap()],
            _ => continue,
        };
        for name in names {
            let bare = name.trim_end_matches('.');
            if bare.len() > 253 || bare.split('.').any(|l| l.is_empty() || l.len() > 63) {
                out.push(format!(
                    "{}: `{name}` ({} characters) is not a DNS name Route 53 takes",
                    r.id,
                    bare.len()
                ));
            }
        }
    }
    out
}

/// `n` characters from `alphabet`-free filler: a letter, then `fill`, ending in `end`.
fn long(first: &str, fill: char, end: char, n: usize) -> String {
    let mut s = first.to_string();
    while s.len() + 1 < n {
        s.push(fill);
    }
    s.push(end);
    s
}

/// A domain of exactly `n` characters (labels of at most 63, the last `example`-like).
fn domain(n: usize, tag: char) -> String {
    let mut labels = Vec::new();
    let mut left = n;
    loop {
        if left <= 63 {
            labels.push(long(&tag.to_string(), 'd', 'm', left.max(2)));
            break;
        }
        // A label of up to 63, leaving at least 3 for the next label and its dot.
        let take = (left - 1).min(63).min(left - 4);
        labels.push(long(&tag.to_string(), 'd', 'z', take));
        left -= take + 1;
    }
    labels.join(".")
}

fn errors(inputs: &[(String, String)]) -> Vec<String> {
    let inputs: Vec<Input> = inputs
        .iter()
        .map(|(name, text)| Input {
            name: name.clone(),
            bytes: text.clone().into_bytes(),
        })
        .collect();
    let (_, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect()
}

/// The largest `n` in `range` for which `make(n)` validates, asserting that `n + 1` does not.
fn longest(
    range: std::ops::RangeInclusive<usize>,
    make: impl Fn(usize) -> Vec<(String, String)>,
) -> usize {
    let n = range
        .clone()
        .rev()
        .find(|n| errors(&make(*n)).is_empty())
        .unwrap_or_else(|| {
            panic!(
                "nothing in {range:?} validates: {:?}",
                errors(&make(*range.start()))
            )
        });
    assert!(
        n < *range.end(),
        "{n}: the range does not reach the validator's limit"
    );
    assert!(!errors(&make(n + 1)).is_empty());
    n
}

/// The longest Base name, server name, volume ids (eight of them), domain and permissions
/// boundary the validator allows, in a per-server and a shared wake zone, with every optional
/// Lambda (boot grace, wake limits), SSH, and a second server whose `dnsName` is as long as a
/// DNS name can be.
pub fn longest_set() -> (reconciler_spec::SpecSet, BTreeMap<&'static str, usize>) {
    let server_named = |name: String, base: &str, dns: Option<String>| Server {
        name,
        base: base.into(),
        dns_name: dns,
        spot: true,
        boot_grace: Some(15),
        cooldown: Some(30),
        max_wakes: Some(60),
        secrets: vec![("RCON_PASSWORD".into(), "/games/rcon".into())],
        volumes: Vec::new(),
    };
    let base_yaml = |name: &str, dom: &str, shared: bool| {
        support::base(name, dom, "Z0123456789ABCDEFGHIJKLMNOPQRSTU", shared, true)
    };
    let mut lengths = BTreeMap::new();
    // Each part alone, against a short rest.
    let base_len = longest(1..=40, |n| {
        vec![(
            "b.yaml".into(),
            base_yaml(&long("b", 'a', '1', n), "example.com", false),
        )]
    });
    let server_len = longest(1..=40, |n| {
        vec![
            ("b.yaml".into(), base_yaml("b", "example.com", false)),
            (
                "s.yaml".into(),
                server_named(long("s", 'e', '1', n), "b", None).yaml(),
            ),
        ]
    });
    let volume_len = longest(1..=40, |n| {
        let mut s = server_named("s".into(), "b", None);
        s.volumes = vec![(long("V", 'x', '1', n), vec!["/data".into()], None, None)];
        vec![
            ("b.yaml".into(), base_yaml("b", "example.com", false)),
            ("s.yaml".into(), s.yaml()),
        ]
    });
    let server_name = |tag: char| long(&format!("s{tag}"), 'e', '1', server_len);
    // The domain: as long as the validator allows with the longest server name under it.
    let domain_len = longest(4..=300, |n| {
        vec![
            ("b.yaml".into(), base_yaml("b", &domain(n, 'g'), false)),
            (
                "s.yaml".into(),
                server_named(server_name('a'), "b", None).yaml(),
            ),
        ]
    });
    // The permissions boundary's policy name.
    let boundary_len = longest(1..=200, |n| {
        vec![(
            "b.yaml".into(),
            support::bounded(
                base_yaml("b", "example.com", false),
                &long("p", 'o', '1', n),
            ),
        )]
    });
    lengths.insert("base name", base_len);
    lengths.insert("boundary", boundary_len);
    lengths.insert("server name", server_len);
    lengths.insert("volume id", volume_len);
    lengths.insert("domain", domain_len);

    let mut inputs = Vec::new();
    for (tag, shared) in [('p', false), ('q', true)] {
        let base_name = long(&format!("b{tag}"), 'a', '1', base_len);
        let dom = domain(domain_len, tag);
        inputs.push((
            format!("{base_name}.yaml"),
            support::bounded(
                base_yaml(&base_name, &dom, shared),
                &long("p", 'o', '1', boundary_len),
            ),
        ));
        let mut first = server_named(server_name(tag), &base_name, None);
        first.volumes = (0..8)
            .map(|i| {
                let paths = if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("/v{i}")]
                };
                (
                    long(&format!("V{i}"), 'x', '1', volume_len),
                    paths,
                    None,
                    None,
                )
            })
            .collect();
        inputs.push((format!("{}.yaml", first.name), first.yaml()));
        // A second server whose own DNS name is the longest a DNS name can be.
        let second_name = long(&format!("t{tag}"), 'e', '2', server_len);
        let own =
            (dom.len() + 3 <= 253).then(|| format!("{}.{dom}", domain(253 - dom.len() - 1, 'w')));
        let mut second = server_named(second_name, &base_name, own);
        second.volumes = vec![(
            long("W", 'x', '1', volume_len),
            vec!["/w".into()],
            Some("fs-0123456789abcdef0".into()),
            None,
        )];
        inputs.push((format!("{}.yaml", second.name), second.yaml()));
    }
    (support::checked(inputs), lengths)
}

#[test]
fn the_longest_names_the_validator_allows_fit_aws_api_models() {
    let (set, lengths) = longest_set();
    assert_eq!(lengths["base name"], 32);
    assert_eq!(lengths["server name"], 32);
    assert_eq!(lengths["volume id"], 32);
    // `<32-character name>.<domain>` is at most 253 characters.
    assert_eq!(lengths["domain"], 220);
    assert_eq!(lengths["boundary"], 128);
    let resources = support::resolved(&support::rendered(&set));
    let sent = sent(&resources);
    let checked = check_sent(&sent);
    let mut problems: Vec<String> = checked
        .violations
        .iter()
        .map(|v| {
            format!(
                "{} ({}:{} {}): {}",
                v.at, v.service, v.operation, v.member, v.problem
            )
        })
        .collect();
    problems.extend(dns_problems(&resources));
    assert!(
        problems.is_empty(),
        "names at the validator's limits ({lengths:?}) that AWS refuses:\n{}",
        problems.join("\n")
    );
    // The checks had teeth: the members that carry the longest names are constrained.
    for key in [
        "iam:CreateRole:RoleName",
        "iam:CreateRole:PermissionsBoundary",
        "lambda:CreateFunction:FunctionName",
        "events:PutRule:Name",
        "logs:CreateLogGroup:logGroupName",
        "efs:CreateFileSystem:CreationToken",
        "lambda:AddPermission:StatementId",
        "cloudwatch:PutMetricAlarm:AlarmName",
        "autoscaling:CreateAutoScalingGroup:AutoScalingGroupName",
        "ecs:CreateCluster:clusterName",
        "sns:CreateTopic:Name",
        "ec2:CreateSecurityGroup:GroupName",
        "backup:CreateBackupVault:BackupVaultName",
        "route53:CreateHostedZone:HostedZoneConfig.Comment",
    ] {
        let c = &checked.constraints[key];
        assert!(
            !c["max"].is_null() || !c["documented_max"].is_null() || !c["pattern"].is_null(),
            "{key}: {c}"
        );
    }
    assert!(sent.len() > 1000, "{}", sent.len());
}

#[test]
fn the_model_check_rejects_a_role_name_of_65_characters_and_other_overlong_values() {
    let value = |member: &'static str, service, operation, v: Value| Sent {
        at: member.into(),
        service,
        operation,
        member,
        value: v,
    };
    let sent = [
        value("RoleName", "iam", "CreateRole", json!("r".repeat(64))),
        value("RoleName", "iam", "CreateRole", json!("r".repeat(65))),
        value("RoleName", "iam", "CreateRole", json!("rc-mc:instance")),
        value(
            "Tags[].Value",
            "autoscaling",
            "CreateAutoScalingGroup",
            json!("v".repeat(300)),
        ),
        value("Name", "events", "PutRule", json!("rc-mc/instance-up")),
        value(
            "FunctionName",
            "lambda",
            "CreateFunction",
            json!("f".repeat(65)),
        ),
        value(
            "GroupName",
            "ec2",
            "CreateSecurityGroup",
            json!("g".repeat(256)),
        ),
        value(
            "Runtime",
            "lambda",
            "CreateFunction",
            json!("provided.al2099"),
        ),
        value("MemorySize", "lambda", "CreateFunction", json!(64)),
    ];
    let checked = check_sent(&sent);
    let refused: Vec<(&str, &str)> = checked
        .violations
        .iter()
        .map(|v| {
            (
                v.member.as_str(),
                v.value
                    .as_str()
                    .map_or("(number)", |s| &s[..s.len().min(16)]),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("RoleName", "rrrrrrrrrrrrrrrr"),
            ("RoleName", "rc-mc:instance"),
            ("Tags[].Value", "vvvvvvvvvvvvvvvv"),
            ("Name", "rc-mc/instance-u"),
            ("FunctionName", "ffffffffffffffff"),
            ("GroupName", "gggggggggggggggg"),
            ("Runtime", "provided.al2099"),
            ("MemorySize", "(number)"),
        ],
        "{:#?}",
        checked.violations
    );
    assert!(checked.violations[0]
        .problem
        .contains("65 characters, the model's maximum is 64"));
}
