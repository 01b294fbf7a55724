//! Lambda: functions (packaged from the `reconciler-lambda` artifact) and permissions.

use std::sync::Arc;

use reconciler_engine::provider::ResourceClient;

use crate::pool::ClientPool;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    let _ = pool;
    Vec::new()
}
