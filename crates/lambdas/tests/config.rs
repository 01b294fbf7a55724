//! Configuration errors name every missing and invalid variable at once.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use reconciler_lambdas::{
    BreakCrashLoopConfig, HandlerKind, InstanceStateChangeConfig, MetricDimension,
    StartSystemConfig,
};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn start_system_lists_every_missing_variable() {
    let err = StartSystemConfig::from_lookup(vars(&[])).unwrap_err();
    assert_eq!(
        err.missing,
        [
            "ASG_NAME",
            "ASG_REGION",
            "METRIC_NAMESPACE",
            "METRIC_NAME",
            "METRIC_DIMENSIONS",
            "METRIC_VALUE"
        ]
    );
    assert_eq!(
        err.to_string(),
        "missing environment variables: ASG_NAME, ASG_REGION, METRIC_NAMESPACE, METRIC_NAME, \
         METRIC_DIMENSIONS, METRIC_VALUE"
    );
}

#[test]
fn instance_state_change_lists_every_missing_variable() {
    let err = InstanceStateChangeConfig::from_lookup(vars(&[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing environment variables: ASG_REGION, HOSTED_ZONE_ID, RECORD_NAME"
    );
}

#[test]
fn break_crash_loop_lists_every_missing_variable() {
    let err = BreakCrashLoopConfig::from_lookup(vars(&[("ASG_NAME", "  ")])).unwrap_err();
    // A blank value counts as missing.
    assert_eq!(
        err.to_string(),
        "missing environment variables: ASG_NAME, ASG_REGION"
    );
    let err = BreakCrashLoopConfig::from_lookup(vars(&[("ASG_NAME", "x")])).unwrap_err();
    assert_eq!(err.to_string(), "missing environment variable: ASG_REGION");
}

#[test]
fn missing_and_invalid_variables_are_reported_together() {
    let err = StartSystemConfig::from_lookup(vars(&[
        ("ASG_REGION", "Ireland"),
        ("METRIC_NAMESPACE", "GameServers/minecraft"),
        ("METRIC_DIMENSIONS", r#"["ServerName"]"#),
        ("METRIC_VALUE", "two thousand"),
    ]))
    .unwrap_err();
    assert_eq!(err.missing, ["ASG_NAME", "METRIC_NAME"]);
    let invalid: Vec<&str> = err.invalid.iter().map(|v| v.name).collect();
    assert_eq!(invalid, ["ASG_REGION", "METRIC_DIMENSIONS", "METRIC_VALUE"]);
    let text = err.to_string();
    assert!(
        text.starts_with(
            "missing environment variables: ASG_NAME, METRIC_NAME; invalid environment \
             variables: ASG_REGION (expected a region name such as eu-west-1), METRIC_DIMENSIONS ("
        ),
        "{text}"
    );
    // Values are not echoed, only why they were rejected.
    assert!(!text.contains("two thousand"), "{text}");

    let err = InstanceStateChangeConfig::from_lookup(vars(&[
        ("ASG_REGION", "eu-west-1"),
        ("HOSTED_ZONE_ID", "Z123EXAMPLE"),
        ("RECORD_NAME", "minecraft.games.example.com"),
        ("RECORD_TTL", "-1"),
        ("UNAVAILABLE_IP", "::"),
    ]))
    .unwrap_err();
    assert!(err.missing.is_empty());
    let invalid: Vec<&str> = err.invalid.iter().map(|v| v.name).collect();
    assert_eq!(invalid, ["RECORD_TTL", "UNAVAILABLE_IP"]);

    for value in ["NaN", "inf", ""] {
        let err = StartSystemConfig::from_lookup(vars(&[("METRIC_VALUE", value)])).unwrap_err();
        assert!(err.to_string().contains("METRIC_VALUE"), "{value}: {err}");
    }
}

#[test]
fn valid_configurations_and_defaults() {
    let config = StartSystemConfig::from_lookup(vars(&[
        ("ASG_NAME", "minecraft-asg"),
        ("ASG_REGION", "eu-west-1"),
        ("METRIC_NAMESPACE", "GameServers/minecraft"),
        ("METRIC_NAME", "DNSTraffic"),
        ("METRIC_DIMENSIONS", r#"{"ServerName": "minecraft"}"#),
        ("METRIC_VALUE", "2001"),
    ]))
    .unwrap();
    assert_eq!(config.metric_value, 2001.0);
    assert_eq!(
        config.metric_dimensions,
        [MetricDimension {
            name: "ServerName".into(),
            value: "minecraft".into()
        }]
    );

    let config = InstanceStateChangeConfig::from_lookup(vars(&[
        ("ASG_REGION", "eu-west-1"),
        ("HOSTED_ZONE_ID", "/hostedzone/Z123EXAMPLE"),
        ("RECORD_NAME", "minecraft.games.example.com"),
    ]))
    .unwrap();
    assert_eq!(config.hosted_zone_id, "Z123EXAMPLE");
    assert_eq!(config.record_ttl, 1);
    assert_eq!(config.unavailable_ip, Ipv4Addr::UNSPECIFIED);

    let config = BreakCrashLoopConfig::from_lookup(vars(&[
        ("ASG_NAME", "minecraft-asg"),
        ("ASG_REGION", "us-east-1"),
    ]))
    .unwrap();
    assert_eq!(config.asg_region, "us-east-1");
}

#[test]
fn handler_selection() {
    assert_eq!(
        HandlerKind::from_lookup(vars(&[("RECONCILER_HANDLER", "break-crash-loop")])),
        Ok(HandlerKind::BreakCrashLoop)
    );
    assert_eq!(
        HandlerKind::from_lookup(vars(&[])).unwrap_err().to_string(),
        "missing environment variable: RECONCILER_HANDLER"
    );
    assert_eq!(
        HandlerKind::from_lookup(vars(&[("RECONCILER_HANDLER", "start")]))
            .unwrap_err()
            .to_string(),
        "invalid environment variable: RECONCILER_HANDLER (expected one of start-system, \
         instance-state-change, break-crash-loop, idle-stop, wake-dispatcher)"
    );
}
