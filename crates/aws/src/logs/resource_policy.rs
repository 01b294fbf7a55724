//! `logs.resource-policy` ([`reconciler_kinds::logs::ResourcePolicy`]): account-wide policies
//! of a region, by name, all read with one paginated `DescribeResourcePolicies`. AWS allows ten
//! per region and account, so render shares one between every server that needs it.

use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::logs::ResourcePolicy;
use serde_json::{json, Value};

use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, updated};

/// The client of resource policies.
pub struct ResourcePolicyClient {
    pool: Arc<ClientPool>,
}

impl ResourcePolicyClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        ResourcePolicyClient { pool }
    }
}

/// Every account-level resource policy of the region (`DescribeResourcePolicies`, page by page:
/// the SDK has no paginator for it).
async fn list_resource_policies(
    logs: &aws_sdk_cloudwatchlogs::Client,
) -> Result<Vec<aws_sdk_cloudwatchlogs::types::ResourcePolicy>, ProviderError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = logs
            .describe_resource_policies()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| classify("DescribeResourcePolicies", e))?;
        out.extend(page.resource_policies().iter().cloned());
        match page.next_token() {
            // A token equal to the one sent would loop forever.
            Some(next) if !next.is_empty() && token.as_deref() != Some(next) => {
                token = Some(next.to_string());
            }
            _ => return Ok(out),
        }
    }
}

/// Creates or replaces the policy of that name.
async fn put_resource_policy(
    logs: &aws_sdk_cloudwatchlogs::Client,
    desired: &DesiredResource,
    props: &ResourcePolicy,
) -> Result<(), ProviderError> {
    let name = desired.name.as_str();
    logs.put_resource_policy()
        .policy_name(name)
        .policy_document(document_text(desired, &props.policy_document)?)
        .send()
        .await
        .map_err(|e| classify(&format!("PutResourcePolicy {name}"), e))?;
    Ok(())
}

#[async_trait]
impl KindClient<ResourcePolicy> for ResourcePolicyClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let logs = self.pool.logs(region);
        let policies = list_resource_policies(&logs).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let policy = policies
                    .iter()
                    .find(|p| p.policy_name() == Some(d.name.as_str()))?;
                let document = policy
                    .policy_document()
                    .map(|text| {
                        align_policy(util::parse_policy(text), d.properties.get("policyDocument"))
                    })
                    .unwrap_or(Value::Null);
                Some(util::observed(
                    d,
                    json!({ "policyDocument": document }),
                    [("name", json!(d.name))],
                    IndexMap::new(),
                ))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &ResourcePolicy,
    ) -> Result<Observed, ProviderError> {
        let logs = self.pool.logs(&desired.region);
        put_resource_policy(&logs, desired, props).await?;
        Ok(util::observed(
            desired,
            desired.properties.clone(),
            [("name", json!(desired.name))],
            IndexMap::new(),
        ))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &ResourcePolicy,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // The document is the only property.
        let logs = self.pool.logs(&desired.region);
        put_resource_policy(&logs, desired, props).await?;
        Ok(updated(observed, desired))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        let name = desired.name.as_str();
        self.pool
            .logs(&desired.region)
            .delete_resource_policy()
            .policy_name(name)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteResourcePolicy {name}"), e))?;
        Ok(())
    }
}
