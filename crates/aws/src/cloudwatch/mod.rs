//! CloudWatch: the servers' alarms and the Bases' dashboards, one file each.
//!
//! Observation cost, per region:
//! - alarms: one `DescribeAlarms` per 100 names (pages included); tags from the region's tag
//!   index (see [`crate::tagging`]), `ListTagsForResource` per alarm only where it disagrees;
//! - dashboards: one `GetDashboard` per desired dashboard, because only that call returns the
//!   body (and it answers not-found for a missing one, so no listing is needed).
//!
//! `PutMetricAlarm` and `PutDashboard` are upserts that replace the whole definition, so a
//! create and an update are the same call carrying everything.

use std::sync::Arc;

use reconciler_engine::provider::ResourceClient;

use crate::managed::Managed;
use crate::pool::ClientPool;

mod alarm;
mod dashboard;

pub use alarm::AlarmClient;
pub use dashboard::DashboardClient;

/// The clients of this service.
pub fn clients(pool: &Arc<ClientPool>) -> Vec<Arc<dyn ResourceClient>> {
    vec![
        Arc::new(Managed::new(AlarmClient::new(pool.clone()))),
        Arc::new(Managed::new(DashboardClient::new(pool.clone()))),
    ]
}
