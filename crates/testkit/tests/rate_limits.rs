//! The fault proxy's rate-limit mode answers an empty bucket in each protocol's own throttling
//! shape, and the SDK reads every one of them as throttling. The rates are scaled to zero, so
//! every request is throttled and none reaches the (absent) upstream.

use aws_runtime::retries::classifiers::THROTTLING_ERRORS;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use reconciler_testkit::proxy::{FaultPlan, Proxy};
use reconciler_testkit::sdk_config;

/// A proxy that throttles everything, in front of a port nothing listens on.
fn throttling_proxy() -> Proxy {
    Proxy::start(
        "http://127.0.0.1:9",
        FaultPlan {
            rates: Some(0.0),
            ..FaultPlan::default()
        },
    )
}

fn assert_throttled<E: ProvideErrorMetadata + std::fmt::Debug>(what: &str, err: Option<&E>) {
    let err = err.unwrap_or_else(|| panic!("{what}: a service error expected"));
    let code = err.code().unwrap_or_default();
    assert!(
        THROTTLING_ERRORS.contains(&code),
        "{what}: `{code}` is not a throttling code to the SDK ({err:?})"
    );
}

#[tokio::test]
async fn every_protocol_answers_throttling_the_sdk_recognises() {
    let proxy = throttling_proxy();
    let config = sdk_config(proxy.url(), "eu-west-1", "123456789012");

    let err = aws_sdk_ec2::Client::new(&config)
        .describe_vpcs()
        .send()
        .await
        .unwrap_err();
    assert_throttled("ec2 (EC2 query)", err.as_service_error());
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));

    let err = aws_sdk_iam::Client::new(&config)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    assert_throttled("iam (query)", err.as_service_error());

    let err = aws_sdk_route53::Client::new(&config)
        .list_hosted_zones()
        .send()
        .await
        .unwrap_err();
    assert_throttled("route53 (REST-XML)", err.as_service_error());

    let err = aws_sdk_lambda::Client::new(&config)
        .get_policy()
        .function_name("f")
        .send()
        .await
        .unwrap_err();
    assert_throttled("lambda (REST-JSON)", err.as_service_error());
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));

    let err = aws_sdk_efs::Client::new(&config)
        .describe_file_systems()
        .send()
        .await
        .unwrap_err();
    assert_throttled("efs (REST-JSON)", err.as_service_error());

    let err = aws_sdk_cloudwatchlogs::Client::new(&config)
        .describe_log_groups()
        .send()
        .await
        .unwrap_err();
    assert_throttled("logs (JSON)", err.as_service_error());

    let err = aws_sdk_resourcegroupstagging::Client::new(&config)
        .get_resources()
        .send()
        .await
        .unwrap_err();
    assert_throttled("tagging (JSON)", err.as_service_error());

    let err = aws_sdk_cloudwatch::Client::new(&config)
        .describe_alarms()
        .send()
        .await
        .unwrap_err();
    assert_throttled("cloudwatch (CBOR)", err.as_service_error());

    let stats = proxy.stats();
    assert_eq!(stats.injected.get("rate-limit"), Some(&8), "{stats:?}");
    assert_eq!(
        stats.throttled.get("lambda:GetPolicy"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(
        stats.throttled.get("ec2:DescribeVpcs"),
        Some(&1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn without_the_mode_nothing_is_throttled() {
    let proxy = Proxy::start("http://127.0.0.1:9", FaultPlan::default());
    let config = sdk_config(proxy.url(), "eu-west-1", "123456789012");
    let err = aws_sdk_ec2::Client::new(&config)
        .describe_vpcs()
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().is_none(), "{err:?}");
    assert!(proxy.stats().throttled.is_empty());
}
