//! `cloudwatch.dashboard` ([`reconciler_kinds::cloudwatch::Dashboard`]), by name: its `body`
//! (a JSON object, sent as text). Untaggable. Outputs `arn`, `name`.
//!
//! Only `GetDashboard` returns the body, one dashboard per call, and it answers
//! `ResourceNotFound` for a missing one, so observation reads each desired dashboard by name:
//! a listing first would only add a call.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::DashboardValidationMessage;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::cloudwatch::Dashboard;
use serde_json::{json, Value};

use crate::documents::document_text;
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, missing, read_all};

/// The client of dashboards.
pub struct DashboardClient {
    pool: Arc<ClientPool>,
}

/// Reads one dashboard's body; `None` when it does not exist.
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
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        DashboardClient { pool }
    }

    /// `PutDashboard` with the desired body. AWS answers validation problems in the response
    /// rather than as an error; any message makes this a terminal error (a warning means the
    /// dashboard was stored but parts of it may not render, which render must fix).
    async fn put(
        &self,
        desired: &DesiredResource,
        props: &Dashboard,
    ) -> Result<Observed, ProviderError> {
        let cw = self.pool.cloudwatch(&desired.region);
        let name = desired.name.as_str();
        if !props.body.is_object() {
            return Err(missing(desired, "body"));
        }
        let out = cw
            .put_dashboard()
            .dashboard_name(name)
            .dashboard_body(document_text(desired, &props.body)?)
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
impl KindClient<Dashboard> for DashboardClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let cw = self.pool.cloudwatch(region);
        let reads = desired
            .iter()
            .map(|d| read_dashboard(cw.clone(), d.clone()))
            .collect();
        Ok(read_all(reads).await?.into_iter().flatten().collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Dashboard,
    ) -> Result<Observed, ProviderError> {
        self.put(desired, props).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &Dashboard,
        _observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The body is the only property, and `PutDashboard` replaces it whole.
        self.put(desired, props).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        self.pool
            .cloudwatch(&desired.region)
            .delete_dashboards()
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
}
