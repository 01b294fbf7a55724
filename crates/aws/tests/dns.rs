//! The DNS side of the wake path against the emulator: the server's hosted zone, its
//! delegation in the Base's root zone, the runtime-owned A record, the query log group with
//! its logging config and the account-wide log resource policy, and the subscription filter
//! that sends matching queries to the start Lambda.
//!
//! Every test works in its own emulator account. The root zone (imported by the Base, so its
//! id is a literal) and the start Lambda (another module's kind) are made with the SDK.
//!
//! Emulator gaps met here (the provider keeps the AWS behaviour):
//! - a reused `CallerReference` creates a second zone instead of failing with
//!   `HostedZoneAlreadyExists`, so the "retry adopts the zone" path cannot run here; the
//!   reference bookkeeping is unit-tested in `route53/hosted_zone.rs`;
//! - a `CREATE` of an existing record stores a second record set instead of failing: the client
//!   reads before its one `CREATE` (of a runtime-owned record) and uses `UPSERT` otherwise;
//! - a `DELETE` whose values do not match answers `InvalidInput` (AWS: `InvalidChangeBatch`);
//!   the client always deletes with values read just before;
//! - `ListQueryLoggingConfigs` with `HostedZoneId` always fails with `NoSuchHostedZone`: the
//!   client lists without the filter (one call for the account, which it would do anyway);
//! - `CreateQueryLoggingConfig` accepts only the `...:log-group:<name>:*` form of the ARN,
//!   which the client sends (AWS accepts it too);
//! - `HostedZoneNotEmpty` is answered while non-apex records exist, as on AWS, but everything
//!   is in sync at once, so the engine's retry on it is not exercised (the engine orders the
//!   zone's delete after its records anyway, which the destroy below checks);
//! - `PutSubscriptionFilter` on a group that already has two filters fails even for an update
//!   of one of them (AWS allows the update); the tests keep one filter per group;
//! - the destination Lambda is only looked up, never invoked, and the Lambda permission is not
//!   checked.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::SdkConfig;
use reconciler_aws::{CallCounter, CallCounts, ClientPool};
use reconciler_engine::model::{reference, DesiredGraph, DesiredResource};
use reconciler_engine::{
    Action, ApplyEvent, Backoff, ErrorClass, EventKind, NoEvents, Operation, Options, Plan,
    Reconciler, RetryPolicy,
};
use reconciler_render::naming::{ServerNames, GLOBAL_REGION};
use reconciler_render::{kinds, wake, Context};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

use common::calls;

const ROOT: &str = "games.example.com";
const SERVER: &str = "mc";
const DNS: &str = "mc.games.example.com";

/// One test's account, pool (with a call counter) and reconciler.
struct Harness {
    account: String,
    pool: Arc<ClientPool>,
    counter: CallCounter,
    reconciler: Reconciler,
}

impl Harness {
    fn new() -> Self {
        let account = fresh_account_id();
        let config = Emulator::shared().sdk_config(GLOBAL_REGION, &account);
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
        let reconciler = Reconciler::new(
            reconciler_aws::provider(&pool),
            Options::default().with_retry(retry),
        );
        Harness {
            account,
            pool,
            counter,
            reconciler,
        }
    }

    /// A configuration for direct SDK calls (out-of-band changes, checks), not counted.
    fn sdk(&self) -> SdkConfig {
        Emulator::shared().sdk_config(GLOBAL_REGION, &self.account)
    }

    fn route53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk())
    }

    fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk())
    }

    async fn plan(&self, graph: &DesiredGraph) -> Plan {
        common::plan(&self.reconciler, graph).await
    }

    async fn apply(&self, graph: &DesiredGraph) -> Plan {
        common::apply(&self.reconciler, graph).await
    }

    async fn assert_converged(&self, graph: &DesiredGraph) -> CallCounts {
        common::assert_converged(&self.reconciler, &self.counter, graph).await
    }

    /// Plans and applies the destroy of the whole graph; returns the events in order.
    async fn destroy(&self, graph: &DesiredGraph) -> Vec<ApplyEvent> {
        let plan = common::plan_destroy(&self.reconciler, graph).await;
        let events: Arc<Mutex<Vec<ApplyEvent>>> = Arc::default();
        let sink = {
            let events = events.clone();
            move |e: ApplyEvent| events.lock().unwrap().push(e)
        };
        let report = self.reconciler.apply(&plan, &sink).await;
        let failures: Vec<String> = report
            .failures()
            .map(|(id, e)| format!("{id}: {e}"))
            .collect();
        assert!(
            failures.is_empty(),
            "destroy failed:\n{}",
            failures.join("\n")
        );
        let events = events.lock().unwrap().clone();
        events
    }

    /// Creates a public zone directly (as the Base's imported root zone is); returns its id.
    async fn sdk_zone(&self, name: &str) -> String {
        let out = self
            .route53()
            .create_hosted_zone()
            .name(name)
            .caller_reference(format!("test-{}-{name}", self.account))
            .send()
            .await
            .expect("create zone");
        out.hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string()
    }

    /// Creates the start Lambda (with its role) and lets CloudWatch Logs invoke it; returns its
    /// ARN.
    async fn start_lambda(&self, log_group_arn: &str) -> String {
        let iam = aws_sdk_iam::Client::new(&self.sdk());
        let role = iam
            .create_role()
            .role_name("rc-mc-start-system")
            .assume_role_policy_document(
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "lambda.amazonaws.com" },
                        "Action": "sts:AssumeRole"
                    }]
                })
                .to_string(),
            )
            .send()
            .await
            .expect("create role");
        let role_arn = role.role().unwrap().arn().to_string();
        let lambda = aws_sdk_lambda::Client::new(&self.sdk());
        let function = lambda
            .create_function()
            .function_name("rc-mc-start-system")
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role_arn)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_smithy_types::Blob::new(tiny_zip()))
                    .build(),
            )
            .send()
            .await
            .expect("create function");
        lambda
            .add_permission()
            .function_name("rc-mc-start-system")
            .statement_id("rc-mc-query-log-invoke")
            .action("lambda:InvokeFunction")
            .principal("logs.amazonaws.com")
            .source_arn(log_group_arn)
            .send()
            .await
            .expect("add permission");
        function.function_arn().unwrap().to_string()
    }

    async fn zone_ids_named(&self, name: &str) -> Vec<String> {
        let zones = self
            .route53()
            .list_hosted_zones()
            .send()
            .await
            .unwrap()
            .hosted_zones()
            .to_vec();
        zones
            .iter()
            .filter(|z| z.name() == format!("{name}."))
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
            .collect()
    }

    /// The records of `name`/`type` in a zone: (TTL, values) of each.
    async fn records(&self, zone: &str, name: &str, t: &str) -> Vec<(i64, Vec<String>)> {
        let out = self
            .route53()
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        out.resource_record_sets()
            .iter()
            .filter(|s| {
                s.name().trim_end_matches('.') == name.trim_end_matches('.')
                    && s.r#type().as_str() == t
            })
            .map(|s| {
                (
                    s.ttl().unwrap_or_default(),
                    s.resource_records()
                        .iter()
                        .map(|r| r.value().to_string())
                        .collect(),
                )
            })
            .collect()
    }

    /// Writes a record behind the reconciler's back.
    async fn upsert(&self, zone: &str, name: &str, t: &str, ttl: i64, values: &[&str]) {
        let set = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::from(t))
            .ttl(ttl)
            .set_resource_records(Some(
                values
                    .iter()
                    .map(|v| ResourceRecord::builder().value(*v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap();
        self.route53()
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Upsert)
                            .resource_record_set(set)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("change record");
    }
}

/// An empty but well-formed zip archive (the end-of-central-directory record alone): the
/// emulator only stores the code.
fn tiny_zip() -> Vec<u8> {
    let mut zip = Vec::new();
    zip.write_all(b"PK\x05\x06").unwrap();
    zip.extend_from_slice(&[0u8; 18]);
    zip
}

fn assert_update(plan: &Plan, id: &str, path: &str) {
    assert_eq!(
        plan.action(&id.into()),
        Some(Action::Update),
        "expected an update of {id}:\n{plan}"
    );
    let paths: Vec<String> = plan
        .get(&id.into())
        .map(|r| r.changes.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default();
    assert!(
        !paths.is_empty() && paths.iter().all(|p| p.starts_with(path)),
        "changes of {id} should all lie under {path}: {paths:?}"
    );
    let others: Vec<_> = plan
        .resources()
        .iter()
        .filter(|r| r.id.as_str() != id && r.action.is_change())
        .map(|r| r.id.to_string())
        .collect();
    assert!(
        others.is_empty(),
        "only {id} should change, also: {others:?}"
    );
}

fn query_log_name() -> String {
    format!("{}{SERVER}", wake::QUERY_LOG_PREFIX)
}

fn query_log_arn(account: &str) -> String {
    format!(
        "arn:aws:logs:{GLOBAL_REGION}:{account}:log-group:{}",
        query_log_name()
    )
}

/// The wake path's DNS resources, shaped as render makes them, with the root zone's id and the
/// start Lambda's ARN as literals.
fn graph(account: &str, root_zone: &str, start_arn: &str) -> DesiredGraph {
    let names = ServerNames::new("main", SERVER);
    let tagged = |mut r: DesiredResource| {
        r.tags.extend(names.tags("wake"));
        r
    };
    let zone = DesiredResource::new(kinds::HOSTED_ZONE, SERVER, GLOBAL_REGION, format!("{DNS}."))
        .with_properties(
            json!({ "comment": format!("Wakes server {SERVER} when {DNS} is looked up") }),
        );
    let delegation = DesiredResource::new(
        kinds::RECORD_SET,
        &format!("{SERVER}-delegation"),
        GLOBAL_REGION,
        format!("{DNS}. NS"),
    )
    .with_properties(json!({
        "hostedZoneId": root_zone,
        "name": format!("{DNS}."),
        "type": "NS",
        "ttl": wake::DELEGATION_TTL,
        "values": reference("route53.hosted-zone/mc", "nameServers")
    }));
    let address = DesiredResource::new(
        kinds::RECORD_SET,
        &format!("{SERVER}-address"),
        GLOBAL_REGION,
        format!("{DNS}. A"),
    )
    .with_properties(json!({
        "hostedZoneId": reference("route53.hosted-zone/mc", "id"),
        "name": format!("{DNS}."),
        "type": "A",
        "ttl": wake::RECORD_TTL,
        "initialValues": [wake::UNAVAILABLE_IP]
    }));
    let log_group = DesiredResource::new(
        kinds::LOG_GROUP,
        &format!("{SERVER}-queries"),
        GLOBAL_REGION,
        query_log_name(),
    )
    .with_properties(json!({ "retentionInDays": wake::QUERY_LOG_RETENTION_DAYS }));
    let policy = wake::route53_log_policy(&Context::new(account));
    let logging = DesiredResource::new(
        kinds::QUERY_LOGGING_CONFIG,
        SERVER,
        GLOBAL_REGION,
        format!("{DNS}."),
    )
    .with_properties(json!({
        "hostedZoneId": reference("route53.hosted-zone/mc", "id"),
        "cloudWatchLogsLogGroupArn": reference("logs.log-group/mc-queries", "arn")
    }))
    .with_dependency(policy.id.as_str());
    let filter = DesiredResource::new(
        kinds::SUBSCRIPTION_FILTER,
        &format!("{SERVER}-queries"),
        GLOBAL_REGION,
        names.name("a-queries"),
    )
    .with_properties(json!({
        "logGroupName": query_log_name(),
        "filterPattern": format!("\" {DNS} A \""),
        "destinationArn": start_arn
    }))
    .with_dependency("logs.log-group/mc-queries");
    DesiredGraph::new([
        tagged(zone),
        delegation,
        address,
        tagged(log_group),
        policy,
        logging,
        filter,
    ])
    .expect("a valid graph")
}

const ZONE: &str = "route53.hosted-zone/mc";
const DELEGATION: &str = "route53.record-set/mc-delegation";
const ADDRESS: &str = "route53.record-set/mc-address";
const LOGGING: &str = "route53.query-logging-config/mc";
const POLICY: &str = "logs.resource-policy/route53-query-logging";
const FILTER: &str = "logs.subscription-filter/mc-queries";

/// Position of the first event of `id` matching `what`.
fn position(events: &[ApplyEvent], id: &str, what: impl Fn(&EventKind) -> bool) -> usize {
    events
        .iter()
        .position(|e| e.id.as_str() == id && what(&e.kind))
        .unwrap_or_else(|| panic!("no such event for {id}: {events:#?}"))
}

#[tokio::test]
async fn wake_dns_path_applies_converges_repairs_and_destroys() {
    let h = Harness::new();
    let root = h.sdk_zone(ROOT).await;
    let start = h
        .start_lambda(&format!("{}:*", query_log_arn(&h.account)))
        .await;
    let graph = graph(&h.account, &root, &start);

    // Apply from nothing.
    let plan = h.apply(&graph).await;
    assert_eq!(plan.summary().add, graph.len(), "{plan}");
    let zones = h.zone_ids_named(DNS).await;
    assert_eq!(zones.len(), 1, "one zone, no duplicate");
    let zone = zones[0].clone();
    let servers = h
        .route53()
        .get_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap()
        .delegation_set()
        .unwrap()
        .name_servers()
        .to_vec();
    let mut delegated = h.records(&root, DNS, "NS").await;
    assert_eq!(delegated.len(), 1);
    let (ttl, mut values) = delegated.remove(0);
    values.sort();
    let mut expected = servers.clone();
    expected.sort();
    assert_eq!((ttl, values), (i64::from(wake::DELEGATION_TTL), expected));
    assert_eq!(
        h.records(&zone, DNS, "A").await,
        vec![(i64::from(wake::RECORD_TTL), vec!["0.0.0.0".to_string()])]
    );
    let tags = h
        .route53()
        .list_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(&zone)
        .send()
        .await
        .unwrap();
    assert!(tags
        .resource_tag_set()
        .unwrap()
        .tags()
        .iter()
        .any(|t| t.key() == Some("reconciler.dev/managed-by")));

    // Converged, with batched reads.
    let counts = h.assert_converged(&graph).await;
    assert_eq!(
        calls(&counts, "ListHostedZones"),
        1,
        "one listing shared by zones, the A record's zone and the logging configs' zones: {:?}",
        counts.by_operation
    );
    // The zone's tags come from the tag index (us-east-1 indexes Route 53).
    assert_eq!(calls(&counts, "ListTagsForResources"), 0);
    // The server's zone is the reconciler's own: its name servers come from its apex NS
    // record, read once with its records.
    assert_eq!(calls(&counts, "GetHostedZone"), 0);
    assert_eq!(
        calls(&counts, "ListResourceRecordSets"),
        2,
        "the root zone and the server's zone"
    );
    assert_eq!(calls(&counts, "ListQueryLoggingConfigs"), 1);
    assert_eq!(calls(&counts, "DescribeResourcePolicies"), 1);
    assert_eq!(calls(&counts, "DescribeSubscriptionFilters"), 1);

    // The A record belongs to the running system: a new address is not drift.
    h.upsert(&zone, &format!("{DNS}."), "A", 1, &["1.2.3.4"])
        .await;
    h.assert_converged(&graph).await;

    // Its TTL is managed: a change is repaired, and the address stays.
    h.upsert(&zone, &format!("{DNS}."), "A", 300, &["1.2.3.4"])
        .await;
    let plan = h.plan(&graph).await;
    assert_update(&plan, ADDRESS, "/ttl");
    h.apply(&graph).await;
    assert_eq!(
        h.records(&zone, DNS, "A").await,
        vec![(1, vec!["1.2.3.4".to_string()])]
    );
    h.assert_converged(&graph).await;

    // The delegation is managed.
    let server_refs: Vec<&str> = servers.iter().map(String::as_str).collect();
    h.upsert(&root, &format!("{DNS}."), "NS", 60, &server_refs)
        .await;
    let plan = h.plan(&graph).await;
    assert_update(&plan, DELEGATION, "/ttl");
    h.apply(&graph).await;
    assert_eq!(h.records(&root, DNS, "NS").await[0].0, 1800);
    h.assert_converged(&graph).await;

    // The subscription filter's pattern.
    h.logs()
        .put_subscription_filter()
        .log_group_name(query_log_name())
        .filter_name("rc-mc-a-queries")
        .filter_pattern("anything")
        .destination_arn(&start)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, FILTER, "/filterPattern");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    // The resource policy's document.
    h.logs()
        .put_resource_policy()
        .policy_name(wake::ROUTE53_LOG_POLICY)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let plan = h.plan(&graph).await;
    assert_update(&plan, POLICY, "/policyDocument");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;

    let first_reference = h
        .route53()
        .get_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .caller_reference()
        .to_string();

    // Destroy: the records and the logging config go before the zone.
    let events = h.destroy(&graph).await;
    let zone_start = position(&events, ZONE, |k| {
        matches!(
            k,
            EventKind::Started {
                operation: Operation::Delete
            }
        )
    });
    for dependent in [ADDRESS, DELEGATION, LOGGING] {
        let done = position(&events, dependent, |k| {
            matches!(
                k,
                EventKind::Succeeded {
                    operation: Operation::Delete,
                    ..
                }
            )
        });
        assert!(
            done < zone_start,
            "{dependent} must be deleted before the zone: {events:#?}"
        );
    }
    assert!(h.zone_ids_named(DNS).await.is_empty(), "the zone is gone");
    assert!(
        h.records(&root, DNS, "NS").await.is_empty(),
        "the delegation is gone"
    );
    assert!(h.reconciler.observe(&graph).await.unwrap().is_empty());

    // A new apply makes a new zone, with a new caller reference (AWS never takes one twice).
    let plan = h.apply(&graph).await;
    assert_eq!(plan.summary().add, graph.len(), "{plan}");
    let zones = h.zone_ids_named(DNS).await;
    assert_eq!(zones.len(), 1);
    let second_reference = h
        .route53()
        .get_hosted_zone()
        .id(&zones[0])
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .caller_reference()
        .to_string();
    assert_ne!(first_reference, second_reference);
    h.assert_converged(&graph).await;
    h.destroy(&graph).await;
}

/// A runtime-owned record found at create time (an interrupted run, or the running system wrote
/// it first) is a conflict, never overwritten; the engine then adopts it as it is.
#[tokio::test]
async fn an_existing_address_record_is_adopted_not_reset() {
    let h = Harness::new();
    let root = h.sdk_zone(ROOT).await;
    let full = graph(
        &h.account,
        &root,
        "arn:aws:lambda:us-east-1:000000000000:function:x",
    );
    let zone_only = DesiredGraph::new([full.get(&ZONE.into()).unwrap().clone()]).unwrap();
    h.apply(&zone_only).await;
    let zone = h.zone_ids_named(DNS).await.remove(0);
    h.upsert(&zone, &format!("{DNS}."), "A", 1, &["5.6.7.8"])
        .await;

    // The client itself refuses to create over it.
    let client = reconciler_aws::route53::clients(&h.pool)
        .into_iter()
        .find(|c| c.kind().as_str() == kinds::RECORD_SET)
        .unwrap();
    let mut address = full.get(&ADDRESS.into()).unwrap().clone();
    address.properties["hostedZoneId"] = json!(zone);
    let err = client.create(&address).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Conflict, "{err}");

    // The engine finds it and leaves the address alone.
    let graph = DesiredGraph::new([
        full.get(&ZONE.into()).unwrap().clone(),
        full.get(&ADDRESS.into()).unwrap().clone(),
    ])
    .unwrap();
    h.assert_converged(&graph).await;
    assert_eq!(
        h.records(&zone, DNS, "A").await,
        vec![(1, vec!["5.6.7.8".to_string()])]
    );
    h.destroy(&graph).await;
    assert!(h.zone_ids_named(DNS).await.is_empty());
}

/// Two public zones with the server's name: the one tagged as the reconciler's is used (its
/// records too), and the other is left alone.
#[tokio::test]
async fn a_shared_zone_name_resolves_to_the_tagged_zone() {
    let h = Harness::new();
    let root = h.sdk_zone(ROOT).await;
    let full = graph(
        &h.account,
        &root,
        "arn:aws:lambda:us-east-1:000000000000:function:x",
    );
    let graph = DesiredGraph::new([
        full.get(&ZONE.into()).unwrap().clone(),
        full.get(&ADDRESS.into()).unwrap().clone(),
    ])
    .unwrap();
    let stranger = h.sdk_zone(DNS).await;
    h.upsert(&stranger, &format!("{DNS}."), "A", 1, &["9.9.9.9"])
        .await;
    let ours = {
        let r53 = h.route53();
        let id = r53
            .create_hosted_zone()
            .name(DNS)
            .caller_reference("someone-else")
            .send()
            .await
            .unwrap()
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_string();
        let desired = full.get(&ZONE.into()).unwrap();
        r53.change_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
            .resource_id(&id)
            .set_add_tags(Some(
                desired
                    .tags
                    .iter()
                    .map(|(k, v)| {
                        aws_sdk_route53::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .unwrap();
        id
    };
    let observed = h.reconciler.observe(&graph).await.unwrap();
    assert_eq!(
        observed.get(&ZONE.into()).unwrap().output("id"),
        Some(&Value::String(ours.clone()))
    );
    assert!(
        observed.get(&ADDRESS.into()).is_none(),
        "the stranger's A record is not taken for ours"
    );
    let plan = h.apply(&graph).await;
    assert_eq!(plan.summary().add, 1, "{plan}");
    assert_eq!(
        h.records(&ours, DNS, "A").await,
        vec![(1, vec!["0.0.0.0".to_string()])]
    );
    assert_eq!(
        h.records(&stranger, DNS, "A").await,
        vec![(1, vec!["9.9.9.9".to_string()])]
    );
    h.assert_converged(&graph).await;
    h.destroy(&graph).await;
    assert_eq!(h.zone_ids_named(DNS).await, vec![stranger]);
}

/// A zone the reconciler created but could not tag (a run stopped in between) is finished by
/// the next run: its caller reference shows it is the reconciler's. An untagged zone made by
/// anyone else is never changed.
#[tokio::test]
async fn an_untagged_zone_is_adopted_only_when_the_reconciler_created_it() {
    let h = Harness::new();
    let full = graph(
        &h.account,
        "Z0000000000000",
        "arn:aws:lambda:us-east-1:0:function:x",
    );
    let graph = DesiredGraph::new([full.get(&ZONE.into()).unwrap().clone()]).unwrap();
    let r53 = h.route53();
    let interrupted = r53
        .create_hosted_zone()
        .name(DNS)
        .caller_reference(format!("reconciler/earlier-run.0/{DNS}."))
        .send()
        .await
        .unwrap()
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let plan = h.plan(&graph).await;
    assert_eq!(plan.action(&ZONE.into()), Some(Action::Update), "{plan}");
    h.apply(&graph).await;
    assert_eq!(h.zone_ids_named(DNS).await, vec![interrupted.clone()]);
    h.assert_converged(&graph).await;
    h.destroy(&graph).await;
    assert!(h.zone_ids_named(DNS).await.is_empty());

    // Someone else's zone of that name.
    let foreign = h.sdk_zone(DNS).await;
    let plan = h.plan(&graph).await;
    let report = h.reconciler.apply(&plan, &NoEvents).await;
    let failures: Vec<String> = report.failures().map(|(_, e)| e.to_string()).collect();
    assert!(
        failures.len() == 1 && failures[0].contains("not ours"),
        "{failures:?}"
    );
    assert_eq!(h.zone_ids_named(DNS).await, vec![foreign]);
}

/// Before the server's zone exists, the A record's name falls in the root zone; a record of
/// that name there (left by an older setup) is somebody else's and is neither adopted nor
/// replaced.
#[tokio::test]
async fn a_record_in_a_zone_not_ours_is_left_alone() {
    let h = Harness::new();
    let root = h.sdk_zone(ROOT).await;
    h.upsert(&root, &format!("{DNS}."), "A", 60, &["7.7.7.7"])
        .await;
    let full = graph(&h.account, &root, "arn:aws:lambda:us-east-1:0:function:x");
    let graph = DesiredGraph::new([
        full.get(&ZONE.into()).unwrap().clone(),
        full.get(&ADDRESS.into()).unwrap().clone(),
    ])
    .unwrap();
    let plan = h.plan(&graph).await;
    assert_eq!(plan.action(&ADDRESS.into()), Some(Action::Create), "{plan}");
    h.apply(&graph).await;
    h.assert_converged(&graph).await;
    assert_eq!(
        h.records(&root, DNS, "A").await,
        vec![(60, vec!["7.7.7.7".to_string()])]
    );
    h.destroy(&graph).await;
    assert_eq!(
        h.records(&root, DNS, "A").await,
        vec![(60, vec!["7.7.7.7".to_string()])]
    );
}

/// A create whose answer was lost (the connection reset after Route 53 made the config) meets
/// `QueryLoggingConfigAlreadyExists` on its retry: a config on the zone that logs to the wanted
/// group is that create's and is adopted; one logging elsewhere is somebody else's and is a
/// terminal error that says what to do.
#[tokio::test]
async fn a_query_logging_config_made_by_a_lost_answer_is_adopted() {
    let h = Harness::new();
    let zone = h.sdk_zone(DNS).await;
    let other_zone = h.sdk_zone("other.games.example.com").await;
    let logs = h.logs();
    for group in [query_log_name(), "/elsewhere/queries".to_string()] {
        logs.create_log_group()
            .log_group_name(group)
            .send()
            .await
            .expect("create log group");
    }
    // Route 53 refuses a config whose group it may not write to, as AWS does.
    let account = &h.account;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "route53.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                format!("arn:aws:logs:{GLOBAL_REGION}:{account}:log-group:/aws/route53/*"),
                format!("arn:aws:logs:{GLOBAL_REGION}:{account}:log-group:/elsewhere/*"),
            ],
        }],
    });
    logs.put_resource_policy()
        .policy_name("lost-answer-query-logs")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("query log resource policy");
    let r53 = h.route53();
    let made = r53
        .create_query_logging_config()
        .hosted_zone_id(&zone)
        .cloud_watch_logs_log_group_arn(format!("{}:*", query_log_arn(&h.account)))
        .send()
        .await
        .expect("the lost create");
    let made_id = made.query_logging_config().unwrap().id().to_string();
    r53.create_query_logging_config()
        .hosted_zone_id(&other_zone)
        .cloud_watch_logs_log_group_arn(format!(
            "arn:aws:logs:{GLOBAL_REGION}:{}:log-group:/elsewhere/queries:*",
            h.account
        ))
        .send()
        .await
        .expect("somebody else's config");

    let client = reconciler_aws::route53::clients(&h.pool)
        .into_iter()
        .find(|c| c.kind().as_str() == kinds::QUERY_LOGGING_CONFIG)
        .unwrap();
    let desired = |zone: &str| {
        DesiredResource::new(
            kinds::QUERY_LOGGING_CONFIG,
            SERVER,
            GLOBAL_REGION,
            format!("{DNS}."),
        )
        .with_properties(json!({
            "hostedZoneId": zone,
            "cloudWatchLogsLogGroupArn": query_log_arn(&h.account)
        }))
    };
    let adopted = client.create(&desired(&zone)).await.expect("adopted");
    assert_eq!(adopted.output("id"), Some(&json!(made_id)));
    assert_eq!(
        adopted.properties["cloudWatchLogsLogGroupArn"],
        json!(query_log_arn(&h.account))
    );

    let err = client.create(&desired(&other_zone)).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Terminal, "{err}");
    assert!(
        err.message.contains("already logs its queries elsewhere"),
        "{err}"
    );
}
