//! SNS: the Base's admin alerts and each server's alerts.

mod topic;

pub use topic::{Subscription, Topic};
