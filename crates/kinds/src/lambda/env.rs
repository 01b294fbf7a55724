//! The environment variables of the runtime functions: render writes them, the handlers in
//! `crates/lambdas` read them, both from these names.

/// Which handler the one `reconciler-lambda` binary runs.
pub const HANDLER: &str = "RECONCILER_HANDLER";
/// The server's Auto Scaling group.
pub const ASG_NAME: &str = "ASG_NAME";
/// The group's region (the start function runs in `us-east-1`, the group anywhere).
pub const ASG_REGION: &str = "ASG_REGION";
/// The namespace of the DNS-traffic metric.
pub const METRIC_NAMESPACE: &str = "METRIC_NAMESPACE";
/// The DNS-traffic metric's name.
pub const METRIC_NAME: &str = "METRIC_NAME";
/// Its dimensions, a JSON object of names to values.
pub const METRIC_DIMENSIONS: &str = "METRIC_DIMENSIONS";
/// The value pushed on a DNS lookup (the idle threshold plus one).
pub const METRIC_VALUE: &str = "METRIC_VALUE";
/// Minutes after a wake during which lookups do not wake a stopped server.
pub const WAKE_COOLDOWN_MINUTES: &str = "WAKE_COOLDOWN_MINUTES";
/// Wakes allowed in any sliding hour.
pub const MAX_WAKES_PER_HOUR: &str = "MAX_WAKES_PER_HOUR";
/// Minutes after its launch during which an instance is not stopped as idle.
pub const BOOT_GRACE_MINUTES: &str = "BOOT_GRACE_MINUTES";
/// The idle alarm the idle-stop function resets.
pub const ALARM_NAME: &str = "ALARM_NAME";
/// The zone holding the server's A record.
pub const HOSTED_ZONE_ID: &str = "HOSTED_ZONE_ID";
/// The A record's name.
pub const RECORD_NAME: &str = "RECORD_NAME";
/// The A record's TTL.
pub const RECORD_TTL: &str = "RECORD_TTL";
/// The address the A record holds while the server sleeps.
pub const UNAVAILABLE_IP: &str = "UNAVAILABLE_IP";
/// The wake dispatcher's routes: a JSON object of DNS names to start functions.
pub const ROUTES: &str = "ROUTES";
/// The region of the start functions the dispatcher invokes.
pub const FUNCTION_REGION: &str = "FUNCTION_REGION";
