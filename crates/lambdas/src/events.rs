//! The event payloads the handlers receive, and the summaries they log.
//!
//! Only the Auto Scaling event is parsed strictly, because the DNS handler
//! needs its fields to act. The other two handlers act the same whatever the
//! payload says, so their payloads are read defensively, for logs only: a
//! changed or truncated payload must never stop a server from starting or a
//! crash loop from being broken.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HandlerError;

/// Auto Scaling `detail-type`: the instance is running and has its addresses.
pub const LAUNCH_SUCCESSFUL: &str = "EC2 Instance Launch Successful";
/// Auto Scaling `detail-type`: a terminate lifecycle hook holds the instance,
/// which is earlier than the instance being gone.
pub const TERMINATE_LIFECYCLE_ACTION: &str = "EC2 Instance-terminate Lifecycle Action";
/// Auto Scaling `detail-type`: the instance is gone. Handled like the
/// lifecycle action, so a rule that routes this one instead still works.
pub const TERMINATE_SUCCESSFUL: &str = "EC2 Instance Terminate Successful";

/// The largest decompressed log batch read for the summary. CloudWatch Logs
/// batches are far smaller; the cap only bounds memory for a hostile payload.
const MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// An EventBridge event from Auto Scaling, with the fields the DNS handler uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AutoScalingEvent {
    /// EventBridge's event id, for correlating logs.
    #[serde(default)]
    pub id: Option<String>,
    /// E.g. [`LAUNCH_SUCCESSFUL`].
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `aws.autoscaling` for real events.
    #[serde(default)]
    pub source: Option<String>,
    /// The event's body.
    #[serde(default)]
    pub detail: AutoScalingEventDetail,
}

/// The `detail` of an Auto Scaling event. The lifecycle-action event spells
/// the instance id `EC2InstanceId`, like the launch and terminate events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AutoScalingEventDetail {
    /// The instance the event is about.
    #[serde(rename = "EC2InstanceId", default)]
    pub ec2_instance_id: Option<String>,
    /// The group the instance belongs to.
    #[serde(rename = "AutoScalingGroupName", default)]
    pub auto_scaling_group_name: Option<String>,
    /// `autoscaling:EC2_INSTANCE_TERMINATING` on lifecycle-action events.
    #[serde(rename = "LifecycleTransition", default)]
    pub lifecycle_transition: Option<String>,
    /// The hook holding the instance, on lifecycle-action events.
    #[serde(rename = "LifecycleHookName", default)]
    pub lifecycle_hook_name: Option<String>,
}

impl AutoScalingEvent {
    /// Parses an event payload; only `detail-type` is required at this point,
    /// the fields each event type needs are checked by the handler.
    pub fn from_value(value: Value) -> Result<Self, HandlerError> {
        serde_json::from_value(value).map_err(|err| HandlerError::InvalidEvent {
            expected: "Auto Scaling (EventBridge)",
            reason: err.to_string(),
        })
    }
}

/// What a CloudWatch Logs subscription batch of Route 53 query-log lines said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogBatchSummary {
    /// `DATA_MESSAGE`, or `CONTROL_MESSAGE` for the probe CloudWatch Logs
    /// sends when a subscription is created.
    pub message_type: Option<String>,
    /// The query-log group the batch came from.
    pub log_group: Option<String>,
    /// Number of log lines (DNS queries) in the batch.
    pub log_events: usize,
    /// Number of distinct queried names among them (lower-cased, without the
    /// trailing dot). Resolver addresses are deliberately not kept: they
    /// identify players.
    pub queried_names: usize,
}

/// The outcome of reading a subscription batch: a summary, or why it could
/// not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LogBatchReading {
    /// The batch was decoded.
    Read(LogBatchSummary),
    /// The batch was not a readable subscription payload.
    Unreadable {
        /// What went wrong.
        reason: String,
    },
}

impl LogBatchReading {
    /// Decodes `awslogs.data` (base64 of gzip of JSON) and summarises it.
    /// Never fails: a payload it cannot read becomes [`LogBatchReading::Unreadable`].
    pub fn from_event(event: &Value) -> Self {
        match summarize_log_batch(event) {
            Ok(summary) => LogBatchReading::Read(summary),
            Err(reason) => LogBatchReading::Unreadable { reason },
        }
    }
}

fn summarize_log_batch(event: &Value) -> Result<LogBatchSummary, String> {
    let batch = LogBatch::decode(event)?;
    let names: BTreeSet<String> = batch
        .log_events
        .iter()
        .filter_map(|e| QueryLine::parse(&e.message))
        .map(|q| q.name)
        .collect();
    Ok(LogBatchSummary {
        message_type: batch.message_type,
        log_group: batch.log_group,
        log_events: batch.log_events.len(),
        queried_names: names.len(),
    })
}

/// A CloudWatch Logs subscription batch, decoded: what Logs hands a Lambda destination as
/// `awslogs.data` (base64 of gzip of this JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogBatch {
    /// `DATA_MESSAGE`, or `CONTROL_MESSAGE` for the probe sent when a subscription is created.
    #[serde(default)]
    pub message_type: Option<String>,
    /// The account that owns the log group.
    #[serde(default)]
    pub owner: Option<String>,
    /// The log group the lines come from.
    #[serde(default)]
    pub log_group: Option<String>,
    /// The log stream the lines come from.
    #[serde(default)]
    pub log_stream: Option<String>,
    /// The subscription filters that matched.
    #[serde(default)]
    pub subscription_filters: Vec<String>,
    /// The matching lines.
    #[serde(default)]
    pub log_events: Vec<LogLine>,
}

/// One line of a subscription batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogLine {
    /// CloudWatch Logs' id of the event.
    #[serde(default)]
    pub id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// The log line itself.
    #[serde(default)]
    pub message: String,
}

impl LogBatch {
    /// Decodes `awslogs.data` (base64 of gzip of JSON).
    pub fn decode(event: &Value) -> Result<LogBatch, String> {
        let data = event
            .pointer("/awslogs/data")
            .and_then(Value::as_str)
            .ok_or("no awslogs.data string")?;
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|err| format!("awslogs.data is not base64: {err}"))?;
        let mut json = Vec::new();
        flate2::read::MultiGzDecoder::new(compressed.as_slice())
            .take(MAX_BATCH_BYTES)
            .read_to_end(&mut json)
            .map_err(|err| format!("awslogs.data is not gzip: {err}"))?;
        let value: Value = serde_json::from_slice(&json)
            .map_err(|err| format!("awslogs.data is not a JSON document: {err}"))?;
        // Lines without a message (or of another shape) are dropped rather than failing the
        // batch: one odd line must not keep the others from waking their server.
        let mut batch = LogBatch {
            message_type: text(&value, "messageType"),
            owner: text(&value, "owner"),
            log_group: text(&value, "logGroup"),
            log_stream: text(&value, "logStream"),
            subscription_filters: value
                .get("subscriptionFilters")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            log_events: Vec::new(),
        };
        if let Some(events) = value.get("logEvents").and_then(Value::as_array) {
            batch.log_events = events
                .iter()
                .filter_map(|e| {
                    Some(LogLine {
                        id: text(e, "id").unwrap_or_default(),
                        timestamp: e.get("timestamp").and_then(Value::as_i64).unwrap_or(0),
                        message: text(e, "message")?,
                    })
                })
                .collect();
        }
        Ok(batch)
    }

    /// The event a Lambda destination receives for this batch: `{"awslogs": {"data": ...}}`.
    pub fn encode(&self) -> Value {
        let json = serde_json::to_vec(self).expect("a log batch serializes");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail.
        gz.write_all(&json).expect("gzip into memory");
        let bytes = gz.finish().expect("gzip into memory");
        serde_json::json!({
            "awslogs": { "data": base64::engine::general_purpose::STANDARD.encode(bytes) }
        })
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The fields of a Route 53 query-log line the wake path uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLine {
    /// The queried name: lower case, without the trailing dot.
    pub name: String,
    /// The record type asked for, upper case (`A`, `AAAA`, ...).
    pub record_type: String,
}

impl QueryLine {
    /// Reads a query-log line: version, time, zone id, queried name, type, rcode, protocol,
    /// edge location, resolver address, EDNS client subnet, separated by spaces. `None` for a
    /// line with fewer fields.
    pub fn parse(line: &str) -> Option<QueryLine> {
        let mut fields = line.split_whitespace().skip(3);
        let name = fields.next()?;
        let record_type = fields.next()?;
        Some(QueryLine {
            name: normalise_query_name(name),
            record_type: record_type.to_ascii_uppercase(),
        })
    }
}

/// A DNS name as compared: lower case, without the trailing dot. Route 53 logs names as they
/// were asked (`MC.Example.COM.` reaches the same record as `mc.example.com`).
pub fn normalise_query_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What an ECS `Task State Change` event says about why the task stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskStopSummary {
    /// The task's ARN.
    pub task_arn: Option<String>,
    /// The task's last status, `STOPPED` or on its way there.
    pub last_status: Option<String>,
    /// E.g. `EssentialContainerExited` or `TaskFailedToStart`.
    pub stop_code: Option<String>,
    /// ECS's human-readable reason.
    pub stopped_reason: Option<String>,
    /// Each container's name and exit code (missing when it never ran).
    pub containers: Vec<ContainerExit>,
}

/// One container of a stopped task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerExit {
    /// The container's name in the task definition.
    pub name: Option<String>,
    /// Its exit code, if it ran.
    pub exit_code: Option<i64>,
    /// ECS's reason for the container, if any (e.g. an image pull error).
    pub reason: Option<String>,
}

impl TaskStopSummary {
    /// Reads what it can from an ECS task event; never fails.
    pub fn from_event(event: &Value) -> Self {
        let detail = event.get("detail").unwrap_or(&Value::Null);
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let containers = detail
            .get("containers")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| ContainerExit {
                        name: text(c, "name"),
                        exit_code: c.get("exitCode").and_then(Value::as_i64),
                        reason: text(c, "reason"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        TaskStopSummary {
            task_arn: text(detail, "taskArn"),
            last_status: text(detail, "lastStatus"),
            stop_code: text(detail, "stopCode"),
            stopped_reason: text(detail, "stoppedReason"),
            containers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unreadable_batches_are_reported_not_raised() {
        for event in [
            json!(null),
            json!({}),
            json!({"awslogs": {"data": 5}}),
            json!({"awslogs": {"data": "not base64!"}}),
            json!({"awslogs": {"data": "aGVsbG8="}}),
        ] {
            assert!(
                matches!(
                    LogBatchReading::from_event(&event),
                    LogBatchReading::Unreadable { .. }
                ),
                "{event}"
            );
        }
    }

    #[test]
    fn batches_round_trip_and_query_lines_parse() {
        let batch = LogBatch {
            message_type: Some("DATA_MESSAGE".into()),
            log_group: Some("/aws/route53/rc-main/queries".into()),
            log_events: vec![LogLine {
                id: "1".into(),
                timestamp: 5,
                message:
                    "1.0 2026-01-01T00:00:00Z Z1 MC.Example.com. A NOERROR UDP IAD 192.0.2.1 -"
                        .into(),
            }],
            ..LogBatch::default()
        };
        let decoded = LogBatch::decode(&batch.encode()).unwrap();
        assert_eq!(decoded, batch);
        let q = QueryLine::parse(&decoded.log_events[0].message).unwrap();
        assert_eq!(
            (q.name.as_str(), q.record_type.as_str()),
            ("mc.example.com", "A")
        );
        assert_eq!(QueryLine::parse("1.0 t Z1"), None);
        // Lines of another shape are dropped, not fatal.
        let odd = json!({"logEvents": [{"message": 5}, {"message": "x"}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(odd.to_string().as_bytes()).unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let decoded = LogBatch::decode(&json!({"awslogs": {"data": data}})).unwrap();
        assert_eq!(decoded.log_events.len(), 1);
    }

    #[test]
    fn task_summary_tolerates_anything() {
        assert_eq!(
            TaskStopSummary::from_event(&json!("x")),
            TaskStopSummary::default()
        );
        let s = TaskStopSummary::from_event(&json!({"detail": {"containers": [{"exitCode": 3}]}}));
        assert_eq!(s.containers[0].exit_code, Some(3));
    }
}
