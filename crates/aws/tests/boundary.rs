//! Permissions boundaries on roles against the emulator. The boundary policy is created from
//! the shipped `docs/iam/boundary.json` (so IAM's own policy checks read it), a role is created
//! carrying it, a second observation plans nothing, and a boundary removed or replaced behind
//! the reconciler's back shows as a change of `/permissionsBoundary` and is put back. Both
//! through the authorization details and, where they are denied, through `GetRole` per role.
//! A desired `null` removes a boundary.
//!
//! Emulator gap: the emulator evaluates no IAM policy, so what the boundary and the deployer
//! policy allow is held to AWS's rules by `crates/render/tests/aws_rules/shipped.rs`, not here.

mod common;

use aws_sdk_iam::Client as Iam;
use indexmap::IndexMap;
use reconciler_aws::{iam, CallCounter};
use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_engine::provider::Provider;
use reconciler_engine::{Options, Reconciler};
use reconciler_kinds::iam::Role;
use reconciler_render::naming::{ServerNames, GLOBAL_REGION};
use reconciler_render::policies;
use reconciler_testkit::proxy::Proxy;
use reconciler_testkit::{fresh_account_id, project_root, Emulator};
use serde_json::{json, Value};

use common::calls;

/// The name docs/operator.md gives the boundary policy.
const BOUNDARY: &str = "reconciler-boundary";

/// One test's account, its reconciler (roles and profiles only) and a direct IAM client for
/// out-of-band changes and checks.
struct Harness {
    account: String,
    rec: Reconciler,
    counter: CallCounter,
    iam: Iam,
    _proxy: Proxy,
}

impl Harness {
    /// With the first `denied` calls of `GetAccountAuthorizationDetails` refused.
    async fn new(denied: u64) -> Self {
        let account = fresh_account_id();
        let (pool, counter, proxy) = common::pool_denying(
            &account,
            GLOBAL_REGION,
            "GetAccountAuthorizationDetails",
            denied,
        );
        let mut provider = Provider::new();
        provider.on_observation(reconciler_aws::observation_hook(&pool));
        for client in iam::clients(&pool) {
            provider.register(client);
        }
        let iam = Iam::new(&Emulator::shared().sdk_config(GLOBAL_REGION, &account));
        let shipped = std::fs::read_to_string(project_root().join("docs/iam/boundary.json"))
            .expect("docs/iam/boundary.json");
        for (name, document) in [(BOUNDARY, shipped.as_str()), ("other", OTHER_POLICY)] {
            iam.create_policy()
                .policy_name(name)
                .policy_document(document)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreatePolicy {name}: {e:?}"));
        }
        Harness {
            account,
            rec: Reconciler::new(provider, Options::default()),
            counter,
            iam,
            _proxy: proxy,
        }
    }

    fn policy_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:policy/{name}", self.account)
    }

    /// The boundary AWS reports for the role.
    async fn boundary_of(&self, role: &str) -> Option<String> {
        let out = self.iam.get_role().role_name(role).send().await.unwrap();
        out.role()
            .and_then(|r| r.permissions_boundary())
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string)
    }

    /// Plans `graph` and checks the plan changes exactly the role's boundary, then applies it.
    async fn repair(&self, graph: &DesiredGraph) {
        let plan = common::plan(&self.rec, graph).await;
        assert_eq!(
            common::changed_paths(&plan),
            [(
                "iam.role/instance".to_string(),
                vec!["/permissionsBoundary".to_string()]
            )],
            "{plan}"
        );
        common::apply_plan(&self.rec, &plan).await;
    }
}

/// A second managed policy, to replace the boundary with out of band.
const OTHER_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"arn:aws:logs:*:*:log-group:/other/*"}]}"#;

fn role_name() -> String {
    ServerNames::new("main", "bounded").name("instance")
}

/// What the desired role says of its boundary.
#[derive(Clone, Copy)]
enum Boundary<'a> {
    /// Nothing: the boundary is not managed.
    Unmanaged,
    /// `null`: the role must have none.
    Null,
    /// This policy's ARN.
    Arn(&'a str),
}

/// The one role, with `boundary`.
fn graph(boundary: Boundary<'_>) -> DesiredGraph {
    let role = Role {
        description: "Host of a bounded test server".into(),
        assume_role_policy_document: policies::assume_role("ec2.amazonaws.com"),
        managed_policy_arns: Vec::new(),
        inline_policies: IndexMap::from([(
            "logs".to_string(),
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": "logs:PutLogEvents",
                    "Resource": "arn:aws:logs:*:*:log-group:/reconciler/bounded/*"
                }]
            }),
        )]),
        permissions_boundary: match boundary {
            Boundary::Arn(arn) => Some(arn.to_string()),
            Boundary::Unmanaged | Boundary::Null => None,
        },
    };
    let mut resource: DesiredResource =
        reconciler_kinds::desired("instance", GLOBAL_REGION, role_name(), &role);
    if let Boundary::Null = boundary {
        resource.properties["permissionsBoundary"] = Value::Null;
    }
    resource.tags = ServerNames::new("main", "bounded").tags("compute");
    DesiredGraph::new([resource]).unwrap()
}

/// Creates the role with the boundary, repairs it after it is removed and after it is
/// replaced, and removes it for a desired `null`; returns how many `GetRole` calls a no-op
/// observation made.
async fn boundary_round_trip(h: &Harness) -> u64 {
    let wanted = h.policy_arn(BOUNDARY);
    let bounded = graph(Boundary::Arn(&wanted));
    common::apply(&h.rec, &bounded).await;
    assert_eq!(h.boundary_of(&role_name()).await, Some(wanted.clone()));
    let noop = common::assert_converged(&h.rec, &h.counter, &bounded).await;

    h.iam
        .delete_role_permissions_boundary()
        .role_name(role_name())
        .send()
        .await
        .unwrap();
    h.repair(&bounded).await;
    assert_eq!(h.boundary_of(&role_name()).await, Some(wanted.clone()));

    h.iam
        .put_role_permissions_boundary()
        .role_name(role_name())
        .permissions_boundary(h.policy_arn("other"))
        .send()
        .await
        .unwrap();
    h.repair(&bounded).await;
    assert_eq!(h.boundary_of(&role_name()).await, Some(wanted));
    common::assert_converged(&h.rec, &h.counter, &bounded).await;

    let unbounded = graph(Boundary::Null);
    h.repair(&unbounded).await;
    assert_eq!(h.boundary_of(&role_name()).await, None);
    common::assert_converged(&h.rec, &h.counter, &unbounded).await;
    calls(&noop, "GetRole")
}

#[tokio::test]
async fn a_boundary_is_created_with_the_role_and_put_back_after_drift() {
    let h = Harness::new(0).await;
    let get_role = boundary_round_trip(&h).await;
    assert_eq!(get_role, 0, "the authorization details hold the boundary");
}

#[tokio::test]
async fn without_the_authorization_details_the_boundary_is_read_per_role() {
    let h = Harness::new(u64::MAX).await;
    let get_role = boundary_round_trip(&h).await;
    assert_eq!(get_role, 1, "one GetRole for the one role");
}

#[tokio::test]
async fn a_role_without_the_property_keeps_whatever_boundary_it_has() {
    let h = Harness::new(0).await;
    let bounded = graph(Boundary::Arn(&h.policy_arn(BOUNDARY)));
    common::apply(&h.rec, &bounded).await;
    // The same role, its boundary left unmanaged: nothing to change, nothing removed.
    let unmanaged = graph(Boundary::Unmanaged);
    common::assert_converged(&h.rec, &h.counter, &unmanaged).await;
    assert_eq!(
        h.boundary_of(&role_name()).await,
        Some(h.policy_arn(BOUNDARY))
    );
}
