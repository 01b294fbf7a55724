//! Day-2 commands: `status`, `wake` and `sleep`.
//!
//! Everything they need is read from the rendered graph (names, regions, the start Lambda's
//! environment), so they act on exactly what `apply` built. `wake` runs the start-system
//! handler itself with the deployed configuration (metric push, then one instance), `sleep`
//! sets the group to zero as the scale-to-zero policy does: the same logic as the running
//! system, not a second copy of it.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _, Result};
use aws_types::region::Region;
use aws_types::SdkConfig;
use reconciler_engine::model::DesiredResource;
use reconciler_engine::retrying;
use reconciler_lambdas::{start_system, StartSystemClients, StartSystemConfig};
use reconciler_render::kinds;
use serde::Serialize;
use serde_json::{json, Value};

use crate::deploy::Prepared;

/// Where a server is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// No instance and none wanted: costs nothing.
    Asleep,
    /// An instance is wanted or starting, or the DNS record does not point at it yet.
    Waking,
    /// An instance is in service and the DNS record points at it.
    Running,
    /// No instance is wanted but one is still there (draining, terminating).
    Stopping,
    /// The server's group does not exist (never applied, or destroyed).
    NotDeployed,
}

impl std::fmt::Display for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerState::Asleep => "asleep",
            ServerState::Waking => "waking",
            ServerState::Running => "running",
            ServerState::Stopping => "stopping",
            ServerState::NotDeployed => "not deployed",
        })
    }
}

/// One instance of a server's group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The instance id.
    pub id: String,
    /// Its Auto Scaling lifecycle state (`Pending`, `InService`, `Terminating`, ...).
    pub lifecycle_state: String,
    /// Its public IPv4 address, when it has one.
    pub public_ip: Option<String>,
}

/// What `status` reports for a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The server's name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Asleep, waking, running, stopping.
    pub state: ServerState,
    /// The DNS name players use.
    pub dns_name: String,
    /// What the A record holds now.
    pub dns_record: Vec<String>,
    /// The group's desired capacity.
    pub desired_capacity: Option<i32>,
    /// The group's instances.
    pub instances: Vec<InstanceStatus>,
    /// The public IP of the instance in service, if any.
    pub public_ip: Option<String>,
    /// The server's alarms and their states.
    pub alarms: BTreeMap<String, String>,
    /// How the last apply or watch cycle that touched the server went (`None`: none
    /// recorded).
    pub last_reconcile: Option<crate::results::LastResult>,
}

fn resource<'a>(p: &'a Prepared, id: &str) -> Result<&'a DesiredResource> {
    p.graph
        .get(&id.into())
        .ok_or_else(|| anyhow!("`{id}` is not in the rendered specs"))
}

fn server_names(p: &Prepared, names: &[String]) -> Result<Vec<String>> {
    let all: Vec<String> = p
        .set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.clone())
        .collect();
    for name in names {
        if !all.contains(name) {
            bail!(
                "no server `{name}` in the specs (servers: {})",
                all.join(", ")
            );
        }
    }
    Ok(if names.is_empty() {
        all
    } else {
        names.to_vec()
    })
}

/// The session's configuration in `region`, for the start handler's own clients: with the
/// SDK's standard retries (throttling and transient errors, five attempts), as the handler has
/// them in Lambda, where the session itself leaves retries to the engine.
fn regional(p: &Prepared, region: &str) -> SdkConfig {
    p.session
        .pool
        .base()
        .to_builder()
        .region(Region::new(region.to_string()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .build()
}

/// The status of the named servers (all when `names` is empty).
pub async fn status(p: &Prepared, names: &[String]) -> Result<Vec<ServerStatus>> {
    let names = server_names(p, names)?;
    let mut last = crate::results::read(p, &names).await?;
    let mut out = Vec::new();
    for name in names {
        let mut status = server_status(p, &name).await?;
        status.last_reconcile = last.remove(&name);
        out.push(status);
    }
    Ok(out)
}

async fn server_status(p: &Prepared, name: &str) -> Result<ServerStatus> {
    let group = resource(p, &format!("{}/{name}", kinds::AUTO_SCALING_GROUP))?;
    let region = group.region.clone();
    // The A record: in the server's own zone, or (shared wake zone) in the Base's root zone,
    // whose id the record names outright.
    let record = resource(p, &format!("{}/{name}-address", kinds::RECORD_SET))
        .or_else(|_| resource(p, &format!("{}/{name}.address", kinds::RECORD_SET)))?;
    let dns_name = record
        .name
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let record_zone = record
        .properties
        .get("hostedZoneId")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let pool = &p.session.pool;

    let autoscaling = pool.autoscaling(&region);
    let groups = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&group.name)
        .send()
        .await
        .with_context(|| format!("DescribeAutoScalingGroups {}", group.name))?;
    let Some(asg) = groups.auto_scaling_groups().first() else {
        return Ok(ServerStatus {
            name: name.to_string(),
            region,
            state: ServerState::NotDeployed,
            dns_name: dns_name.trim_end_matches('.').to_string(),
            dns_record: Vec::new(),
            desired_capacity: None,
            instances: Vec::new(),
            public_ip: None,
            alarms: BTreeMap::new(),
            last_reconcile: None,
        });
    };
    let desired = asg.desired_capacity();
    let mut instances: Vec<InstanceStatus> = asg
        .instances()
        .iter()
        .filter_map(|i| {
            Some(InstanceStatus {
                id: i.instance_id()?.to_string(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                public_ip: None,
            })
        })
        .collect();
    if !instances.is_empty() {
        let ec2 = pool.ec2(&region);
        let described = ec2
            .describe_instances()
            .set_instance_ids(Some(instances.iter().map(|i| i.id.clone()).collect()))
            .send()
            .await
            .context("DescribeInstances")?;
        for reservation in described.reservations() {
            for instance in reservation.instances() {
                if let Some(status) = instances
                    .iter_mut()
                    .find(|s| Some(s.id.as_str()) == instance.instance_id())
                {
                    status.public_ip = instance.public_ip_address().map(str::to_string);
                }
            }
        }
    }

    let dns_record = a_record(p, &dns_name, record_zone.as_deref()).await?;
    let alarm_names: Vec<String> = p
        .graph
        .iter()
        .filter(|r| {
            r.kind.as_str() == kinds::ALARM
                && r.id
                    .as_str()
                    .starts_with(&format!("{}/{name}-", kinds::ALARM))
        })
        .map(|r| r.name.clone())
        .collect();
    let mut alarms = BTreeMap::new();
    if !alarm_names.is_empty() {
        let described = pool
            .cloudwatch(&region)
            .describe_alarms()
            .set_alarm_names(Some(alarm_names))
            .send()
            .await
            .context("DescribeAlarms")?;
        for alarm in described.metric_alarms() {
            if let (Some(n), Some(s)) = (alarm.alarm_name(), alarm.state_value()) {
                alarms.insert(n.to_string(), s.as_str().to_string());
            }
        }
    }

    let in_service = instances.iter().find(|i| i.lifecycle_state == "InService");
    let public_ip = in_service.and_then(|i| i.public_ip.clone());
    let state = match (desired.unwrap_or(0), instances.is_empty()) {
        (0, true) => ServerState::Asleep,
        (0, false) => ServerState::Stopping,
        _ => match &public_ip {
            Some(ip) if dns_record.contains(ip) => ServerState::Running,
            _ => ServerState::Waking,
        },
    };
    Ok(ServerStatus {
        name: name.to_string(),
        region,
        state,
        dns_name: dns_name.trim_end_matches('.').to_string(),
        dns_record,
        desired_capacity: desired,
        instances,
        public_ip,
        alarms,
        last_reconcile: None,
    })
}

/// The values of the A record `name` (`<dns>.`) in `zone`, or else in the server's own zone.
async fn a_record(p: &Prepared, name: &str, zone: Option<&str>) -> Result<Vec<String>> {
    let route53 = p
        .session
        .pool
        .route53(reconciler_render::naming::GLOBAL_REGION);
    let zone_id = match zone {
        Some(id) => id.to_string(),
        None => {
            let zones = route53
                .list_hosted_zones_by_name()
                .dns_name(name)
                .max_items(1)
                .send()
                .await
                .with_context(|| format!("ListHostedZonesByName {name}"))?;
            let Some(zone) = zones.hosted_zones().iter().find(|z| z.name() == name) else {
                return Ok(Vec::new());
            };
            zone.id().trim_start_matches("/hostedzone/").to_string()
        }
    };
    let zone_id = zone_id.as_str();
    let records = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(name)
        .start_record_type(aws_sdk_route53::types::RrType::A)
        .max_items(1)
        .send()
        .await
        .with_context(|| format!("ListResourceRecordSets {name}"))?;
    Ok(records
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == name && r.r#type() == &aws_sdk_route53::types::RrType::A)
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
        .collect())
}

/// Starts a server now, exactly as a DNS query would: the start-system handler with the
/// deployed configuration pushes the activity metric (so the idle alarm does not stop it at
/// once) and raises the group to one instance.
pub async fn wake(p: &Prepared, name: &str) -> Result<()> {
    server_names(p, &[name.to_string()])?;
    let function = resource(p, &format!("{}/{name}-start-system", kinds::FUNCTION))?;
    let env: BTreeMap<String, String> = function
        .properties
        .get("environment")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let config = StartSystemConfig::from_lookup(|k| env.get(k).cloned())
        .map_err(|e| anyhow!("the rendered start-system configuration is invalid: {e}"))?;
    let clients = StartSystemClients::new(&regional(p, &config.asg_region));
    start_system(&config, &clients, &json!({ "source": "reconciler wake" }))
        .await
        .map_err(|e| anyhow!("waking {name}: {e}"))?;
    Ok(())
}

/// Stops a server now, as the scale-to-zero policy does: desired capacity 0. ECS drains the
/// task and the terminate event puts the unavailable address back into DNS.
pub async fn sleep(p: &Prepared, name: &str) -> Result<()> {
    server_names(p, &[name.to_string()])?;
    let group = resource(p, &format!("{}/{name}", kinds::AUTO_SCALING_GROUP))?;
    let autoscaling = p.session.pool.autoscaling(&group.region);
    let operation = format!("UpdateAutoScalingGroup {}", group.name);
    retrying(&p.session.retry, &operation, || async {
        autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(&group.name)
            .desired_capacity(0)
            .send()
            .await
            .map_err(|e| reconciler_aws::error::classify(&operation, e))
    })
    .await
    .map_err(|e| anyhow!("stopping {name}: {e}"))?;
    Ok(())
}

/// The status as a table for a terminal.
pub fn status_table(statuses: &[ServerStatus]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<16} {:<10} {:<12} {:<34} {:<16} {:<44} {}\n",
        "SERVER", "REGION", "STATE", "DNS", "RECORD", "LAST RECONCILE", "ALARMS"
    ));
    for s in statuses {
        let alarms: Vec<String> = s
            .alarms
            .iter()
            .map(|(n, st)| {
                let short = n.strip_prefix(&format!("rc-{}-", s.name)).unwrap_or(n);
                format!("{short}={st}")
            })
            .collect();
        out.push_str(&format!(
            "{:<16} {:<10} {:<12} {:<34} {:<16} {:<44} {}\n",
            s.name,
            s.region,
            s.state.to_string(),
            s.dns_name,
            if s.dns_record.is_empty() {
                "-".to_string()
            } else {
                s.dns_record.join(",")
            },
            s.last_reconcile
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string),
            if alarms.is_empty() {
                "-".to_string()
            } else {
                alarms.join(" ")
            }
        ));
    }
    out
}
