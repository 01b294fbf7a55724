//! Auto Scaling: a server's group of zero or one instance, and the policy that stops it.

mod group;
mod scaling_policy;

pub use group::{Group, Notification};
pub use scaling_policy::{ScalingPolicy, StepAdjustment};
