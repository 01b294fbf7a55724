//! A region-aware pool of SDK clients. Every client shares one base configuration (credentials,
//! endpoint override, retry settings) and the pool's interceptors; clients are built once per
//! (service, region).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::region::Region;
use aws_types::SdkConfig;

use crate::iam::RoleDetails;
use crate::memo::ObservationMemo;
use crate::tagging::TagIndex;

/// Built clients by (service, region), type-erased because each service has its own type.
type ClientCache = HashMap<(&'static str, String), Box<dyn Any + Send + Sync>>;

/// Clients by service and region.
pub struct ClientPool {
    base: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
    cache: Mutex<ClientCache>,
    tag_index: TagIndex,
    role_details: ObservationMemo<RoleDetails>,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("region", &self.base.region())
            .field("interceptors", &self.interceptors.len())
            .finish()
    }
}

macro_rules! client {
    ($method:ident, $krate:ident, $service:literal) => {
        #[doc = concat!("The ", $service, " client for `region`.")]
        pub fn $method(&self, region: &str) -> $krate::Client {
            self.get($service, region, |config| {
                let mut builder = $krate::config::Builder::from(config);
                for interceptor in &self.interceptors {
                    builder.push_interceptor(interceptor.clone());
                }
                $krate::Client::from_conf(builder.build())
            })
        }
    };
}

impl ClientPool {
    /// A pool over a base configuration.
    pub fn new(base: SdkConfig) -> Self {
        ClientPool {
            base,
            interceptors: Vec::new(),
            cache: Mutex::new(HashMap::new()),
            tag_index: TagIndex::default(),
            role_details: ObservationMemo::default(),
        }
    }

    /// Adds an interceptor to every client the pool builds from now on.
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The tag indexes observation shares (see [`crate::tagging`]).
    pub fn tag_index(&self) -> &TagIndex {
        &self.tag_index
    }

    /// The IAM authorization details the role and instance-profile clients share.
    pub(crate) fn role_details(&self) -> &ObservationMemo<RoleDetails> {
        &self.role_details
    }

    /// Forgets every read shared within an observation (see [`crate::memo`]), so the next one
    /// sees what changed since.
    pub fn expire_observation(&self) {
        self.tag_index.expire();
        self.role_details.expire();
    }

    /// The base configuration.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    fn get<C: Clone + Send + Sync + 'static>(
        &self,
        service: &'static str,
        region: &str,
        build: impl FnOnce(&SdkConfig) -> C,
    ) -> C {
        let key = (service, region.to_string());
        let mut cache = self.cache.lock().expect("client pool lock");
        if let Some(client) = cache.get(&key).and_then(|c| c.downcast_ref::<C>()) {
            return client.clone();
        }
        let config = self
            .base
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        let client = build(&config);
        cache.insert(key, Box::new(client.clone()));
        client
    }

    client!(autoscaling, aws_sdk_autoscaling, "autoscaling");
    client!(backup, aws_sdk_backup, "backup");
    client!(cloudwatch, aws_sdk_cloudwatch, "cloudwatch");
    client!(ec2, aws_sdk_ec2, "ec2");
    client!(ecs, aws_sdk_ecs, "ecs");
    client!(efs, aws_sdk_efs, "efs");
    client!(events, aws_sdk_eventbridge, "events");
    client!(iam, aws_sdk_iam, "iam");
    client!(lambda, aws_sdk_lambda, "lambda");
    client!(logs, aws_sdk_cloudwatchlogs, "logs");
    client!(route53, aws_sdk_route53, "route53");
    client!(tagging, aws_sdk_resourcegroupstagging, "tagging");
    client!(sns, aws_sdk_sns, "sns");
    client!(ssm, aws_sdk_ssm, "ssm");
    client!(sts, aws_sdk_sts, "sts");
}
