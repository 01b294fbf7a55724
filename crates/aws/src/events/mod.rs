//! EventBridge: rules with their targets, on the default event bus (one kind: a target is part
//! of its rule).
//!
//! Observation cost, per region: one paginated `ListRules` with the longest prefix the desired
//! names share (it returns description, state and pattern), plus, per existing rule,
//! `ListTargetsByRule` (EventBridge has no batch form); tags come from the region's tag index
//! (see [`crate::tagging`]), with `ListTagsForResource` per rule only where it disagrees.

use std::sync::Arc;

use reconciler_engine::provider::ResourceClient;

use crate::managed::Managed;
use crate::pool::ClientPool;

mod rule;

pub use rule::RuleClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![Arc::new(Managed::new(RuleClient::new(pool.clone())))]
}
