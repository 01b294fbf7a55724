//! The operator's own environment stays its own: through the reconcile path with the real AWS
//! side (the command's loader), a value from the environment never reaches an object's
//! status or events, and a reference to a variable that is not on the allow-list is refused by
//! name. Both fail before any AWS call, so no emulator is needed.

mod fake;

use std::sync::Arc;

use aws_types::SdkConfig;
use fake::{condition, example_base, example_server, FakeKube};
use reconciler_operator::reconcile::reconcile_server;
use reconciler_operator::{Config, Context};
use reconciler_ops::operator::OperatorAws;

const SECRET: &str = "Op3rator-Secret-Value";
const OTHER_SECRET: &str = "N0t-Allowed-Secret";

/// The example specs' variables, and the planted ones.
const ALLOWED: [&str; 6] = [
    "AWS_REGION",
    "DOMAIN_NAME",
    "HOSTED_ZONE_ID",
    "ADMIN_EMAILS",
    "MINECRAFT_EMAILS",
    "PLANTED",
];

fn context() -> Arc<Context<FakeKube, OperatorAws>> {
    let env = Arc::new(|name: &str| match name {
        "PLANTED" => Some(SECRET.to_string()),
        "OPERATOR_CREDENTIAL" => Some(OTHER_SECRET.to_string()),
        _ => None,
    });
    let aws = OperatorAws::with_config(SdkConfig::builder().build(), env).allowing_env(ALLOWED);
    Arc::new(Context::new(FakeKube::default(), aws, Config::default()))
}

/// Everything the reconcile wrote about the object: its status and its events.
fn written(ctx: &Context<FakeKube, OperatorAws>) -> String {
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    format!(
        "{}\n{:?}",
        serde_json::to_string(&status).unwrap(),
        ctx.kube.events()
    )
}

#[tokio::test]
async fn values_from_the_environment_never_reach_status_or_events() {
    let ctx = context();
    let mut base = example_base();
    base.spec.region = "${PLANTED}".into();
    base.spec.domain.hosted_zone_id = "Z${PLANTED}".into();
    base.spec.alerts.email = vec!["${PLANTED}".into()];
    ctx.kube.put_base(base);
    ctx.kube.put_server(example_server("minecraft"));

    let obj = ctx.kube.server("minecraft").unwrap();
    let result = reconcile_server(Arc::new(obj), ctx.clone()).await;
    assert!(result.is_err());
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(condition(&status, "Ready").1, "InvalidSpec");
    let text = written(&ctx);
    assert!(!text.contains(SECRET), "{text}");
    for want in [
        "`${PLANTED}` is not an AWS region",
        "`Z${PLANTED}` is not a hosted zone id",
        "`${PLANTED}` is not an e-mail address",
    ] {
        assert!(text.contains(want), "no `{want}` in {text}");
    }
}

#[tokio::test]
async fn a_variable_off_the_allow_list_is_refused_by_name() {
    let ctx = context();
    let mut base = example_base();
    base.spec.domain.hosted_zone_id = "${OPERATOR_CREDENTIAL}".into();
    ctx.kube.put_base(base);
    ctx.kube.put_server(example_server("minecraft"));

    let obj = ctx.kube.server("minecraft").unwrap();
    let result = reconcile_server(Arc::new(obj), ctx.clone()).await;
    assert!(result.is_err());
    let status = ctx.kube.server("minecraft").unwrap().status.unwrap();
    assert_eq!(condition(&status, "Ready").1, "InvalidSpec");
    let text = written(&ctx);
    assert!(!text.contains(OTHER_SECRET), "{text}");
    assert!(
        text.contains("environment variable `OPERATOR_CREDENTIAL` is not on the allow-list"),
        "{text}"
    );
    assert!(text.contains("--env-allow OPERATOR_CREDENTIAL"), "{text}");
}
