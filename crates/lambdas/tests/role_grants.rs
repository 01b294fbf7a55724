//! Each call the handlers that start and stop a server make is one their rendered role allows.
//!
//! The server is rendered for the emulator's account and region (with wake limits and a boot
//! grace, so every statement is there), each handler runs against the emulator with its
//! rendered environment, and every AWS call it makes is recorded (operation and the request's
//! condition values) and evaluated against the role's inline policy: action, resource (the
//! group's and alarm's real ARNs) and conditions. A handler that switched to a call its role
//! does not grant fails here rather than in AWS. The evaluator knows the operators the roles
//! use and fails on any other, so it cannot wave a condition through.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_autoscaling::operation::create_or_update_tags::CreateOrUpdateTagsInput;
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataInput;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use common::{event, Cloud, REGION};
use reconciler_lambdas::{
    break_crash_loop, idle_stop_at, start_system, BreakCrashLoopClients, BreakCrashLoopConfig,
    IdleStopClients, IdleStopConfig, StartSystemClients, StartSystemConfig,
};
use reconciler_render::{kinds, render, Context};
use reconciler_spec::{check, Input, InstanceCatalog};
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::{json, Value};

const SERVER: &str = "minecraft";

/// One recorded call: the IAM action and the condition values of the request.
#[derive(Debug, Clone)]
struct Call {
    action: String,
    context: BTreeMap<String, Vec<String>>,
}

/// Records every call of the client it is attached to, as `<iam prefix>:<operation>`.
#[derive(Debug, Clone)]
struct Recorder {
    prefix: &'static str,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    // Not `read_before_execution`: a client's interceptors run that hook before the
    // operation's configuration (and so its name) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().expect("operation metadata").name();
        let mut values = BTreeMap::new();
        if let Some(tags) = context.input().downcast_ref::<CreateOrUpdateTagsInput>() {
            let tags = tags.tags();
            values.insert(
                "aws:TagKeys".to_string(),
                tags.iter()
                    .filter_map(|t| t.key().map(str::to_string))
                    .collect(),
            );
        }
        if let Some(put) = context.input().downcast_ref::<PutMetricDataInput>() {
            values.insert(
                "cloudwatch:namespace".to_string(),
                put.namespace().into_iter().map(str::to_string).collect(),
            );
        }
        self.calls.lock().unwrap().push(Call {
            action: format!("{}:{operation}", self.prefix),
            context: values,
        });
        Ok(())
    }
}

/// Recording clients over one emulator account.
struct Recorded {
    calls: Arc<Mutex<Vec<Call>>>,
    autoscaling: aws_sdk_autoscaling::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    ec2: aws_sdk_ec2::Client,
}

impl Recorded {
    fn new(cloud: &Cloud) -> Recorded {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorder = |prefix| Recorder {
            prefix,
            calls: calls.clone(),
        };
        Recorded {
            autoscaling: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(&cloud.sdk)
                    .interceptor(recorder("autoscaling"))
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(&cloud.sdk)
                    .interceptor(recorder("cloudwatch"))
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&cloud.sdk)
                    .interceptor(recorder("ec2"))
                    .build(),
            ),
            calls,
        }
    }

    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// The server rendered for `account` in the emulator's region: its start, idle-stop and
/// break-crash-loop functions' environments and role policies, by handler.
fn rendered(account: &str) -> BTreeMap<String, (HashMap<String, String>, Value)> {
    let base = format!(
        "apiVersion: reconciler.dev/v1alpha1\nkind: Base\nmetadata:\n  name: main\nspec:\n  \
         region: {REGION}\n  domain:\n    name: games.example.com\n    hostedZoneId: Z0123456789EXAMPLE\n  \
         alerts:\n    email: admin@example.com\n"
    );
    let server = format!(
        "apiVersion: reconciler.dev/v1alpha1\nkind: ContainerSpec\nmetadata:\n  name: {SERVER}\n\
         spec:\n  baseRef: main\n  ec2:\n    instanceType: m5.large\n  container:\n    \
         image: itzg/minecraft-server\n    ports:\n      - port: 25565\n  watchdog:\n    \
         threshold: 1000\n    bootGraceMinutes: 15\n    wakeCooldownMinutes: 30\n    maxWakesPerHour: 4\n"
    );
    let inputs: Vec<Input> = [("base.yaml", base), ("server.yaml", server)]
        .into_iter()
        .map(|(name, text)| Input {
            name: name.into(),
            bytes: text.into_bytes(),
        })
        .collect();
    let (set, diags) = check(&inputs, &|_| None, &InstanceCatalog::offline());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let graph = render(&Context::new(account), &set, &InstanceCatalog::offline()).unwrap();
    let mut out = BTreeMap::new();
    for f in graph.iter().filter(|r| r.kind.as_str() == kinds::FUNCTION) {
        // Only these three: other functions' environments hold references to other resources.
        let handler = f.properties["environment"]["RECONCILER_HANDLER"]
            .as_str()
            .unwrap();
        if !["start-system", "idle-stop", "break-crash-loop"].contains(&handler) {
            continue;
        }
        let env: HashMap<String, String> =
            serde_json::from_value(f.properties["environment"].clone()).unwrap();
        let handler = handler.to_string();
        let role = f.properties["roleArn"]["$ref"].as_str().unwrap();
        let role = graph.get(&role.into()).unwrap();
        let policy = role.properties["inlinePolicies"][handler.as_str()].clone();
        out.insert(handler, (env, policy));
    }
    out
}

/// `pattern` (`*` any run, `?` one character) matches `text`; IAM compares actions without
/// regard to case, resources with it.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let fold = |s: &str| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let (p, t): (Vec<char>, Vec<char>) = (
        fold(pattern).chars().collect(),
        fold(text).chars().collect(),
    );
    // matched[j]: p[..i] matches t[..j], row by row.
    let mut matched = vec![false; t.len() + 1];
    matched[0] = true;
    for c in p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match c {
                '*' => matched[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matched[j - 1],
                c => j > 0 && matched[j - 1] && t[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[t.len()]
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `conditions` hold for `context`; an operator the roles do not use is a test error.
fn conditions_hold(conditions: &Value, context: &BTreeMap<String, Vec<String>>) -> bool {
    let Some(operators) = conditions.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object().unwrap().iter().all(|(key, wanted)| {
            let wanted = strings(wanted);
            // A key without values is not in the request.
            let present = context.get(key).filter(|v| !v.is_empty());
            match operator.as_str() {
                "StringEquals" => {
                    present.is_some_and(|v| v.len() == 1 && wanted.contains(&v[0].as_str()))
                }
                "ForAllValues:StringEquals" => {
                    present.is_none_or(|v| v.iter().all(|x| wanted.contains(&x.as_str())))
                }
                "Null" => (wanted == ["true"]) == present.is_none(),
                other => panic!("the evaluator does not know the operator {other}: teach it"),
            }
        })
    })
}

/// The first statement of `policy` that allows `call` on `resource`, by Sid.
fn allowing<'a>(policy: &'a Value, call: &Call, resource: &str) -> Option<&'a str> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|st| {
            let allows = st["Effect"] == "Allow"
                && strings(&st["Action"])
                    .iter()
                    .any(|a| glob(a, &call.action, true))
                && strings(&st["Resource"])
                    .iter()
                    .any(|r| glob(r, resource, false))
                && conditions_hold(&st["Condition"], &call.context);
            allows.then(|| st["Sid"].as_str().unwrap_or("-"))
        })
}

/// Every call allowed by `policy`, each on the resource `resource_of` names for it.
fn assert_allowed(
    handler: &str,
    policy: &Value,
    calls: &[Call],
    resource_of: impl Fn(&str) -> String,
) {
    assert!(!calls.is_empty(), "{handler} made no call");
    for call in calls {
        let resource = resource_of(&call.action);
        assert!(
            allowing(policy, call, &resource).is_some(),
            "{handler}: {} on {resource} with {:?} is not allowed by its role:\n{policy:#}",
            call.action,
            call.context
        );
    }
}

async fn group_arn(cloud: &Cloud, name: &str) -> String {
    cloud
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .auto_scaling_group_arn()
        .unwrap()
        .to_string()
}

/// The resource each recorded action acts on: the group, the idle alarm, or `*` for the
/// actions AWS gives no resource type.
fn resource_for(group: &str, alarm: &str) -> impl Fn(&str) -> String {
    let (group, alarm) = (group.to_string(), alarm.to_string());
    move |action: &str| match action {
        "autoscaling:SetDesiredCapacity"
        | "autoscaling:CreateOrUpdateTags"
        | "autoscaling:UpdateAutoScalingGroup" => group.clone(),
        "cloudwatch:SetAlarmState" => alarm.clone(),
        "autoscaling:DescribeAutoScalingGroups"
        | "ec2:DescribeInstances"
        | "cloudwatch:PutMetricData" => "*".into(),
        other => panic!("no resource known for {other}: add it"),
    }
}

#[tokio::test]
async fn every_call_of_the_functions_that_start_and_stop_a_server_is_allowed_by_its_role() {
    let account = fresh_account_id();
    let cloud = Cloud::with_config(Emulator::shared().sdk_config(REGION, &account));
    let functions = rendered(&account);
    let env = |handler: &str| functions[handler].0.clone();
    let group = env("start-system")["ASG_NAME"].clone();
    cloud.create_group(&group, 0).await;
    let group_arn = group_arn(&cloud, &group).await;
    let alarm = env("idle-stop")["ALARM_NAME"].clone();
    cloud
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AWS/EC2")
        .metric_name("NetworkIn")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::LessThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
    let alarm_arn = format!("arn:aws:cloudwatch:{REGION}:{account}:alarm:{alarm}");
    let resource_of = resource_for(&group_arn, &alarm_arn);
    let recorded = Recorded::new(&cloud);

    // Start: reads the group, records the wake in its tag, pushes the metric, sets capacity 1.
    let lookup = env("start-system");
    let config = StartSystemConfig::from_lookup(|n| lookup.get(n).cloned()).unwrap();
    let clients = StartSystemClients {
        cloudwatch: recorded.cloudwatch.clone(),
        autoscaling: recorded.autoscaling.clone(),
    };
    start_system(
        &config,
        &clients,
        &event("cloudwatch-logs-dns-queries.json"),
    )
    .await
    .expect("started");
    assert_eq!(cloud.group(&group).await.0, 1);
    let calls = recorded.take();
    let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    assert!(
        actions.contains(&"autoscaling:CreateOrUpdateTags"),
        "{actions:?}"
    );
    assert_allowed(
        "start-system",
        &functions["start-system"].1,
        &calls,
        &resource_of,
    );

    // Idle stop after the boot grace: reads the group and its instance, sets capacity 0; then
    // within the grace: resets the alarm instead.
    let lookup = env("idle-stop");
    let config = IdleStopConfig::from_lookup(|n| lookup.get(n).cloned()).unwrap();
    let clients = IdleStopClients {
        autoscaling: recorded.autoscaling.clone(),
        ec2: recorded.ec2.clone(),
        cloudwatch: recorded.cloudwatch.clone(),
    };
    let alarm_event = json!({
        "source": "aws.cloudwatch",
        "alarmArn": alarm_arn,
        "accountId": account,
        "region": REGION,
        "time": "2025-01-01T00:00:00.000+0000",
        "alarmData": {
            "alarmName": alarm,
            "state": { "value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2025-01-01T00:00:00.000+0000" },
            "previousState": { "value": "OK" }
        }
    });
    let now = SystemTime::now();
    idle_stop_at(
        &config,
        &clients,
        &alarm_event,
        now + Duration::from_secs(300),
    )
    .await
    .expect("kept in its grace");
    idle_stop_at(
        &config,
        &clients,
        &alarm_event,
        now + Duration::from_secs(3600),
    )
    .await
    .expect("stopped");
    assert_eq!(cloud.group(&group).await.0, 0);
    let calls = recorded.take();
    let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    assert!(actions.contains(&"cloudwatch:SetAlarmState"), "{actions:?}");
    assert_allowed("idle-stop", &functions["idle-stop"].1, &calls, &resource_of);

    // Crash loop: sets capacity 0.
    cloud.set_desired(&group, 1).await;
    let lookup = env("break-crash-loop");
    let config = BreakCrashLoopConfig::from_lookup(|n| lookup.get(n).cloned()).unwrap();
    let clients = BreakCrashLoopClients {
        autoscaling: recorded.autoscaling.clone(),
    };
    break_crash_loop(
        &config,
        &clients,
        &event("ecs-task-stopped-essential-container-exited.json"),
    )
    .await
    .expect("stopped");
    assert_eq!(cloud.group(&group).await.0, 0);
    let calls = recorded.take();
    assert_allowed(
        "break-crash-loop",
        &functions["break-crash-loop"].1,
        &calls,
        &resource_of,
    );
}

/// The evaluator refuses what the roles do not grant: another action, another group, a tag
/// key other than the wake history's.
#[test]
fn the_evaluator_refuses_other_actions_groups_and_tag_keys() {
    let functions = rendered("123456789012");
    let start = &functions["start-system"].1;
    let group = format!(
        "arn:aws:autoscaling:{REGION}:123456789012:autoScalingGroup:0f1e2d3c-aaaa-4bbb-8ccc-123456789abc:autoScalingGroupName/{}",
        functions["start-system"].0["ASG_NAME"]
    );
    let call = |action: &str, keys: Option<Vec<&str>>| Call {
        action: action.into(),
        context: keys
            .map(|k| {
                [(
                    "aws:TagKeys".to_string(),
                    k.into_iter().map(String::from).collect(),
                )]
                .into_iter()
                .collect()
            })
            .unwrap_or_default(),
    };
    let wakes = reconciler_lambdas::WAKES_TAG;
    assert_eq!(
        allowing(start, &call("autoscaling:SetDesiredCapacity", None), &group),
        Some("WakeServerGroup")
    );
    assert_eq!(
        allowing(start, &call("autoscaling:setdesiredcapacity", None), &group),
        Some("WakeServerGroup")
    );
    assert!(allowing(
        start,
        &call("autoscaling:UpdateAutoScalingGroup", None),
        &group
    )
    .is_none());
    let other_group = group.replace("autoScalingGroupName/rc-", "autoScalingGroupName/rc-other-");
    assert!(allowing(
        start,
        &call("autoscaling:SetDesiredCapacity", None),
        &other_group
    )
    .is_none());
    assert_eq!(
        allowing(
            start,
            &call("autoscaling:CreateOrUpdateTags", Some(vec![wakes])),
            &group
        ),
        Some("RecordWakes")
    );
    for keys in [
        vec![wakes, "reconciler.dev/managed-by"],
        vec!["Name"],
        vec![],
    ] {
        assert!(
            allowing(
                start,
                &call("autoscaling:CreateOrUpdateTags", Some(keys.clone())),
                &group
            )
            .is_none(),
            "{keys:?}"
        );
    }
    assert!(allowing(start, &call("autoscaling:CreateOrUpdateTags", None), &group).is_none());
}
