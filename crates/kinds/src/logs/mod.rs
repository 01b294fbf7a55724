//! CloudWatch Logs: log groups, the account's resource policy for Route 53's query logs, and
//! subscription filters.

mod log_group;
mod resource_policy;
mod subscription_filter;

pub use log_group::LogGroup;
pub use resource_policy::ResourcePolicy;
pub use subscription_filter::SubscriptionFilter;
