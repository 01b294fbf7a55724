//! The reconcile function with the real AWS side (the command's own apply and destroy) against
//! the local AWS emulator: a ContainerSpec object is created in AWS, reports its runtime
//! state, and its deletion removes the server but keeps its production data.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{condition, example_base, example_server, FakeKube};
use kube::runtime::controller::Action;
use reconciler_operator::reconcile::reconcile_server;
use reconciler_operator::{Config, Context};
use reconciler_ops::operator::OperatorAws;
use reconciler_testkit::{fresh_account_id, Emulator};

const DOMAIN: &str = "games.example.com";
const REGION: &str = "us-west-2";

/// Creates the Base's root zone, as a user has it before the first apply.
async fn root_zone(account: &str) -> String {
    let route53 =
        aws_sdk_route53::Client::new(&Emulator::shared().sdk_config("us-east-1", account));
    let out = route53
        .create_hosted_zone()
        .name(format!("{DOMAIN}."))
        .caller_reference(format!("root-{account}"))
        .send()
        .await
        .expect("CreateHostedZone (root)");
    out.hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

async fn groups(account: &str) -> Vec<String> {
    let asg = aws_sdk_autoscaling::Client::new(&Emulator::shared().sdk_config(REGION, account));
    asg.describe_auto_scaling_groups()
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()
        .iter()
        .map(|g| g.auto_scaling_group_name().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_object_is_applied_to_aws_and_deleted_keeping_its_data() {
    reconciler_testkit::ensure_lambda_artifact().expect("the runtime Lambda binary");
    let account = fresh_account_id();
    let zone = root_zone(&account).await;
    let env = Arc::new(move |name: &str| match name {
        "HOSTED_ZONE_ID" => Some(zone.clone()),
        _ => None,
    });
    let aws = OperatorAws::with_config(Emulator::shared().sdk_config(REGION, &account), env);
    let ctx = Arc::new(Context::new(FakeKube::default(), aws, Config::default()));
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));

    let obj = ctx.kube.server("minecraft").unwrap();
    let action = reconcile_server(Arc::new(obj), ctx.clone()).await;
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(
        action,
        Ok(Action::requeue(Duration::from_secs(300))),
        "{status:#?}"
    );
    assert_eq!(condition(&status, "Ready").0, "True", "{status:#?}");
    assert!(status.changed.unwrap() > 20, "{status:#?}");
    let runtime = status.runtime.clone().expect("the runtime state");
    assert_eq!(runtime.state, "asleep");
    assert_eq!(
        runtime.dns_name.as_deref(),
        Some("minecraft.games.example.com")
    );
    assert_eq!(runtime.desired_capacity, Some(0));
    assert!(groups(&account).await.contains(&"rc-minecraft".to_string()));

    // Periodic reconciles find nothing to change: the first one records that (changed: 0),
    // the next ones write no status at all.
    for round in 0..2 {
        let writes = ctx.kube.status_writes();
        let mut obj = ctx.kube.server("minecraft").unwrap();
        obj.status.as_mut().unwrap().last_reconcile_time = Some("2000-01-01T00:00:00Z".into());
        reconcile_server(Arc::new(obj), ctx.clone()).await.unwrap();
        let again = ctx.kube.server("minecraft").unwrap().status.unwrap();
        assert_eq!(again.changed, Some(0), "{again:#?}");
        assert_eq!(
            ctx.kube.status_writes() - writes,
            1 - round,
            "round {round}"
        );
    }

    // Deleted: the finalizer destroys the server; its file system (prod) is kept.
    ctx.kube.delete_server("minecraft");
    let obj = ctx.kube.server("minecraft").unwrap();
    let action = reconcile_server(Arc::new(obj), ctx.clone()).await;
    assert_eq!(
        action,
        Ok(Action::await_change()),
        "{:#?}",
        ctx.kube.server("minecraft")
    );
    assert!(ctx.kube.server("minecraft").is_none(), "finalizer released");
    assert!(!groups(&account).await.contains(&"rc-minecraft".to_string()));
    let efs = aws_sdk_efs::Client::new(&Emulator::shared().sdk_config(REGION, &account));
    let file_systems = efs.describe_file_systems().send().await.unwrap();
    assert_eq!(file_systems.file_systems().len(), 1, "the world is kept");
    let events = ctx.kube.events();
    assert!(
        events
            .iter()
            .any(|(_, _, reason, note)| reason == "Deleted" && note.contains("data kept")),
        "{events:?}"
    );
}
