//! The Base's resources: the public VPC (its default security group closed), the admin alert
//! topic, the backup vault and plan shared by every server, and the optional SSH key pair.

use reconciler_engine::model::{reference, DesiredResource};
use reconciler_kinds::ec2::DefaultSecurityGroup;
use reconciler_kinds::Input;
use reconciler_spec::BaseDocument;
use serde_json::{json, Value};

use crate::naming::{BaseNames, BACKUP_DAILY, GLOBAL_REGION, TAG_BACKUP};
use crate::{kinds, policies, Context};

/// Size of each public subnet: a /20 (4,096 addresses) per zone, so zones can be added later
/// without renumbering.
const SUBNET_PREFIX: u32 = 20;

/// Ids of the Base resources servers refer to.
#[derive(Debug, Clone)]
pub struct BaseRefs {
    /// The VPC.
    pub vpc: String,
    /// The public subnets, one per zone.
    pub subnets: Vec<String>,
    /// The admin alert topic.
    pub admin_topic: String,
    /// The admin alert topic's ARN (deterministic).
    pub admin_topic_arn: String,
    /// The key pair's name when SSH is on.
    pub key_pair: Option<String>,
    /// The backup vault (where recovery points to restore volumes from live).
    pub backup_vault: String,
    /// The role AWS Backup backs up and restores with.
    pub backup_role: String,
}

/// Renders a Base.
pub fn render(cx: &Context, doc: &BaseDocument) -> (Vec<DesiredResource>, BaseRefs) {
    let names = BaseNames::new(&doc.metadata.name);
    let region = doc.spec.region.as_str();
    let local = &doc.metadata.name;
    let mut out = Vec::new();

    let vpc = DesiredResource::new(kinds::VPC, local, region, names.name(""))
        .with_properties(json!({
            "cidrBlock": "10.0.0.0/16",
            "enableDnsSupport": true,
            "enableDnsHostnames": true
        }))
        .with_tag("Name", names.name(""));
    let vpc = tagged(vpc, names.tags("network"));
    let vpc_id = vpc.id.to_string();
    out.push(vpc);

    // The VPC's default group, which AWS opens to its own members and to everything outbound,
    // allows nothing: whatever is launched without a group of its own stays cut off.
    let default_group = DefaultSecurityGroup {
        vpc_id: Input::output(&vpc_id, "id"),
        ingress: Vec::new(),
        egress: Vec::new(),
    };
    let default_group =
        reconciler_kinds::desired(local, region, names.name("default"), &default_group)
            .with_tag("Name", names.name("default"));
    out.push(tagged(default_group, names.tags("network")));

    let igw = DesiredResource::new(kinds::INTERNET_GATEWAY, local, region, names.name(""))
        .with_properties(json!({ "vpcId": reference(vpc_id.as_str(), "id") }))
        .with_tag("Name", names.name(""));
    let igw = tagged(igw, names.tags("network"));
    let igw_id = igw.id.to_string();
    out.push(igw);

    let mut subnets = Vec::new();
    for zone in 0..doc.spec.vpc.max_azs {
        let name = names.name(&format!("public-{zone}"));
        let subnet = DesiredResource::new(kinds::SUBNET, &format!("{local}-{zone}"), region, &name)
            .with_properties(json!({
                "vpcId": reference(vpc_id.as_str(), "id"),
                "cidrBlock": subnet_cidr(zone),
                "availabilityZoneIndex": zone,
                "mapPublicIpOnLaunch": true
            }))
            .with_tag("Name", name);
        let subnet = tagged(subnet, names.tags("network"));
        subnets.push(subnet.id.to_string());
        out.push(subnet);
    }

    let routes = DesiredResource::new(kinds::ROUTE_TABLE, local, region, names.name("public"))
        .with_properties(json!({
            "vpcId": reference(vpc_id.as_str(), "id"),
            "routes": [{ "destinationCidrBlock": "0.0.0.0/0", "gatewayId": reference(igw_id.as_str(), "id") }],
            "subnetIds": subnets.iter().map(|s| reference(s.as_str(), "id")).collect::<Vec<Value>>()
        }))
        .with_tag("Name", names.name("public"));
    out.push(tagged(routes, names.tags("network")));

    let topic_name = names.name("admin");
    let topic_arn = format!(
        "arn:{}:sns:{region}:{}:{topic_name}",
        cx.partition, cx.account_id
    );
    let topic = DesiredResource::new(kinds::TOPIC, &format!("{local}-admin"), region, &topic_name)
        .with_properties(json!({
            "displayName": format!("{} admin alerts", doc.metadata.name),
            "policy": policies::topic_policy(cx, &topic_arn, &["cloudwatch.amazonaws.com", "events.amazonaws.com"]),
            "subscriptions": crate::subscriptions(&doc.spec.alerts)
        }));
    let admin_topic = topic.id.to_string();
    out.push(tagged(topic, names.tags("alerts")));

    // One vault, plan and role serve every server of the Base: the plan selects file systems
    // by tag, so a server's backups need no resource of their own.
    let vault_name = names.name("");
    let vault = DesiredResource::new(kinds::BACKUP_VAULT, local, region, &vault_name)
        .with_properties(json!({}))
        .retained();
    let vault_id = vault.id.to_string();
    out.push(tagged(vault, names.tags("backup")));

    let role_name = names.name("backup");
    let role = DesiredResource::new(
        kinds::ROLE,
        &format!("{local}-backup"),
        GLOBAL_REGION,
        &role_name,
    )
    .with_properties(json!({
        "description": format!("AWS Backup for the file systems of Base {}", doc.metadata.name),
        "assumeRolePolicyDocument": policies::assume_role("backup.amazonaws.com"),
        // Its own statements rather than AWS's managed backup policies, which also grant
        // every other service AWS Backup covers (see `policies::backup_policy`).
        "managedPolicyArns": [],
        "inlinePolicies": {
            "efs-backup": policies::backup_policy(cx, region, &vault_name)
        }
    }));
    let role_id = role.id.to_string();
    out.push(tagged(role, names.tags("backup")));

    let plan = DesiredResource::new(kinds::BACKUP_PLAN, local, region, names.name("daily"))
        .with_properties(json!({
            "rules": [{
                "ruleName": "daily",
                "targetBackupVaultName": reference(vault_id.as_str(), "name"),
                "scheduleExpression": "cron(0 5 ? * * *)",
                "startWindowMinutes": 60,
                "completionWindowMinutes": 360,
                "lifecycle": { "deleteAfterDays": 35 }
            }]
        }));
    let plan_id = plan.id.to_string();
    out.push(tagged(plan, names.tags("backup")));

    let selection = DesiredResource::new(kinds::BACKUP_SELECTION, local, region, names.name("file-systems"))
        .with_properties(json!({
            "backupPlanId": reference(plan_id.as_str(), "id"),
            "iamRoleArn": reference(role_id.as_str(), "arn"),
            "resources": [format!("arn:{}:elasticfilesystem:{region}:{}:file-system/*", cx.partition, cx.account_id)],
            "conditions": {
                "stringEquals": [
                    { "conditionKey": format!("aws:ResourceTag/{TAG_BACKUP}"), "conditionValue": BACKUP_DAILY },
                    { "conditionKey": format!("aws:ResourceTag/{}", crate::naming::TAG_BASE), "conditionValue": doc.metadata.name }
                ]
            }
        }));
    out.push(selection);

    let key_pair = doc.spec.ssh.as_ref().map(|_| {
        let name = names.name("");
        let key = DesiredResource::new(kinds::KEY_PAIR, local, region, &name)
            .with_properties(json!({ "keyType": "ed25519" }));
        out.push(tagged(key, names.tags("access")));
        name
    });

    let refs = BaseRefs {
        vpc: vpc_id,
        subnets,
        admin_topic,
        admin_topic_arn: topic_arn,
        key_pair,
        backup_vault: vault_id,
        backup_role: role_id,
    };
    (out, refs)
}

/// `10.0.<16 * zone>.0/20`.
fn subnet_cidr(zone: u32) -> String {
    let step = 1u32 << (32 - SUBNET_PREFIX);
    let offset = zone * step;
    format!(
        "10.0.{}.{}/{SUBNET_PREFIX}",
        offset >> 8 & 0xff,
        offset & 0xff
    )
}

/// Adds ownership tags after any others already set.
pub fn tagged(mut r: DesiredResource, tags: indexmap::IndexMap<String, String>) -> DesiredResource {
    r.tags.extend(tags);
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnets_do_not_overlap() {
        assert_eq!(super::subnet_cidr(0), "10.0.0.0/20");
        assert_eq!(super::subnet_cidr(1), "10.0.16.0/20");
        assert_eq!(super::subnet_cidr(5), "10.0.80.0/20");
    }
}
