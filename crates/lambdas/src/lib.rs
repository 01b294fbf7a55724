//! The run-time side of the game-server system: three small Lambda handlers
//! that react to events while the reconciler is not running.
//!
//! - [`start_system()`]: a DNS query for the server's name was logged, so ask
//!   the Auto Scaling group for one instance (and push the DNS-traffic metric
//!   that keeps the idle alarm from stopping it at once);
//! - [`instance_state_change()`]: point the server's A record at a launched
//!   instance, or at the "unavailable" address once it terminates;
//! - [`break_crash_loop()`]: the container keeps failing, so scale to zero;
//! - [`idle_stop()`]: the idle alarm fired, so scale to zero unless the
//!   instance is still in its boot grace (only deployed with a grace);
//! - [`wake_dispatcher()`]: a DNS query arrived in a Base's shared root zone,
//!   so invoke the start-system function of the server it names (only
//!   deployed with `spec.domain.wakeZone: shared`).
//!
//! The handler logic lives here, apart from the Lambda runtime, so tests call
//! it directly with SDK clients built for the local emulator (where Lambda
//! invoke does not work). The `reconciler-lambda` binary wraps the three in
//! one `provided.al2023` bootstrap that picks its handler from
//! `RECONCILER_HANDLER`.
//!
//! Each handler reads its configuration from the environment once, at cold
//! start ([`config`]), takes its clients as a parameter (built once per cold
//! start) and returns a small serialisable outcome describing what it did.
//!
//! # Environment contract
//!
//! What the reconciler must set on each function (all clients use
//! `ASG_REGION`, the dispatcher's `FUNCTION_REGION`; blank counts as unset):
//!
//! | handler (`RECONCILER_HANDLER`) | required | optional (default) |
//! |---|---|---|
//! | `start-system` | `ASG_NAME`, `ASG_REGION`, `METRIC_NAMESPACE`, `METRIC_NAME`, `METRIC_DIMENSIONS` (JSON object of strings), `METRIC_VALUE` (threshold + 1) | `WAKE_COOLDOWN_MINUTES` (0), `MAX_WAKES_PER_HOUR` (0) |
//! | `instance-state-change` | `ASG_REGION`, `HOSTED_ZONE_ID`, `RECORD_NAME` | `RECORD_TTL` (1), `UNAVAILABLE_IP` (0.0.0.0) |
//! | `break-crash-loop` | `ASG_NAME`, `ASG_REGION` | |
//! | `idle-stop` | `ASG_NAME`, `ASG_REGION`, `BOOT_GRACE_MINUTES`, `ALARM_NAME` | |
//! | `wake-dispatcher` | `ROUTES` (JSON object of DNS name to start function), `FUNCTION_REGION` | |
//!
//! The binary also honours `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) for its
//! log level and the standard SDK variables such as `AWS_ENDPOINT_URL`.

pub mod break_crash_loop;
pub mod config;
pub mod error;
pub mod events;
pub mod idle_stop;
pub mod instance_state_change;
pub mod start_system;
pub mod wake_dispatcher;

pub use break_crash_loop::{break_crash_loop, BreakCrashLoopClients, BreakCrashLoopOutcome};
pub use config::{
    BreakCrashLoopConfig, ConfigError, HandlerKind, IdleStopConfig, InstanceStateChangeConfig,
    InvalidVariable, MetricDimension, StartSystemConfig, WakeDispatcherConfig,
};
pub use error::HandlerError;
pub use events::{
    AutoScalingEvent, LogBatch, LogBatchReading, LogBatchSummary, LogLine, QueryLine,
    TaskStopSummary,
};
pub use idle_stop::{idle_stop, idle_stop_at, IdleStopClients, IdleStopOutcome};
pub use instance_state_change::{
    instance_state_change, InstanceStateChangeClients, InstanceStateChangeOutcome, Trigger,
};
pub use start_system::{
    decide_wake, encode_wakes, parse_wakes, start_system, start_system_at, wakes_to_keep,
    MetricPushed, StartSystemClients, StartSystemOutcome, WakeDecision, TAG_VALUE_MAX, WAKES_TAG,
};
pub use wake_dispatcher::{wake_dispatcher, Dispatched, LambdaWaker, WakeDispatcherOutcome, Waker};
