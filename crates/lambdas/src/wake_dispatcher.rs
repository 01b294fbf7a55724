//! wake-dispatcher: a DNS query under a Base's shared root zone arrived, so
//! wake the server it names.
//!
//! With `spec.domain.wakeZone: shared`, every server of a Base keeps its A
//! record in the Base's root zone, whose one query log feeds one subscription
//! filter and this one function (a log group allows only two subscription
//! filters, so one filter per server is impossible there). For each batch it
//! reads the queried names, keeps the A queries whose name is a route
//! (exactly, without regard to case or a trailing dot), and invokes each
//! matched server's start-system function once, asynchronously, with only
//! that server's lines in the same payload format. The start function then
//! does what it does for a per-server zone, wake cooldown and rate limit
//! included, so that logic lives in one place and this function's role needs
//! nothing but `lambda:InvokeFunction` on exactly those functions.
//!
//! Unknown names (a typo, a record that is not a server's, a scan of the
//! domain) are logged and ignored. A failed invoke does not stop the others;
//! the batch then fails, so Lambda retries it, which is harmless because a
//! wake is idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info};

use crate::config::WakeDispatcherConfig;
use crate::error::HandlerError;
use crate::events::{LogBatch, LogLine, QueryLine};

/// Starts a server's start function with a payload.
pub trait Waker {
    /// Invokes `function` with `payload` without waiting for it to run.
    fn wake(
        &self,
        function: &str,
        payload: &Value,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// The [`Waker`] of the deployed function: Lambda `Invoke` with
/// `InvocationType=Event`, so the dispatcher returns at once and a slow start
/// does not hold up the other servers of the batch.
#[derive(Debug, Clone)]
pub struct LambdaWaker {
    /// Lambda, in the start functions' region.
    pub lambda: aws_sdk_lambda::Client,
}

impl LambdaWaker {
    /// Builds the client from one SDK configuration, whose region must be
    /// the start functions' ([`WakeDispatcherConfig::function_region`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        LambdaWaker {
            lambda: aws_sdk_lambda::Client::new(sdk),
        }
    }
}

impl Waker for LambdaWaker {
    async fn wake(&self, function: &str, payload: &Value) -> Result<(), HandlerError> {
        let body = serde_json::to_vec(payload).expect("a JSON value serializes");
        self.lambda
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(HandlerError::aws("Invoke"))?;
        Ok(())
    }
}

/// Which server a batch's lines wake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Per start function: the server's name and its lines, in batch order.
    pub wakes: BTreeMap<String, (String, Vec<LogLine>)>,
    /// A-query names that no route names (normalised).
    pub unknown_names: BTreeSet<String>,
    /// Lines that were not A queries, or not query-log lines at all.
    pub ignored_lines: usize,
}

/// Sorts a batch's lines by the server they wake.
pub fn route(config: &WakeDispatcherConfig, batch: &LogBatch) -> Routing {
    let mut routing = Routing::default();
    for line in &batch.log_events {
        let Some(query) = QueryLine::parse(&line.message) else {
            routing.ignored_lines += 1;
            continue;
        };
        if query.record_type != "A" {
            routing.ignored_lines += 1;
            continue;
        }
        match config.routes.get(&query.name) {
            Some(function) => routing
                .wakes
                .entry(function.clone())
                .or_insert_with(|| (query.name.clone(), Vec::new()))
                .1
                .push(line.clone()),
            None => {
                routing.unknown_names.insert(query.name);
            }
        }
    }
    routing
}

/// One server the batch woke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dispatched {
    /// The queried name.
    pub name: String,
    /// The start function invoked.
    pub function: String,
    /// How many of the batch's lines asked for it.
    pub lookups: usize,
}

/// What wake-dispatcher did for one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakeDispatcherOutcome {
    /// `DATA_MESSAGE`, or `CONTROL_MESSAGE` (which carries no lookups).
    pub message_type: Option<String>,
    /// The servers woken, one entry per server.
    pub woken: Vec<Dispatched>,
    /// A-query names no server answers to.
    pub unknown_names: Vec<String>,
    /// Lines that were not A queries.
    pub ignored_lines: usize,
}

/// Handles one CloudWatch Logs subscription batch of the shared query log.
pub async fn wake_dispatcher(
    config: &WakeDispatcherConfig,
    waker: &impl Waker,
    event: &Value,
) -> Result<WakeDispatcherOutcome, HandlerError> {
    let batch = LogBatch::decode(event).map_err(|reason| HandlerError::InvalidEvent {
        expected: "CloudWatch Logs subscription",
        reason,
    })?;
    let routing = route(config, &batch);
    if !routing.unknown_names.is_empty() {
        // Info, not a warning: the filter passes every A lookup of the zone, so a domain that
        // also serves a website sees these all the time.
        info!(
            names = ?routing.unknown_names,
            "lookups of names that are no server's; ignored"
        );
    }
    let mut woken = Vec::new();
    let mut failures = Vec::new();
    for (function, (name, lines)) in &routing.wakes {
        // The server's own lines only, as its filter would have delivered them.
        let forwarded = LogBatch {
            log_events: lines.clone(),
            ..batch.clone()
        };
        match waker.wake(function, &forwarded.encode()).await {
            Ok(()) => {
                info!(name = %name, function = %function, lookups = lines.len(), "server woken");
                woken.push(Dispatched {
                    name: name.clone(),
                    function: function.clone(),
                    lookups: lines.len(),
                });
            }
            Err(err) => {
                error!(name = %name, function = %function, error = %err, "waking the server failed");
                failures.push(format!("{function}: {err}"));
            }
        }
    }
    if !failures.is_empty() {
        return Err(HandlerError::Aws {
            operation: "Invoke",
            message: failures.join("; "),
        });
    }
    Ok(WakeDispatcherOutcome {
        message_type: batch.message_type,
        woken,
        unknown_names: routing.unknown_names.into_iter().collect(),
        ignored_lines: routing.ignored_lines,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what it was asked to invoke; fails for the names in `failing`.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(String, LogBatch)>>,
        failing: Vec<String>,
    }

    impl Waker for Recorder {
        async fn wake(&self, function: &str, payload: &Value) -> Result<(), HandlerError> {
            self.calls.lock().unwrap().push((
                function.to_owned(),
                LogBatch::decode(payload).expect("the forwarded payload decodes"),
            ));
            if self.failing.iter().any(|f| f == function) {
                return Err(HandlerError::Aws {
                    operation: "Invoke",
                    message: "ResourceNotFoundException".into(),
                });
            }
            Ok(())
        }
    }

    fn config() -> WakeDispatcherConfig {
        WakeDispatcherConfig {
            routes: [
                ("mc.games.example.com", "rc-mc-start-system"),
                ("valheim.games.example.com", "rc-valheim-start-system"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            function_region: "us-east-1".into(),
        }
    }

    fn line(name: &str, record_type: &str) -> String {
        format!(
            "1.0 2026-11-23T10:00:00.000Z Z1 {name} {record_type} NOERROR UDP IAD89-C1 192.0.2.1 -"
        )
    }

    fn batch(lines: &[String]) -> LogBatch {
        LogBatch {
            message_type: Some("DATA_MESSAGE".into()),
            log_group: Some("/aws/route53/rc-main/queries".into()),
            subscription_filters: vec!["rc-main-wake-dispatcher".into()],
            log_events: lines
                .iter()
                .enumerate()
                .map(|(i, m)| LogLine {
                    id: i.to_string(),
                    timestamp: 1,
                    message: m.clone(),
                })
                .collect(),
            ..LogBatch::default()
        }
    }

    #[tokio::test]
    async fn each_named_server_is_woken_once_with_its_own_lines() {
        let lines = [
            line("MC.Games.Example.com.", "A"),
            line("mc.games.example.com", "A"),
            line("mc.games.example.com", "AAAA"),
            line("_minecraft._tcp.mc.games.example.com", "A"),
            line("nope.games.example.com", "A"),
            "garbage".to_owned(),
        ];
        let waker = Recorder::default();
        let out = wake_dispatcher(&config(), &waker, &batch(&lines).encode())
            .await
            .unwrap();
        assert_eq!(
            out.woken,
            [Dispatched {
                name: "mc.games.example.com".into(),
                function: "rc-mc-start-system".into(),
                lookups: 2
            }]
        );
        assert_eq!(
            out.unknown_names,
            [
                "_minecraft._tcp.mc.games.example.com",
                "nope.games.example.com"
            ]
        );
        assert_eq!(out.ignored_lines, 2);
        let calls = waker.calls.lock().unwrap();
        let [(function, forwarded)] = calls.as_slice() else {
            panic!("{calls:?}")
        };
        assert_eq!(function, "rc-mc-start-system");
        let messages: Vec<&str> = forwarded
            .log_events
            .iter()
            .map(|l| l.message.as_str())
            .collect();
        assert_eq!(messages, [lines[0].as_str(), lines[1].as_str()]);
        assert_eq!(forwarded.log_group, batch(&[]).log_group);
    }

    #[tokio::test]
    async fn a_failed_wake_fails_the_batch_after_the_others() {
        let waker = Recorder {
            failing: vec!["rc-mc-start-system".into()],
            ..Recorder::default()
        };
        let lines = [
            line("mc.games.example.com", "A"),
            line("valheim.games.example.com", "A"),
        ];
        let err = wake_dispatcher(&config(), &waker, &batch(&lines).encode())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("rc-mc-start-system"), "{err}");
        assert_eq!(waker.calls.lock().unwrap().len(), 2, "valheim still woken");
    }

    #[tokio::test]
    async fn control_messages_and_unreadable_payloads() {
        let waker = Recorder::default();
        let control = LogBatch {
            message_type: Some("CONTROL_MESSAGE".into()),
            log_events: vec![LogLine {
                id: String::new(),
                timestamp: 0,
                message: "CWL CONTROL MESSAGE: Checking health of destination Lambda.".into(),
            }],
            ..LogBatch::default()
        };
        let out = wake_dispatcher(&config(), &waker, &control.encode())
            .await
            .unwrap();
        assert!(out.woken.is_empty());
        let err = wake_dispatcher(&config(), &waker, &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "InvalidEvent");
        assert!(waker.calls.lock().unwrap().is_empty());
    }
}
