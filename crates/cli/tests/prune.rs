//! `apply --prune` against the emulator: a server removed from the input is found by its
//! apply record and deleted, its data kept; an object at one of its names without our tags is
//! left alone; with `--allow-data-loss` only the volumes whose spec did not ask to be kept go.

mod common;

use common::{prepared, reconciler};
use reconciler_engine::{Action, NoEvents, Reconciler};
use reconciler_ops::deploy::{self, PlanOptions, Prepared};
use reconciler_ops::results;
use reconciler_testkit::{fresh_account_id, Emulator};

async fn apply(p: &Prepared, rec: &Reconciler, opts: PlanOptions) -> deploy::Planned {
    let planned = deploy::plan_with(p, rec, opts).await.unwrap();
    let report = rec.apply(&planned.plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}\n{}", planned.plan);
    deploy::record_results(p, &planned, &report).await.unwrap();
    planned
}

fn without(p: &mut Prepared, server: &str) {
    p.set.servers.retain(|s| s.doc.metadata.name != server);
    p.graph = p.session.render(&p.set, &p.catalog).unwrap();
}

async fn file_systems(efs: &aws_sdk_efs::Client) -> Vec<String> {
    let mut names: Vec<String> = efs
        .describe_file_systems()
        .send()
        .await
        .unwrap()
        .file_systems()
        .iter()
        .map(|f| f.creation_token().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_server_is_pruned_its_data_kept_and_foreign_objects_untouched() {
    let account = fresh_account_id();
    let mut p = prepared(&account).await;
    let rec = reconciler(&p);
    let prune = PlanOptions {
        prune: true,
        allow_data_loss: false,
    };
    apply(&p, &rec, PlanOptions::default()).await;
    let recorded = results::read(&p, &["valheim".into()]).await.unwrap();
    assert_eq!(recorded["valheim"].outcome, "succeeded", "{recorded:?}");

    let region = reconciler_ops::session::home_region(&p.set);
    let regional = Emulator::shared().sdk_config(&region, &account);
    let efs = aws_sdk_efs::Client::new(&regional);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&regional);
    let asg = aws_sdk_autoscaling::Client::new(&regional);
    let all_file_systems = file_systems(&efs).await;
    assert_eq!(all_file_systems.len(), 4, "{all_file_systems:?}");

    // Someone takes the ownership tag off one of valheim's objects: from then on it is not
    // ours, and prune must not delete it.
    let foreign = "/reconciler/valheim/container";
    let arn = logs
        .describe_log_groups()
        .log_group_name_prefix(foreign)
        .send()
        .await
        .unwrap()
        .log_groups()[0]
        .log_group_arn()
        .unwrap()
        .to_string();
    logs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("reconciler.dev/managed-by")
        .send()
        .await
        .unwrap();

    // Valheim leaves the input. Without --prune nothing is deleted; the plan says what is left.
    without(&mut p, "valheim");
    let planned = deploy::plan_with(&p, &rec, PlanOptions::default())
        .await
        .unwrap();
    assert!(planned.plan.is_empty(), "{}", planned.plan);
    assert_eq!(planned.orphans.len(), 1);
    assert_eq!(planned.orphans[0].server, "valheim");
    let hint = planned.orphan_hint().unwrap();
    assert!(
        hint.contains("valheim") && hint.contains("--prune"),
        "{hint}"
    );

    // With --prune: every valheim resource goes but its file systems and the foreign group.
    let planned = deploy::plan_with(&p, &rec, prune).await.unwrap();
    let plan = &planned.plan;
    for r in plan.resources() {
        let owner = planned.pruned_owners.get(&r.id).map(String::as_str);
        match r.action {
            Action::NoOp => {}
            Action::Delete => assert_eq!(owner, Some("valheim"), "{}\n{plan}", r.id),
            Action::Retain => {
                assert_eq!(owner, Some("valheim"), "{}", r.id);
                assert!(
                    r.kind.as_str() == "efs.file-system" || r.name == foreign,
                    "only data and the foreign group are kept: {}",
                    r.id
                );
            }
            other => panic!("{}: unexpected {other:?}\n{plan}", r.id),
        }
    }
    let summary = plan.summary();
    assert_eq!(summary.retain, 3, "{plan}");
    assert!(summary.destroy > 30, "{plan}");
    let inventory = planned.prune_inventory();
    assert!(inventory.contains("Prune server valheim"), "{inventory}");
    assert!(
        inventory.contains("= logs.log-group/valheim-container (/reconciler/valheim/container): not tagged as ours, left alone"),
        "{inventory}"
    );
    assert!(
        inventory.contains("= efs.file-system/valheim-config (rc-valheim-config): data, kept"),
        "{inventory}"
    );
    assert!(
        inventory.contains("- ssm.parameter/valheim.record"),
        "{inventory}"
    );
    // The record goes last, so an interrupted prune can be finished by the next one.
    let order: Vec<&str> = plan
        .resources()
        .iter()
        .filter(|r| r.action == Action::Delete)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        order.last(),
        Some(&"ssm.parameter/valheim.record"),
        "{order:?}"
    );

    apply(&p, &rec, prune).await;
    let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
    let names: Vec<&str> = groups
        .auto_scaling_groups()
        .iter()
        .filter_map(|g| g.auto_scaling_group_name())
        .collect();
    assert!(!names.contains(&"rc-valheim"), "{names:?}");
    assert_eq!(names.len(), 2, "the other servers stay: {names:?}");
    assert_eq!(file_systems(&efs).await, all_file_systems, "data is kept");
    let left = logs
        .describe_log_groups()
        .log_group_name_prefix(foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(left.log_groups().len(), 1, "the untagged group stays");
    let gone = reconciler_aws::ssm::get_values(
        &p.session.pool,
        &region,
        &[
            results::result_name("main", "valheim"),
            reconciler_render::record::server_record_name("main", "valheim"),
            reconciler_render::record::server_record_name("main", "minecraft"),
        ],
    )
    .await
    .unwrap();
    let left: Vec<&String> = gone.keys().collect();
    assert_eq!(
        left,
        ["/reconciler/main/servers/minecraft"],
        "valheim's record and result are deleted"
    );

    // Nothing is left to prune, and the other servers are untouched.
    let again = deploy::plan_with(&p, &rec, prune).await.unwrap();
    assert!(again.orphans.is_empty());
    assert!(again.plan.is_empty(), "{}", again.plan);

    // Valheim comes back (its file systems are adopted again), then leaves for good with
    // --allow-data-loss: the volume its spec keeps stays, the cache volume goes.
    logs.tag_resource()
        .resource_arn(&arn)
        .tags("reconciler.dev/managed-by", "reconciler")
        .send()
        .await
        .unwrap();
    let back = prepared_again(&account, &p).await;
    let planned = apply(&back, &rec, PlanOptions::default()).await;
    assert!(
        planned
            .plan
            .get(&"efs.file-system/valheim-config".into())
            .is_some_and(|r| matches!(r.action, Action::NoOp | Action::Update)),
        "the kept volume is adopted (its policy names the new role), not created:\n{}",
        planned.plan
    );
    apply(
        &p,
        &rec,
        PlanOptions {
            prune: true,
            allow_data_loss: true,
        },
    )
    .await;
    let remaining = file_systems(&efs).await;
    assert!(
        remaining.contains(&"rc-valheim-config".to_string()),
        "{remaining:?}"
    );
    assert!(
        !remaining.contains(&"rc-valheim-download".to_string()),
        "{remaining:?}"
    );
    assert_eq!(remaining.len(), 3, "{remaining:?}");
}

/// The full example specs again, in the same account and with the same root zone as `p`.
async fn prepared_again(account: &str, p: &Prepared) -> Prepared {
    common::prepared_in(account, &p.set.bases[0].doc.spec.domain.hosted_zone_id).await
}
