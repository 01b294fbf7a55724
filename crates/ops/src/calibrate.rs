//! `reconciler calibrate`: proposes a watchdog threshold from a server's own traffic history.
//!
//! It reads, with `GetMetricData`, the very metrics the idle alarm reads
//! ([`IdleActivity`], the render's definition of the alarm) at the alarm's one-minute period,
//! and computes for each minute the value the alarm compares with its threshold. The alarm's
//! metric math is applied here ([`IdleActivity::activity`]) rather than sent to CloudWatch:
//! the raw series are needed anyway to tell which minutes an instance ran (the group reported
//! network traffic) and which had DNS lookups, and the arithmetic is small and defined next to
//! the alarm's expression.
//!
//! Classification ([`classify`]): a minute counts only when an instance ran (the alarm sees no
//! value otherwise). A minute with a DNS lookup is a player arriving and is left out. The rest
//! is split into two groups with Otsu's method (the split that maximises the variance between
//! the groups) on log-scaled traffic, because idle chatter and play differ by orders of
//! magnitude rather than by a fixed amount. Otsu splits anything, so the split is accepted only
//! when the histogram of the traffic has two modes with a valley between them (the lower mode
//! is the idle one) and the groups are clearly apart (Ashman's D > 2, the usual test that two
//! clusters do not overlap); otherwise the history holds one kind of minute only, which is
//! taken as idle, with a warning.
//! The proposed threshold is the idle peak (the highest idle minute) plus a margin.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use reconciler_engine::model::{DesiredGraph, DesiredResource, ResourceId};
use reconciler_engine::Reconciler;
use reconciler_render::naming::ServerNames;
use reconciler_render::wake::{ActivitySample, IdleActivity, IDLE_PERIOD_SECONDS};
use reconciler_spec::base_of;
use serde::Serialize;

use crate::deploy::Prepared;

/// CloudWatch keeps one-minute datapoints for 15 days; older ones only at five minutes or
/// coarser, which the one-minute alarm never sees.
pub const MAX_DAYS: u32 = 15;
/// Fewer idle minutes than this make the proposal a guess (one hour of idle play time).
pub const MIN_IDLE_PERIODS: usize = 60;
/// Ashman's D above which two groups count as separate.
const SEPARATION: f64 = 2.0;

/// What `calibrate` is asked.
#[derive(Debug, Clone, Copy)]
pub struct CalibrateOptions {
    /// Days of history, ending now.
    pub days: u32,
    /// Margin over the idle peak, in percent.
    pub margin_percent: f64,
}

/// One minute of the history as the idle alarm sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Start of the minute, seconds since the epoch.
    #[serde(skip)]
    pub epoch: i64,
    /// Start of the minute (RFC 3339).
    pub timestamp: String,
    /// The value the alarm compares with its threshold (bytes per second plus DNS hits);
    /// `None` when no instance ran.
    pub activity: Option<f64>,
    /// The DNS wake metric in the minute, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_hits: Option<f64>,
    /// How the minute was classified.
    pub class: PeriodClass,
}

/// How a minute of history counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodClass {
    /// No instance ran (no traffic datapoint): the alarm sees nothing.
    Asleep,
    /// A DNS lookup woke (or kept awake) the server: a player arriving.
    Wake,
    /// Running, in the low traffic group.
    Idle,
    /// Running, in the high traffic group.
    Play,
}

/// Summary of a group of minutes, in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStats {
    /// Minutes in the group.
    pub periods: usize,
    /// The lowest value.
    pub min: f64,
    /// The median.
    pub median: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The highest value.
    pub max: f64,
}

impl GroupStats {
    fn of(values: &[f64]) -> Option<GroupStats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(GroupStats {
            periods: sorted.len(),
            min: sorted[0],
            median: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// The idle group.
    pub idle: Option<GroupStats>,
    /// The play group (`None` when the history shows one group only).
    pub play: Option<GroupStats>,
    /// The boundary between the groups in bytes per second: idle minutes are at or below it.
    pub split: Option<f64>,
    /// Ashman's D between the two groups on log-scaled traffic (> 2: clearly apart).
    pub separation: Option<f64>,
}

/// Classifies each minute in place (see the module documentation for the method) and
/// summarises the idle and play groups.
pub fn classify(periods: &mut [Period]) -> Classification {
    for p in periods.iter_mut() {
        p.class = match p.activity {
            None => PeriodClass::Asleep,
            Some(_) if p.dns_hits.is_some_and(|d| d > 0.0) => PeriodClass::Wake,
            Some(_) => PeriodClass::Idle,
        };
    }
    let running: Vec<f64> = periods
        .iter()
        .filter(|p| p.class == PeriodClass::Idle)
        .filter_map(|p| p.activity)
        .collect();
    let mut split = None;
    let mut separation = None;
    if let Some((boundary, d)) = two_groups(&running) {
        separation = Some(d);
        if d > SEPARATION && has_valley(&running, boundary) {
            split = Some(boundary);
            for p in periods.iter_mut() {
                if p.class == PeriodClass::Idle && p.activity.is_some_and(|a| a > boundary) {
                    p.class = PeriodClass::Play;
                }
            }
        }
    }
    let of = |class: PeriodClass| -> Vec<f64> {
        periods
            .iter()
            .filter(|p| p.class == class)
            .filter_map(|p| p.activity)
            .collect()
    };
    Classification {
        idle: GroupStats::of(&of(PeriodClass::Idle)),
        play: GroupStats::of(&of(PeriodClass::Play)),
        split,
        separation,
    }
}

/// The best two-group split of `values` by Otsu's method on `ln(1 + value)`: the boundary in
/// the values' own unit (the highest value of the lower group) and Ashman's D of the groups.
/// `None` with fewer than two distinct values.
fn two_groups(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let logs: Vec<f64> = sorted.iter().map(|v| v.max(0.0).ln_1p()).collect();
    let n = logs.len();
    let total: f64 = logs.iter().sum();
    let mut best: Option<(usize, f64)> = None;
    let mut below = 0.0;
    for k in 1..n {
        below += logs[k - 1];
        // Only between distinct values: equal values belong to one group.
        if logs[k] == logs[k - 1] {
            continue;
        }
        let (w0, w1) = (k as f64, (n - k) as f64);
        let (m0, m1) = (below / w0, (total - below) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if best.is_none_or(|(_, b)| between > b) {
            best = Some((k, between));
        }
    }
    let (k, _) = best?;
    let (lower, upper) = logs.split_at(k);
    let (m0, v0) = mean_variance(lower);
    let (m1, v1) = mean_variance(upper);
    let spread = (v0 + v1).sqrt();
    let d = if spread == 0.0 {
        f64::INFINITY
    } else {
        std::f64::consts::SQRT_2 * (m1 - m0).abs() / spread
    };
    Some((sorted[k - 1], d))
}

/// Width of a histogram bin on `ln(1 + value)`: each bin spans a factor of about 1.4.
const BIN_WIDTH: f64 = std::f64::consts::LN_2 / 2.0;

/// Whether the histogram of `values` (log-scaled, [`BIN_WIDTH`] bins) has a valley between its
/// lower mode (at or below `boundary`) and its upper mode: a bin between them holding at most
/// half as many values as the smaller mode. Otsu's method splits any data, a plateau too;
/// idle and play minutes form two hills with little in between.
fn has_valley(values: &[f64], boundary: f64) -> bool {
    let logs: Vec<f64> = values.iter().map(|v| v.max(0.0).ln_1p()).collect();
    let Some(min) = logs.iter().copied().reduce(f64::min) else {
        return false;
    };
    let max = logs.iter().copied().fold(min, f64::max);
    let bin = |x: f64| ((x - min) / BIN_WIDTH) as usize;
    let mut counts = vec![0usize; bin(max) + 1];
    for x in &logs {
        counts[bin(*x)] += 1;
    }
    let split = bin(boundary.max(0.0).ln_1p());
    let mode = |range: std::ops::Range<usize>| {
        range
            .filter(|i| *i < counts.len())
            .max_by_key(|i| (counts[*i], std::cmp::Reverse(*i)))
    };
    let (Some(low), Some(high)) = (mode(0..split + 1), mode(split + 1..counts.len())) else {
        return false;
    };
    let smaller = counts[low].min(counts[high]);
    (low + 1..high).any(|i| counts[i] * 2 <= smaller)
}

fn mean_variance(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, variance)
}

/// Peaks of one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayPeaks {
    /// The day (`YYYY-MM-DD`, UTC).
    pub date: String,
    /// Minutes an instance ran.
    pub running_minutes: usize,
    /// Minutes classified idle.
    pub idle_minutes: usize,
    /// The highest idle minute.
    pub idle_peak: Option<f64>,
    /// The highest minute of any kind.
    pub peak: Option<f64>,
}

fn day_peaks(periods: &[Period]) -> Vec<DayPeaks> {
    let mut days: BTreeMap<String, DayPeaks> = BTreeMap::new();
    for p in periods.iter().filter(|p| p.activity.is_some()) {
        let date = p.timestamp.get(..10).unwrap_or_default().to_string();
        let day = days.entry(date.clone()).or_insert(DayPeaks {
            date,
            running_minutes: 0,
            idle_minutes: 0,
            idle_peak: None,
            peak: None,
        });
        let value = p.activity.unwrap_or(0.0);
        day.running_minutes += 1;
        day.peak = Some(day.peak.map_or(value, |m: f64| m.max(value)));
        if p.class == PeriodClass::Idle {
            day.idle_minutes += 1;
            day.idle_peak = Some(day.idle_peak.map_or(value, |m: f64| m.max(value)));
        }
    }
    days.into_values().collect()
}

/// The threshold proposed for an idle peak: the peak plus `margin_percent`, rounded up to a
/// whole byte per second (the spec's unit), at least 1.
pub fn proposed_threshold(idle_peak: f64, margin_percent: f64) -> u64 {
    let value = (idle_peak * (1.0 + margin_percent / 100.0)).ceil();
    (value as u64).max(1)
}

/// What `calibrate` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// The server.
    pub server: String,
    /// Its region.
    pub region: String,
    /// Start of the history read (RFC 3339).
    pub from: String,
    /// End of the history read (RFC 3339).
    pub to: String,
    /// Length of each period, in seconds (the alarm's).
    pub period_seconds: u32,
    /// Minutes in the history.
    pub periods: usize,
    /// Minutes an instance ran.
    pub running_periods: usize,
    /// Minutes with a DNS lookup, left out.
    pub wake_periods: usize,
    /// The idle and play groups.
    pub classification: Classification,
    /// Per UTC day.
    pub days: Vec<DayPeaks>,
    /// `watchdog.threshold` in the spec.
    pub current_threshold: u64,
    /// The threshold of the deployed idle alarm (`None`: not deployed).
    pub deployed_threshold: Option<f64>,
    /// `watchdog.minutesWithoutConnections` in the spec.
    pub minutes_without_connections: u32,
    /// The margin over the idle peak, in percent.
    pub margin_percent: f64,
    /// The proposal; `None` when there is no idle minute to base it on.
    pub proposed_threshold: Option<u64>,
    /// What makes the proposal doubtful.
    pub warnings: Vec<String>,
    /// Every minute an instance ran or a lookup happened, as classified.
    pub samples: Vec<Period>,
}

/// Reads the server's history and proposes a threshold.
pub async fn calibrate(
    p: &Prepared,
    rec: &Reconciler,
    server: &str,
    opts: CalibrateOptions,
) -> Result<Calibration> {
    if !(1..=MAX_DAYS).contains(&opts.days) {
        bail!(
            "--days must be 1 to {MAX_DAYS}: CloudWatch keeps one-minute data for {MAX_DAYS} days"
        );
    }
    if !(opts.margin_percent.is_finite() && opts.margin_percent >= 0.0) {
        bail!("--margin must be a percentage of 0 or more");
    }
    let loaded = p
        .set
        .servers
        .iter()
        .find(|s| s.doc.metadata.name == server)
        .ok_or_else(|| {
            let names: Vec<&str> = p
                .set
                .servers
                .iter()
                .map(|s| s.doc.metadata.name.as_str())
                .collect();
            anyhow!(
                "no server `{server}` in the specs (servers: {})",
                names.join(", ")
            )
        })?;
    let doc = &loaded.doc;
    let base = &base_of(&p.set, doc)
        .ok_or_else(|| anyhow!("server `{server}` has no Base in the input"))?
        .doc;
    let region = base.spec.region.clone();
    let mut activity = IdleActivity::for_server(base, doc);
    resolve_file_systems(p, rec, &mut activity).await?;

    let period = i64::from(IDLE_PERIOD_SECONDS);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs() as i64;
    let end = now - now % period;
    let start = end - i64::from(opts.days) * 86_400;
    let series = fetch(p, &region, &activity, start, end).await?;

    let mut periods: Vec<Period> = Vec::new();
    let mut epochs: Vec<i64> = series.values().flat_map(|s| s.keys().copied()).collect();
    epochs.sort_unstable();
    epochs.dedup();
    for epoch in epochs {
        let at = |id: &str| series.get(id).and_then(|s| s.get(&epoch)).copied();
        let sample = ActivitySample {
            network_in: at(&activity.network_in.id),
            dns_hits: at(&activity.dns_hits.id),
            volume_reads: activity.volume_reads.iter().map(|m| at(&m.id)).collect(),
        };
        periods.push(Period {
            epoch,
            timestamp: rfc3339(epoch),
            activity: activity.activity(&sample),
            dns_hits: sample.dns_hits,
            class: PeriodClass::Asleep,
        });
    }
    let classification = classify(&mut periods);
    let wd = &doc.spec.watchdog;
    let mut warnings = Vec::new();
    let running = periods.iter().filter(|p| p.activity.is_some()).count();
    let idle_count = classification.idle.map_or(0, |s| s.periods);
    let proposed = classification
        .idle
        .map(|s| proposed_threshold(s.max, opts.margin_percent));
    if running == 0 {
        warnings.push(format!(
            "no minute with the instance running in the last {} day(s): nothing to calibrate \
             on; wake the server and let it idle, then try again",
            opts.days
        ));
    } else if idle_count < MIN_IDLE_PERIODS {
        warnings.push(format!(
            "only {idle_count} idle minute(s) (fewer than {MIN_IDLE_PERIODS}): too little data, \
             the proposal is a guess"
        ));
    }
    if running > 0 && classification.play.is_none() {
        warnings.push(
            "the traffic forms one group only: it is taken as idle; if players were on \
             throughout, the proposal is too high and the server would never sleep"
                .to_string(),
        );
    }
    if let (Some(t), Some(play)) = (proposed, classification.play) {
        if t as f64 >= play.min {
            warnings.push(format!(
                "the proposal ({t} B/s) reaches the lowest play minute ({:.0} B/s): a smaller \
                 --margin keeps quiet play sessions awake",
                play.min
            ));
        }
    }
    let deployed_threshold = deployed_threshold(p, base, server, &region).await?;
    Ok(Calibration {
        server: server.to_string(),
        region,
        from: rfc3339(start),
        to: rfc3339(end),
        period_seconds: IDLE_PERIOD_SECONDS,
        periods: usize::try_from((end - start) / period).unwrap_or(0),
        running_periods: running,
        wake_periods: periods
            .iter()
            .filter(|p| p.class == PeriodClass::Wake)
            .count(),
        days: day_peaks(&periods),
        classification,
        current_threshold: wd.threshold,
        deployed_threshold,
        minutes_without_connections: wd.minutes_without_connections,
        margin_percent: opts.margin_percent,
        proposed_threshold: proposed,
        warnings,
        samples: periods
            .into_iter()
            .filter(|p| p.activity.is_some() || p.dns_hits.is_some())
            .collect(),
    })
}

/// Puts the server's file system ids, as the provider finds them, into the volume metrics.
async fn resolve_file_systems(
    p: &Prepared,
    rec: &Reconciler,
    activity: &mut IdleActivity,
) -> Result<()> {
    let mut wanted: Vec<ResourceId> = Vec::new();
    for metric in &activity.volume_reads {
        for (_, value) in &metric.dimensions {
            reconciler_engine::model::visit_refs(value, "", &mut |_, r| wanted.push(r.id));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    // The file systems and what they depend on: enough for the provider to find them.
    let mut ids: BTreeSet<ResourceId> = wanted.iter().cloned().collect();
    for id in &wanted {
        ids.extend(p.graph.transitive_dependencies(id));
    }
    let resources: Vec<DesiredResource> = ids
        .iter()
        .filter_map(|id| p.graph.get(id).cloned())
        .collect();
    let graph = DesiredGraph::new(resources)?;
    let observed = rec.observe(&graph).await?;
    let unresolved =
        activity.resolve(&|r| observed.get(&r.id).and_then(|o| o.output(&r.attr)).cloned());
    if let Some(r) = unresolved.first() {
        bail!(
            "`{}` does not exist in AWS: apply the server before calibrating it",
            r.id
        );
    }
    Ok(())
}

/// Every datapoint of the raw metrics between `start` and `end`, by query id and epoch.
async fn fetch(
    p: &Prepared,
    region: &str,
    activity: &IdleActivity,
    start: i64,
    end: i64,
) -> Result<BTreeMap<String, BTreeMap<i64, f64>>> {
    let cloudwatch = p.session.pool.cloudwatch(region);
    let mut queries = Vec::new();
    for m in activity.metrics() {
        let mut metric = Metric::builder()
            .namespace(&m.namespace)
            .metric_name(&m.metric_name);
        for (name, value) in &m.dimensions {
            let value = value
                .as_str()
                .ok_or_else(|| anyhow!("dimension {name} of {} is not resolved", m.id))?;
            metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
        }
        queries.push(
            MetricDataQuery::builder()
                .id(&m.id)
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric.build())
                        .period(IDLE_PERIOD_SECONDS as i32)
                        .stat(m.stat)
                        .build(),
                )
                .return_data(true)
                .build(),
        );
    }
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = cloudwatch
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token.take())
            .send()
            .await
            .context("GetMetricData")?;
        for result in page.metric_data_results() {
            let Some(id) = result.id() else { continue };
            let series = out.entry(id.to_string()).or_default();
            for (t, v) in result.timestamps().iter().zip(result.values()) {
                series.insert(t.secs(), *v);
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The threshold of the deployed idle alarm.
async fn deployed_threshold(
    p: &Prepared,
    base: &reconciler_spec::BaseDocument,
    server: &str,
    region: &str,
) -> Result<Option<f64>> {
    let name = ServerNames::new(&base.metadata.name, server).name("idle");
    let out = p
        .session
        .pool
        .cloudwatch(region)
        .describe_alarms()
        .alarm_names(&name)
        .send()
        .await
        .with_context(|| format!("DescribeAlarms {name}"))?;
    Ok(out.metric_alarms().first().and_then(|a| a.threshold()))
}

fn rfc3339(epoch: i64) -> String {
    DateTime::from_secs(epoch)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| epoch.to_string())
}

fn bytes(v: f64) -> String {
    format!("{v:.0}")
}

/// The report for a terminal.
pub fn calibration_text(c: &Calibration) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Server {} ({}): {} to {}, {}-second periods\n",
        c.server, c.region, c.from, c.to, c.period_seconds
    ));
    out.push_str(&format!(
        "  running: {} of {} minutes; with a DNS lookup (left out): {}\n",
        c.running_periods, c.periods, c.wake_periods
    ));
    let cl = &c.classification;
    if let Some(s) = cl.idle {
        out.push_str(&format!(
            "  idle:    {} minutes, median {} B/s, p95 {} B/s, peak {} B/s\n",
            s.periods,
            bytes(s.median),
            bytes(s.p95),
            bytes(s.max)
        ));
    }
    if let Some(s) = cl.play {
        out.push_str(&format!(
            "  play:    {} minutes, lowest {} B/s, median {} B/s, peak {} B/s\n",
            s.periods,
            bytes(s.min),
            bytes(s.median),
            bytes(s.max)
        ));
    }
    match (cl.split, cl.separation) {
        (Some(split), Some(d)) => out.push_str(&format!(
            "  split:   idle at or below {} B/s (Otsu's method on log traffic; separation D = {d:.1})\n",
            bytes(split)
        )),
        (None, Some(d)) => out.push_str(&format!(
            "  split:   none (separation D = {d:.1}, not above {SEPARATION}): one group\n"
        )),
        _ => {}
    }
    if !c.days.is_empty() {
        out.push_str(&format!(
            "\n{:<12} {:>8} {:>8} {:>12} {:>12}\n",
            "DAY (UTC)", "RUNNING", "IDLE", "IDLE PEAK", "PEAK"
        ));
        for d in &c.days {
            let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), bytes);
            out.push_str(&format!(
                "{:<12} {:>8} {:>8} {:>12} {:>12}\n",
                d.date,
                d.running_minutes,
                d.idle_minutes,
                show(d.idle_peak),
                show(d.peak)
            ));
        }
        out.push('\n');
    }
    let deployed = c.deployed_threshold.map_or_else(
        || "not deployed".to_string(),
        |t| format!("{} B/s", bytes(t)),
    );
    out.push_str(&format!(
        "Current threshold:  {} B/s in the spec (deployed: {deployed}), over {} idle minutes\n",
        c.current_threshold, c.minutes_without_connections
    ));
    match (c.proposed_threshold, cl.idle) {
        (Some(t), Some(s)) => out.push_str(&format!(
            "Proposed threshold: {t} B/s (idle peak {} B/s + {}%)\n",
            bytes(s.max),
            c.margin_percent
        )),
        _ => out.push_str("Proposed threshold: none (no idle minute)\n"),
    }
    for w in &c.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(minute: i64, activity: Option<f64>, dns: Option<f64>) -> Period {
        let epoch = 1_700_000_000 - 1_700_000_000 % 60 + minute * 60;
        Period {
            epoch,
            timestamp: rfc3339(epoch),
            activity,
            dns_hits: dns,
            class: PeriodClass::Asleep,
        }
    }

    /// Idle chatter of 80 to 120 B/s, play of 20 to 40 kB/s, a wake lookup and asleep minutes.
    fn history() -> Vec<Period> {
        let mut out = Vec::new();
        let mut minute = 0;
        for i in 0..300 {
            out.push(period(minute, Some(80.0 + (i % 41) as f64), None));
            minute += 1;
        }
        out.push(period(minute, Some(5000.0), Some(1001.0)));
        minute += 1;
        for i in 0..120 {
            out.push(period(minute, Some(20_000.0 + (i * 170) as f64), None));
            minute += 1;
        }
        for _ in 0..30 {
            out.push(period(minute, None, None));
            minute += 1;
        }
        out
    }

    #[test]
    fn idle_and_play_are_told_apart_and_lookups_left_out() {
        let mut periods = history();
        let c = classify(&mut periods);
        let idle = c.idle.unwrap();
        let play = c.play.unwrap();
        assert_eq!(idle.periods, 300);
        assert_eq!(idle.max, 120.0);
        assert_eq!(idle.min, 80.0);
        assert_eq!(play.periods, 120);
        assert_eq!(play.min, 20_000.0);
        assert_eq!(c.split, Some(120.0));
        assert!(c.separation.unwrap() > SEPARATION, "{c:?}");
        assert_eq!(periods[300].class, PeriodClass::Wake);
        assert_eq!(periods.last().unwrap().class, PeriodClass::Asleep);
        assert_eq!(proposed_threshold(idle.max, 20.0), 144);
    }

    #[test]
    fn one_group_only_is_all_idle() {
        // Noise around 100 B/s: Otsu always finds a split (and the halves of an even spread
        // pass D), but the histogram has a single hill.
        let mut periods: Vec<Period> = (0..200)
            .map(|i| period(i, Some(90.0 + ((i * 37) % 21) as f64), None))
            .collect();
        let c = classify(&mut periods);
        assert!(c.play.is_none(), "{c:?}");
        assert!(c.split.is_none());
        assert!(c.separation.is_some(), "{c:?}");
        assert_eq!(c.idle.unwrap().periods, 200);
        assert_eq!(c.idle.unwrap().max, 110.0);
    }

    #[test]
    fn a_spread_without_a_valley_is_one_group() {
        // Traffic spread evenly over two orders of magnitude (log-uniform): Otsu splits it
        // and D passes, but the histogram is flat.
        let mut periods: Vec<Period> = (0..400)
            .map(|i| period(i, Some(10f64.powf(1.0 + f64::from(i as i32) / 200.0)), None))
            .collect();
        let c = classify(&mut periods);
        assert!(c.separation.unwrap() > SEPARATION, "{c:?}");
        assert!(c.play.is_none(), "{c:?}");
        assert_eq!(c.idle.unwrap().periods, 400);
    }

    #[test]
    fn nothing_running_gives_no_groups() {
        let mut periods: Vec<Period> = (0..10).map(|i| period(i, None, None)).collect();
        let c = classify(&mut periods);
        assert_eq!(c.idle, None);
        assert_eq!(c.play, None);
        assert_eq!(c.separation, None);
        // One distinct value: no split possible, all idle.
        let mut periods: Vec<Period> = (0..10).map(|i| period(i, Some(0.0), None)).collect();
        let c = classify(&mut periods);
        assert_eq!(c.idle.unwrap().periods, 10);
        assert_eq!(c.separation, None);
    }

    #[test]
    fn day_peaks_group_by_utc_date() {
        let mut periods = history();
        classify(&mut periods);
        let days = day_peaks(&periods);
        let running: usize = days.iter().map(|d| d.running_minutes).sum();
        assert_eq!(running, 421);
        assert_eq!(
            days.iter().filter_map(|d| d.idle_peak).fold(0.0, f64::max),
            120.0
        );
        assert_eq!(
            days.iter().filter_map(|d| d.peak).fold(0.0, f64::max),
            20_000.0 + 119.0 * 170.0
        );
    }

    #[test]
    fn the_proposal_rounds_up_and_is_positive() {
        assert_eq!(proposed_threshold(100.0, 20.0), 120);
        assert_eq!(proposed_threshold(100.2, 0.0), 101);
        assert_eq!(proposed_threshold(0.0, 20.0), 1);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 95.0), 4.0);
    }
}
