//! Lambda functions and permissions against the emulator.
//!
//! Every test works in its own emulator account, with its own artifact directory (a small fake
//! ELF binary stands in for `reconciler-lambda`; the emulator never runs it), and checks the
//! life cycle: apply from nothing creates; a second observe + plan is empty; a second apply
//! makes no mutating call (in particular no `UpdateFunctionCode`); a new binary shows as a
//! change of `/artifact` and is uploaded; configuration and permission changes made behind the
//! reconciler's back show in the plan and apply repairs them; destroy deletes.
//!
//! The execution role and the EventBridge rule the permission names are made with the SDK
//! directly, and their ARNs written into the desired properties as literals.
//!
//! Emulator gaps met here (the provider keeps the AWS behaviour):
//! - functions are `Active` at once and updates finish at once: the waits for `Pending` and
//!   `LastUpdateStatus: InProgress` are tested over scripted states in `lambda/mod.rs`'s
//!   unit tests;
//! - `LoggingConfig` is accepted on create but neither stored nor returned; the client reads a
//!   missing `LoggingConfig` as Lambda's default group `/aws/lambda/<name>`, which is what
//!   render asks for, so the log group diff is not exercised here;
//! - `UpdateFunctionCode` ignores `Architectures`, so an architecture change is not tested here;
//! - a duplicate `AddPermission` statement id is accepted (AWS: `ResourceConflictException`);
//!   the client never adds a statement that observe found.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::lambda::package::{code_sha256, zip_bootstrap};
use reconciler_aws::lambda::{check_artifacts, ArtifactLocator, FunctionClient, PermissionClient};
use reconciler_aws::managed::Managed;
use reconciler_aws::{CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::{DesiredGraph, DesiredResource};
use reconciler_engine::provider::{ErrorClass, Provider};
use reconciler_engine::{Action, Backoff, NoEvents, Options, Plan, Reconciler, RetryPolicy};
use reconciler_render::naming::{ServerNames, GLOBAL_REGION};
use reconciler_render::{kinds, policies};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::json;

use common::calls;

const REGION: &str = "eu-west-1";
const ARTIFACT: &str = "reconciler-lambda";

/// One test's account, artifact directory, pool (with a call counter) and reconciler.
struct Harness {
    account: String,
    artifacts: PathBuf,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Harness {
    fn new() -> Self {
        let account = fresh_account_id();
        let artifacts = std::env::temp_dir().join(format!("reconciler-functions-{account}"));
        std::fs::create_dir_all(&artifacts).unwrap();
        let config = Emulator::shared().sdk_config(REGION, &account);
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(config).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        let quick = Backoff::new(4, Duration::from_millis(20), Duration::from_millis(100));
        let retry = RetryPolicy {
            throttled: quick,
            transient: Backoff::new(2, Duration::from_millis(20), Duration::from_millis(50)),
            eventual_consistency: quick,
            conflict: quick,
            seed: Some(7),
        };
        // The artifact comes from this test's directory, not from the environment or the
        // directory of the test binary, so parallel tests do not see each other's binaries.
        let provider = Provider::new()
            .with(Arc::new(Managed::new(FunctionClient::with_artifacts(
                pool.clone(),
                ArtifactLocator::dir(&artifacts),
            ))))
            .with(Arc::new(Managed::new(PermissionClient::new(pool.clone()))));
        let mut provider = provider;
        provider.on_observation(reconciler_aws::observation_hook(&pool));
        let reconciler = Reconciler::new(provider, Options::default().with_retry(retry));
        Harness {
            account,
            artifacts,
            counter,
            reconciler,
        }
    }

    /// A configuration for direct SDK calls (out-of-band changes, checks), not counted.
    fn sdk(&self, region: &str) -> SdkConfig {
        Emulator::shared().sdk_config(region, &self.account)
    }

    fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk(REGION))
    }

    /// Writes the artifact binary and returns its bytes.
    fn write_artifact(&self, machine: u16, padding: usize) -> Vec<u8> {
        let binary = fake_elf(machine, padding);
        std::fs::write(self.artifacts.join(ARTIFACT), &binary).unwrap();
        binary
    }

    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.reconciler, graph).await
    }

    async fn apply_plan(&self, plan: &Plan) {
        common::apply_plan(&self.reconciler, plan).await
    }

    async fn apply(&self, graph: &DesiredGraph) -> Plan {
        common::apply(&self.reconciler, graph).await
    }

    async fn assert_converged(&self, graph: &DesiredGraph) -> CallCounts {
        common::assert_converged(&self.reconciler, &self.counter, graph).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.artifacts).ok();
    }
}

/// A stand-in for the Lambda binary: a 64-byte ELF header (64-bit, little-endian,
/// executable, for `machine`), then `padding` bytes.
fn fake_elf(machine: u16, padding: usize) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little-endian
    b[6] = 1; // ELF version
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b.extend((0..padding).map(|i| (i % 251) as u8));
    b
}

/// The changed paths of one resource in a plan.
fn changed_paths(plan: &Plan, id: &str) -> Vec<String> {
    plan.get(&id.into())
        .map(|r| r.changes.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default()
}

/// A role Lambda may assume, made directly (the IAM kind is tested elsewhere).
async fn lambda_role(h: &Harness, name: &str) -> String {
    let iam = aws_sdk_iam::Client::new(&h.sdk(GLOBAL_REGION));
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(policies::assume_role("lambda.amazonaws.com").to_string())
        .send()
        .await
        .expect("create role")
        .role()
        .map(|r| r.arn().to_string())
        .expect("role arn")
}

/// An EventBridge rule whose ARN the permission names.
async fn event_rule(h: &Harness, name: &str) -> String {
    let events = aws_sdk_eventbridge::Client::new(&h.sdk(REGION));
    events
        .put_rule()
        .name(name)
        .event_pattern(json!({ "source": ["aws.ecs"] }).to_string())
        .send()
        .await
        .expect("put rule")
        .rule_arn()
        .expect("rule arn")
        .to_string()
}

/// A function and its permission, shaped as render makes them.
fn graph(names: &ServerNames, role_arn: &str, rule_arn: &str) -> DesiredGraph {
    let fn_name = names.name("break-crash-loop");
    let mut function = DesiredResource::new(kinds::FUNCTION, "crash", REGION, &fn_name)
        .with_properties(json!({
            "description": "Stops the test server when its container crashes",
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "architecture": "x86_64",
            "memorySize": 128,
            "timeout": 30,
            "roleArn": role_arn,
            "artifact": ARTIFACT,
            "environment": {
                "RECONCILER_HANDLER": "break-crash-loop",
                "ASG_NAME": names.name(""),
                "ASG_REGION": REGION
            },
            "logGroup": format!("/aws/lambda/{fn_name}")
        }));
    function.tags.extend(names.tags("sleep"));
    let permission = DesiredResource::new(
        kinds::LAMBDA_PERMISSION,
        "crash-invoke",
        REGION,
        names.name("crash-loop-invoke"),
    )
    .with_properties(json!({
        "functionName": fn_name,
        "action": "lambda:InvokeFunction",
        "principal": "events.amazonaws.com",
        "sourceArn": rule_arn
    }))
    .with_dependency("lambda.function/crash");
    DesiredGraph::new([function, permission]).unwrap()
}

#[tokio::test]
async fn function_and_permission_life_cycle() {
    let h = Harness::new();
    let names = ServerNames::new("main", "fn-life");
    let fn_name = names.name("break-crash-loop");
    let sid = names.name("crash-loop-invoke");
    let binary = h.write_artifact(62, 4000);
    let role_arn = lambda_role(&h, &fn_name).await;
    let rule_arn = event_rule(&h, &names.name("crash-loop")).await;
    let graph = graph(&names, &role_arn, &rule_arn);
    let lambda = h.lambda();

    // Apply from nothing.
    let plan = h.apply(&graph).await;
    assert_eq!(plan.summary().add, 2, "{plan}");
    let first = h.counter.snapshot();
    assert_eq!(
        calls(&first, "CreateFunction"),
        1,
        "{:?}",
        first.by_operation
    );
    assert_eq!(calls(&first, "AddPermission"), 1);

    // What Lambda holds is the deterministic package of the binary.
    let config = lambda
        .get_function_configuration()
        .function_name(&fn_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        config.code_sha256(),
        Some(code_sha256(&zip_bootstrap(&binary).unwrap()).as_str())
    );
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(config.role(), Some(role_arn.as_str()));
    assert_eq!(
        config.architectures(),
        &[aws_sdk_lambda::types::Architecture::X8664]
    );
    let policy = lambda
        .get_policy()
        .function_name(&fn_name)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Sid"], json!(sid));
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(
        statement["Condition"]["ArnLike"]["AWS:SourceArn"],
        json!(rule_arn)
    );

    // Converged: one listing, tags from the region's tag index (no per-function tag read), one
    // policy read; nothing uploaded again.
    let again = h.assert_converged(&graph).await;
    assert_eq!(calls(&again, "ListFunctions"), 1);
    assert_eq!(calls(&again, "GetResources"), 1);
    assert_eq!(calls(&again, "ListTags"), 0);
    assert_eq!(calls(&again, "GetPolicy"), 1);
    assert_eq!(calls(&again, "UpdateFunctionCode"), 0);

    // A new build of the binary: the plan shows the code change, apply uploads it.
    let binary = h.write_artifact(62, 5000);
    let plan = h.plan(&graph).await;
    assert_eq!(
        plan.action(&"lambda.function/crash".into()),
        Some(Action::Update),
        "{plan}"
    );
    assert_eq!(changed_paths(&plan, "lambda.function/crash"), ["/artifact"]);
    h.counter.reset();
    h.apply_plan(&plan).await;
    let update = h.counter.snapshot();
    assert_eq!(calls(&update, "UpdateFunctionCode"), 1);
    assert_eq!(calls(&update, "UpdateFunctionConfiguration"), 0);
    let config = lambda
        .get_function_configuration()
        .function_name(&fn_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        config.code_sha256(),
        Some(code_sha256(&zip_bootstrap(&binary).unwrap()).as_str())
    );
    h.assert_converged(&graph).await;

    // Configuration changed behind the reconciler's back: the plan shows it, apply repairs it.
    lambda
        .update_function_configuration()
        .function_name(&fn_name)
        .timeout(99)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("RECONCILER_HANDLER", "start-system")
                .variables("ASG_NAME", names.name(""))
                .variables("ASG_REGION", REGION)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    let mut paths = changed_paths(&plan, "lambda.function/crash");
    paths.sort();
    assert_eq!(
        paths,
        ["/environment/RECONCILER_HANDLER", "/timeout"],
        "{plan}"
    );
    h.counter.reset();
    h.apply_plan(&plan).await;
    let update = h.counter.snapshot();
    assert_eq!(calls(&update, "UpdateFunctionConfiguration"), 1);
    assert_eq!(calls(&update, "UpdateFunctionCode"), 0);
    let config = lambda
        .get_function_configuration()
        .function_name(&fn_name)
        .send()
        .await
        .unwrap();
    assert_eq!(config.timeout(), Some(30));
    assert_eq!(
        config
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("RECONCILER_HANDLER"))
            .map(String::as_str),
        Some("break-crash-loop")
    );
    h.assert_converged(&graph).await;

    // A managed tag changed behind the reconciler's back.
    let arn = config.function_arn().unwrap().to_string();
    lambda
        .tag_resource()
        .resource(&arn)
        .tags("reconciler.dev/component", "something-else")
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_eq!(
        changed_paths(&plan, "lambda.function/crash"),
        ["/tags/reconciler.dev~1component"],
        "{plan}"
    );
    h.apply_plan(&plan).await;
    h.assert_converged(&graph).await;

    // The permission removed behind the reconciler's back: planned as a create, re-added.
    lambda
        .remove_permission()
        .function_name(&fn_name)
        .statement_id(&sid)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_eq!(
        plan.action(&"lambda.permission/crash-invoke".into()),
        Some(Action::Create),
        "{plan}"
    );
    assert_eq!(
        plan.action(&"lambda.function/crash".into()),
        Some(Action::NoOp)
    );
    h.counter.reset();
    h.apply_plan(&plan).await;
    assert_eq!(calls(&h.counter.snapshot(), "AddPermission"), 1);
    h.assert_converged(&graph).await;

    // Destroy: the permission, then the function.
    let observed = h.reconciler.observe(&graph).await.unwrap();
    let plan = h.reconciler.plan_destroy(&graph, &observed).unwrap();
    assert_eq!(plan.summary().destroy, 2, "{plan}");
    h.apply_plan(&plan).await;
    let observed = h.reconciler.observe(&graph).await.unwrap();
    assert!(observed.is_empty(), "{observed:?}");
    let gone = lambda
        .get_function()
        .function_name(&fn_name)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        gone.as_service_error()
            .map(|e| e.is_resource_not_found_exception()),
        Some(true)
    );
}

#[tokio::test]
async fn a_changed_source_arn_replaces_the_permission() {
    let h = Harness::new();
    let names = ServerNames::new("main", "fn-perm");
    h.write_artifact(62, 100);
    let role_arn = lambda_role(&h, &names.name("break-crash-loop")).await;
    let first_rule = event_rule(&h, &names.name("first")).await;
    let second_rule = event_rule(&h, &names.name("second")).await;
    h.apply(&graph(&names, &role_arn, &first_rule)).await;

    let moved = graph(&names, &role_arn, &second_rule);
    let plan = h.plan(&moved).await;
    assert_eq!(
        plan.action(&"lambda.permission/crash-invoke".into()),
        Some(Action::Replace),
        "{plan}"
    );
    h.counter.reset();
    h.apply_plan(&plan).await;
    let replaced = h.counter.snapshot();
    assert_eq!(calls(&replaced, "RemovePermission"), 1);
    assert_eq!(calls(&replaced, "AddPermission"), 1);
    h.assert_converged(&moved).await;

    let observed = h.reconciler.observe(&moved).await.unwrap();
    let plan = h.reconciler.plan_destroy(&moved, &observed).unwrap();
    h.apply_plan(&plan).await;
}

#[tokio::test]
async fn a_missing_or_foreign_binary_fails_the_function_with_the_way_to_fix_it() {
    let h = Harness::new();
    let names = ServerNames::new("main", "fn-missing");
    let graph = graph(
        &names,
        &format!("arn:aws:iam::{}:role/nothing", h.account),
        &format!("arn:aws:events:{REGION}:{}:rule/nothing", h.account),
    );

    // The up-front check of plan and apply names the way to build the binary.
    let err = check_artifacts(&ArtifactLocator::dir(&h.artifacts), graph.iter())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Terminal);
    assert!(
        err.message
            .contains("cargo build --release -p reconciler-lambdas"),
        "{err}"
    );

    // Observe still works without it (a destroy needs no binary); creating the function fails
    // with the same hint, and its permission is not attempted.
    h.counter.reset();
    let plan = h.plan(&graph).await;
    let report = h.reconciler.apply(&plan, &NoEvents).await;
    let failures: Vec<String> = report
        .failures()
        .map(|(id, e)| format!("{id}: {e}"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("lambda.function/"), "{failures:?}");
    assert!(
        failures[0].contains("cargo build --release -p reconciler-lambdas"),
        "{failures:?}"
    );
    assert_eq!(calls(&h.counter.snapshot(), "CreateFunction"), 0);

    // An arm64 binary for an x86_64 function: both machines are named.
    h.write_artifact(183, 100);
    let report = h.reconciler.apply(&plan, &NoEvents).await;
    let text: String = report.failures().map(|(_, e)| e.to_string()).collect();
    assert!(text.contains("arm64 (ELF machine 183)"), "{text}");
    assert!(text.contains("x86_64 (ELF machine 62)"), "{text}");
}
