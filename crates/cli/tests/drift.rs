//! Drift against the emulator: out-of-band changes to managed fields show in the plan as
//! field-level updates and apply puts them back; changes the running system makes (the group's
//! desired capacity, the A record's value) are never drift.

mod common;

use common::{prepared, reconciler, DOMAIN};
use reconciler_engine::{Action, ChangeCause, NoEvents};
use reconciler_ops::deploy;
use reconciler_testkit::{fresh_account_id, Emulator};

fn name_of(p: &deploy::Prepared, id: &str) -> String {
    p.graph
        .get(&id.into())
        .unwrap_or_else(|| panic!("{id} is rendered"))
        .name
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_band_changes_are_reported_and_corrected_runtime_changes_are_not() {
    let account = fresh_account_id();
    let p = prepared(&account).await;
    let rec = reconciler(&p);
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let report = rec.apply(&plan, &NoEvents).await;
    assert!(report.is_success());
    assert!(deploy::plan(&p, &rec).await.unwrap().is_empty());

    let home = reconciler_ops::session::home_region(&p.set);
    let regional = Emulator::shared().sdk_config(&home, &account);
    let global = Emulator::shared().sdk_config("us-east-1", &account);

    // 1. An alarm's threshold.
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&regional);
    let alarm_name = name_of(&p, "cloudwatch.alarm/minecraft-idle");
    common::runtime::set_alarm_threshold(&cloudwatch, &alarm_name, 99_999.0).await;

    // 2. A security group rule.
    let ec2 = aws_sdk_ec2::Client::new(&regional);
    let sg_name = name_of(&p, "ec2.security-group/valheim-instance");
    let sg = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values(&sg_name)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .clone();
    let rule = sg
        .ip_permissions()
        .iter()
        .find(|r| r.from_port() == Some(2456))
        .expect("the game port rule")
        .clone();
    ec2.revoke_security_group_ingress()
        .group_id(sg.group_id().unwrap())
        .ip_permissions(rule)
        .send()
        .await
        .unwrap();

    // 3. The group's max size.
    let autoscaling = aws_sdk_autoscaling::Client::new(&regional);
    let group = name_of(&p, "autoscaling.group/minecraft");
    autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .max_size(3)
        .send()
        .await
        .unwrap();

    // 4. A managed policy attached to a role that wants none: the one that would let the
    // container read every parameter of the account through the instance's credentials.
    let iam = aws_sdk_iam::Client::new(&global);
    let role = name_of(&p, "iam.role/palworld-instance");
    let attached = |iam: aws_sdk_iam::Client, role: String| async move {
        iam.list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|a| a.policy_arn().map(str::to_string))
            .collect::<Vec<String>>()
    };
    assert_eq!(
        attached(iam.clone(), role.clone()).await,
        Vec::<String>::new()
    );
    let policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore";
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn(policy_arn)
        .send()
        .await
        .unwrap();

    // 5. A Lambda permission.
    let lambda = aws_sdk_lambda::Client::new(&global);
    let permission = name_of(&p, "lambda.permission/minecraft-query-log-invoke");
    lambda
        .remove_permission()
        .function_name(name_of(&p, "lambda.function/minecraft-start-system"))
        .statement_id(&permission)
        .send()
        .await
        .unwrap();

    let plan = deploy::plan(&p, &rec).await.unwrap();
    let expect = [
        (
            "cloudwatch.alarm/minecraft-idle",
            Action::Update,
            "/threshold",
        ),
        (
            "ec2.security-group/valheim-instance",
            Action::Update,
            "/ingress",
        ),
        ("autoscaling.group/minecraft", Action::Update, "/maxSize"),
        (
            "iam.role/palworld-instance",
            Action::Update,
            "/managedPolicyArns",
        ),
        (
            "lambda.permission/minecraft-query-log-invoke",
            Action::Create,
            "",
        ),
    ];
    for (id, action, path) in expect {
        let entry = plan
            .resources()
            .iter()
            .find(|r| r.id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} in the plan"));
        assert_eq!(entry.action, action, "{id}\n{plan}");
        // The apply records tell these changes from spec changes.
        assert_eq!(entry.cause, Some(ChangeCause::Drift), "{id}\n{plan}");
        assert!(
            entry.changes.iter().any(|c| c.path.starts_with(path)),
            "{id}: a change at {path}\n{plan}"
        );
    }
    assert_eq!(
        plan.resources()
            .iter()
            .filter(|r| r.action != Action::NoOp)
            .count(),
        expect.len(),
        "only the drifted resources:\n{plan}"
    );
    let text = plan.to_string();
    assert!(text.contains("/maxSize"), "{text}");
    assert!(
        text.contains("~ update autoscaling.group/minecraft (us-west-2, rc-minecraft) [drift: changed outside the reconciler]"),
        "{text}"
    );
    assert!(text.contains("5 resource(s) drifted"), "{text}");

    let report = rec.apply(&plan, &NoEvents).await;
    let failures = common::failure_lines(&report);
    assert!(report.is_success(), "{failures:#?}");
    let after = deploy::plan(&p, &rec).await.unwrap();
    assert!(after.is_empty(), "drift corrected:\n{after}");
    assert_eq!(
        attached(iam.clone(), role.clone()).await,
        Vec::<String>::new(),
        "the out-of-band policy is detached"
    );

    // The running system's own changes are not drift.
    autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .desired_capacity(1)
        .send()
        .await
        .unwrap();
    let route53 = aws_sdk_route53::Client::new(&global);
    let zone = route53
        .list_hosted_zones_by_name()
        .dns_name(format!("minecraft.{DOMAIN}."))
        .send()
        .await
        .unwrap()
        .hosted_zones()[0]
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(
                    aws_sdk_route53::types::Change::builder()
                        .action(aws_sdk_route53::types::ChangeAction::Upsert)
                        .resource_record_set(
                            aws_sdk_route53::types::ResourceRecordSet::builder()
                                .name(format!("minecraft.{DOMAIN}."))
                                .r#type(aws_sdk_route53::types::RrType::A)
                                .ttl(1)
                                .resource_records(
                                    aws_sdk_route53::types::ResourceRecord::builder()
                                        .value("198.51.100.7")
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let plan = deploy::plan(&p, &rec).await.unwrap();
    assert!(
        plan.is_empty(),
        "runtime-owned fields are not drift:\n{plan}"
    );

    // A change in the specs is labelled as such, not as drift.
    let mut p = p;
    let minecraft = p
        .set
        .servers
        .iter_mut()
        .find(|s| s.doc.metadata.name == "minecraft")
        .unwrap();
    minecraft.doc.spec.watchdog.threshold += 1;
    p.graph = p.session.render(&p.set, &p.catalog).unwrap();
    let plan = deploy::plan(&p, &rec).await.unwrap();
    let alarm = plan.get(&"cloudwatch.alarm/minecraft-idle".into()).unwrap();
    assert_eq!(
        (alarm.action, alarm.cause),
        (Action::Update, Some(ChangeCause::Spec)),
        "{plan}"
    );
    assert_eq!(plan.drifted().count(), 0, "{plan}");
}
