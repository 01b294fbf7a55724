//! IAM: roles (one per server part and per Lambda) and the instance profile.

mod instance_profile;
mod role;

pub use instance_profile::InstanceProfile;
pub use role::Role;
