//! instance-state-change against the emulator: the A record follows the
//! group's instance, and a terminate event never erases a live instance's IP.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::{event, with, Cloud, RECORD, REGION};
use reconciler_lambdas::{
    instance_state_change, AutoScalingEvent, HandlerError, InstanceStateChangeClients,
    InstanceStateChangeConfig, InstanceStateChangeOutcome, Trigger,
};

const GROUP: &str = "minecraft-asg";

fn config(zone: &str, extra: &[(&str, &str)]) -> InstanceStateChangeConfig {
    let mut vars: HashMap<String, String> = [
        ("ASG_REGION", REGION),
        ("HOSTED_ZONE_ID", zone),
        ("RECORD_NAME", RECORD),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.retain(|_, v| !v.is_empty());
    InstanceStateChangeConfig::from_lookup(|name| vars.get(name).cloned()).expect("valid config")
}

fn launch_event(instance: &str) -> AutoScalingEvent {
    AutoScalingEvent::from_value(with(
        event("asg-launch-successful.json"),
        &[
            ("/detail/EC2InstanceId", instance),
            ("/detail/AutoScalingGroupName", GROUP),
        ],
    ))
    .expect("a valid launch event")
}

fn terminate_event(instance: &str, group: &str) -> AutoScalingEvent {
    AutoScalingEvent::from_value(with(
        event("asg-terminate-lifecycle-action.json"),
        &[
            ("/detail/EC2InstanceId", instance),
            ("/detail/AutoScalingGroupName", group),
        ],
    ))
    .expect("a valid lifecycle-action event")
}

/// The group's single instance and its public IPv4 address in EC2.
async fn group_instance(cloud: &Cloud) -> (String, Option<String>) {
    let (_, instances) = cloud.group(GROUP).await;
    assert_eq!(instances.len(), 1, "one instance expected: {instances:?}");
    let id = instances[0].0.clone();
    let out = cloud
        .ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe_instances");
    let ip = out.reservations()[0].instances()[0]
        .public_ip_address()
        .map(str::to_owned);
    (id, ip)
}

#[tokio::test]
async fn launch_points_the_record_at_the_instance() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    cloud.create_group(GROUP, 1).await;
    // The emulator launches the instance at once, in the default subnet, which
    // maps public IPv4 addresses on launch like a real default subnet.
    let (instance, ip) = group_instance(&cloud).await;
    let ip = ip.expect("the group's instance has a public IPv4 address");

    let config = config(&zone, &[]);
    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    let outcome = instance_state_change(&config, &clients, &launch_event(&instance))
        .await
        .expect("launch handled");

    let InstanceStateChangeOutcome::RecordUpdated {
        trigger,
        instance_id,
        ip: set_ip,
        ttl,
        ..
    } = &outcome
    else {
        panic!("record update expected: {outcome:?}");
    };
    assert_eq!(*trigger, Trigger::Launch);
    assert_eq!(instance_id.as_deref(), Some(instance.as_str()));
    assert_eq!(set_ip.to_string(), ip);
    assert_eq!(*ttl, 1);
    assert_eq!(cloud.a_record(&zone).await, (ip.clone(), Some(1)));

    // A repeated event (Lambda retries) rewrites the same single record.
    instance_state_change(&config, &clients, &launch_event(&instance))
        .await
        .expect("repeat handled");
    assert_eq!(cloud.a_record(&zone).await, (ip, Some(1)));

    // The outcome serialises with its action tag, for the logs.
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["action"], "record_updated");
    assert_eq!(json["trigger"], "launch");
}

#[tokio::test]
async fn launch_without_a_public_ip_is_a_clear_error() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    // A subnet of the default VPC that does not map public IPs (the default
    // for a new subnet), and an instance launched there.
    let vpc = cloud
        .ec2
        .describe_vpcs()
        .send()
        .await
        .expect("describe_vpcs")
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id().map(str::to_owned))
        .expect("default VPC");
    let subnet = cloud
        .ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("172.31.200.0/24")
        .send()
        .await
        .expect("create_subnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id");
    let reservation = cloud
        .ec2
        .run_instances()
        .image_id(cloud.image().await)
        .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
        .subnet_id(subnet)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run_instances");
    let instance = &reservation.instances()[0];
    assert_eq!(instance.public_ip_address(), None);
    let instance = instance.instance_id().unwrap().to_owned();

    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    let err = instance_state_change(&config(&zone, &[]), &clients, &launch_event(&instance))
        .await
        .expect_err("no public IP");
    assert!(
        matches!(&err, HandlerError::NoPublicIp { instance_id, .. } if *instance_id == instance),
        "{err:?}"
    );
    assert_eq!(err.kind(), "NoPublicIp");
    assert!(err.to_string().contains("no public IPv4 address"), "{err}");
    assert_eq!(cloud.a_record(&zone).await, ("0.0.0.0".to_owned(), Some(1)));
}

#[tokio::test]
async fn terminate_with_no_other_instance_marks_the_server_unavailable() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    cloud.create_group(GROUP, 1).await;
    let (instance, ip) = group_instance(&cloud).await;
    cloud.upsert_a(&zone, &ip.expect("public ip")).await;

    // Scaling in removes the instance from the group; its lifecycle event follows.
    cloud.set_desired(GROUP, 0).await;
    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    let outcome = instance_state_change(
        &config(&zone, &[]),
        &clients,
        &terminate_event(&instance, GROUP),
    )
    .await
    .expect("terminate handled");

    assert!(
        matches!(
            &outcome,
            InstanceStateChangeOutcome::RecordUpdated { trigger: Trigger::Terminate, ip, .. }
                if *ip == Ipv4Addr::UNSPECIFIED
        ),
        "{outcome:?}"
    );
    assert_eq!(cloud.a_record(&zone).await, ("0.0.0.0".to_owned(), Some(1)));
}

#[tokio::test]
async fn the_terminating_instance_itself_does_not_hold_the_record() {
    // The emulator has no Terminating:Wait state: the instance named in the
    // event still shows InService. It must not count as "another" instance.
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    cloud.create_group(GROUP, 1).await;
    let (instance, ip) = group_instance(&cloud).await;
    cloud.upsert_a(&zone, &ip.expect("public ip")).await;

    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    instance_state_change(
        &config(&zone, &[]),
        &clients,
        &terminate_event(&instance, GROUP),
    )
    .await
    .expect("terminate handled");
    assert_eq!(cloud.a_record(&zone).await, ("0.0.0.0".to_owned(), Some(1)));
}

#[tokio::test]
async fn terminate_while_another_instance_is_in_service_is_skipped() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    // A DNS hit during spin-down: the old instance is terminating and a new
    // one is already InService with the record pointing at it.
    cloud.create_group(GROUP, 1).await;
    let (new_instance, ip) = group_instance(&cloud).await;
    let ip = ip.expect("public ip");
    cloud.upsert_a(&zone, &ip).await;

    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    let outcome = instance_state_change(
        &config(&zone, &[]),
        &clients,
        &terminate_event("i-0aaaaaaaaaaaaaaaa", GROUP),
    )
    .await
    .expect("a skip is not an error");

    let InstanceStateChangeOutcome::Skipped {
        instance_id,
        live_instance_id,
        live_instance_state,
        reason,
    } = &outcome
    else {
        panic!("skip expected: {outcome:?}");
    };
    assert_eq!(instance_id.as_deref(), Some("i-0aaaaaaaaaaaaaaaa"));
    assert_eq!(live_instance_id, &new_instance);
    assert_eq!(live_instance_state, "InService");
    assert!(reason.contains(&new_instance), "{reason}");
    assert_eq!(serde_json::to_value(&outcome).unwrap()["action"], "skipped");
    assert_eq!(cloud.a_record(&zone).await, (ip, Some(1)));
}

#[tokio::test]
async fn terminate_successful_is_handled_like_the_lifecycle_action() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    cloud.create_group(GROUP, 0).await;
    // AWS's "EC2 Instance Terminate Successful" sample (tests/events/SOURCES.md).
    let raw = event("asg-terminate-successful.json");
    let event = AutoScalingEvent::from_value(with(raw, &[("/detail/AutoScalingGroupName", GROUP)]))
        .unwrap();

    // A custom unavailable address and TTL are honoured.
    let config = config(
        &format!("/hostedzone/{zone}"),
        &[("UNAVAILABLE_IP", "192.0.2.10"), ("RECORD_TTL", "5")],
    );
    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    instance_state_change(&config, &clients, &event)
        .await
        .expect("terminate handled");
    assert_eq!(
        cloud.a_record(&zone).await,
        ("192.0.2.10".to_owned(), Some(5))
    );
}

#[tokio::test]
async fn terminate_of_a_deleted_group_marks_the_server_unavailable() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    cloud.upsert_a(&zone, "198.51.100.20").await;
    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    instance_state_change(
        &config(&zone, &[]),
        &clients,
        &terminate_event("i-0bbbbbbbbbbbbbbbb", "no-such-group"),
    )
    .await
    .expect("terminate handled");
    assert_eq!(cloud.a_record(&zone).await, ("0.0.0.0".to_owned(), Some(1)));
}

#[tokio::test]
async fn unknown_event_types_and_incomplete_events_are_errors() {
    let cloud = Cloud::new();
    let zone = cloud.create_zone().await;
    let clients = InstanceStateChangeClients::new(&cloud.sdk);
    let config = config(&zone, &[]);

    let mut raw = event("asg-launch-successful.json");
    raw["detail-type"] = "EC2 Instance Launch Unsuccessful".into();
    let err = instance_state_change(
        &config,
        &clients,
        &AutoScalingEvent::from_value(raw).unwrap(),
    )
    .await
    .expect_err("unknown type");
    assert!(
        matches!(&err, HandlerError::UnknownEventType(t) if t == "EC2 Instance Launch Unsuccessful"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("'EC2 Instance Launch Unsuccessful'"),
        "{err}"
    );

    let mut raw = event("asg-launch-successful.json");
    raw["detail"]
        .as_object_mut()
        .unwrap()
        .remove("EC2InstanceId");
    let err = instance_state_change(
        &config,
        &clients,
        &AutoScalingEvent::from_value(raw).unwrap(),
    )
    .await
    .expect_err("no instance id");
    assert!(
        matches!(
            &err,
            HandlerError::MissingEventField {
                field: "EC2InstanceId",
                ..
            }
        ),
        "{err:?}"
    );

    let err = AutoScalingEvent::from_value(serde_json::json!({"detail": {}}))
        .expect_err("no detail-type");
    assert_eq!(err.kind(), "InvalidEvent");

    assert_eq!(cloud.a_record(&zone).await, ("0.0.0.0".to_owned(), Some(1)));
}
