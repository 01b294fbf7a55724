//! `reconciler-lambda`: the `bootstrap` of all five run-time functions on the
//! `provided.al2023` custom runtime.
//!
//! One artifact serves the five functions, so there is one build, one
//! packaging check and one code hash to compare; `RECONCILER_HANDLER` picks
//! the handler. The configuration is validated before the runtime loop
//! starts: a broken deploy fails at init with one log line listing every bad
//! variable, instead of failing each invocation.
//!
//! Logs are JSON lines (tracing), one per step, carrying the request id from
//! the runtime's span. Only the validated settings are logged, never the
//! environment: Lambda puts the function's credentials there.

use std::process::ExitCode;

use aws_config::{BehaviorVersion, Region};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use reconciler_lambdas::{
    break_crash_loop, idle_stop, instance_state_change, start_system, wake_dispatcher,
    AutoScalingEvent, BreakCrashLoopClients, BreakCrashLoopConfig, ConfigError, HandlerError,
    HandlerKind, IdleStopClients, IdleStopConfig, InstanceStateChangeClients,
    InstanceStateChangeConfig, LambdaWaker, StartSystemClients, StartSystemConfig,
    WakeDispatcherConfig,
};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Variables the Lambda service sets for a custom runtime; `lambda_runtime`
/// panics without them, so their absence is reported like a config error.
const LAMBDA_RUNTIME_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Why the process stops.
enum Failure {
    /// The configuration is incomplete or invalid: nothing can be handled.
    Config(ConfigError),
    /// The runtime loop ended with an error (e.g. the runtime API went away).
    Runtime(lambda_runtime::Error),
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::Config(err)
    }
}

/// One event at a time per execution environment, so a single-threaded
/// runtime is enough and keeps the cold start small.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_tracing();
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(err)) => {
            error!(error = %err, "invalid configuration; the function cannot start");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(err)) => {
            error!(error = %err, "the Lambda runtime loop stopped");
            ExitCode::FAILURE
        }
    }
}

/// JSON lines on stdout, which Lambda sends to the function's log group.
/// The level comes from Lambda's log-level setting (`AWS_LAMBDA_LOG_LEVEL`),
/// else `RUST_LOG`, else `info`.
fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| match level.to_ascii_lowercase().as_str() {
            "fatal" => "error".to_owned(),
            other => other.to_owned(),
        })
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
}

async fn serve() -> Result<(), Failure> {
    let kind = HandlerKind::from_env()?;
    match kind {
        HandlerKind::StartSystem => {
            let config = StartSystemConfig::from_env()?;
            check_lambda_environment()?;
            let clients = StartSystemClients::new(&sdk_config(&config.asg_region).await);
            ready(kind, &config);
            let (config, clients) = (&config, &clients);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
                finish(start_system(config, clients, &event.payload).await)
            }))
            .await
            .map_err(Failure::Runtime)
        }
        HandlerKind::InstanceStateChange => {
            let config = InstanceStateChangeConfig::from_env()?;
            check_lambda_environment()?;
            let clients = InstanceStateChangeClients::new(&sdk_config(&config.asg_region).await);
            ready(kind, &config);
            let (config, clients) = (&config, &clients);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
                let result = match AutoScalingEvent::from_value(event.payload) {
                    Ok(event) => instance_state_change(config, clients, &event).await,
                    Err(err) => Err(err),
                };
                finish(result)
            }))
            .await
            .map_err(Failure::Runtime)
        }
        HandlerKind::BreakCrashLoop => {
            let config = BreakCrashLoopConfig::from_env()?;
            check_lambda_environment()?;
            let clients = BreakCrashLoopClients::new(&sdk_config(&config.asg_region).await);
            ready(kind, &config);
            let (config, clients) = (&config, &clients);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
                finish(break_crash_loop(config, clients, &event.payload).await)
            }))
            .await
            .map_err(Failure::Runtime)
        }
        HandlerKind::IdleStop => {
            let config = IdleStopConfig::from_env()?;
            check_lambda_environment()?;
            let clients = IdleStopClients::new(&sdk_config(&config.asg_region).await);
            ready(kind, &config);
            let (config, clients) = (&config, &clients);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
                finish(idle_stop(config, clients, &event.payload).await)
            }))
            .await
            .map_err(Failure::Runtime)
        }
        HandlerKind::WakeDispatcher => {
            let config = WakeDispatcherConfig::from_env()?;
            check_lambda_environment()?;
            let waker = LambdaWaker::new(&sdk_config(&config.function_region).await);
            ready(kind, &config);
            let (config, waker) = (&config, &waker);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
                finish(wake_dispatcher(config, waker, &event.payload).await)
            }))
            .await
            .map_err(Failure::Runtime)
        }
    }
}

/// Outside Lambda (e.g. someone running the binary by hand) the runtime would
/// panic; say plainly what is missing instead.
fn check_lambda_environment() -> Result<(), ConfigError> {
    let missing: Vec<&'static str> = LAMBDA_RUNTIME_VARS
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConfigError {
            missing,
            invalid: Vec::new(),
        })
    }
}

/// The SDK configuration of all clients: the standard chain (the function's
/// role credentials, `AWS_ENDPOINT_URL` if set) with the group's region.
async fn sdk_config(region: &str) -> aws_types::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .load()
        .await
}

/// Logs the validated settings once per cold start (they hold no secrets).
fn ready(kind: HandlerKind, config: &impl Serialize) {
    let settings = serde_json::to_string(config).unwrap_or_default();
    info!(handler = %kind, settings = %settings, "configuration loaded");
}

/// Logs the outcome or the error, and turns the error into what Lambda
/// reports: `errorType` is the stable kind, `errorMessage` the full text.
fn finish<T: Serialize>(result: Result<T, HandlerError>) -> Result<T, Diagnostic> {
    match result {
        Ok(outcome) => {
            let text = serde_json::to_string(&outcome).unwrap_or_default();
            info!(outcome = %text, "event handled");
            Ok(outcome)
        }
        Err(err) => {
            error!(error = %err, error_type = err.kind(), "event failed");
            Err(Diagnostic {
                error_type: err.kind().to_owned(),
                error_message: err.to_string(),
            })
        }
    }
}
