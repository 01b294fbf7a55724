//! The resource kinds: the contract between render, which builds each resource's properties,
//! and the provider (`crates/aws`), which reads them to call AWS.
//!
//! One module per kind, under a folder per AWS service, holds the kind's name
//! (`<service>.<type>`), its typed properties (serde, in the JSON shape the engine diffs), its
//! diff rules ([`KindSpec`]: immutable, runtime-owned and unordered fields) and, in its doc, its
//! outputs. Render builds the struct ([`desired`]), the provider reads it ([`read`]); the engine
//! stays generic over JSON. Adding a kind is one module here, its render and its client.
//!
//! A property that is an output of another resource (an id AWS assigns) is an [`Input`]: a
//! reference in the graph, resolved by the engine just before the call.

pub mod autoscaling;
pub mod backup;
pub mod cloudwatch;
pub mod ec2;
pub mod ecs;
pub mod efs;
pub mod events;
pub mod iam;
mod input;
pub mod lambda;
pub mod logs;
pub mod route53;
pub mod sns;
pub mod ssm;

pub use input::Input;
use reconciler_engine::model::DesiredResource;
use reconciler_engine::provider::{KindSpec, ProviderError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A kind's typed properties.
pub trait Properties: Serialize + DeserializeOwned {
    /// The kind, `<service>.<type>`.
    const KIND: &'static str;

    /// What the engine needs to diff and schedule the kind.
    fn spec() -> KindSpec {
        KindSpec::new()
    }
}

/// A desired resource of kind `P`: id `<kind>/<local>`, AWS name `name`, in `region`.
pub fn desired<P: Properties>(
    local: &str,
    region: &str,
    name: impl Into<String>,
    properties: &P,
) -> DesiredResource {
    DesiredResource::new(P::KIND, local, region, name).with_properties(to_value(properties))
}

/// `properties` as the JSON the engine diffs.
pub fn to_value<P: Properties>(properties: &P) -> serde_json::Value {
    serde_json::to_value(properties).expect("kind properties serialize to JSON")
}

/// The typed properties of `desired`; a property of the wrong shape is a terminal error naming
/// its path (render and the provider disagree, which the contract tests catch first).
pub fn read<P: Properties>(desired: &DesiredResource) -> Result<P, ProviderError> {
    serde_path_to_error::deserialize(&desired.properties).map_err(|e| {
        ProviderError::terminal(format!(
            "{}: properties do not fit {} at `{}`: {}",
            desired.id,
            P::KIND,
            e.path(),
            e.inner()
        ))
    })
}

/// One kind's facts, for the provider's registry and the contract tests.
pub struct KindInfo {
    /// `<service>.<type>`.
    pub kind: &'static str,
    /// Its diff rules.
    pub spec: KindSpec,
    /// Checks that a properties document has exactly the kind's shape: it reads into the
    /// typed properties and writes back unchanged.
    pub conforms: fn(&serde_json::Value) -> Result<(), String>,
}

fn entry<P: Properties>() -> KindInfo {
    KindInfo {
        kind: P::KIND,
        spec: P::spec(),
        conforms: |value| {
            let typed: P = serde_path_to_error::deserialize(value)
                .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))?;
            let back = to_value(&typed);
            if &back == value {
                Ok(())
            } else {
                Err(format!("reads as {back}, not as written"))
            }
        },
    }
}

/// Every kind.
pub fn all() -> Vec<KindInfo> {
    vec![
        entry::<ec2::Vpc>(),
        entry::<ec2::InternetGateway>(),
        entry::<ec2::Subnet>(),
        entry::<ec2::RouteTable>(),
        entry::<ec2::SecurityGroup>(),
        entry::<ec2::DefaultSecurityGroup>(),
        entry::<ec2::KeyPair>(),
        entry::<ec2::LaunchTemplate>(),
        entry::<autoscaling::Group>(),
        entry::<autoscaling::ScalingPolicy>(),
        entry::<iam::Role>(),
        entry::<iam::InstanceProfile>(),
        entry::<logs::LogGroup>(),
        entry::<logs::ResourcePolicy>(),
        entry::<logs::SubscriptionFilter>(),
        entry::<efs::FileSystem>(),
        entry::<efs::MountTarget>(),
        entry::<backup::Vault>(),
        entry::<backup::Plan>(),
        entry::<backup::Selection>(),
        entry::<sns::Topic>(),
        entry::<ecs::Cluster>(),
        entry::<ecs::CapacityProvider>(),
        entry::<ecs::ClusterCapacityProviders>(),
        entry::<ecs::TaskDefinition>(),
        entry::<ecs::Service>(),
        entry::<route53::HostedZone>(),
        entry::<route53::RecordSet>(),
        entry::<route53::QueryLoggingConfig>(),
        entry::<lambda::Function>(),
        entry::<lambda::Permission>(),
        entry::<events::Rule>(),
        entry::<cloudwatch::Alarm>(),
        entry::<cloudwatch::Dashboard>(),
        entry::<ssm::Parameter>(),
    ]
}

/// Reads a typed value out of `Option<Input<T>>` fields: `None` when absent.
pub fn opt<'a, T>(
    value: &'a Option<Input<T>>,
    field: &str,
) -> Result<Option<&'a T>, ProviderError> {
    value.as_ref().map(|v| v.get(field)).transpose()
}
