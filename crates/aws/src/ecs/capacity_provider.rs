//! `ecs.capacity-provider` ([`reconciler_kinds::ecs::CapacityProvider`]), by name: one
//! `DescribeCapacityProviders` per 100 names.
//!
//! Managed scaling is always created disabled: the group's capacity belongs to the wake/sleep
//! system (start Lambda and alarms), and ECS scaling it would fight them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate,
    CapacityProvider as ProviderDescription, CapacityProviderField, CapacityProviderStatus,
    CapacityProviderUpdateStatus, ManagedDraining, ManagedScaling, ManagedScalingStatus,
    ManagedTerminationProtection,
};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_kinds::ecs::CapacityProvider;
use serde_json::json;

use super::{ecs_error, ecs_tags, in_answer, tag_map, with_desired_tags, CLUSTERS_PER_CALL};
use crate::autoscaling::{poll_until, Wait};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::util::{self, touches};

/// The client of capacity providers.
#[derive(Debug, Clone)]
pub struct CapacityProviderClient {
    pool: Arc<ClientPool>,
    delete_wait: Wait,
}

impl CapacityProviderClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        CapacityProviderClient {
            pool,
            delete_wait: Wait::new(Duration::from_secs(5), Duration::from_secs(5 * 60)),
        }
    }

    /// Changes how long a delete waits for the provider to be gone.
    pub fn with_delete_wait(mut self, wait: Wait) -> Self {
        self.delete_wait = wait;
        self
    }

    /// The providers called `names` that ECS knows, by name, whatever their status.
    async fn describe(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<HashMap<String, ProviderDescription>, ProviderError> {
        let client = self.pool.ecs(region);
        let mut out = HashMap::new();
        for chunk in names.chunks(CLUSTERS_PER_CALL) {
            // The SDK has no paginator for this call.
            let mut token: Option<String> = None;
            loop {
                let page = client
                    .describe_capacity_providers()
                    .set_capacity_providers(Some(chunk.to_vec()))
                    .include(CapacityProviderField::Tags)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| ecs_error("DescribeCapacityProviders", e))?;
                for p in page.capacity_providers() {
                    if let Some(name) = p.name() {
                        out.insert(name.to_string(), p.clone());
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Whether the provider `name` is gone after a delete; a failed delete is a terminal error.
    async fn deleted(&self, region: &str, name: &str) -> Result<bool, ProviderError> {
        let found = self.describe(region, &[name.to_string()]).await?;
        match found.get(name) {
            None => Ok(true),
            Some(p) if p.update_status() == Some(&CapacityProviderUpdateStatus::DeleteFailed) => {
                Err(ProviderError::terminal(format!(
                    "DeleteCapacityProvider {name}: {}",
                    p.update_status_reason().unwrap_or("delete failed")
                )))
            }
            Some(p) => Ok(p.status() == Some(&CapacityProviderStatus::Inactive)
                || p.update_status() == Some(&CapacityProviderUpdateStatus::DeleteComplete)),
        }
    }
}

/// A provider that is deleted or being deleted.
fn is_gone_provider(p: &ProviderDescription) -> bool {
    p.status() == Some(&CapacityProviderStatus::Inactive)
        || matches!(
            p.update_status(),
            Some(
                CapacityProviderUpdateStatus::DeleteInProgress
                    | CapacityProviderUpdateStatus::DeleteComplete
            )
        )
}

fn provider_observation(desired: &DesiredResource, p: &ProviderDescription) -> Observed {
    let asg = p.auto_scaling_group_provider();
    util::observed(
        desired,
        json!({
            "autoScalingGroupArn": asg.map(AutoScalingGroupProvider::auto_scaling_group_arn),
            "managedDraining": asg.and_then(AutoScalingGroupProvider::managed_draining).map(ManagedDraining::as_str),
            "managedTerminationProtection": asg
                .and_then(AutoScalingGroupProvider::managed_termination_protection)
                .map(ManagedTerminationProtection::as_str),
        }),
        [
            ("arn", json!(p.capacity_provider_arn())),
            ("name", json!(p.name())),
        ],
        tag_map(p.tags()),
    )
}

#[async_trait]
impl KindClient<CapacityProvider> for CapacityProviderClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let names: Vec<String> = desired.iter().map(|d| d.name.clone()).collect();
        let providers = self.describe(region, &names).await?;
        Ok(desired
            .iter()
            .filter_map(|d| {
                let p = providers.get(&d.name).filter(|p| !is_gone_provider(p))?;
                Some(provider_observation(d, p))
            })
            .collect())
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &CapacityProvider,
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        let provider = AutoScalingGroupProvider::builder()
            .auto_scaling_group_arn(props.auto_scaling_group_arn.get("autoScalingGroupArn")?)
            .managed_draining(ManagedDraining::from(props.managed_draining.as_str()))
            .managed_termination_protection(ManagedTerminationProtection::from(
                props.managed_termination_protection.as_str(),
            ))
            .managed_scaling(
                ManagedScaling::builder()
                    .status(ManagedScalingStatus::Disabled)
                    .build(),
            )
            .build()
            .map_err(|e| ProviderError::terminal(format!("{}: {e}", desired.id)))?;
        let out = self
            .pool
            .ecs(&desired.region)
            .create_capacity_provider()
            .name(name)
            .auto_scaling_group_provider(provider)
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| ecs_error(&format!("CreateCapacityProvider {name}"), e))?;
        let p = in_answer(
            out.capacity_provider(),
            &format!("CreateCapacityProvider {name}"),
            "capacity provider",
        )?;
        Ok(with_desired_tags(provider_observation(desired, p), desired))
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        props: &CapacityProvider,
        _observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let name = desired.name.as_str();
        let draining = touches(changes, "managedDraining");
        let protection = touches(changes, "managedTerminationProtection");
        if draining || protection {
            let mut update = AutoScalingGroupProviderUpdate::builder();
            if draining {
                update =
                    update.managed_draining(ManagedDraining::from(props.managed_draining.as_str()));
            }
            if protection {
                update = update.managed_termination_protection(ManagedTerminationProtection::from(
                    props.managed_termination_protection.as_str(),
                ));
            }
            self.pool
                .ecs(&desired.region)
                .update_capacity_provider()
                .name(name)
                .auto_scaling_group_provider(update.build())
                .send()
                .await
                .map_err(|e| ecs_error(&format!("UpdateCapacityProvider {name}"), e))?;
        }
        self.observe(&desired.region, std::slice::from_ref(desired))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::not_found(format!("capacity provider {name} vanished")))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
    ) -> Result<(), ProviderError> {
        // AWS refuses while the provider is attached to a cluster; the association's delete
        // (which depends on this provider, so it runs first) detaches it.
        let name = &desired.name;
        self.pool
            .ecs(&desired.region)
            .delete_capacity_provider()
            .capacity_provider(name)
            .send()
            .await
            .map_err(|e| ecs_error(&format!("DeleteCapacityProvider {name}"), e))?;
        // Deleting is asynchronous (DELETE_IN_PROGRESS); the group underneath must not go first.
        poll_until(
            self.delete_wait,
            &format!("deleting capacity provider {name}"),
            || self.deleted(&desired.region, name),
        )
        .await
    }
}
