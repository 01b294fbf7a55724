//! `cloudwatch.alarm` ([`reconciler_kinds::cloudwatch::Alarm`]), a metric-math alarm by name:
//! `DescribeAlarms` a hundred names a call; tags from the region's tag index. Outputs `arn`,
//! `name`.
//!
//! `OKActions`, `InsufficientDataActions` and `ActionsEnabled` are not managed; because
//! `PutMetricAlarm` replaces the whole alarm, an update sends them back as observed so that
//! they survive. The alarm's state belongs to the running system: it is never written and
//! never compared.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, MetricDataQuery, MetricStat, Tag,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::cloudwatch::Alarm;
use serde_json::{json, Map, Value};

use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, missing, updated};

/// Alarm names per `DescribeAlarms` call (the API's limit).
const ALARM_NAMES_PER_CALL: usize = 100;

/// The client of alarms.
pub struct AlarmClient {
    pool: Arc<ClientPool>,
}

/// One metric-math query of the desired `metrics` as the SDK wants it.
fn query(desired: &DesiredResource, q: &Value) -> Result<MetricDataQuery, ProviderError> {
    let field = |key: &str| missing(desired, &format!("metrics/{key}"));
    let id = q
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| field("id"))?;
    let mut b = MetricDataQuery::builder()
        .id(id)
        .set_label(q.get("label").and_then(Value::as_str).map(str::to_string))
        .set_return_data(q.get("returnData").and_then(Value::as_bool));
    if let Some(expression) = q.get("expression").and_then(Value::as_str) {
        b = b.expression(expression).set_period(
            q.get("period")
                .and_then(Value::as_i64)
                .and_then(|p| i32::try_from(p).ok()),
        );
    } else {
        let metric = q.get("metric").ok_or_else(|| field("metric"))?;
        let mut m = aws_sdk_cloudwatch::types::Metric::builder()
            .namespace(
                metric
                    .get("namespace")
                    .and_then(Value::as_str)
                    .ok_or_else(|| field("metric/namespace"))?,
            )
            .metric_name(
                metric
                    .get("metricName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| field("metric/metricName"))?,
            );
        for d in metric
            .get("dimensions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m = m.dimensions(
                Dimension::builder()
                    .name(
                        d.get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| field("metric/dimensions/name"))?,
                    )
                    .value(
                        d.get("value")
                            .and_then(Value::as_str)
                            .ok_or_else(|| field("metric/dimensions/value"))?,
                    )
                    .build(),
            );
        }
        let period = q
            .get("period")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| field("period"))?;
        let stat = q
            .get("stat")
            .and_then(Value::as_str)
            .ok_or_else(|| field("stat"))?;
        b = b.metric_stat(
            MetricStat::builder()
                .metric(m.build())
                .period(period)
                .stat(stat)
                .build(),
        );
    }
    Ok(b.build())
}

/// A query as AWS holds it, in the desired shape: `{id, expression | metric, period, stat,
/// label, returnData}`. `label` only when AWS has one; `returnData` defaults to true, as AWS
/// documents.
fn query_value(q: &MetricDataQuery) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(q.id()));
    if let Some(expression) = q.expression() {
        out.insert("expression".into(), json!(expression));
        if let Some(period) = q.period() {
            out.insert("period".into(), json!(period));
        }
    }
    if let Some(stat) = q.metric_stat() {
        let metric = stat.metric();
        let dimensions: Vec<Value> = metric
            .map(|m| m.dimensions())
            .unwrap_or_default()
            .iter()
            .map(|d| json!({ "name": d.name(), "value": d.value() }))
            .collect();
        out.insert(
            "metric".into(),
            json!({
                "namespace": metric.and_then(|m| m.namespace()),
                "metricName": metric.and_then(|m| m.metric_name()),
                "dimensions": dimensions,
            }),
        );
        out.insert("period".into(), json!(stat.period()));
        out.insert("stat".into(), json!(stat.stat()));
    }
    if let Some(label) = q.label() {
        out.insert("label".into(), json!(label));
    }
    out.insert("returnData".into(), json!(q.return_data().unwrap_or(true)));
    Value::Object(out)
}

/// An alarm in the desired shape, plus the unmanaged settings an update must send back.
fn alarm_properties(alarm: &MetricAlarm) -> Value {
    json!({
        "alarmDescription": alarm.alarm_description(),
        "metrics": alarm.metrics().iter().map(query_value).collect::<Vec<_>>(),
        "comparisonOperator": alarm.comparison_operator().map(ComparisonOperator::as_str),
        "threshold": alarm.threshold(),
        "evaluationPeriods": alarm.evaluation_periods(),
        "datapointsToAlarm": alarm.datapoints_to_alarm(),
        "treatMissingData": alarm.treat_missing_data(),
        "alarmActions": alarm.alarm_actions(),
        "stateValue": alarm.state_value().map(|s| s.as_str()),
        "okActions": alarm.ok_actions(),
        "insufficientDataActions": alarm.insufficient_data_actions(),
        "actionsEnabled": alarm.actions_enabled(),
    })
}

fn sdk_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

async fn read_tags(
    cw: aws_sdk_cloudwatch::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = cw
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| classify(&format!("ListTagsForResource {arn}"), e))?;
    Ok(out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect())
}

/// The actions of the current alarm's observation under `key` (for an update to send back).
fn kept_actions(keep: Option<&Observed>, key: &str) -> Option<Vec<String>> {
    serde_json::from_value(keep?.properties.get(key)?.clone()).ok()
}

impl AlarmClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        AlarmClient { pool }
    }

    /// The metric alarms called `names` that exist.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<MetricAlarm>, ProviderError> {
        let cw = self.pool.cloudwatch(region);
        let mut alarms = Vec::new();
        for chunk in names.chunks(ALARM_NAMES_PER_CALL) {
            let pages: Vec<_> = cw
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("DescribeAlarms", e))?;
            for page in pages {
                alarms.extend(page.metric_alarms().iter().cloned());
            }
        }
        Ok(alarms)
    }

    /// Sends the full definition. `keep` is the current alarm's observation (for an update),
    /// whose unmanaged actions and switch are sent back unchanged.
    async fn put(
        &self,
        desired: &DesiredResource,
        props: &Alarm,
        keep: Option<&Observed>,
    ) -> Result<(), ProviderError> {
        let cw = self.pool.cloudwatch(&desired.region);
        let name = desired.name.as_str();
        let metrics = props
            .metrics
            .iter()
            .map(|q| query(desired, q))
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = props
            .threshold
            .as_f64()
            .ok_or_else(|| missing(desired, "threshold"))?;
        let actions = props
            .alarm_actions
            .iter()
            .map(|a| a.get("alarmActions").cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let mut call = cw
            .put_metric_alarm()
            .alarm_name(name)
            .alarm_description(&props.alarm_description)
            .set_metrics(Some(metrics))
            .comparison_operator(ComparisonOperator::from(props.comparison_operator.as_str()))
            .threshold(threshold)
            .evaluation_periods(props.evaluation_periods)
            .datapoints_to_alarm(props.datapoints_to_alarm)
            .treat_missing_data(&props.treat_missing_data)
            .set_alarm_actions(Some(actions))
            .set_ok_actions(kept_actions(keep, "okActions"))
            .set_insufficient_data_actions(kept_actions(keep, "insufficientDataActions"))
            .set_actions_enabled(
                keep.and_then(|o| o.properties.get("actionsEnabled"))
                    .and_then(Value::as_bool),
            );
        // Tags given to `PutMetricAlarm` only apply when it creates the alarm; an update
        // changes them with `TagResource`/`UntagResource`.
        if keep.is_none() && !desired.tags.is_empty() {
            call = call.set_tags(Some(sdk_tags(&desired.tags)));
        }
        call.send()
            .await
            .map_err(|e| classify(&format!("PutMetricAlarm {name}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl KindClient<Alarm> for AlarmClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut observed = Vec::new();
        for alarm in self.describe(region, &names).await? {
            let (Some(d), Some(arn)) = (
                alarm.alarm_name().and_then(|n| by_name.get(n)),
                alarm.alarm_arn(),
            ) else {
                continue;
            };
            observed.push(util::observed(
                d,
                alarm_properties(&alarm),
                [("arn", json!(arn)), ("name", json!(d.name))],
                IndexMap::new(),
            ));
        }
        let cw = self.pool.cloudwatch(region);
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(cw.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Alarm,
    ) -> Result<Observed, ProviderError> {
        self.put(desired, props, None).await?;
        // One read for the ARN and the alarm as stored.
        let alarm = self
            .describe(&desired.region, std::slice::from_ref(&desired.name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "PutMetricAlarm {}: the new alarm is not listed yet",
                    desired.name
                ))
            })?;
        let arn = alarm.alarm_arn().ok_or_else(|| {
            ProviderError::transient(format!(
                "DescribeAlarms {}: no ARN in the answer",
                desired.name
            ))
        })?;
        Ok(util::observed(
            desired,
            alarm_properties(&alarm),
            [("arn", json!(arn)), ("name", json!(desired.name))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Alarm,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // `PutMetricAlarm` replaces the whole alarm, whatever changed.
        self.put(desired, props, Some(observed)).await?;
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let cw = self.pool.cloudwatch(&desired.region);
        let arn = util::output(desired, observed, "arn")?;
        if !set.is_empty() {
            cw.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(sdk_tags(set)))
                .send()
                .await
                .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
        }
        if !remove.is_empty() {
            cw.untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        self.pool
            .cloudwatch(&desired.region)
            .delete_alarms()
            .alarm_names(&desired.name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteAlarms {}", desired.name), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use reconciler_engine::provider::ErrorClass;

    use super::*;

    fn desired() -> DesiredResource {
        DesiredResource::new(
            <Alarm as reconciler_kinds::Properties>::KIND,
            "x",
            "eu-west-1",
            "rc-x",
        )
    }

    #[test]
    fn queries_round_trip_in_the_desired_shape() {
        let d = desired();
        let metrics = json!([
            { "id": "e", "expression": "m / PERIOD(m)", "label": "rate", "returnData": true },
            { "id": "m", "metric": { "namespace": "AWS/EC2", "metricName": "NetworkIn",
                "dimensions": [{ "name": "AutoScalingGroupName", "value": "rc-x" }] },
              "period": 60, "stat": "Sum", "returnData": false }
        ]);
        let back: Vec<Value> = metrics
            .as_array()
            .unwrap()
            .iter()
            .map(|q| query_value(&query(&d, q).unwrap()))
            .collect();
        assert_eq!(Value::Array(back), metrics);
    }

    #[test]
    fn a_query_without_a_metric_or_expression_is_a_render_mismatch() {
        let err = query(&desired(), &json!({ "id": "m", "period": 60 })).unwrap_err();
        assert_eq!(err.class, ErrorClass::Terminal);
        assert!(err.message.contains("metrics/metric"), "{err}");
    }

    #[test]
    fn return_data_defaults_to_true_as_aws_documents() {
        let q = MetricDataQuery::builder().id("e").expression("1").build();
        assert_eq!(query_value(&q)["returnData"], json!(true));
    }
}
