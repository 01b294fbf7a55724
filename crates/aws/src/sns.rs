//! SNS topics with their subscriptions.
//!
//! Observation cost, per region: one paginated `ListTopics` finds every desired topic by name
//! (the last part of its ARN). SNS has no batch read for a topic's attributes, so each topic that
//! exists costs a `GetTopicAttributes`. Subscriptions come from one paged `ListSubscriptions`
//! when several topics exist (`ListSubscriptionsByTopic` for a single one), and tags from the
//! region's tag index (see [`crate::tagging`]), `ListTagsForResource` only where it disagrees.
//!
//! Subscriptions are managed as a set of (`protocol`, `endpoint`). An email or HTTPS
//! subscription waits for its owner's confirmation: until then SNS lists it with the ARN
//! `PendingConfirmation` and it cannot be unsubscribed (SNS drops it after three days). A
//! pending subscription that is desired counts as present, so it is not requested again on every
//! run; one that is no longer desired is left out of the observation, since nothing can remove
//! it and it goes away by itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sns::types::{Subscription, Tag};
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_render::kinds;
use serde_json::{json, Value};

use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::ensure_managed;
use crate::tags::tag_delta;
use crate::util;
use crate::util::read_all;
use crate::util::{touches, touches_tags};

/// The ARN SNS shows for a subscription that waits for confirmation.
const PENDING: &str = "PendingConfirmation";

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(TopicClient { pool: pool.clone() })]
}

/// `sns.topic`: `displayName`, `policy` (a JSON document), `subscriptions` [{`protocol`,
/// `endpoint`}] (a set). Outputs `arn`.
pub struct TopicClient {
    pool: Arc<ClientPool>,
}

/// A subscription as desired or found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Sub {
    protocol: String,
    endpoint: String,
}

fn desired_subs(desired: &DesiredResource) -> Vec<Sub> {
    desired
        .properties
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some(Sub {
                        protocol: s.get("protocol")?.as_str()?.to_string(),
                        endpoint: s.get("endpoint")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The observed subscriptions with their ARNs (kept in the observation, where the diff ignores
/// them, so an update needs no second listing).
fn observed_subs(observed: &Observed) -> Vec<(Sub, String)> {
    observed
        .properties
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((
                        Sub {
                            protocol: s.get("protocol")?.as_str()?.to_string(),
                            endpoint: s.get("endpoint")?.as_str()?.to_string(),
                        },
                        s.get("subscriptionArn")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn sns_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::terminal(format!("tag `{k}`: {e}")))
        })
        .collect()
}

/// Reads one topic's attributes, subscriptions and tags, shaped like `want`: the read-back after
/// a create or update. `None` when the topic went away.
async fn read_topic(
    sns: aws_sdk_sns::Client,
    desired: DesiredResource,
    arn: String,
) -> Result<Option<Observed>, ProviderError> {
    let Some(mut observed) = read_topic_untagged(sns.clone(), desired, arn.clone(), None).await?
    else {
        return Ok(None);
    };
    observed.tags = read_tags(sns, arn).await?;
    Ok(Some(observed))
}

async fn read_tags(
    sns: aws_sdk_sns::Client,
    arn: String,
) -> Result<IndexMap<String, String>, ProviderError> {
    let out = sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| classify(&format!("ListTagsForResource {arn}"), e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

/// Reads one topic's attributes and, unless `listed` holds them already, its subscriptions;
/// tags are left empty for the caller. `None` when the topic went away since the listing.
async fn read_topic_untagged(
    sns: aws_sdk_sns::Client,
    desired: DesiredResource,
    arn: String,
    listed: Option<Vec<Subscription>>,
) -> Result<Option<Observed>, ProviderError> {
    let attrs = match sns.get_topic_attributes().topic_arn(&arn).send().await {
        Ok(out) => out.attributes().cloned().unwrap_or_default(),
        Err(e) => {
            let err = classify(&format!("GetTopicAttributes {arn}"), e);
            if err.class == reconciler_engine::provider::ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let subs = match listed {
        Some(subs) => subs,
        None => sns
            .list_subscriptions_by_topic()
            .topic_arn(&arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(&format!("ListSubscriptionsByTopic {arn}"), e))?,
    };
    let wanted = desired_subs(&desired);
    let mut subscriptions = Vec::new();
    for s in &subs {
        let (Some(protocol), Some(endpoint), Some(sub_arn)) =
            (s.protocol(), s.endpoint(), s.subscription_arn())
        else {
            continue;
        };
        let sub = Sub {
            protocol: protocol.to_string(),
            endpoint: endpoint.to_string(),
        };
        if sub_arn == PENDING && !wanted.contains(&sub) {
            continue;
        }
        subscriptions.push(json!({
            "protocol": sub.protocol,
            "endpoint": sub.endpoint,
            "subscriptionArn": sub_arn,
        }));
    }
    let policy = attrs
        .get("Policy")
        .map(|p| align_policy(util::parse_policy(p), desired.properties.get("policy")))
        .unwrap_or(Value::Null);
    let properties = json!({
        "displayName": attrs.get("DisplayName").cloned().unwrap_or_default(),
        "policy": policy,
        "subscriptions": subscriptions,
    });
    Ok(Some(util::observed(
        &desired,
        properties,
        [("arn", json!(arn))],
        IndexMap::new(),
    )))
}

/// Every subscription of the region by topic ARN: one paged `ListSubscriptions` (100 a page)
/// instead of one `ListSubscriptionsByTopic` per topic.
async fn subscriptions_by_topic(
    sns: &aws_sdk_sns::Client,
) -> Result<HashMap<String, Vec<Subscription>>, ProviderError> {
    let all: Vec<Subscription> = sns
        .list_subscriptions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListSubscriptions", e))?;
    let mut out: HashMap<String, Vec<Subscription>> = HashMap::new();
    for s in all {
        if let Some(topic) = s.topic_arn() {
            out.entry(topic.to_string()).or_default().push(s);
        }
    }
    Ok(out)
}

fn topic_arn(desired: &DesiredResource, observed: &Observed) -> Result<String, ProviderError> {
    observed
        .output("arn")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::terminal(format!("{}: observed without an ARN", desired.id)))
}

async fn subscribe(sns: &aws_sdk_sns::Client, arn: &str, sub: &Sub) -> Result<(), ProviderError> {
    // Subscribe is idempotent for an existing (protocol, endpoint): SNS returns the existing
    // subscription.
    sns.subscribe()
        .topic_arn(arn)
        .protocol(&sub.protocol)
        .endpoint(&sub.endpoint)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| {
            classify(
                &format!("Subscribe {arn} {} {}", sub.protocol, sub.endpoint),
                e,
            )
        })?;
    Ok(())
}

#[async_trait]
impl ResourceClient for TopicClient {
    fn kind(&self) -> Kind {
        Kind::from(kinds::TOPIC)
    }

    fn spec(&self) -> KindSpec {
        KindSpec::new().unordered("/subscriptions")
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        let sns = self.pool.sns(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        // Topics the tag index shows need no listing: `GetTopicAttributes` below confirms each
        // exists. Only when some desired topic is not indexed (new, or not tagged as ours) are
        // the region's topics listed.
        let indexed = tagging::indexed_arns(&self.pool, region, |arn| {
            arn.split(':').nth(2) == Some("sns")
        })
        .await?;
        let name_of = |arn: &str| arn.rsplit(':').next().unwrap_or_default().to_string();
        let indexed_names: HashSet<String> = indexed.iter().map(|a| name_of(a)).collect();
        let topics: Vec<String> = if by_name.keys().all(|n| indexed_names.contains(*n)) {
            indexed
        } else {
            sns.list_topics()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| classify("ListTopics", e))?
                .into_iter()
                .filter_map(|t| t.topic_arn().map(str::to_string))
                .collect()
        };
        let found: Vec<(&DesiredResource, String)> = topics
            .iter()
            .filter_map(|arn| Some((*by_name.get(name_of(arn).as_str())?, arn.clone())))
            .collect();
        // Subscriptions: for several topics, one listing of the region's subscriptions costs
        // fewer calls than one listing per topic.
        let mut listed = if found.len() > 1 {
            Some(subscriptions_by_topic(&sns).await?)
        } else {
            None
        };
        let reads = found
            .iter()
            .map(|(d, arn)| {
                let subs = listed
                    .as_mut()
                    .map(|by_topic| by_topic.remove(arn).unwrap_or_default());
                read_topic_untagged(sns.clone(), (*d).clone(), arn.clone(), subs)
            })
            .collect();
        let mut observed: Vec<Observed> = read_all(reads).await?.into_iter().flatten().collect();
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(sns.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let sns = self.pool.sns(&desired.region);
        let name = desired.name.as_str();
        let mut attributes = HashMap::new();
        if let Some(display) = util::opt_str(desired, "displayName") {
            attributes.insert("DisplayName".to_string(), display.to_string());
        }
        if let Some(policy) = desired.properties.get("policy").filter(|p| !p.is_null()) {
            attributes.insert("Policy".to_string(), document_text(desired, policy)?);
        }
        // CreateTopic is idempotent by name (with equal attributes and tags): after an
        // interrupted run it returns the existing topic, and the subscriptions below finish
        // the job.
        let out = sns
            .create_topic()
            .name(name)
            .set_attributes(Some(attributes))
            .set_tags(Some(sns_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateTopic {name}"), e))?;
        let arn = out.topic_arn().map(str::to_string).ok_or_else(|| {
            ProviderError::transient(format!("CreateTopic {name}: no ARN in the answer"))
        })?;
        for sub in desired_subs(desired) {
            subscribe(&sns, &arn, &sub).await?;
        }
        read_topic(sns, desired.clone(), arn.clone())
            .await?
            .ok_or_else(|| {
                ProviderError::eventual_consistency(format!(
                    "CreateTopic {name}: {arn} is not readable yet"
                ))
            })
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        ensure_managed(desired, observed, "change")?;
        let sns = self.pool.sns(&desired.region);
        let arn = topic_arn(desired, observed)?;
        if touches(changes, "displayName") {
            sns.set_topic_attributes()
                .topic_arn(&arn)
                .attribute_name("DisplayName")
                .attribute_value(util::opt_str(desired, "displayName").unwrap_or_default())
                .send()
                .await
                .map_err(|e| classify(&format!("SetTopicAttributes {arn} DisplayName"), e))?;
        }
        if touches(changes, "policy") {
            let policy = desired
                .properties
                .get("policy")
                .ok_or_else(|| util::missing(desired, "policy"))?;
            sns.set_topic_attributes()
                .topic_arn(&arn)
                .attribute_name("Policy")
                .attribute_value(document_text(desired, policy)?)
                .send()
                .await
                .map_err(|e| classify(&format!("SetTopicAttributes {arn} Policy"), e))?;
        }
        if touches(changes, "subscriptions") {
            let want = desired_subs(desired);
            let have = observed_subs(observed);
            for (sub, sub_arn) in &have {
                if want.contains(sub) || sub_arn == PENDING {
                    continue;
                }
                sns.unsubscribe()
                    .subscription_arn(sub_arn)
                    .send()
                    .await
                    .map_err(|e| classify(&format!("Unsubscribe {sub_arn}"), e))?;
            }
            for sub in want.iter().filter(|w| !have.iter().any(|(h, _)| h == *w)) {
                subscribe(&sns, &arn, sub).await?;
            }
        }
        if touches_tags(changes) {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            if !set.is_empty() {
                sns.tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(sns_tags(&set)?))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
            }
            if !remove.is_empty() {
                sns.untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(remove))
                    .send()
                    .await
                    .map_err(|e| classify(&format!("UntagResource {arn}"), e))?;
            }
        }
        // Read back: subscription ARNs are only known from SNS.
        read_topic(sns, desired.clone(), arn.clone())
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{}: {arn} is gone", desired.id)))
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, "delete")?;
        let sns = self.pool.sns(&desired.region);
        let arn = topic_arn(desired, observed)?;
        // Deleting a topic deletes its subscriptions.
        sns.delete_topic()
            .topic_arn(&arn)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteTopic {arn}"), e))?;
        Ok(())
    }
}
