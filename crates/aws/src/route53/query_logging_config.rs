//! `route53.query-logging-config` ([`reconciler_kinds::route53::QueryLoggingConfig`]), named
//! by its zone's name, logging into a log group of `us-east-1`: every config of the account in
//! one paginated `ListQueryLoggingConfigs`. Outputs `id`. AWS cannot change a config: any
//! change replaces it. Untaggable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::types::QueryLoggingConfig as SdkConfig;
use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::route53::QueryLoggingConfig;
use serde_json::json;

use super::{bare_zone_id, normalise_name, ZoneIndex};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util;

/// The client of query logging configs.
pub struct QueryLoggingConfigClient {
    pool: Arc<ClientPool>,
}

impl QueryLoggingConfigClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        QueryLoggingConfigClient { pool }
    }
}

/// A log group ARN without the `:*` some APIs append, the form of the log group's `arn`
/// output.
fn bare_log_group_arn(arn: &str) -> String {
    arn.strip_suffix(":*").unwrap_or(arn).to_string()
}

fn config_observed(desired: &DesiredResource, id: &str, zone_id: &str, arn: &str) -> Observed {
    util::observed(
        desired,
        json!({
            "hostedZoneId": zone_id,
            "cloudWatchLogsLogGroupArn": bare_log_group_arn(arn),
        }),
        [("id", json!(id))],
        IndexMap::new(),
    )
}

/// Every query logging config of the account. (The `HostedZoneId` filter would cost a call
/// per zone; the emulator even rejects it with `NoSuchHostedZone` for a zone that exists.)
async fn list_query_logging_configs(
    r53: &aws_sdk_route53::Client,
) -> Result<Vec<SdkConfig>, ProviderError> {
    r53.list_query_logging_configs()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListQueryLoggingConfigs", e))
}

/// Whether a config logs to one of the reconciler's query log groups.
fn is_own_query_log(arn: &str) -> bool {
    arn.split_once(":log-group:")
        .is_some_and(|(_, group)| group.starts_with(reconciler_render::wake::QUERY_LOG_PREFIX))
}

/// The zone id of a config whose `hostedZoneId` is written out (not a reference).
fn literal_zone_id(props: &QueryLoggingConfig) -> Option<String> {
    props.hosted_zone_id.known().map(|id| bare_zone_id(id))
}

/// AWS answered `QueryLoggingConfigAlreadyExists`: an earlier attempt whose answer was lost
/// may have made exactly this config, which is then ours; otherwise somebody else's config is
/// on the zone, which waiting or re-observing cannot help.
async fn adopt_or_refuse(
    r53: &aws_sdk_route53::Client,
    desired: &DesiredResource,
    zone_id: &str,
    arn: &str,
    mut err: ProviderError,
) -> Result<Observed, ProviderError> {
    let configs = list_query_logging_configs(r53).await?;
    if let Some(config) = configs.iter().find(|c| {
        bare_zone_id(c.hosted_zone_id()) == zone_id
            && bare_log_group_arn(c.cloud_watch_logs_log_group_arn()) == arn
    }) {
        return Ok(config_observed(desired, config.id(), zone_id, arn));
    }
    err.class = ErrorClass::Terminal;
    err.message = format!(
        "{}; the zone {zone_id} already logs its queries elsewhere and AWS allows \
         one query logging config per zone: delete that config, or use \
         `spec.domain.wakeZone: perServer`",
        err.message
    );
    Err(err)
}

#[async_trait]
impl KindClient<QueryLoggingConfig> for QueryLoggingConfigClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let r53 = self.pool.route53(region);
        // A config whose zone is a reference lives in the reconciler's own zone of that name; a
        // config on a zone given by id (a Base's root zone, shared by its servers) is found by
        // that id.
        let mut wanted = Vec::with_capacity(desired.len());
        for d in desired {
            let props = reconciler_kinds::read::<QueryLoggingConfig>(d)?;
            wanted.push((d, literal_zone_id(&props)));
        }
        let names: HashSet<String> = wanted
            .iter()
            .filter(|(_, zone)| zone.is_none())
            .map(|(d, _)| normalise_name(&d.name))
            .collect();
        let zones = if names.is_empty() {
            HashMap::new()
        } else {
            let index = ZoneIndex::load(&self.pool, &r53).await?;
            index.owned(&r53, &names).await?
        };
        // One listing of every config of the account, filtered here.
        let configs = list_query_logging_configs(&r53).await?;
        Ok(wanted
            .into_iter()
            .filter_map(|(d, zone_id)| {
                let zone_id = match zone_id {
                    Some(id) => id,
                    None => zones.get(&normalise_name(&d.name))?.id.clone(),
                };
                let config = configs
                    .iter()
                    .find(|c| bare_zone_id(c.hosted_zone_id()) == zone_id)?;
                let arn = config.cloud_watch_logs_log_group_arn();
                if !is_own_query_log(arn) {
                    // Somebody else's logging of a zone the reconciler does not own (AWS allows
                    // one config per zone): not ours to replace. The create then fails with
                    // an error that says so.
                    return None;
                }
                Some(config_observed(d, config.id(), &zone_id, arn))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &QueryLoggingConfig,
    ) -> Result<Observed, ProviderError> {
        let r53 = self.pool.route53(&desired.region);
        let zone_id = bare_zone_id(props.hosted_zone_id.get("hostedZoneId")?);
        let arn = bare_log_group_arn(
            props
                .cloud_watch_logs_log_group_arn
                .get("cloudWatchLogsLogGroupArn")?,
        );
        // Sent in the form `DescribeLogGroups` shows (`...:log-group:<name>:*`), which AWS
        // documents as accepted (the emulator accepts only that form).
        let out = match r53
            .create_query_logging_config()
            .hosted_zone_id(&zone_id)
            .cloud_watch_logs_log_group_arn(format!("{arn}:*"))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = classify(&format!("CreateQueryLoggingConfig {}", desired.name), e);
                if err.code.as_deref() != Some("QueryLoggingConfigAlreadyExists") {
                    return Err(err);
                }
                return adopt_or_refuse(&r53, desired, &zone_id, &arn, err).await;
            }
        };
        let config = out.query_logging_config().ok_or_else(|| {
            ProviderError::transient(format!(
                "CreateQueryLoggingConfig {}: no config in the answer",
                desired.name
            ))
        })?;
        Ok(config_observed(desired, config.id(), &zone_id, &arn))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let id = util::output(desired, observed, "id")?;
        self.pool
            .route53(&desired.region)
            .delete_query_logging_config()
            .id(&id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("DeleteQueryLoggingConfig {} ({id})", desired.name),
                    e,
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reconcilers_query_logs_are_its_own() {
        assert!(is_own_query_log(
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/rc-main/queries:*"
        ));
        assert!(!is_own_query_log(
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/example.com"
        ));
    }

    #[test]
    fn log_group_arns_lose_the_suffix() {
        assert_eq!(
            bare_log_group_arn("arn:aws:logs:us-east-1:1:log-group:/aws/route53/x:*"),
            "arn:aws:logs:us-east-1:1:log-group:/aws/route53/x"
        );
    }
}
