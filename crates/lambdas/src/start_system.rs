//! start-system: a DNS query for the server arrived, so start the instance.
//!
//! CloudWatch Logs invokes this function with each batch of Route 53 query-log
//! lines that match the server's name. It does two idempotent calls and does
//! not look at the current state, so repeated batches are harmless:
//!
//! 1. PutMetricData of the DNS-traffic metric with the idle threshold plus
//!    one. That minute then counts as active for the idle alarm, which keeps a
//!    just-started instance from being judged idle while it boots, and moves an
//!    alarm left in ALARM by the last shutdown back to OK so it can fire again.
//! 2. SetDesiredCapacity 1 on the group (the only change to the group its
//!    role allows, besides its own wake tag).
//!
//! With a wake cooldown or a wake rate limit configured, it first reads the
//! group (DescribeAutoScalingGroups): a running group only gets the metric
//! push; a stopped group is woken only when the wakes recorded in the group's
//! [`WAKES_TAG`] tag allow it, and each wake is added to that tag, which keeps
//! only what the limits read so it stays within AWS's tag value limit. The
//! group is the state: no table, no local file, and a redeploy leaves the tag
//! alone (the reconciler only manages its own `reconciler.dev/` tag keys).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_autoscaling::types::Tag;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::config::StartSystemConfig;
use crate::error::HandlerError;
use crate::events::LogBatchReading;

/// Clients of the start-system handler, built once per cold start.
#[derive(Debug, Clone)]
pub struct StartSystemClients {
    /// CloudWatch, in the group's region (where the idle alarm reads the metric).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Auto Scaling, in the group's region.
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl StartSystemClients {
    /// Builds the clients from one SDK configuration, whose region must be
    /// the group's ([`StartSystemConfig::asg_region`]).
    pub fn new(sdk: &SdkConfig) -> Self {
        StartSystemClients {
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(sdk),
        }
    }
}

/// The datum start-system pushed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPushed {
    /// CloudWatch namespace.
    pub namespace: String,
    /// Metric name.
    pub name: String,
    /// Pushed value (threshold plus one), unit Count.
    pub value: f64,
}

/// Tag on the Auto Scaling group holding the recent DNS wakes (see
/// [`encode_wakes`]): the one key the function's role may write.
pub use reconciler_kinds::lambda::WAKES_TAG;

/// AWS's limit on an Auto Scaling tag value, in characters.
pub const TAG_VALUE_MAX: usize = 256;

/// Characters of one wake's offset in [`encode_wakes`]: base 36, so three
/// digits hold any offset within the hour (36^3 > 3600).
const OFFSET_DIGITS: usize = 3;

/// One hour, the window of the wake rate limit.
const HOUR_SECS: i64 = 3600;

/// Whether a DNS batch may wake the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum WakeDecision {
    /// No wake limits are configured: the group is asked for one instance
    /// without being read first.
    Unlimited,
    /// The group was at zero and the limits allow a wake: it was woken.
    Woke {
        /// Wakes in the last hour, this one included.
        wakes_last_hour: u32,
    },
    /// The group already wants an instance: nothing to wake.
    AlreadyRunning,
    /// The limits forbid a wake now; the group stays at zero.
    Suppressed {
        /// Which limit, in words, for the logs.
        reason: String,
        /// Seconds until a lookup could wake the server again.
        retry_after_secs: i64,
    },
}

/// Decides whether a stopped server may be woken at `now` (Unix seconds)
/// given the `wakes` (Unix seconds) of the last hour.
///
/// The cooldown counts from the latest wake: a server that woke, idled and
/// stopped is not woken again by stray lookups until `cooldown_minutes` after
/// that wake. The rate limit allows at most `max_per_hour` wakes in any
/// sliding hour. Zero disables either.
pub fn decide_wake(
    now: i64,
    wakes: &[i64],
    cooldown_minutes: u32,
    max_per_hour: u32,
) -> WakeDecision {
    let recent: Vec<i64> = wakes
        .iter()
        .copied()
        .filter(|t| now - t < HOUR_SECS)
        .collect();
    if cooldown_minutes > 0 {
        if let Some(last) = recent.iter().copied().max() {
            let until = last + i64::from(cooldown_minutes) * 60;
            if now < until {
                return WakeDecision::Suppressed {
                    reason: format!(
                        "woken {}s ago, within the {cooldown_minutes}-minute wake cooldown",
                        now - last
                    ),
                    retry_after_secs: until - now,
                };
            }
        }
    }
    if max_per_hour > 0 && recent.len() >= max_per_hour as usize {
        let oldest = recent.iter().copied().min().unwrap_or(now);
        return WakeDecision::Suppressed {
            reason: format!(
                "{} wakes in the last hour, the limit is {max_per_hour}",
                recent.len()
            ),
            retry_after_secs: oldest + HOUR_SECS - now,
        };
    }
    WakeDecision::Woke {
        wakes_last_hour: u32::try_from(recent.len() + 1).unwrap_or(u32::MAX),
    }
}

/// The wakes worth keeping at `now`: those of the last hour, and of those at
/// most the `max_per_hour` latest (the rate limit needs no more, the cooldown
/// only the latest), oldest first.
pub fn wakes_to_keep(now: i64, wakes: &[i64], max_per_hour: u32) -> Vec<i64> {
    let mut kept: Vec<i64> = wakes
        .iter()
        .copied()
        .filter(|t| (0..HOUR_SECS).contains(&(now - t)))
        .collect();
    kept.sort_unstable();
    let keep = usize::try_from(max_per_hour.max(1)).unwrap_or(usize::MAX);
    kept.split_off(kept.len().saturating_sub(keep))
}

/// The [`WAKES_TAG`] value for `wakes` (oldest first, all within one hour):
/// the oldest in Unix seconds, a `:`, then each wake's offset from it in
/// seconds as three base-36 digits. Sixty wakes take 191 characters, within
/// [`TAG_VALUE_MAX`]; plain Unix seconds (11 characters a wake) would outgrow
/// it past 23 wakes, and the tag write would then keep the server asleep.
pub fn encode_wakes(wakes: &[i64]) -> String {
    let Some(&base) = wakes.first() else {
        return String::new();
    };
    let mut out = format!("{base}:");
    for t in wakes {
        out.push_str(&base36(t - base));
    }
    out
}

fn base36(mut n: i64) -> String {
    let mut digits = [b'0'; OFFSET_DIGITS];
    for d in digits.iter_mut().rev() {
        let r = u8::try_from(n.rem_euclid(36)).unwrap_or(0);
        *d = if r < 10 { b'0' + r } else { b'a' + r - 10 };
        n /= 36;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// Parses the [`WAKES_TAG`] value written by [`encode_wakes`], or by earlier
/// versions (Unix seconds separated by spaces); unreadable parts are skipped
/// (a hand edit must not keep the server from waking).
pub fn parse_wakes(value: &str) -> Vec<i64> {
    let Some((base, offsets)) = value.trim().split_once(':') else {
        return value
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
    };
    let Ok(base) = base.parse::<i64>() else {
        return Vec::new();
    };
    offsets
        .as_bytes()
        .chunks(OFFSET_DIGITS)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .filter(|c| c.len() == OFFSET_DIGITS)
        .filter_map(|c| i64::from_str_radix(c, 36).ok())
        .map(|offset| base + offset)
        .collect()
}

/// What start-system did for one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartSystemOutcome {
    /// The group that was asked for one instance.
    pub asg_name: String,
    /// The group's desired capacity after the batch: 1, or 0 when the wake
    /// was suppressed.
    pub desired_capacity: i32,
    /// The metric datum that was pushed; none when the wake was suppressed
    /// (there is no instance whose idleness it could hold off).
    pub metric: Option<MetricPushed>,
    /// Whether and why the server was (not) woken.
    pub wake: WakeDecision,
    /// What the triggering log batch contained, for the logs.
    pub batch: LogBatchReading,
}

/// Handles one CloudWatch Logs subscription batch.
///
/// The payload is only summarised for the logs; whatever it holds, both calls
/// are made. Both are attempted even when the first fails, because starting
/// the server matters more than the metric: a failed metric push is still
/// returned as the error (after the scale-up), so it shows in the function's
/// error count.
pub async fn start_system(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
    event: &Value,
) -> Result<StartSystemOutcome, HandlerError> {
    start_system_at(config, clients, event, SystemTime::now()).await
}

/// [`start_system`] at a given time, so tests can play a sequence of wakes.
pub async fn start_system_at(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
    event: &Value,
    now: SystemTime,
) -> Result<StartSystemOutcome, HandlerError> {
    let batch = LogBatchReading::from_event(event);
    match &batch {
        LogBatchReading::Read(summary) => info!(
            log_events = summary.log_events,
            queried_names = summary.queried_names,
            message_type = summary.message_type.as_deref().unwrap_or("unknown"),
            "DNS query batch received"
        ),
        LogBatchReading::Unreadable { reason } => {
            warn!(reason = %reason, "the payload is not a readable log batch; starting anyway")
        }
    }

    let limited = config.wake_cooldown_minutes > 0 || config.max_wakes_per_hour > 0;
    if limited {
        return limited_wake(config, clients, batch, now).await;
    }

    start(config, clients, batch, WakeDecision::Unlimited).await
}

/// Pushes the activity metric and asks for one instance. Both are attempted: starting the
/// server matters more than the metric, whose failure is returned after the scale-up.
async fn start(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
    batch: LogBatchReading,
    wake: WakeDecision,
) -> Result<StartSystemOutcome, HandlerError> {
    let metric = put_metric(config, clients).await;
    if let Err(err) = &metric {
        error!(error = %err, "pushing the DNS-traffic metric failed; starting the server anyway");
    }
    clients
        .autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(&config.asg_name)
        .desired_capacity(1)
        .send()
        .await
        .map_err(HandlerError::aws("SetDesiredCapacity"))?;
    info!(asg = %config.asg_name, desired_capacity = 1, "server start requested");
    metric?;
    Ok(StartSystemOutcome {
        asg_name: config.asg_name.clone(),
        desired_capacity: 1,
        metric: Some(pushed(config)),
        wake,
        batch,
    })
}

fn pushed(config: &StartSystemConfig) -> MetricPushed {
    MetricPushed {
        namespace: config.metric_namespace.clone(),
        name: config.metric_name.clone(),
        value: config.metric_value,
    }
}

/// The wake path with a cooldown or rate limit: read the group, then wake,
/// refresh the metric, or do nothing.
async fn limited_wake(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
    batch: LogBatchReading,
    now: SystemTime,
) -> Result<StartSystemOutcome, HandlerError> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let groups = clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&config.asg_name)
        .send()
        .await
        .map_err(HandlerError::aws("DescribeAutoScalingGroups"))?;
    let Some(group) = groups.auto_scaling_groups().first() else {
        return Err(HandlerError::GroupNotFound(config.asg_name.clone()));
    };
    let desired = group.desired_capacity().unwrap_or(0);
    let wakes = group
        .tags()
        .iter()
        .find(|t| t.key() == Some(WAKES_TAG))
        .and_then(|t| t.value())
        .map(parse_wakes)
        .unwrap_or_default();

    if desired > 0 {
        // Running (or starting): a lookup is activity; keep the idle alarm off it.
        put_metric(config, clients).await?;
        info!(asg = %config.asg_name, desired_capacity = desired, "server already running");
        return Ok(StartSystemOutcome {
            asg_name: config.asg_name.clone(),
            desired_capacity: desired,
            metric: Some(pushed(config)),
            wake: WakeDecision::AlreadyRunning,
            batch,
        });
    }

    let decision = decide_wake(
        now_secs,
        &wakes,
        config.wake_cooldown_minutes,
        config.max_wakes_per_hour,
    );
    if let WakeDecision::Suppressed {
        reason,
        retry_after_secs,
    } = &decision
    {
        warn!(asg = %config.asg_name, reason = %reason, retry_after_secs, "wake suppressed");
        return Ok(StartSystemOutcome {
            asg_name: config.asg_name.clone(),
            desired_capacity: 0,
            metric: None,
            wake: decision,
            batch,
        });
    }

    // Record the wake first: if the scale-up then fails, a retried batch is
    // limited as if it had worked, which errs on the side of fewer wakes.
    let mut kept = wakes;
    kept.push(now_secs);
    let value = encode_wakes(&wakes_to_keep(now_secs, &kept, config.max_wakes_per_hour));
    clients
        .autoscaling
        .create_or_update_tags()
        .tags(
            Tag::builder()
                .resource_id(&config.asg_name)
                .resource_type("auto-scaling-group")
                .key(WAKES_TAG)
                .value(value)
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .map_err(HandlerError::aws("CreateOrUpdateTags"))?;

    start(config, clients, batch, decision).await
}

async fn put_metric(
    config: &StartSystemConfig,
    clients: &StartSystemClients,
) -> Result<(), HandlerError> {
    let dimensions = config
        .metric_dimensions
        .iter()
        .map(|d| Dimension::builder().name(&d.name).value(&d.value).build())
        .collect();
    let datum = MetricDatum::builder()
        .metric_name(&config.metric_name)
        .set_dimensions(Some(dimensions))
        .unit(StandardUnit::Count)
        .value(config.metric_value)
        .build();
    clients
        .cloudwatch
        .put_metric_data()
        .namespace(&config.metric_namespace)
        .metric_data(datum)
        .send()
        .await
        .map_err(HandlerError::aws("PutMetricData"))?;
    info!(
        namespace = %config.metric_namespace,
        metric = %config.metric_name,
        value = config.metric_value,
        "DNS-traffic metric pushed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limits_always_wake() {
        assert_eq!(
            decide_wake(10_000, &[9_990, 9_995], 0, 0),
            WakeDecision::Woke { wakes_last_hour: 3 }
        );
    }

    #[test]
    fn cooldown_counts_from_the_latest_wake() {
        let d = decide_wake(10_000, &[8_000, 9_400], 15, 0);
        assert_eq!(
            d,
            WakeDecision::Suppressed {
                reason: "woken 600s ago, within the 15-minute wake cooldown".into(),
                retry_after_secs: 300
            }
        );
        assert!(matches!(
            decide_wake(10_300, &[8_000, 9_400], 15, 0),
            WakeDecision::Woke { wakes_last_hour: 3 }
        ));
    }

    #[test]
    fn rate_limit_is_a_sliding_hour() {
        let wakes = [6_500, 8_000, 9_000];
        let d = decide_wake(10_000, &wakes, 0, 3);
        assert_eq!(
            d,
            WakeDecision::Suppressed {
                reason: "3 wakes in the last hour, the limit is 3".into(),
                retry_after_secs: 100
            }
        );
        // The oldest falls out of the hour.
        assert_eq!(
            decide_wake(10_100, &wakes, 0, 3),
            WakeDecision::Woke { wakes_last_hour: 3 }
        );
    }

    #[test]
    fn unreadable_tag_entries_are_skipped() {
        assert_eq!(parse_wakes("12 x 15  "), [12, 15]);
        assert_eq!(parse_wakes("1000:00a0!!zz"), [1010]);
        assert_eq!(parse_wakes("x:00a"), Vec::<i64>::new());
    }

    #[test]
    fn a_full_hour_of_wakes_fits_an_auto_scaling_tag_value() {
        let now = 1_765_100_000;
        let wakes: Vec<i64> = (0..60).map(|i| now - 3_599 + i * 60).collect();
        let kept = wakes_to_keep(now, &wakes, 60);
        assert_eq!(kept, wakes);
        let value = encode_wakes(&kept);
        assert!(value.len() <= TAG_VALUE_MAX, "{} characters", value.len());
        assert_eq!(parse_wakes(&value), wakes);
    }

    #[test]
    fn only_the_wakes_the_limits_read_are_kept() {
        // Older than an hour: gone; beyond the rate limit: only the latest.
        assert_eq!(
            wakes_to_keep(10_000, &[5_000, 9_000, 9_500, 9_900], 2),
            [9_500, 9_900]
        );
        // Without a rate limit the cooldown reads only the latest.
        assert_eq!(wakes_to_keep(10_000, &[9_000, 9_900], 0), [9_900]);
        assert_eq!(encode_wakes(&[]), "");
    }
}
