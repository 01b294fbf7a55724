//! `ssm.parameter` (the apply records) reconciled against the emulator: JSON values stored
//! plain or deflated with their fingerprints salted, drift on the value fixed, tags kept,
//! parameters not ours left alone, and the path listing prune relies on.

mod common;

use std::sync::Arc;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::{ssm, CallCounter, ClientPool};
use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_engine::plan::Action;
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler};
use reconciler_render::kinds;
use reconciler_render::naming::ServerNames;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::json;

const REGION: &str = "eu-west-1";

struct Env {
    cfg: SdkConfig,
    pool: Arc<ClientPool>,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Env {
    fn new() -> Env {
        let account = fresh_account_id();
        let cfg = Emulator::shared().sdk_config(REGION, &account);
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(cfg.clone()).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        let mut provider = Provider::new();
        provider.on_observation(reconciler_aws::observation_hook(&pool));
        for client in ssm::clients(&pool) {
            provider.register(client);
        }
        Env {
            cfg,
            pool,
            counter,
            reconciler: Reconciler::new(provider, Options::default()),
        }
    }

    fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.cfg)
    }
}

fn record(server: &str, value: serde_json::Value) -> DesiredResource {
    let names = ServerNames::new("main", server);
    let mut r = DesiredResource::new(
        kinds::PARAMETER,
        &format!("{server}.record"),
        REGION,
        format!("/reconciler/main/servers/{server}"),
    )
    .with_properties(json!({ "value": value }));
    r.tags = names.tags("record");
    r
}

#[tokio::test]
async fn records_are_created_read_back_fixed_and_deleted() {
    let env = Env::new();
    let small = record(
        "mc",
        json!({"managedBy": "reconciler", "resources": {"a": "1"}}),
    );
    let big = record(
        "vh",
        json!({"managedBy": "reconciler", "blob": "word ".repeat(3000)}),
    );
    let graph = DesiredGraph::new(vec![small.clone(), big.clone()]).unwrap();
    let plan = common::apply(&env.reconciler, &graph).await;
    assert_eq!(plan.summary().add, 2);
    common::assert_converged(&env.reconciler, &env.counter, &graph).await;

    // The small value is plain JSON, the big one deflated to fit the free tier.
    let stored = env
        .ssm()
        .get_parameter()
        .name("/reconciler/main/servers/mc")
        .send()
        .await
        .unwrap();
    // The record's fingerprints are stored salted: a reader of the parameter cannot test
    // guesses of the values they cover against them.
    let text = stored.parameter().unwrap().value().unwrap().to_string();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let salt = value["salt"].as_str().expect("a salt");
    assert_eq!(salt.len(), 32, "{value}");
    assert_ne!(value["resources"]["a"], "1", "{value}");
    assert_eq!(
        reconciler_render::record::unsalt_value(&value, &small.properties["value"]),
        small.properties["value"]
    );
    let stored = env
        .ssm()
        .get_parameter()
        .name("/reconciler/main/servers/vh")
        .send()
        .await
        .unwrap();
    let text = stored.parameter().unwrap().value().unwrap().to_string();
    assert!(
        text.starts_with("deflate:") && text.len() <= 4096,
        "{}",
        text.len()
    );

    // Rewritten out of band: drift on the value, put back by apply.
    env.ssm()
        .put_parameter()
        .name("/reconciler/main/servers/mc")
        .value("{\"managedBy\":\"reconciler\",\"resources\":{}}")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let plan = common::plan(&env.reconciler, &graph).await;
    let entry = plan.get(&small.id).unwrap();
    assert_eq!(entry.action, Action::Update);
    assert!(
        entry.changes.iter().any(|c| c.path == "/value/resources/a"),
        "{plan}"
    );
    common::apply_plan(&env.reconciler, &plan).await;
    common::assert_converged(&env.reconciler, &env.counter, &graph).await;

    // Prune lists a Base's records in one paged call; their tags come from the region's tag
    // index (fetched here, as no observation has fetched one in this pool since it expired), not
    // one read per record.
    env.pool.expire_observation();
    env.counter.reset();
    let listed = ssm::list_by_path(&env.pool, REGION, "/reconciler/main/servers/")
        .await
        .unwrap();
    let mut names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["/reconciler/main/servers/mc", "/reconciler/main/servers/vh"]
    );
    assert!(listed.iter().all(
        |p| p.tags.get("reconciler.dev/managed-by").map(String::as_str) == Some("reconciler")
    ));
    assert_eq!(
        listed
            .iter()
            .find(|p| p.name.ends_with("/vh"))
            .unwrap()
            .value,
        Some(big.properties["value"].clone())
    );
    let counts = env.counter.snapshot();
    assert_eq!(counts.reads, 2, "{counts:?}");
    assert!(
        counts
            .by_operation
            .keys()
            .any(|op| op.ends_with(".GetResources")),
        "{counts:?}"
    );

    let plan = common::plan_destroy(&env.reconciler, &graph).await;
    common::apply_plan(&env.reconciler, &plan).await;
    assert!(
        ssm::list_by_path(&env.pool, REGION, "/reconciler/main/servers/")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_parameter_without_our_tags_is_never_overwritten_or_deleted() {
    let env = Env::new();
    env.ssm()
        .put_parameter()
        .name("/reconciler/main/servers/mc")
        .value("someone else's")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let desired = record("mc", json!({"managedBy": "reconciler"}));
    let graph = DesiredGraph::new(vec![desired.clone()]).unwrap();
    let plan = common::plan(&env.reconciler, &graph).await;
    let report = env
        .reconciler
        .apply(&plan, &reconciler_engine::NoEvents)
        .await;
    let failures: Vec<String> = report.failures().map(|(_, e)| e.to_string()).collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("not ours"), "{failures:?}");
    let plan = common::plan_destroy(&env.reconciler, &graph).await;
    let report = env
        .reconciler
        .apply(&plan, &reconciler_engine::NoEvents)
        .await;
    assert!(!report.is_success());
    let value = env
        .ssm()
        .get_parameter()
        .name("/reconciler/main/servers/mc")
        .send()
        .await
        .unwrap();
    assert_eq!(value.parameter().unwrap().value(), Some("someone else's"));
}

#[tokio::test]
async fn results_are_written_read_and_deleted() {
    let env = Env::new();
    let tags = ServerNames::new("main", "mc").tags("record");
    let name = "/reconciler/main/results/mc".to_string();
    ssm::put_value(
        &env.pool,
        REGION,
        &name,
        &json!({"outcome": "failed"}),
        &tags,
    )
    .await
    .unwrap();
    ssm::put_value(
        &env.pool,
        REGION,
        &name,
        &json!({"outcome": "succeeded"}),
        &tags,
    )
    .await
    .unwrap();
    let values = ssm::get_values(&env.pool, REGION, &[name.clone(), "/nope".into()])
        .await
        .unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values[&name], json!({"outcome": "succeeded"}));
    let listed = ssm::read_tags(env.ssm(), name.clone()).await.unwrap();
    assert_eq!(
        listed.get("reconciler.dev/server").map(String::as_str),
        Some("mc")
    );
    ssm::delete_value(&env.pool, REGION, &name).await.unwrap();
    ssm::delete_value(&env.pool, REGION, &name).await.unwrap();
    assert!(ssm::get_values(&env.pool, REGION, &[name])
        .await
        .unwrap()
        .is_empty());
}
