//! `reconciler cost`: what each server costs, from an offline price table.
//!
//! A server has two kinds of cost: a fixed monthly part that runs whether anybody plays (its
//! hosted zone, none with a shared wake zone; its alarms and its share of the Base's dashboard,
//! the data on EFS and in AWS Backup) and an hourly part that runs only while its instance is up (the instance, its root volume, its public IPv4 address). The
//! prices come from `data/prices.json`, checked into the repository with its source and date,
//! so the command works without a pricing API and gives the same answer twice; the date is
//! printed with every report because list prices change.
//!
//! The only AWS call is `DescribeFileSystems`, for the stored bytes of each deployed volume by
//! storage class. A volume that is not deployed yet counts as empty, with a note.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use reconciler_render::kinds;
use reconciler_render::wake::SERVERS_PER_DASHBOARD;
use reconciler_spec::{base_of, Capacity, ContainerSpecDocument, SpecSet, WakeZone};
use serde::{Deserialize, Serialize};

use crate::deploy::Prepared;

/// The checked-in price table.
pub const PRICES_JSON: &str = include_str!("../data/prices.json");

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The offline price table (`data/prices.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    /// When the prices were copied (year and month).
    pub as_of: String,
    /// Currency of every price.
    pub currency: String,
    /// Where the prices come from.
    pub source: String,
    /// Spot price as a fraction of on-demand.
    pub spot_factor: f64,
    /// Hours in the billing month AWS uses for monthly prices.
    pub hours_per_month: f64,
    /// A hosted zone per month.
    pub hosted_zone_monthly: f64,
    /// One metric of a standard-resolution alarm per month.
    pub alarm_metric_monthly: f64,
    /// A CloudWatch dashboard per month (beyond an account's first three, which are free).
    pub dashboard_monthly: f64,
    /// A public IPv4 address per hour.
    pub public_ipv4_hourly: f64,
    /// Size of the instance's root volume (the ECS-optimized AMI's default).
    pub root_volume_gi_b: f64,
    /// Prices by region.
    pub regions: BTreeMap<String, RegionPrices>,
}

/// Prices of one region.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionPrices {
    /// On-demand Linux price per hour by instance type.
    pub instances: BTreeMap<String, f64>,
    /// gp3 storage per GB-month.
    pub gp3_gb_month: f64,
    /// EFS storage per GB-month by storage class.
    pub efs_gb_month: EfsPrices,
    /// AWS Backup warm storage of EFS per GB-month.
    pub backup_gb_month: f64,
}

/// EFS storage prices per GB-month.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EfsPrices {
    /// Standard.
    pub standard: f64,
    /// Infrequent Access.
    pub infrequent_access: f64,
    /// Archive.
    pub archive: f64,
}

impl PriceTable {
    /// The checked-in table.
    pub fn offline() -> Result<PriceTable> {
        serde_json::from_str(PRICES_JSON).context("data/prices.json is not a valid price table")
    }
}

/// Stored bytes of one file system by storage class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBytes {
    /// In Standard.
    pub standard: i64,
    /// In Infrequent Access.
    pub infrequent_access: i64,
    /// In Archive.
    pub archive: i64,
}

/// The size of a volume, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeSize {
    /// Read from AWS.
    Deployed(StoredBytes),
    /// No file system yet: counted as empty.
    NotDeployed,
}

/// One line of a server's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostLine {
    /// What is paid for.
    pub item: String,
    /// The amount, per month (fixed lines) or per hour (running lines).
    pub amount: f64,
    /// How it was worked out.
    pub detail: String,
}

/// What one server costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCost {
    /// The server.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its instance type.
    pub instance_type: String,
    /// `on-demand` or `spot`.
    pub capacity: Capacity,
    /// Paid every month, running or not.
    pub fixed_monthly: Vec<CostLine>,
    /// Sum of `fixed_monthly`.
    pub fixed_monthly_total: f64,
    /// Paid per hour while the instance runs.
    pub running_hourly: Vec<CostLine>,
    /// Sum of `running_hourly`.
    pub running_hourly_total: f64,
    /// What could not be priced or was assumed.
    pub notes: Vec<String>,
}

/// The report of `reconciler cost`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// The price table's date.
    pub prices_as_of: String,
    /// The currency.
    pub currency: String,
    /// The price table's source.
    pub prices_source: String,
    /// One entry per server.
    pub servers: Vec<ServerCost>,
}

/// Prices one server from the table and its volumes' sizes (by volume id).
pub fn estimate(
    table: &PriceTable,
    doc: &ContainerSpecDocument,
    region: &str,
    alarm_metrics: usize,
    wake_zone: WakeZone,
    dashboard_servers: usize,
    sizes: &BTreeMap<String, VolumeSize>,
) -> Result<ServerCost> {
    let spec = &doc.spec;
    let name = doc.metadata.name.clone();
    let prices = table.regions.get(region).ok_or_else(|| {
        anyhow!(
            "{name}: region {region} is not in the price table (it has {})",
            table.regions.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut notes = Vec::new();
    let zone = match wake_zone {
        WakeZone::PerServer => CostLine {
            item: "hosted zone".into(),
            amount: table.hosted_zone_monthly,
            detail: format!("the server's own zone, {}/month", table.hosted_zone_monthly),
        },
        // The root zone exists (and is paid for) whatever the reconciler does.
        WakeZone::Shared => CostLine {
            item: "hosted zone".into(),
            amount: 0.0,
            detail: "none of its own: its record lives in the Base's root zone (wakeZone: shared)"
                .into(),
        },
    };
    let mut fixed = vec![
        zone,
        CostLine {
            item: "alarms".into(),
            amount: alarm_metrics as f64 * table.alarm_metric_monthly,
            detail: format!(
                "{alarm_metrics} alarm metrics at {}/month",
                table.alarm_metric_monthly
            ),
        },
        if spec.dashboard.enabled {
            // The Base's dashboards show its servers, SERVERS_PER_DASHBOARD to a dashboard:
            // each server pays an equal share.
            let servers = dashboard_servers.max(1);
            let dashboards = servers.div_ceil(SERVERS_PER_DASHBOARD);
            CostLine {
                item: "dashboard".into(),
                amount: dashboards as f64 * table.dashboard_monthly / servers as f64,
                detail: format!(
                    "a share of the Base's {dashboards} CloudWatch dashboard(s) at {}/month, \
                     shown by {servers} server(s) (an account's first three are free)",
                    table.dashboard_monthly
                ),
            }
        } else {
            CostLine {
                item: "dashboard".into(),
                amount: 0.0,
                detail: "none (dashboard.enabled: false)".into(),
            }
        },
    ];
    for (id, volume) in &spec.volumes {
        let bytes = match sizes.get(id) {
            Some(VolumeSize::Deployed(bytes)) => *bytes,
            _ => {
                notes.push(format!(
                    "volume {id} is not deployed: its storage is counted as 0 GB"
                ));
                StoredBytes::default()
            }
        };
        let (std_gb, ia_gb, ar_gb) = (
            bytes.standard as f64 / GIB,
            bytes.infrequent_access as f64 / GIB,
            bytes.archive as f64 / GIB,
        );
        let efs = &prices.efs_gb_month;
        fixed.push(CostLine {
            item: format!("volume {id}"),
            amount: std_gb * efs.standard + ia_gb * efs.infrequent_access + ar_gb * efs.archive,
            detail: format!(
                "EFS {std_gb:.2} GB Standard x {}, {ia_gb:.2} GB IA x {}, {ar_gb:.2} GB Archive x {} per GB-month",
                efs.standard, efs.infrequent_access, efs.archive
            ),
        });
        if volume.backups_enabled(spec.maturity) {
            let total = std_gb + ia_gb + ar_gb;
            fixed.push(CostLine {
                item: format!("backups of {id}"),
                amount: total * prices.backup_gb_month,
                detail: format!(
                    "{total:.2} GB warm backup storage x {} per GB-month (incremental copies; about one full copy)",
                    prices.backup_gb_month
                ),
            });
        }
    }

    let instance_type = spec.ec2.instance_type.clone();
    let capacity = spec.ec2.capacity;
    let mut running = Vec::new();
    match prices.instances.get(&instance_type) {
        Some(on_demand) => {
            let (amount, detail) = match capacity {
                Capacity::OnDemand => (*on_demand, format!("{instance_type} on-demand")),
                Capacity::Spot => (
                    on_demand * table.spot_factor,
                    format!(
                        "{instance_type} spot, estimated as {} x the on-demand {on_demand}",
                        table.spot_factor
                    ),
                ),
            };
            running.push(CostLine {
                item: "instance".into(),
                amount,
                detail,
            });
        }
        None => notes.push(format!(
            "{instance_type} is not in the price table for {region}: the instance is not counted"
        )),
    }
    running.push(CostLine {
        item: "root volume".into(),
        amount: table.root_volume_gi_b * prices.gp3_gb_month / table.hours_per_month,
        detail: format!(
            "{} GB gp3 x {} per GB-month / {} hours",
            table.root_volume_gi_b, prices.gp3_gb_month, table.hours_per_month
        ),
    });
    running.push(CostLine {
        item: "public IPv4".into(),
        amount: table.public_ipv4_hourly,
        detail: "one public address while the instance runs".into(),
    });

    Ok(ServerCost {
        name,
        region: region.to_string(),
        instance_type,
        capacity,
        fixed_monthly_total: fixed.iter().map(|l| l.amount).sum(),
        fixed_monthly: fixed,
        running_hourly_total: running.iter().map(|l| l.amount).sum(),
        running_hourly: running,
        notes,
    })
}

/// Number of metrics the server's alarms query (CloudWatch bills alarms per metric).
fn alarm_metrics(p: &Prepared, server: &str) -> usize {
    ["idle", "left-up", "crash-loop"]
        .iter()
        .filter_map(|suffix| {
            p.graph.get(
                &format!("{}/{server}-{suffix}", kinds::ALARM)
                    .as_str()
                    .into(),
            )
        })
        .map(|alarm| {
            alarm.properties["metrics"].as_array().map_or(0, |m| {
                m.iter().filter(|q| q.get("metric").is_some()).count()
            })
        })
        .sum()
}

/// The stored bytes of the server's deployed volumes, by volume id.
async fn volume_sizes(
    p: &Prepared,
    doc: &ContainerSpecDocument,
) -> Result<BTreeMap<String, VolumeSize>> {
    let server = &doc.metadata.name;
    let mut out = BTreeMap::new();
    for id in doc.spec.volumes.keys() {
        let key = format!(
            "{}/{server}-{}",
            kinds::FILE_SYSTEM,
            id.to_ascii_lowercase()
        );
        let Some(fs) = p.graph.get(&key.as_str().into()) else {
            continue;
        };
        let efs = p.session.pool.efs(&fs.region);
        // An adopted file system keeps its own creation token: it is found by its id.
        let call = efs.describe_file_systems();
        let call = match fs.properties.get("adopt").and_then(|v| v.as_str()) {
            Some(id) => call.file_system_id(id),
            None => call.creation_token(&fs.name),
        };
        let described = call
            .send()
            .await
            .with_context(|| format!("DescribeFileSystems {}", fs.name))?;
        let size = match described.file_systems().first() {
            Some(found) => {
                let s = found.size_in_bytes();
                let total = s.map_or(0, |s| s.value());
                let ia = s.and_then(|s| s.value_in_ia()).unwrap_or(0);
                let archive = s.and_then(|s| s.value_in_archive()).unwrap_or(0);
                let standard = s
                    .and_then(|s| s.value_in_standard())
                    .unwrap_or((total - ia - archive).max(0));
                VolumeSize::Deployed(StoredBytes {
                    standard,
                    infrequent_access: ia,
                    archive,
                })
            }
            None => VolumeSize::NotDeployed,
        };
        out.insert(id.clone(), size);
    }
    Ok(out)
}

/// How many servers of `base` show on its dashboards.
fn dashboard_servers(set: &SpecSet, base: &str) -> usize {
    set.servers
        .iter()
        .filter(|s| s.doc.spec.dashboard.enabled)
        .filter(|s| base_of(set, &s.doc).is_some_and(|b| b.doc.metadata.name == base))
        .count()
}

/// The cost of the named servers (all when `names` is empty).
pub async fn cost(p: &Prepared, names: &[String]) -> Result<CostReport> {
    let table = PriceTable::offline()?;
    let all: Vec<&str> = p
        .set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.as_str())
        .collect();
    for name in names {
        if !all.contains(&name.as_str()) {
            bail!(
                "no server `{name}` in the specs (servers: {})",
                all.join(", ")
            );
        }
    }
    let mut servers = Vec::new();
    for loaded in &p.set.servers {
        let doc = &loaded.doc;
        if !names.is_empty() && !names.contains(&doc.metadata.name) {
            continue;
        }
        let base = base_of(&p.set, doc).ok_or_else(|| anyhow!("{}: no Base", doc.metadata.name))?;
        let sizes = volume_sizes(p, doc).await?;
        servers.push(estimate(
            &table,
            doc,
            &base.doc.spec.region,
            alarm_metrics(p, &doc.metadata.name),
            base.doc.spec.domain.wake_zone,
            dashboard_servers(&p.set, &base.doc.metadata.name),
            &sizes,
        )?);
    }
    Ok(CostReport {
        prices_as_of: table.as_of,
        currency: table.currency,
        prices_source: table.source,
        servers,
    })
}

/// The report as text: per server, the fixed and running lines with their totals.
pub fn cost_table(report: &CostReport) -> String {
    let mut out = String::new();
    for s in &report.servers {
        let capacity = match s.capacity {
            Capacity::OnDemand => "on-demand",
            Capacity::Spot => "spot",
        };
        out.push_str(&format!(
            "{} ({}, {} {capacity})\n  fixed per month:\n",
            s.name, s.region, s.instance_type
        ));
        for l in &s.fixed_monthly {
            out.push_str(&format!(
                "    {:<20} {:>9.2}  {}\n",
                l.item, l.amount, l.detail
            ));
        }
        out.push_str(&format!(
            "    {:<20} {:>9.2}\n  per running hour:\n",
            "total", s.fixed_monthly_total
        ));
        for l in &s.running_hourly {
            out.push_str(&format!(
                "    {:<20} {:>9.4}  {}\n",
                l.item, l.amount, l.detail
            ));
        }
        out.push_str(&format!(
            "    {:<20} {:>9.4}  ({:.2} for 40 hours of play a month)\n",
            "total",
            s.running_hourly_total,
            s.running_hourly_total * 40.0
        ));
        for n in &s.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    out.push_str(&format!(
        "Prices in {} as of {} (offline table; spot is an estimate). Source: {}\n",
        report.currency, report.prices_as_of, report.prices_source
    ));
    out
}
