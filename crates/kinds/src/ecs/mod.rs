//! ECS: each server's cluster, its capacity provider over the server's group, the task
//! definition and the daemon service.

mod capacity_provider;
mod cluster;
mod cluster_capacity_providers;
mod service;
mod task_definition;

pub use capacity_provider::CapacityProvider;
pub use cluster::Cluster;
pub use cluster_capacity_providers::ClusterCapacityProviders;
pub use service::{DeploymentConfiguration, Service};
pub use task_definition::TaskDefinition;
