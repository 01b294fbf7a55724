//! Route 53: each server's hosted zone, its records, and the zone's query logging.

mod hosted_zone;
mod query_logging_config;
mod record_set;

pub use hosted_zone::HostedZone;
pub use query_logging_config::QueryLoggingConfig;
pub use record_set::RecordSet;
