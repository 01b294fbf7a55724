//! SNS: topics with their subscriptions (one kind: a subscription is part of its topic).
//!
//! Observation cost, per region: one paginated `ListTopics` finds every desired topic by name
//! (the last part of its ARN), skipped when the region's tag index (see [`crate::tagging`])
//! shows every desired topic already. SNS has no batch read for a topic's attributes, so each
//! topic that exists costs a `GetTopicAttributes`. Subscriptions come from one paged
//! `ListSubscriptions` when several topics exist (`ListSubscriptionsByTopic` for a single one),
//! and tags from the tag index, `ListTagsForResource` only where it disagrees.

use std::sync::Arc;

use reconciler_engine::provider::ResourceClient;

use crate::managed::Managed;
use crate::pool::ClientPool;

mod topic;

pub use topic::TopicClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(Managed::new(TopicClient::new(pool.clone())))]
}
