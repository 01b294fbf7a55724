//! The AWS provider: one small client per resource kind (observe, create, update, delete),
//! grouped in one module per AWS service. The engine owns ordering, retries and diffing; a
//! client only speaks its service's API.
//!
//! Conventions every client follows:
//! - **Discovery by deterministic name and tags**, batched: `observe` makes one list/describe
//!   call per kind and region (filters, name prefixes), never one per resource where a list
//!   serves.
//! - **Observed properties have the desired shape**: only the fields render manages, with AWS
//!   ids where the desired resource holds references, so the engine's diff is exact.
//! - **Idempotent creates**: deterministic names and idempotency tokens; "already exists" is a
//!   conflict the engine answers by observing again and adopting the object.
//! - **Ownership**: objects without the `reconciler.dev/managed-by` tag are never changed.
//! - **Runtime-owned fields** (the group's desired capacity) are never written by `update`.

pub mod autoscaling;
pub mod backup;
pub mod cloudwatch;
pub mod documents;
pub mod ec2;
pub mod ecs;
pub mod efs;
pub mod error;
pub mod events;
pub mod grant;
pub mod iam;
pub mod identity;
pub mod lambda;
pub mod logs;
pub mod managed;
pub mod memo;
pub mod metrics;
pub mod pace;
pub mod pool;
pub mod route53;
pub mod sns;
pub mod ssm;
pub mod tagging;
pub mod tags;
pub mod util;

use std::sync::Arc;

use reconciler_engine::provider::{ObservationHook, Provider, ResourceClient};

pub use metrics::{CallCounter, CallCounts};
pub use pool::ClientPool;

/// Every resource client, over one client pool.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    let mut all = Vec::new();
    all.extend(ec2::clients(pool));
    all.extend(autoscaling::clients(pool));
    all.extend(iam::clients(pool));
    all.extend(logs::clients(pool));
    all.extend(efs::clients(pool));
    all.extend(backup::clients(pool));
    all.extend(sns::clients(pool));
    all.extend(ecs::clients(pool));
    all.extend(route53::clients(pool));
    all.extend(lambda::clients(pool));
    all.extend(events::clients(pool));
    all.extend(cloudwatch::clients(pool));
    all.extend(ssm::clients(pool));
    all
}

/// What the provider runs when an observation begins: the pool's shared reads expire, so each
/// observation reads afresh (see [`memo`]).
pub fn observation_hook(pool: &Arc<ClientPool>) -> ObservationHook {
    let pool = pool.clone();
    Arc::new(move || pool.expire_observation())
}

/// The provider the engine uses: every client registered by kind.
pub fn provider(pool: &Arc<ClientPool>) -> Provider {
    let mut provider = Provider::new();
    for client in clients(pool) {
        provider.register(client);
    }
    provider.on_observation(observation_hook(pool));
    provider
}
