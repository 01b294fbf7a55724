//! CloudWatch: the servers' alarms and the Bases' dashboards.

mod alarm;
mod dashboard;

pub use alarm::Alarm;
pub use dashboard::Dashboard;
