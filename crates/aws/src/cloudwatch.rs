//! CloudWatch alarms and dashboards.
//!
//! Observation cost, per region:
//! - alarms: one `DescribeAlarms` per 100 names (pages included); tags from the region's tag
//!   index (see [`crate::tagging`]), `ListTagsForResource` per alarm only where it disagrees;
//! - dashboards: one paginated `ListDashboards` with the names' common prefix, plus one
//!   `GetDashboard` per existing dashboard, because only that call returns the body.
//!
//! `PutMetricAlarm` and `PutDashboard` are upserts that replace the whole definition, so a
//! create and an update are the same call carrying everything. An alarm's state belongs to the
//! running system: it is never written and never compared.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, DashboardValidationMessage, Dimension, MetricAlarm, MetricDataQuery,
    MetricStat, Tag,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{ErrorClass, KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Map, Value};

use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::{ensure_managed, tag_delta};
use crate::util::{self, missing, touches_tags};
use crate::util::{read_all, updated};

/// Alarm names per `DescribeAlarms` call (the API's limit).
const ALARM_NAMES_PER_CALL: usize = 100;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(AlarmClient { pool: pool.clone() }),
        Arc::new(DashboardClient { pool: pool.clone() }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Alarms.
// ---------------------------------------------------------------------------------------------

/// `cloudwatch.alarm`, by alarm name: `alarmDescription`, `metrics` (metric-math queries),
/// `comparisonOperator`, `threshold`, `evaluationPeriods`, `datapointsToAlarm`,
/// `treatMissingData`, `alarmActions`. Outputs `arn`, `name`.
///
/// `OKActions`, `InsufficientDataActions` and `ActionsEnabled` are not managed; because
/// `PutMetricAlarm` replaces the whole alarm, an update sends them back as observed so that
/// they survive.
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

fn cw_tags(tags: &IndexMap<String, String>) -> Vec<Tag> {
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

fn alarm_arn(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("arn")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an ARN", desired.id)))
}

impl AlarmClient {
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
        keep: Option<&Observed>,
    ) -> Result<(), ProviderError> {
        let cw = self.pool.cloudwatch(&desired.region);
        let name = desired.name.as_str();
        let p = &desired.properties;
        let metrics = p
            .get("metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| missing(desired, "metrics"))?
            .iter()
            .map(|q| query(desired, q))
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = p
            .get("threshold")
            .and_then(Value::as_f64)
            .ok_or_else(|| missing(desired, "threshold"))?;
        let int = |key: &str| -> Result<Option<i32>, ProviderError> {
            match p.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| missing(desired, key)),
            }
        };
        let kept = |key: &str| -> Option<Vec<String>> {
            keep.and_then(|o| o.properties.get(key))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
        };
        let mut call = cw
            .put_metric_alarm()
            .alarm_name(name)
            .set_alarm_description(util::opt_str(desired, "alarmDescription").map(str::to_string))
            .set_metrics(Some(metrics))
            .comparison_operator(ComparisonOperator::from(util::str_prop(
                desired,
                "comparisonOperator",
            )?))
            .threshold(threshold)
            .evaluation_periods(
                int("evaluationPeriods")?.ok_or_else(|| missing(desired, "evaluationPeriods"))?,
            )
            .set_datapoints_to_alarm(int("datapointsToAlarm")?)
            .set_treat_missing_data(util::opt_str(desired, "treatMissingData").map(str::to_string))
            .set_alarm_actions(Some(util::str_list(desired, "alarmActions")))
            .set_ok_actions(kept("okActions"))
            .set_insufficient_data_actions(kept("insufficientDataActions"))
            .set_actions_enabled(
                keep.and_then(|o| o.properties.get("actionsEnabled"))
                    .and_then(Value::as_bool),
            );
        // Tags given to `PutMetricAlarm` only apply when it creates the alarm; an update
        // changes them with `TagResource`/`UntagResource`.
        if keep.is_none() && !desired.tags.is_empty() {
            call = call.set_tags(Some(cw_tags(&desired.tags)));
        }
        call.send()
            .await
            .map_err(|e| classify(&format!("PutMetricAlarm {name}"), e))?;
        Ok(())
    }
}

#[async_trait]
impl ResourceClient for AlarmClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::ALARM)
    }

    fn spec(&self) -> KindSpec {
        // The state is the running system's; render never sets it, and declaring it keeps any
        // future desired value from being "repaired". AWS keeps the actions as a set.
        KindSpec::new()
            .runtime_owned("/stateValue")
            .unordered("/alarmActions")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut found = Vec::new();
        for alarm in self.describe(region, &names).await? {
            let (Some(d), Some(arn)) = (
                alarm.alarm_name().and_then(|n| by_name.get(n)),
                alarm.alarm_arn(),
            ) else {
                continue;
            };
            found.push((*d, arn.to_string(), alarm_properties(&alarm)));
        }
        let cw = self.pool.cloudwatch(region);
        let objects: Vec<(&DesiredResource, String)> =
            found.iter().map(|(d, arn, _)| (*d, arn.clone())).collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_tags(cw.clone(), arn)
        })
        .await?;
        Ok(found
            .into_iter()
            .zip(tags)
            .map(|((d, arn, properties), tags)| {
                util::observed(
                    d,
                    properties,
                    [("arn", json!(arn)), ("name", json!(d.name))],
                    tags,
                )
            })
            .collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        self.put(desired, None).await?;
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
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        if changes.iter().any(|c| !c.is_tag()) {
            self.put(desired, Some(observed)).await?;
        }
        if touches_tags(changes) {
            let cw = self.pool.cloudwatch(&desired.region);
            let arn = alarm_arn(desired, observed)?;
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                cw.tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(cw_tags(&set)))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
            }
            if !remove.is_empty() {
                cw.untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
            }
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let cw = self.pool.cloudwatch(&desired.region);
        cw.delete_alarms()
            .alarm_names(&desired.name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteAlarms {}", desired.name), e))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboards.
// ---------------------------------------------------------------------------------------------

/// `cloudwatch.dashboard`, by dashboard name: `body` (a JSON object, sent as text). Untagged.
/// Outputs `arn`, `name`.
pub struct DashboardClient {
    pool: Arc<ClientPool>,
}

/// Reads one dashboard's body; `None` when it went away since the listing.
async fn read_dashboard(
    cw: aws_sdk_cloudwatch::Client,
    desired: DesiredResource,
) -> Result<Option<Observed>, ProviderError> {
    let name = desired.name.as_str();
    let out = match cw.get_dashboard().dashboard_name(name).send().await {
        Ok(out) => out,
        Err(e) => {
            let err = classify(&format!("GetDashboard {name}"), e);
            if err.class == ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let body = out
        .dashboard_body()
        .map(|b| serde_json::from_str(b).unwrap_or_else(|_| Value::String(b.to_string())))
        .unwrap_or(Value::Null);
    Ok(Some(util::observed(
        &desired,
        json!({ "body": body }),
        [("arn", json!(out.dashboard_arn())), ("name", json!(name))],
        IndexMap::new(),
    )))
}

/// A terminal error listing every validation message `PutDashboard` answered.
fn check_validation(
    name: &str,
    messages: &[DashboardValidationMessage],
) -> Result<(), ProviderError> {
    if messages.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = messages
        .iter()
        .map(|m| {
            format!(
                "{}: {}",
                m.data_path().unwrap_or("/"),
                m.message().unwrap_or_default()
            )
        })
        .collect();
    Err(ProviderError::terminal(format!(
        "PutDashboard {name}: the body did not validate: {}",
        listed.join("; ")
    )))
}

impl DashboardClient {
    /// `PutDashboard` with the desired body. AWS answers validation problems in the response
    /// rather than as an error; any message makes this a terminal error (a warning means the
    /// dashboard was stored but parts of it may not render, which render must fix).
    async fn put(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let cw = self.pool.cloudwatch(&desired.region);
        let name = desired.name.as_str();
        let body = desired
            .properties
            .get("body")
            .filter(|b| b.is_object())
            .ok_or_else(|| missing(desired, "body"))?;
        let text = crate::documents::document_text(desired, body)?;
        let out = cw
            .put_dashboard()
            .dashboard_name(name)
            .dashboard_body(text)
            .send()
            .await
            .map_err(|e| classify(&format!("PutDashboard {name}"), e))?;
        check_validation(name, out.dashboard_validation_messages())?;
        // One read for the ARN and the body as stored.
        read_dashboard(cw, desired.clone()).await?.ok_or_else(|| {
            ProviderError::eventual_consistency(format!(
                "PutDashboard {name}: the dashboard is not readable yet"
            ))
        })
    }
}

#[async_trait]
impl ResourceClient for DashboardClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::DASHBOARD)
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let cw = self.pool.cloudwatch(region);
        // Only `GetDashboard` returns the body, one dashboard per call, and it answers
        // `ResourceNotFound` for a missing one: a listing first would only add a call.
        let reads = desired
            .iter()
            .map(|d| read_dashboard(cw.clone(), d.clone()))
            .collect();
        Ok(read_all(reads).await?.into_iter().flatten().collect())
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        self.put(desired).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        if changes.iter().any(|c| !c.is_tag()) {
            return self.put(desired).await;
        }
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let cw = self.pool.cloudwatch(&desired.region);
        cw.delete_dashboards()
            .dashboard_names(&desired.name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteDashboards {}", desired.name), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_in_the_desired_shape() {
        let d = DesiredResource::new(kinds::ALARM, "x", "eu-west-1", "rc-x");
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
        let d = DesiredResource::new(kinds::ALARM, "x", "eu-west-1", "rc-x");
        let err = query(&d, &json!({ "id": "m", "period": 60 })).unwrap_err();
        assert_eq!(err.class, ErrorClass::Terminal);
        assert!(err.message.contains("metrics/metric"), "{err}");
    }

    #[test]
    fn dashboard_validation_messages_fail_terminally() {
        assert!(check_validation("rc-x", &[]).is_ok());
        let err = check_validation(
            "rc-x",
            &[DashboardValidationMessage::builder()
                .data_path("/widgets/0")
                .message("Should be an object")
                .build()],
        )
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::Terminal);
        assert!(
            err.message.contains(
                "PutDashboard rc-x: the body did not validate: /widgets/0: Should be an object"
            ),
            "{err}"
        );
    }

    #[test]
    fn return_data_defaults_to_true_as_aws_documents() {
        let q = MetricDataQuery::builder().id("e").expression("1").build();
        assert_eq!(query_value(&q)["returnData"], json!(true));
    }
}
