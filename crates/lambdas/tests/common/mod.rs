//! Shared set-up for the handler tests: a fresh emulator account per test,
//! the recorded event payloads, and the resources the handlers act on (an
//! Auto Scaling group in the default VPC, a hosted zone with the server's A
//! record).

#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{Filter, InstanceType, RequestLaunchTemplateData};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_types::SdkConfig;
use reconciler_testkit::{fresh_account_id, Emulator};
use serde_json::Value;

/// The region the group lives in (its `ASG_REGION`).
pub const REGION: &str = "eu-west-1";
/// The parent zone of the server's record.
pub const ZONE_NAME: &str = "games.example.com";
/// The server's record.
pub const RECORD: &str = "minecraft.games.example.com";

/// A recorded event payload from `tests/events/`.
pub fn event(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/events")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()))
}

/// Clients in one fresh emulator account.
pub struct Cloud {
    pub sdk: SdkConfig,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub route53: aws_sdk_route53::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Cloud {
    /// A fresh, empty account of the shared emulator.
    pub fn new() -> Cloud {
        Cloud::with_config(Emulator::shared().sdk_config(REGION, &fresh_account_id()))
    }

    pub fn with_config(sdk: SdkConfig) -> Cloud {
        Cloud {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
            route53: aws_sdk_route53::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            sdk,
        }
    }

    /// The first subnet of the default VPC (public: maps public IPv4 on launch).
    pub async fn default_subnet(&self) -> String {
        let vpcs = self
            .ec2
            .describe_vpcs()
            .filters(Filter::builder().name("is-default").values("true").build())
            .send()
            .await
            .expect("describe_vpcs");
        let vpc = vpcs.vpcs()[0].vpc_id().expect("vpc id").to_owned();
        let subnets = self
            .ec2
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .expect("describe_subnets");
        let mut ids: Vec<String> = subnets
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(str::to_owned))
            .collect();
        ids.sort();
        ids.into_iter().next().expect("the default VPC has subnets")
    }

    /// An AMI the emulator knows.
    pub async fn image(&self) -> String {
        self.ec2
            .describe_images()
            .owners("amazon")
            .send()
            .await
            .expect("describe_images")
            .images()
            .iter()
            .find_map(|i| i.image_id().map(str::to_owned))
            .expect("the emulator ships AMIs")
    }

    /// A launch template plus a group (min 0, max 1) in the default VPC's
    /// first subnet, like the server's group.
    pub async fn create_group(&self, name: &str, desired: i32) {
        let image = self.image().await;
        let subnet = self.default_subnet().await;
        let template = format!("{name}-lt");
        self.ec2
            .create_launch_template()
            .launch_template_name(&template)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(image)
                    .instance_type(InstanceType::M5Large)
                    .build(),
            )
            .send()
            .await
            .expect("create_launch_template");
        self.autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name(&template)
                    .version("$Latest")
                    .build(),
            )
            .min_size(0)
            .max_size(1)
            .desired_capacity(desired)
            .vpc_zone_identifier(subnet)
            .send()
            .await
            .expect("create_auto_scaling_group");
    }

    /// The group's desired capacity and its instances' (id, lifecycle state).
    pub async fn group(&self, name: &str) -> (i32, Vec<(String, String)>) {
        let out = self
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .expect("describe_auto_scaling_groups");
        let group = &out.auto_scaling_groups()[0];
        let instances = group
            .instances()
            .iter()
            .map(|i| {
                (
                    i.instance_id().unwrap_or_default().to_owned(),
                    i.lifecycle_state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        (
            group.desired_capacity().expect("desired capacity"),
            instances,
        )
    }

    pub async fn set_desired(&self, name: &str, desired: i32) {
        self.autoscaling
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(desired)
            .send()
            .await
            .expect("set_desired_capacity");
    }

    /// A public hosted zone holding the server's A record at 0.0.0.0, TTL 1,
    /// as the reconciler leaves it; returns the zone id.
    pub async fn create_zone(&self) -> String {
        let zone = self
            .route53
            .create_hosted_zone()
            .name(ZONE_NAME)
            .caller_reference(fresh_account_id())
            .send()
            .await
            .expect("create_hosted_zone");
        let id = zone.hosted_zone().expect("zone").id().to_owned();
        let id = id.trim_start_matches("/hostedzone/").to_owned();
        self.upsert_a(&id, "0.0.0.0").await;
        id
    }

    pub async fn upsert_a(&self, zone: &str, ip: &str) {
        let set = ResourceRecordSet::builder()
            .name(RECORD)
            .r#type(RrType::A)
            .ttl(1)
            .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
            .build()
            .unwrap();
        self.route53
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
            .expect("change_resource_record_sets");
    }

    /// The values and TTL of every A record set named [`RECORD`]; more than
    /// one set would mean a handler created instead of upserting.
    pub async fn a_records(&self, zone: &str) -> Vec<(Vec<String>, Option<i64>)> {
        let out = self
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .expect("list_resource_record_sets");
        out.resource_record_sets()
            .iter()
            .filter(|s| s.r#type() == &RrType::A && s.name().trim_end_matches('.') == RECORD)
            .map(|s| {
                (
                    s.resource_records()
                        .iter()
                        .map(|r| r.value().to_owned())
                        .collect(),
                    s.ttl(),
                )
            })
            .collect()
    }

    /// The single A record's value, asserting there is exactly one set.
    pub async fn a_record(&self, zone: &str) -> (String, Option<i64>) {
        let sets = self.a_records(zone).await;
        assert_eq!(sets.len(), 1, "exactly one A record set expected: {sets:?}");
        let (values, ttl) = sets.into_iter().next().unwrap();
        assert_eq!(values.len(), 1, "one value expected: {values:?}");
        (values[0].clone(), ttl)
    }
}

/// Replaces string fields of a recorded event by JSON pointer, so the
/// recorded shape stays and only the ids point at emulator resources.
pub fn with(mut event: Value, fields: &[(&str, &str)]) -> Value {
    for (pointer, value) in fields {
        *event
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("the fixture has {pointer}")) = Value::from(*value);
    }
    event
}
