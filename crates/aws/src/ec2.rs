//! (being written)

use std::sync::Arc;

use reconciler_engine::provider::ResourceClient;

use crate::pool::ClientPool;

/// The clients of this service.
pub fn clients(_pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    Vec::new()
}
