//! The whole loop against the local AWS emulator: apply the example specs from nothing, find
//! nothing left to do, destroy while keeping the data, and adopt the kept file systems on the
//! next apply.

mod common;

use std::collections::BTreeSet;

use common::{prepared, reconciler};
use reconciler_engine::execute::Outcome;
use reconciler_engine::{Action, ApplyEvent, EventKind, NoEvents};
use reconciler_ops::deploy;
use reconciler_render::kinds;
use reconciler_testkit::fresh_account_id;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_plan_destroy_and_adopt_against_the_emulator() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let rec = reconciler(&p);

    // From nothing: every resource is created.
    let plan = deploy::plan(&p, &rec).await.unwrap();
    assert_eq!(plan.summary().add, p.graph.len(), "{plan}");
    let report = rec.apply(&plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");
    let kinds_created: BTreeSet<&str> = p.graph.iter().map(|r| r.kind.as_str()).collect();
    for kind in [
        kinds::VPC,
        kinds::SUBNET,
        kinds::SECURITY_GROUP,
        kinds::ROLE,
        kinds::INSTANCE_PROFILE,
        kinds::LAUNCH_TEMPLATE,
        kinds::AUTO_SCALING_GROUP,
        kinds::CLUSTER,
        kinds::CAPACITY_PROVIDER,
        kinds::TASK_DEFINITION,
        kinds::SERVICE,
        kinds::FILE_SYSTEM,
        kinds::MOUNT_TARGET,
        kinds::BACKUP_PLAN,
        kinds::BACKUP_SELECTION,
        kinds::TOPIC,
        kinds::LOG_GROUP,
        kinds::HOSTED_ZONE,
        kinds::RECORD_SET,
        kinds::QUERY_LOGGING_CONFIG,
        kinds::LOG_RESOURCE_POLICY,
        kinds::SUBSCRIPTION_FILTER,
        kinds::FUNCTION,
        kinds::LAMBDA_PERMISSION,
        kinds::SCALING_POLICY,
        kinds::ALARM,
        kinds::EVENT_RULE,
        kinds::DASHBOARD,
    ] {
        assert!(
            kinds_created.contains(kind),
            "{kind} missing from the graph"
        );
    }

    // Nothing left to do, and a second apply changes nothing.
    p.session.counter.reset();
    let again = deploy::plan(&p, &rec).await.unwrap();
    assert!(again.is_empty(), "second plan should be empty:\n{again}");
    let report = rec.apply(&again, &NoEvents).await;
    assert!(report.is_success());
    let calls = p.session.counter.snapshot();
    assert_eq!(
        calls.mutations,
        0,
        "mutating calls on a no-op apply: {:?}",
        calls.mutating_operations()
    );
    assert!(calls.reads > 0);

    // Destroy keeps every file system and the backup vault, and says so.
    let (graph, ids) =
        deploy::destroy_graph(&p.session.context, &p.set, &p.catalog, &[], false).unwrap();
    let plan = deploy::plan_destroy(&rec, &graph, &ids).await.unwrap();
    let retained: BTreeSet<String> = plan.retained().map(|r| r.id.to_string()).collect();
    for id in [
        "efs.file-system/minecraft-data",
        "efs.file-system/valheim-config",
        "efs.file-system/valheim-download",
        "efs.file-system/palworld-palworld",
        "backup.vault/main",
    ] {
        assert!(
            retained.contains(id),
            "{id} should be retained: {retained:?}"
        );
    }
    let events = std::sync::Mutex::new(Vec::new());
    let record = |e: ApplyEvent| events.lock().unwrap().push(e);
    let report = rec.apply(&plan, &record).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");
    // DNS goes in order: the zone's records and logging config are gone before the zone's
    // delete starts, so Route 53 never refuses it (no retry).
    let events = events.into_inner().unwrap();
    let position = |id: &str, started: bool| {
        events
            .iter()
            .position(|e| {
                e.id.as_str() == id
                    && matches!(
                        (&e.kind, started),
                        (EventKind::Started { .. }, true) | (EventKind::Succeeded { .. }, false)
                    )
            })
            .unwrap_or_else(|| panic!("no event for {id}"))
    };
    for server in ["minecraft", "valheim", "palworld"] {
        let zone = format!("route53.hosted-zone/{server}");
        let zone_started = position(&zone, true);
        for before in [
            format!("route53.record-set/{server}-address"),
            format!("route53.record-set/{server}-delegation"),
            format!("route53.query-logging-config/{server}"),
        ] {
            assert!(
                position(&before, false) < zone_started,
                "{before} before {zone}"
            );
        }
        let zone_report = report
            .resources()
            .iter()
            .find(|r| r.id.as_str() == zone)
            .unwrap();
        assert_eq!(
            zone_report.attempts, 1,
            "{zone} deleted at the first attempt"
        );
    }
    let mut summary = Vec::new();
    deploy::summary(&report, &plan, &p.session.counter.snapshot(), &mut summary).unwrap();
    let summary = String::from_utf8(summary).unwrap();
    assert!(
        summary.contains("= efs.file-system/minecraft-data"),
        "{summary}"
    );

    let after = rec.observe(&p.graph).await.unwrap();
    for r in p.graph.iter() {
        let kept = retained.contains(r.id.as_str());
        assert_eq!(after.exists(&r.id), kept, "{} after destroy", r.id);
    }

    // Re-apply adopts the kept file systems instead of creating new ones.
    p.session.counter.reset();
    let plan = deploy::plan(&p, &rec).await.unwrap();
    for id in &retained {
        let action = plan.action(&id.as_str().into());
        assert!(
            matches!(action, Some(Action::NoOp) | Some(Action::Update)),
            "{id}: {action:?}"
        );
    }
    let report = rec.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    let calls = p.session.counter.snapshot();
    assert!(
        !calls
            .by_operation
            .keys()
            .any(|k| k.ends_with("CreateFileSystem")),
        "kept file systems must be adopted: {:?}",
        calls.by_operation
    );
    for r in report.resources() {
        assert!(!matches!(r.outcome, Outcome::Failed { .. }), "{}", r.id);
    }
    assert!(deploy::plan(&p, &rec).await.unwrap().is_empty());
}

/// What an earlier apply made and the specs no longer render goes on the next apply, found
/// from the apply records: the per-server dashboard of an earlier version and the Base's
/// dashboard once no server shows on it are deleted (each costs money while nobody plays),
/// and a volume taken out of its spec loses its mount targets while its file system, the
/// data, is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_specs_no_longer_render_is_retired_and_data_kept() {
    let account = fresh_account_id();
    let mut p = prepared(&account).await;
    let rec = reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let report = rec.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{:#?}", common::failure_lines(&report));
    let region = reconciler_ops::session::home_region(&p.set);
    let config = reconciler_testkit::Emulator::shared().sdk_config(&region, &account);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
    let dashboards = || async {
        let listed = cloudwatch.list_dashboards().send().await.unwrap();
        listed
            .dashboard_entries()
            .iter()
            .filter_map(|d| d.dashboard_name().map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(dashboards().await, ["rc-main-dashboard"]);

    // As an earlier version left it: a dashboard of minecraft's own, in minecraft's record.
    cloudwatch
        .put_dashboard()
        .dashboard_name("rc-minecraft-dashboard")
        .dashboard_body(r#"{"widgets":[]}"#)
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(&config);
    let record_name = reconciler_render::record::server_record_name("main", "minecraft");
    let record = ssm.get_parameter().name(&record_name).send().await.unwrap();
    let mut value: serde_json::Value =
        serde_json::from_str(record.parameter().unwrap().value().unwrap()).unwrap();
    value["resources"]["cloudwatch.dashboard/minecraft"] = serde_json::json!("earlier");
    ssm.put_parameter()
        .name(&record_name)
        .value(value.to_string())
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let before = p.graph.clone();
    let of_minecraft = |kind: &'static str| {
        before
            .iter()
            .filter(move |r| r.kind.as_str() == kind && r.id.as_str().contains("/minecraft-"))
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
    };
    let file_systems = of_minecraft(kinds::FILE_SYSTEM);
    let mount_targets = of_minecraft(kinds::MOUNT_TARGET);
    assert!(!file_systems.is_empty() && !mount_targets.is_empty());
    for server in &mut p.set.servers {
        server.doc.spec.dashboard.enabled = false;
        if server.doc.metadata.name == "minecraft" {
            server.doc.spec.volumes.clear();
        }
    }
    p.graph = p.session.render(&p.set, &p.catalog).unwrap();
    let rec = reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let action = |id: &str| {
        plan.resources()
            .iter()
            .find(|r| r.id.as_str() == id)
            .map(|r| r.action)
    };
    for id in [
        "cloudwatch.dashboard/minecraft",
        "cloudwatch.dashboard/main",
    ] {
        assert_eq!(action(id), Some(Action::Delete), "{id}:\n{plan}");
    }
    for id in &mount_targets {
        assert_eq!(action(id), Some(Action::Delete), "{id}:\n{plan}");
    }
    for id in &file_systems {
        assert_eq!(action(id), Some(Action::Retain), "{id}:\n{plan}");
    }
    let report = rec.apply(&plan, &NoEvents).await;
    assert!(report.is_success(), "{:#?}", common::failure_lines(&report));

    assert!(dashboards().await.is_empty());
    let efs = aws_sdk_efs::Client::new(&config);
    let kept = efs.describe_file_systems().send().await.unwrap();
    let minecraft: Vec<_> = kept
        .file_systems()
        .iter()
        .filter(|fs| fs.name().is_some_and(|n| n.starts_with("rc-minecraft")))
        .collect();
    assert!(!minecraft.is_empty(), "the data is kept: {kept:?}");
    for fs in minecraft {
        let targets = common::inventory::mount_targets(&efs, fs.file_system_id()).await;
        assert_eq!(targets, 0, "{fs:?}");
    }
    assert!(deploy::plan(&p, &rec).await.unwrap().is_empty());
}
