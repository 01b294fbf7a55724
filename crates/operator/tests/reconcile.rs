//! The reconcile functions against the in-process Kubernetes side and an in-memory AWS side:
//! create, update, delete through the finalizer, status, and the error policy's backoff.

mod fake;

use std::sync::Arc;
use std::time::Duration;

use fake::{condition, created, example_base, example_server, Call, FakeAws, FakeKube};
use kube::runtime::controller::Action;
use reconciler_operator::crd::{Base, ContainerSpec, FINALIZER};
use reconciler_operator::reconcile::{error_policy, reconcile_base, reconcile_server, Error};
use reconciler_operator::{ApplyOutcome, AwsError, Config, Context, DestroyOutcome};

type Ctx = Arc<Context<FakeKube, FakeAws>>;

fn context() -> Ctx {
    Arc::new(Context::new(
        FakeKube::default(),
        FakeAws::default(),
        Config {
            requeue: Duration::from_secs(300),
            retry_min: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            allow_data_loss: false,
        },
    ))
}

async fn server(ctx: &Ctx, name: &str) -> Result<Action, Error> {
    let obj = ctx.kube.server(name).expect("the object exists");
    reconcile_server(Arc::new(obj), ctx.clone()).await
}

async fn base(ctx: &Ctx, name: &str) -> Result<Action, Error> {
    let obj = ctx.kube.base(name).expect("the object exists");
    reconcile_base(Arc::new(obj), ctx.clone()).await
}

/// What the controller does with a result: the action, or the error policy's.
async fn step(ctx: &Ctx, name: &str) -> Action {
    let obj: ContainerSpec = ctx.kube.server(name).expect("the object exists");
    match reconcile_server(Arc::new(obj.clone()), ctx.clone()).await {
        Ok(action) => action,
        Err(error) => error_policy(Arc::new(obj), &error, ctx.clone()),
    }
}

#[tokio::test]
async fn create_sets_the_finalizer_applies_and_reports_status() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));

    let action = server(&ctx, "minecraft").await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));

    let calls = ctx.aws.calls();
    let [Call::Apply(desired)] = calls.as_slice() else {
        panic!("one apply expected: {calls:?}");
    };
    assert_eq!(desired.namespace, "games");
    assert_eq!(desired.base.metadata.name, "main");
    let doc = desired.server.as_ref().unwrap();
    assert_eq!(doc.metadata.name, "minecraft");
    assert_eq!(doc.spec, example_server("minecraft").spec);

    let obj = ctx.kube.server("minecraft").unwrap();
    assert_eq!(
        obj.metadata.finalizers.as_deref(),
        Some(&[FINALIZER.to_string()][..])
    );
    let status = obj.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(&status, "Ready"),
        ("True".into(), "Available".into())
    );
    assert_eq!(
        condition(&status, "Synced"),
        ("True".into(), "ReconcileSuccess".into())
    );
    assert_eq!(
        condition(&status, "Drifted"),
        ("False".into(), "NoDrift".into())
    );
    assert_eq!(status.last_error, None);
    assert_eq!(status.changed, Some(42));
    assert_eq!(status.runtime.unwrap().state, "asleep");
    assert!(ctx
        .kube
        .events()
        .iter()
        .any(|(obj, warning, reason, _)| obj == "ContainerSpec/minecraft"
            && !warning
            && reason == "Reconciled"));
}

#[tokio::test]
async fn its_own_status_write_does_not_trigger_another_apply_but_a_spec_change_does() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    server(&ctx, "minecraft").await.unwrap();
    let writes = ctx.kube.status_writes();

    // The watch event of the status write: nothing to do until the requeue interval.
    let again = server(&ctx, "minecraft").await.unwrap();
    assert_ne!(again, Action::requeue(Duration::from_secs(300)));
    assert_eq!(ctx.aws.calls().len(), 1, "no second apply");
    assert_eq!(ctx.kube.status_writes(), writes, "no status write either");

    // An update: a new generation goes through at once, with the new spec.
    let mut changed = example_server("minecraft");
    changed.spec.ec2.instance_type = "m5.xlarge".into();
    ctx.kube.put_server(changed);
    ctx.aws.queue_apply(Ok(ApplyOutcome {
        changed: 2,
        ..created()
    }));
    server(&ctx, "minecraft").await.unwrap();
    let calls = ctx.aws.calls();
    assert_eq!(calls.len(), 2);
    let Call::Apply(desired) = &calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(
        desired.server.as_ref().unwrap().spec.ec2.instance_type,
        "m5.xlarge"
    );
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.changed, Some(2));
}

#[tokio::test]
async fn delete_destroys_with_retention_then_releases_the_finalizer() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    server(&ctx, "minecraft").await.unwrap();

    // A first cleanup fails: the finalizer stays, the status says why.
    ctx.kube.delete_server("minecraft");
    ctx.aws.queue_destroy(Ok(DestroyOutcome {
        deleted: 3,
        retained: Vec::new(),
        errors: vec!["ec2.security-group/minecraft: DependencyViolation".into()],
    }));
    let err = server(&ctx, "minecraft").await.unwrap_err();
    assert!(
        matches!(&err, Error::Aws(m) if m.contains("DependencyViolation")),
        "{err}"
    );
    let obj = ctx.kube.server("minecraft").expect("kept by its finalizer");
    let status = obj.status.unwrap();
    assert_eq!(
        condition(&status, "Synced"),
        ("False".into(), "DeleteFailed".into())
    );
    assert!(status.last_error.unwrap().contains("DependencyViolation"));

    // The retry deletes, keeping data under destroy's rules, and lets the object go.
    let minecraft = ctx.kube.server("minecraft").unwrap();
    let action = error_policy(Arc::new(minecraft), &err, ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    // The status write woke it at once: held back until the backoff has passed.
    assert_ne!(
        server(&ctx, "minecraft").await.unwrap(),
        Action::await_change()
    );
    assert_eq!(ctx.aws.calls().len(), 2, "no destroy inside the backoff");
    let mut minecraft = ctx.kube.server("minecraft").unwrap();
    let status = minecraft.status.as_mut().unwrap();
    status.last_reconcile_time = Some("2000-01-01T00:00:00Z".into());
    let action = reconcile_server(Arc::new(minecraft), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        ctx.kube.server("minecraft").is_none(),
        "the finalizer was released"
    );
    let calls = ctx.aws.calls();
    let Call::Destroy(desired, allow_data_loss) = calls.last().unwrap() else {
        panic!("{calls:?}")
    };
    assert!(
        !allow_data_loss,
        "data is kept unless the operator allows data loss"
    );
    assert_eq!(desired.server.as_ref().unwrap().metadata.name, "minecraft");
    assert_eq!(desired.base.metadata.name, "main");
    let events = ctx.kube.events();
    let (_, _, _, note) = events
        .iter()
        .find(|(_, warning, reason, _)| !warning && reason == "Deleted")
        .expect("a Deleted event");
    assert!(
        note.contains("data kept: efs.file-system/minecraft-Data"),
        "{note}"
    );
    assert_eq!(ctx.backoff.failures("ContainerSpec/games/minecraft"), 0);
}

#[tokio::test]
async fn failures_back_off_exponentially_and_a_success_resets_the_backoff() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("valheim"));
    for _ in 0..5 {
        ctx.aws.queue_apply(Ok(ApplyOutcome {
            changed: 1,
            errors: vec!["logs.log-group/valheim-container: exists but is not ours".into()],
            ..created()
        }));
    }
    // Each retry comes after the previous delay has passed (the requeue the error policy
    // asked for), which a test simulates by ageing the status.
    let mut waits = Vec::new();
    for _ in 0..5 {
        let mut obj = ctx.kube.server("valheim").unwrap();
        if let Some(status) = obj.status.as_mut() {
            status.last_reconcile_time = Some("2000-01-01T00:00:00Z".into());
        }
        let err = reconcile_server(Arc::new(obj.clone()), ctx.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Aws(m) if m.contains("not ours")),
            "{err}"
        );
        waits.push(error_policy(Arc::new(obj), &err, ctx.clone()));
    }
    let secs = |s| Action::requeue(Duration::from_secs(s));
    assert_eq!(waits, [secs(5), secs(10), secs(20), secs(40), secs(60)]);
    let status = ctx.kube.server("valheim").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Ready"),
        ("False".into(), "ApplyFailed".into())
    );
    assert_eq!(
        condition(&status, "Synced"),
        ("False".into(), "ApplyFailed".into())
    );
    assert!(status.last_error.unwrap().contains("not ours"));
    assert!(ctx
        .kube
        .events()
        .iter()
        .any(|(_, warning, reason, _)| *warning && reason == "ApplyFailed"));

    // Fixed: the next try succeeds, the error is cleared and the backoff starts over.
    let mut obj = ctx.kube.server("valheim").unwrap();
    obj.status.as_mut().unwrap().last_reconcile_time = Some("2000-01-01T00:00:00Z".into());
    let ok = reconcile_server(Arc::new(obj), ctx.clone()).await.unwrap();
    assert_eq!(ok, Action::requeue(Duration::from_secs(300)));
    let status = ctx.kube.server("valheim").unwrap().status.unwrap();
    assert_eq!(status.last_error, None);
    assert_eq!(condition(&status, "Synced").0, "True");
    assert_eq!(ctx.backoff.failures("ContainerSpec/games/valheim"), 0);

    ctx.aws
        .queue_apply(Err(AwsError::Failed("STS: connection refused".into())));
    let mut changed = example_server("valheim");
    changed.spec.watchdog.threshold += 1;
    ctx.kube.put_server(changed);
    assert_eq!(
        step(&ctx, "valheim").await,
        secs(5),
        "starts over at the minimum"
    );
    let status = ctx.kube.server("valheim").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Synced"),
        ("False".into(), "ReconcileError".into())
    );
}

#[tokio::test]
async fn a_missing_base_and_an_invalid_spec_are_reported_in_status() {
    let ctx = context();
    ctx.kube.put_server(example_server("palworld"));
    let err = server(&ctx, "palworld").await.unwrap_err();
    assert_eq!(
        err,
        Error::Base("Base `main` not found in namespace `games`".into())
    );
    let status = ctx.kube.server("palworld").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Ready"),
        ("False".into(), "BaseNotFound".into())
    );
    assert!(ctx.aws.calls().is_empty(), "nothing sent to AWS");

    ctx.kube.put_base(example_base());
    ctx.aws.queue_apply(Err(AwsError::Invalid(
        "games/ContainerSpec/palworld:1:1: error: spec.ec2.instanceType: unknown".into(),
    )));
    let mut changed = example_server("palworld");
    changed.spec.ec2.instance_type = "zz9.huge".into();
    ctx.kube.put_server(changed);
    let err = server(&ctx, "palworld").await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    let status = ctx.kube.server("palworld").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Synced"),
        ("False".into(), "InvalidSpec".into())
    );
    assert!(status.last_error.unwrap().contains("instanceType"));
}

#[tokio::test]
async fn drift_is_reported_by_the_drifted_condition() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    ctx.aws.queue_apply(Ok(ApplyOutcome {
        changed: 1,
        drifted: vec!["ec2.security-group/minecraft".into()],
        ..created()
    }));
    server(&ctx, "minecraft").await.unwrap();
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Drifted"),
        ("True".into(), "DriftCorrected".into())
    );
    assert_eq!(condition(&status, "Ready").0, "True");
}

#[tokio::test]
async fn a_server_deleted_before_it_had_a_base_goes_without_touching_aws() {
    let ctx = context();
    ctx.kube.put_server(example_server("minecraft"));
    server(&ctx, "minecraft").await.unwrap_err();
    ctx.kube.delete_server("minecraft");
    assert_eq!(
        server(&ctx, "minecraft").await.unwrap(),
        Action::await_change()
    );
    assert!(ctx.kube.server("minecraft").is_none());
    assert!(ctx.aws.calls().is_empty());
}

#[tokio::test]
async fn a_base_is_applied_alone_and_deleted_only_once_its_servers_are_gone() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    base(&ctx, "main").await.unwrap();
    server(&ctx, "minecraft").await.unwrap();
    let calls = ctx.aws.calls();
    let Call::Apply(desired) = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(desired.server, None, "a Base is applied without servers");
    let status = ctx.kube.base("main").unwrap().status.unwrap();
    assert_eq!(condition(&status, "Ready").0, "True");

    ctx.kube.delete_base("main");
    let err = base(&ctx, "main").await.unwrap_err();
    assert_eq!(err, Error::InUse("minecraft".into()));
    let status = ctx.kube.base("main").unwrap().status.unwrap();
    assert_eq!(
        condition(&status, "Synced"),
        ("False".into(), "InUse".into())
    );
    assert!(
        matches!(ctx.aws.calls().last(), Some(Call::Apply(_))),
        "nothing destroyed yet"
    );

    ctx.kube.delete_server("minecraft");
    server(&ctx, "minecraft").await.unwrap();
    assert!(ctx.kube.server("minecraft").is_none());
    assert_eq!(base(&ctx, "main").await.unwrap(), Action::await_change());
    assert!(ctx.kube.base("main").is_none());
    let calls = ctx.aws.calls();
    let Some(Call::Destroy(desired, _)) = calls.last() else {
        panic!("{calls:?}")
    };
    assert_eq!(desired.server, None, "the Base alone is destroyed");
}

#[tokio::test]
async fn a_conflicting_finalizer_write_fails_the_reconcile_before_aws() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    // Someone changed the object after it was read.
    let stale = ctx.kube.server("minecraft").unwrap();
    let mut newer: ContainerSpec = stale.clone();
    newer.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    ctx.kube.put_server(newer);
    let err = reconcile_server(Arc::new(stale), ctx.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Kube(e) if e.0.contains("409")),
        "{err}"
    );
    assert!(ctx.aws.calls().is_empty());
    let _: Option<Base> = ctx.kube.base("main");
}

#[tokio::test]
async fn a_deletion_is_acted_on_at_once_even_without_a_new_generation() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    ctx.kube.put_server(example_server("minecraft"));
    server(&ctx, "minecraft").await.unwrap();
    // Marked for deletion right after a successful apply, by a server that does not bump the
    // generation: the in-sync status must not hold the deletion back.
    let mut obj = ctx.kube.server("minecraft").unwrap();
    obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::chrono::Utc::now(),
    ));
    let action = reconcile_server(Arc::new(obj), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(matches!(
        ctx.aws.calls().last(),
        Some(Call::Destroy(_, false))
    ));
}

/// Each apply gets the Base's other live servers, so what the Base makes for all of them (its
/// dashboards) is rendered whole whichever object is reconciled: a server sees its siblings,
/// the Base sees every server, and a server being deleted is nobody's sibling any more.
#[tokio::test]
async fn every_apply_sees_the_bases_other_servers() {
    let ctx = context();
    ctx.kube.put_base(example_base());
    for name in ["minecraft", "valheim", "palworld"] {
        ctx.kube.put_server(example_server(name));
    }
    let others = |call: &Call| -> Vec<String> {
        let Call::Apply(desired) = call else {
            panic!("{call:?}")
        };
        let mut names: Vec<String> = desired
            .others
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        names.sort();
        names
    };
    server(&ctx, "minecraft").await.unwrap();
    assert_eq!(others(&ctx.aws.calls()[0]), ["palworld", "valheim"]);
    base(&ctx, "main").await.unwrap();
    assert_eq!(
        others(&ctx.aws.calls()[1]),
        ["minecraft", "palworld", "valheim"]
    );

    server(&ctx, "valheim").await.unwrap();
    ctx.kube.delete_server("valheim");
    let mut terraria = example_server("minecraft");
    terraria.metadata.name = Some("terraria".into());
    ctx.kube.put_server(terraria);
    server(&ctx, "terraria").await.unwrap();
    let last = ctx.aws.calls().last().cloned().unwrap();
    assert_eq!(others(&last), ["minecraft", "palworld"]);
}
