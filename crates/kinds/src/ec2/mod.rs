//! EC2: the Base's network, the servers' security groups, key pair and launch template.

mod default_security_group;
mod internet_gateway;
mod key_pair;
mod launch_template;
mod route_table;
mod security_group;
mod subnet;
mod vpc;

pub use default_security_group::DefaultSecurityGroup;
pub use internet_gateway::InternetGateway;
pub use key_pair::KeyPair;
pub use launch_template::{BlockDevice, Ebs, LaunchTemplate, MetadataOptions};
pub use route_table::{Route, RouteTable};
pub use security_group::{Rule, SecurityGroup};
pub use subnet::Subnet;
pub use vpc::Vpc;
