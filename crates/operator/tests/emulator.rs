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
    let aws = OperatorAws::with_config(Emulator::shared().sdk_config(REGION, &account), env)
        .allowing_env(ALLOWED);
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

/// The example specs' variables, which the operator may read.
const ALLOWED: [&str; 5] = [
    "AWS_REGION",
    "DOMAIN_NAME",
    "HOSTED_ZONE_ID",
    "ADMIN_EMAILS",
    "MINECRAFT_EMAILS",
];

/// An operator over `account` whose objects live in `namespace`.
fn operator(
    account: &str,
    zone: &str,
    namespace: &str,
    adopt_unowned: bool,
) -> Arc<Context<FakeKube, OperatorAws>> {
    let zone = zone.to_string();
    let env = Arc::new(move |name: &str| (name == "HOSTED_ZONE_ID").then(|| zone.clone()));
    let aws = OperatorAws::with_config(Emulator::shared().sdk_config(REGION, account), env)
        .allowing_env(ALLOWED)
        .adopting_unowned(adopt_unowned);
    let ctx = Arc::new(Context::new(
        FakeKube::in_namespace(namespace),
        aws,
        Config::default(),
    ));
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    ctx
}

/// Reconciles `minecraft` once and returns its status.
async fn reconcile_minecraft(
    ctx: &Arc<Context<FakeKube, OperatorAws>>,
) -> reconciler_operator::crd::Status {
    let obj = ctx.kube.server("minecraft").unwrap();
    let _ = reconcile_server(Arc::new(obj), ctx.clone()).await;
    ctx.kube.server("minecraft").unwrap().status.unwrap()
}

/// The server's Auto Scaling group's tags.
async fn group_tags(account: &str) -> std::collections::BTreeMap<String, String> {
    let asg = aws_sdk_autoscaling::Client::new(&Emulator::shared().sdk_config(REGION, account));
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("rc-minecraft")
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()
        .first()
        .expect("the group exists")
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `reconciler apply` of the example Base and minecraft, `change` applied to minecraft's spec
/// first: what the command does, through its own functions.
async fn cli_apply(
    account: &str,
    zone: &str,
    change: impl Fn(&mut reconciler_spec::ServerSpec),
) -> anyhow::Result<reconciler_ops::converge::Converged> {
    use reconciler_ops::converge::{converge, ConvergeOptions, Quiet};
    use reconciler_ops::deploy;
    let mut server = example_server("minecraft");
    change(&mut server.spec);
    let docs = [
        (
            "base.yaml",
            serde_yaml_ng::to_string(&document_of_base()).unwrap(),
        ),
        (
            "minecraft.yaml",
            serde_yaml_ng::to_string(&reconciler_spec::ContainerSpecDocument {
                api_version: reconciler_spec::ApiVersion::V1Alpha1,
                kind: reconciler_spec::ContainerSpecKind::ContainerSpec,
                metadata: reconciler_spec::Metadata {
                    name: "minecraft".into(),
                },
                spec: server.spec,
            })
            .unwrap(),
        ),
    ];
    let inputs: Vec<reconciler_spec::Input> = docs
        .into_iter()
        .map(|(name, text)| reconciler_spec::Input {
            name: name.into(),
            bytes: text.into_bytes(),
        })
        .collect();
    let zone = zone.to_string();
    let env = move |name: &str| (name == "HOSTED_ZONE_ID").then(|| zone.clone());
    let catalog = reconciler_spec::InstanceCatalog::offline();
    let (set, diags) = reconciler_spec::check(&inputs, &env, &catalog);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let config = Emulator::shared().sdk_config(REGION, account);
    let p = deploy::prepare(set, catalog, config).await?;
    let rec = p.session.reconciler(&Default::default());
    let opts = ConvergeOptions {
        plan: Default::default(),
        lock_wait: Duration::from_secs(30),
    };
    converge(&p, &rec, &opts, &Quiet).await
}

fn document_of_base() -> reconciler_spec::BaseDocument {
    reconciler_spec::BaseDocument {
        api_version: reconciler_spec::ApiVersion::V1Alpha1,
        kind: reconciler_spec::BaseKind::Base,
        metadata: reconciler_spec::Metadata {
            name: "main".into(),
        },
        spec: example_base().spec,
    }
}

/// AWS names ignore namespaces, so ownership tags keep one namespace (and the command) from
/// taking over another's resources: a migration from `reconciler apply` needs
/// `--adopt-unowned`; then the same object name in another namespace, the command with a
/// changed spec, and the other namespace's deletion are all refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_owner_s_resources_are_refused_and_left_unchanged() {
    reconciler_testkit::ensure_lambda_artifact().expect("the runtime Lambda binary");
    let account = fresh_account_id();
    let zone = root_zone(&account).await;
    let owner_tag = "reconciler.dev/owner";

    // `reconciler apply` made the server: no owner tag.
    let applied = cli_apply(&account, &zone, |_| {}).await.unwrap();
    assert!(applied.is_success());
    assert!(!group_tags(&account).await.contains_key(owner_tag));

    // The operator refuses what the command made, unless it adopts it.
    let a = operator(&account, &zone, "a", false);
    let status = reconcile_minecraft(&a).await;
    assert_eq!(condition(&status, "Ready").1, "OwnedByOther", "{status:#?}");
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("no owner tag"),
        "{status:#?}"
    );
    assert!(!group_tags(&account).await.contains_key(owner_tag));
    let a = operator(&account, &zone, "a", true);
    let status = reconcile_minecraft(&a).await;
    assert_eq!(condition(&status, "Ready").0, "True", "{status:#?}");
    let owner = "k8s:a/ContainerSpec/minecraft";
    assert_eq!(
        group_tags(&account)
            .await
            .get(owner_tag)
            .map(String::as_str),
        Some(owner)
    );

    // The same names in namespace b, with a different spec: refused, with an event.
    let b = operator(&account, &zone, "b", true);
    let mut server = b.kube.server("minecraft").unwrap();
    server.spec.watchdog.minutes_without_connections = 21;
    b.kube.put_server(server);
    let status = reconcile_minecraft(&b).await;
    assert_eq!(condition(&status, "Ready").1, "OwnedByOther", "{status:#?}");
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("k8s:a/"), "{error}");
    assert!(
        b.kube
            .events()
            .iter()
            .any(|(_, warning, reason, _)| *warning && reason == "OwnedByOther"),
        "{:?}",
        b.kube.events()
    );

    // The command with a changed spec is refused too.
    let refused = cli_apply(&account, &zone, |spec| {
        spec.watchdog.minutes_without_connections = 33;
    })
    .await
    .unwrap_err();
    let refused = refused
        .downcast_ref::<reconciler_ops::ownership::OwnedByOther>()
        .expect("refused as another owner's");
    assert!(refused.conflicts.iter().all(|c| c.ours.is_none()));

    // b's deletion would delete a's server: refused, the object stays.
    b.kube.delete_server("minecraft");
    let status = reconcile_minecraft(&b).await;
    assert_eq!(condition(&status, "Ready").1, "OwnedByOther", "{status:#?}");
    assert!(b.kube.server("minecraft").is_some(), "the finalizer holds");
    assert!(groups(&account).await.contains(&"rc-minecraft".to_string()));

    // Nothing of a's changed: its next reconcile finds nothing to do.
    let mut obj = a.kube.server("minecraft").unwrap();
    obj.status.as_mut().unwrap().last_reconcile_time = Some("2000-01-01T00:00:00Z".into());
    reconcile_server(Arc::new(obj), a.clone()).await.unwrap();
    let status = a.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(status.changed, Some(0), "{status:#?}");
    assert_eq!(
        group_tags(&account)
            .await
            .get(owner_tag)
            .map(String::as_str),
        Some(owner)
    );
}
