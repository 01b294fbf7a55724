//! `reconciler cost` against the emulator: deployed volumes are sized from AWS, undeployed ones
//! count as empty with a note, spot uses the table's spot factor, and the table's date is shown.

mod common;

use std::collections::BTreeMap;

use common::{prepared, reconciler};
use reconciler_engine::NoEvents;
use reconciler_ops::cost::{
    cost, cost_table, estimate, CostLine, PriceTable, ServerCost, StoredBytes, VolumeSize,
};
use reconciler_ops::deploy;
use reconciler_spec::{Capacity, WakeZone};
use reconciler_testkit::fresh_account_id;

/// The fixed monthly line named `item`.
fn fixed_line(c: &ServerCost, item: &str) -> CostLine {
    c.fixed_monthly
        .iter()
        .find(|l| l.item == item)
        .unwrap_or_else(|| panic!("no {item} line: {c:?}"))
        .clone()
}

#[test]
fn the_table_parses_and_covers_the_examples() {
    let table = PriceTable::offline().unwrap();
    assert!(!table.as_of.is_empty() && !table.source.is_empty());
    for region in ["us-east-1", "us-west-2", "eu-west-1"] {
        for ty in ["m5.large", "m5.2xlarge", "t3.medium"] {
            assert!(
                table.regions[region].instances.contains_key(ty),
                "{region} {ty}"
            );
        }
    }
}

#[tokio::test]
async fn undeployed_servers_count_empty_volumes_and_deployed_ones_read_aws() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let before = cost(&p, &["minecraft".to_string()]).await.unwrap();
    let [mc] = before.servers.as_slice() else {
        panic!("{before:?}")
    };
    assert_eq!(mc.instance_type, "m5.large");
    assert!(mc
        .notes
        .iter()
        .any(|n| n.contains("volume Data is not deployed")));
    let table = PriceTable::offline().unwrap();
    let region = &mc.region;
    let hourly = table.regions[region].instances["m5.large"];
    assert_eq!(mc.running_hourly[0].amount, hourly);
    assert_eq!(mc.fixed_monthly[0].amount, 0.5, "hosted zone");
    assert!(
        mc.fixed_monthly[1].amount > 0.0,
        "alarms are billed per metric"
    );
    let text = cost_table(&before);
    assert!(text.contains(&format!("as of {}", table.as_of)), "{text}");

    let rec = reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    assert!(rec.apply(&plan, &NoEvents).await.is_success());
    let after = cost(&p, &[]).await.unwrap();
    assert_eq!(after.servers.len(), p.set.servers.len());
    let mc = after
        .servers
        .iter()
        .find(|s| s.name == "minecraft")
        .unwrap();
    assert!(
        mc.notes.iter().all(|n| !n.contains("not deployed")),
        "sized from AWS: {:?}",
        mc.notes
    );
    assert!(mc.fixed_monthly.iter().any(|l| l.item == "volume Data"));
    assert!(
        mc.fixed_monthly.iter().any(|l| l.item == "backups of Data"),
        "prod maturity backs up"
    );
    let json = serde_json::to_value(&after).unwrap();
    assert_eq!(json["pricesAsOf"], table.as_of);
    assert!(cost(&p, &["nope".to_string()]).await.is_err());
}

#[test]
fn storage_classes_backups_and_spot_are_priced() {
    let table = PriceTable::offline().unwrap();
    let yaml = "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: mc\nspec:\n  ec2:\n    instanceType: m5.large\n    capacity: spot\n  container:\n    image: x\n  volumes:\n    Data:\n      paths:\n        - path: /data\n  watchdog:\n    threshold: 10\n";
    let doc: reconciler_spec::ContainerSpecDocument = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(doc.spec.ec2.capacity, Capacity::Spot);
    let gib = 1024 * 1024 * 1024;
    let sizes = BTreeMap::from([(
        "Data".to_string(),
        VolumeSize::Deployed(StoredBytes {
            standard: 10 * gib,
            infrequent_access: 20 * gib,
            archive: 0,
        }),
    )]);
    let c = estimate(&table, &doc, "us-east-1", 5, WakeZone::PerServer, 1, &sizes).unwrap();
    let us = &table.regions["us-east-1"];
    let volume = fixed_line(&c, "volume Data");
    let expected = 10.0 * us.efs_gb_month.standard + 20.0 * us.efs_gb_month.infrequent_access;
    assert!((volume.amount - expected).abs() < 1e-9, "{volume:?}");
    let backups = fixed_line(&c, "backups of Data");
    assert!((backups.amount - 30.0 * us.backup_gb_month).abs() < 1e-9);
    assert!(
        (c.fixed_monthly[1].amount - 0.5).abs() < 1e-9,
        "5 alarm metrics"
    );
    let instance = &c.running_hourly[0];
    assert!((instance.amount - us.instances["m5.large"] * table.spot_factor).abs() < 1e-9);
    assert!(instance.detail.contains("spot"));
    assert!(estimate(&table, &doc, "sa-east-9", 5, WakeZone::PerServer, 1, &sizes).is_err());
}

#[test]
fn a_shared_wake_zone_costs_no_zone_per_server() {
    let table = PriceTable::offline().unwrap();
    let yaml = "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: mc\nspec:\n  ec2:\n    instanceType: m5.large\n  container:\n    image: x\n  watchdog:\n    threshold: 10\n";
    let doc: reconciler_spec::ContainerSpecDocument = serde_yaml_ng::from_str(yaml).unwrap();
    let sizes = BTreeMap::new();
    let zone = |mode| {
        let c = estimate(&table, &doc, "us-east-1", 5, mode, 1, &sizes).unwrap();
        let line = fixed_line(&c, "hosted zone");
        (line, c.fixed_monthly_total)
    };
    let (own, own_total) = zone(WakeZone::PerServer);
    let (shared, shared_total) = zone(WakeZone::Shared);
    assert_eq!(own.amount, table.hosted_zone_monthly);
    assert_eq!(shared.amount, 0.0);
    assert!(shared.detail.contains("root zone"), "{}", shared.detail);
    assert!((own_total - shared_total - table.hosted_zone_monthly).abs() < 1e-9);
}

/// A volume adopting an existing file system is sized from that file system, which keeps its
/// own creation token, before and after the first apply.
#[tokio::test]
async fn an_adopted_volume_is_sized_from_the_file_system_it_names() {
    use reconciler_ops::session::{home_region, load_specs_with};
    use reconciler_spec::InstanceCatalog;
    use reconciler_testkit::Emulator;

    let account = fresh_account_id();
    let global = Emulator::shared().sdk_config("us-east-1", &account);
    let zone = common::root_zone(&global).await;
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::specs_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    // Only minecraft, whose volume adopts a file system made by hand.
    for other in ["palworld.yaml", "valheim.yaml"] {
        std::fs::remove_file(dir.path().join(other)).unwrap();
    }
    let catalog = InstanceCatalog::offline();
    let zone_env = zone.clone();
    let env = move |name: &str| match name {
        "HOSTED_ZONE_ID" => Some(zone_env.clone()),
        other => std::env::var(other).ok(),
    };
    let (set, _) = load_specs_with(&[dir.path().to_path_buf()], &catalog, &env).unwrap();
    let region = home_region(&set);
    let config = Emulator::shared().sdk_config(&region, &account);
    let efs = aws_sdk_efs::Client::new(&config);
    let made = efs
        .create_file_system()
        .creation_token("made-by-hand")
        .encrypted(true)
        .send()
        .await
        .unwrap();
    let id = made.file_system_id().to_string();
    let spec = std::fs::read_to_string(dir.path().join("minecraft.yaml")).unwrap();
    let spec = spec.replace(
        "    Data:\n      paths:\n",
        &format!("    Data:\n      adopt: {id}\n      paths:\n"),
    );
    assert!(spec.contains(&id));
    std::fs::write(dir.path().join("minecraft.yaml"), spec).unwrap();
    let (set, diags) = load_specs_with(&[dir.path().to_path_buf()], &catalog, &env).unwrap();
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let p = deploy::prepare(set, catalog, config).await.unwrap();
    let report = cost(&p, &["minecraft".to_string()]).await.unwrap();
    let [mc] = report.servers.as_slice() else {
        panic!("{report:?}")
    };
    assert!(
        mc.notes.iter().all(|n| !n.contains("not deployed")),
        "the adopted file system exists: {:?}",
        mc.notes
    );
    assert!(mc.fixed_monthly.iter().any(|l| l.item == "volume Data"));
}

/// A server's share of its Base's dashboards is a fixed monthly cost (CloudWatch bills each
/// dashboard beyond an account's first three); without a section the line says so and costs
/// nothing.
#[test]
fn a_dashboard_share_is_priced_unless_disabled() {
    let table = PriceTable::offline().unwrap();
    let yaml = |enabled: bool| {
        format!("apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: mc\nspec:\n  ec2:\n    instanceType: m5.large\n  container:\n    image: x\n  watchdog:\n    threshold: 10\n  dashboard:\n    enabled: {enabled}\n")
    };
    let dashboard = |enabled: bool, servers: usize| {
        let doc: reconciler_spec::ContainerSpecDocument =
            serde_yaml_ng::from_str(&yaml(enabled)).unwrap();
        let c = estimate(
            &table,
            &doc,
            "us-east-1",
            5,
            WakeZone::PerServer,
            servers,
            &BTreeMap::new(),
        )
        .unwrap();
        let line = fixed_line(&c, "dashboard");
        (line, c.fixed_monthly_total)
    };
    let price = table.dashboard_monthly;
    assert!(price > 0.0);
    // Alone on the Base's dashboard: the whole dashboard.
    let (alone, alone_total) = dashboard(true, 1);
    assert!((alone.amount - price).abs() < 1e-9, "{alone:?}");
    assert!(
        alone.detail.contains("first three are free"),
        "{}",
        alone.detail
    );
    // Four servers share one dashboard; eleven need two.
    assert!((dashboard(true, 4).0.amount - price / 4.0).abs() < 1e-9);
    assert!((dashboard(true, 11).0.amount - 2.0 * price / 11.0).abs() < 1e-9);
    let (without, without_total) = dashboard(false, 1);
    assert_eq!(without.amount, 0.0);
    assert!((alone_total - without_total - price).abs() < 1e-9);
}
