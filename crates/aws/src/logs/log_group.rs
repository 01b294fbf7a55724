//! `logs.log-group` ([`reconciler_kinds::logs::LogGroup`]): found by name, fifty names a
//! `DescribeLogGroups` call; tags from the region's tag index.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::logs::LogGroup;
use serde_json::json;

use super::{bare_arn, by_identifiers, list, read_tags};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, updated};

/// The client of log groups.
pub struct LogGroupClient {
    pool: Arc<ClientPool>,
}

impl LogGroupClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        LogGroupClient { pool }
    }
}

#[async_trait]
impl KindClient<LogGroup> for LogGroupClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let logs = self.pool.logs(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for group in by_identifiers(&logs, by_name.keys().copied()).await? {
            let Some(d) = group.log_group_name().and_then(|n| by_name.get(n)) else {
                continue;
            };
            // The prefix listings of unusual names (`/aws/x` next to `/aws/lambda/y`) overlap.
            if !seen.insert(d.name.as_str()) {
                continue;
            }
            let Some(arn) = bare_arn(&group) else {
                continue;
            };
            found.push((*d, arn, group.retention_in_days()));
        }
        let objects: Vec<(&DesiredResource, String)> =
            found.iter().map(|(d, arn, _)| (*d, arn.clone())).collect();
        let tags = tagging::tags_of(&self.pool, region, &objects, |arn| {
            read_tags(logs.clone(), arn)
        })
        .await?;
        Ok(found
            .into_iter()
            .zip(tags)
            .map(|((d, arn, retention), tags)| {
                util::observed(
                    d,
                    json!({ "retentionInDays": retention }),
                    [("arn", json!(arn)), ("name", json!(d.name))],
                    tags,
                )
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &LogGroup,
    ) -> Result<Observed, ProviderError> {
        let logs = self.pool.logs(&desired.region);
        let name = desired.name.as_str();
        let tags: HashMap<String, String> = desired
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        logs.create_log_group()
            .log_group_name(name)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateLogGroup {name}"), e))?;
        // Left without a retention policy if this fails: the retry meets
        // `ResourceAlreadyExistsException`, re-observes and sets it as an update.
        put_retention(&logs, name, props.retention_in_days).await?;
        // One read for the ARN (it carries the account id).
        let group = list(&logs, name)
            .await?
            .into_iter()
            .find(|g| g.log_group_name() == Some(name))
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "CreateLogGroup {name}: the new group is not listed yet"
                ))
            })?;
        let arn = bare_arn(&group).ok_or_else(|| {
            ProviderError::transient(format!("DescribeLogGroups {name}: no ARN in the answer"))
        })?;
        Ok(util::observed(
            desired,
            json!({ "retentionInDays": props.retention_in_days }),
            [("arn", json!(arn)), ("name", json!(name))],
            desired.tags.clone(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &LogGroup,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The retention is the only property.
        let logs = self.pool.logs(&desired.region);
        put_retention(&logs, &desired.name, props.retention_in_days).await?;
        Ok(updated(observed, desired))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let logs = self.pool.logs(&desired.region);
        let name = desired.name.as_str();
        let arn = util::output(desired, observed, "arn")?;
        if !set.is_empty() {
            logs.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(set.clone().into_iter().collect()))
                .send()
                .await
                .map_err(|e| classify(&format!("TagResource {name}"), e))?;
        }
        if !remove.is_empty() {
            logs.untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(|e| classify(&format!("UntagResource {name}"), e))?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        self.pool
            .logs(&desired.region)
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteLogGroup {name}"), e))?;
        Ok(())
    }
}

async fn put_retention(
    logs: &aws_sdk_cloudwatchlogs::Client,
    name: &str,
    days: i32,
) -> Result<(), ProviderError> {
    logs.put_retention_policy()
        .log_group_name(name)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| classify(&format!("PutRetentionPolicy {name}"), e))?;
    Ok(())
}
