//! `sns.topic` ([`reconciler_kinds::sns::Topic`]), by name: display name, access policy and
//! subscriptions. Outputs `arn`.
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
use aws_sdk_sns::types::Tag;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::sns::{Subscription, Topic};
use serde_json::{json, Value};

use crate::documents::{align_policy, document_text};
use crate::error::classify;
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::util::{self, read_all, touches};

/// The ARN SNS shows for a subscription that waits for confirmation.
const PENDING: &str = "PendingConfirmation";

/// The client of topics.
pub struct TopicClient {
    pool: Arc<ClientPool>,
}

impl TopicClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        TopicClient { pool }
    }
}

/// The observed subscriptions with their ARNs (kept in the observation, where the diff ignores
/// them, so an update needs no second listing).
fn observed_subs(observed: &Observed) -> Vec<(Subscription, String)> {
    observed
        .properties
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((
                        Subscription {
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

/// Reads one topic's attributes, subscriptions and tags: the read-back after a create or update.
/// `None` when the topic went away.
async fn read_topic(
    sns: aws_sdk_sns::Client,
    desired: DesiredResource,
    props: Topic,
    arn: String,
) -> Result<Option<Observed>, ProviderError> {
    let read = read_topic_untagged(sns.clone(), desired, props, arn.clone(), None);
    let Some(mut observed) = read.await? else {
        return Ok(None);
    };
    observed.tags = read_tags(sns, arn).await?;
    Ok(Some(observed))
}

/// Reads one topic's attributes and, unless `listed` holds them already, its subscriptions;
/// tags are left empty for the caller. `None` when the topic went away since the listing.
async fn read_topic_untagged(
    sns: aws_sdk_sns::Client,
    desired: DesiredResource,
    props: Topic,
    arn: String,
    listed: Option<Vec<aws_sdk_sns::types::Subscription>>,
) -> Result<Option<Observed>, ProviderError> {
    let attrs = match sns.get_topic_attributes().topic_arn(&arn).send().await {
        Ok(out) => out.attributes().cloned().unwrap_or_default(),
        Err(e) => {
            let err = classify(&format!("GetTopicAttributes {arn}"), e);
            if err.class == ErrorClass::NotFound {
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
    let policy = attrs
        .get("Policy")
        .map(|p| align_policy(util::parse_policy(p), Some(&props.policy)))
        .unwrap_or(Value::Null);
    let properties = json!({
        "displayName": attrs.get("DisplayName").cloned().unwrap_or_default(),
        "policy": policy,
        "subscriptions": subscriptions_value(&subs, &props.subscriptions),
    });
    Ok(Some(util::observed(
        &desired,
        properties,
        [("arn", json!(arn))],
        IndexMap::new(),
    )))
}

/// The listed subscriptions in the observed shape, with their ARNs; a pending one only when it
/// is `wanted` (see the module doc).
fn subscriptions_value(
    listed: &[aws_sdk_sns::types::Subscription],
    wanted: &[Subscription],
) -> Vec<Value> {
    let mut out = Vec::new();
    for s in listed {
        let (Some(protocol), Some(endpoint), Some(sub_arn)) =
            (s.protocol(), s.endpoint(), s.subscription_arn())
        else {
            continue;
        };
        let sub = Subscription {
            protocol: protocol.to_string(),
            endpoint: endpoint.to_string(),
        };
        if sub_arn == PENDING && !wanted.contains(&sub) {
            continue;
        }
        out.push(json!({
            "protocol": sub.protocol,
            "endpoint": sub.endpoint,
            "subscriptionArn": sub_arn,
        }));
    }
    out
}

/// Every subscription of the region by topic ARN: one paged `ListSubscriptions` (100 a page)
/// instead of one `ListSubscriptionsByTopic` per topic.
async fn subscriptions_by_topic(
    sns: &aws_sdk_sns::Client,
) -> Result<HashMap<String, Vec<aws_sdk_sns::types::Subscription>>, ProviderError> {
    let all: Vec<aws_sdk_sns::types::Subscription> = sns
        .list_subscriptions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListSubscriptions", e))?;
    let mut out: HashMap<String, Vec<aws_sdk_sns::types::Subscription>> = HashMap::new();
    for s in all {
        if let Some(topic) = s.topic_arn() {
            out.entry(topic.to_string()).or_default().push(s);
        }
    }
    Ok(out)
}

/// The topic's name: the last part of its ARN.
fn name_of(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or_default()
}

/// The ARNs of the region's topics that may be desired: those of the tag index when it shows
/// every desired name (`GetTopicAttributes` then confirms each exists), otherwise every topic
/// of the region (`ListTopics`), as a topic that is new or not tagged as ours is not indexed.
async fn topic_arns(
    pool: &ClientPool,
    region: &str,
    names: &HashSet<&str>,
) -> Result<Vec<String>, ProviderError> {
    let indexed =
        tagging::indexed_arns(pool, region, |arn| arn.split(':').nth(2) == Some("sns")).await?;
    let indexed_names: HashSet<&str> = indexed.iter().map(|a| name_of(a)).collect();
    if names.iter().all(|n| indexed_names.contains(n)) {
        return Ok(indexed);
    }
    Ok(pool
        .sns(region)
        .list_topics()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| classify("ListTopics", e))?
        .into_iter()
        .filter_map(|t| t.topic_arn().map(str::to_string))
        .collect())
}

async fn subscribe(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    sub: &Subscription,
) -> Result<(), ProviderError> {
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

/// Sets one topic attribute (`SetTopicAttributes` takes one a call).
async fn set_attribute(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    name: &str,
    value: String,
) -> Result<(), ProviderError> {
    sns.set_topic_attributes()
        .topic_arn(arn)
        .attribute_name(name)
        .attribute_value(value)
        .send()
        .await
        .map_err(|e| classify(&format!("SetTopicAttributes {arn} {name}"), e))?;
    Ok(())
}

/// Unsubscribes what is no longer wanted (pending ones cannot be) and subscribes what is
/// missing.
async fn sync_subscriptions(
    sns: &aws_sdk_sns::Client,
    arn: &str,
    want: &[Subscription],
    observed: &Observed,
) -> Result<(), ProviderError> {
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
        subscribe(sns, arn, sub).await?;
    }
    Ok(())
}

/// The tags of one SNS object (`ListTagsForResource`).
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

/// Tags as the SNS SDK takes them.
fn sdk_tags(tags: &IndexMap<String, String>) -> Result<Vec<Tag>, ProviderError> {
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

#[async_trait]
impl KindClient<Topic> for TopicClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let sns = self.pool.sns(region);
        let by_name: HashMap<&str, &DesiredResource> =
            desired.iter().map(|d| (d.name.as_str(), d)).collect();
        let names: HashSet<&str> = by_name.keys().copied().collect();
        let mut found = Vec::new();
        for arn in topic_arns(&self.pool, region, &names).await? {
            if let Some(d) = by_name.get(name_of(&arn)) {
                found.push((*d, reconciler_kinds::read::<Topic>(d)?, arn));
            }
        }
        // Subscriptions: for several topics, one listing of the region's subscriptions costs
        // fewer calls than one listing per topic.
        let mut listed = if found.len() > 1 {
            Some(subscriptions_by_topic(&sns).await?)
        } else {
            None
        };
        let reads = found
            .into_iter()
            .map(|(d, props, arn)| {
                let subs = listed
                    .as_mut()
                    .map(|by_topic| by_topic.remove(&arn).unwrap_or_default());
                read_topic_untagged(sns.clone(), d.clone(), props, arn, subs)
            })
            .collect();
        let mut observed: Vec<Observed> = read_all(reads).await?.into_iter().flatten().collect();
        tagging::fill_tags(&self.pool, region, desired, &mut observed, |arn| {
            read_tags(sns.clone(), arn)
        })
        .await?;
        Ok(observed)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &Topic,
    ) -> Result<Observed, ProviderError> {
        let sns = self.pool.sns(&desired.region);
        let name = desired.name.as_str();
        let mut attributes = HashMap::new();
        attributes.insert("DisplayName".to_string(), props.display_name.clone());
        if !props.policy.is_null() {
            attributes.insert("Policy".to_string(), document_text(desired, &props.policy)?);
        }
        // CreateTopic is idempotent by name (with equal attributes and tags): after an
        // interrupted run it returns the existing topic, and the subscriptions below finish
        // the job.
        let out = sns
            .create_topic()
            .name(name)
            .set_attributes(Some(attributes))
            .set_tags(Some(sdk_tags(&desired.tags)?))
            .send()
            .await
            .map_err(|e| classify(&format!("CreateTopic {name}"), e))?;
        let arn = out.topic_arn().map(str::to_string).ok_or_else(|| {
            ProviderError::transient(format!("CreateTopic {name}: no ARN in the answer"))
        })?;
        for sub in &props.subscriptions {
            subscribe(&sns, &arn, sub).await?;
        }
        read_topic(sns, desired.clone(), props.clone(), arn.clone())
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
        props: &Topic,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let sns = self.pool.sns(&desired.region);
        let arn = util::output(desired, observed, "arn")?;
        if touches(changes, "displayName") {
            set_attribute(&sns, &arn, "DisplayName", props.display_name.clone()).await?;
        }
        if touches(changes, "policy") {
            let policy = document_text(desired, &props.policy)?;
            set_attribute(&sns, &arn, "Policy", policy).await?;
        }
        if touches(changes, "subscriptions") {
            sync_subscriptions(&sns, &arn, &props.subscriptions, observed).await?;
        }
        // Read back: subscription ARNs are only known from SNS.
        read_topic(sns, desired.clone(), props.clone(), arn.clone())
            .await?
            .ok_or_else(|| ProviderError::not_found(format!("{}: {arn} is gone", desired.id)))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        let arn = util::output(desired, observed, "arn")?;
        let sns = self.pool.sns(&desired.region);
        if !set.is_empty() {
            sns.tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(sdk_tags(set)?))
                .send()
                .await
                .map_err(|e| classify(&format!("TagResource {arn}"), e))?;
        }
        if !remove.is_empty() {
            sns.untag_resource()
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
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let arn = util::output(desired, observed, "arn")?;
        // Deleting a topic deletes its subscriptions.
        self.pool
            .sns(&desired.region)
            .delete_topic()
            .topic_arn(&arn)
            .send()
            .await
            .map_err(|e| classify(&format!("DeleteTopic {arn}"), e))?;
        Ok(())
    }
}
