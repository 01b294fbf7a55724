//! A region-aware pool of SDK clients. Every client shares one base configuration (credentials,
//! endpoint override, retry settings) and the pool's interceptors; clients are built once per
//! (service, region). Every client's calls are paced by the one [`Limiter`] of its service and
//! region (see [`crate::pace`]).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_types::region::Region;
use aws_types::SdkConfig;
use reconciler_engine::provider::ProviderError;

use crate::iam::RoleDetails;
use crate::memo::ObservationMemo;
use crate::metrics::is_read;
use crate::pace::{Limiter, NameOperation, PacedClient};
use crate::tagging::TagIndex;

/// Built clients by (service, region), type-erased because each service has its own type.
type ClientCache = HashMap<(&'static str, String), Box<dyn Any + Send + Sync>>;

/// Clients by service and region.
pub struct ClientPool {
    base: SdkConfig,
    interceptors: Vec<SharedInterceptor>,
    cache: Mutex<ClientCache>,
    shared: Arc<SharedReads>,
    limiters: Mutex<HashMap<(&'static str, String), Arc<Limiter>>>,
}

/// A listing of any type, shared through [`ClientPool::shared_read`].
type AnyAnswer = Arc<dyn Any + Send + Sync>;

/// The reads one observation shares between clients (see [`crate::memo`]).
#[derive(Default)]
struct SharedReads {
    tag_index: TagIndex,
    role_details: ObservationMemo<RoleDetails>,
    /// Listings several kinds make alike (`ListHostedZones` for zones, records and logging
    /// configs), by a key naming the call and its arguments.
    listings: ObservationMemo<AnyAnswer>,
}

impl SharedReads {
    fn expire(&self) {
        self.tag_index.expire();
        self.role_details.expire();
        self.listings.expire();
    }
}

/// Expires every shared read after each call that changes something through the pool: a read
/// shared within an observation never outlives a write that could have made it stale.
#[derive(Debug)]
struct ExpireOnWrite(Arc<SharedReads>);

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads").finish_non_exhaustive()
    }
}

impl Intercept for ExpireOnWrite {
    fn name(&self) -> &'static str {
        "ExpireOnWrite"
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg.load::<Metadata>().is_some_and(|m| !is_read(m.name())) {
            self.0.expire();
        }
        Ok(())
    }
}

/// Attempts per read call, the first included.
pub const READ_ATTEMPTS: u32 = 3;

/// Gives every read call its own retries (the SDK's standard mode, up to [`READ_ATTEMPTS`]),
/// while writes keep the base configuration's single attempt. An observation makes many reads
/// per (kind, region) group, and the engine retries a failed group as a whole: without retries
/// in place, one throttled or failed call among dozens repeats them all, and a group of many
/// calls rarely gets through a lossy network at all. Writes stay with the engine, which knows
/// per error class when to re-observe instead of repeating a call that may have acted.
#[derive(Debug)]
struct RetryReads;

impl Intercept for RetryReads {
    fn name(&self) -> &'static str {
        "RetryReads"
    }

    fn modify_before_retry_loop(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let read = cfg.load::<Metadata>().is_some_and(|m| is_read(m.name()));
        let attempts = cfg
            .load::<RetryConfig>()
            .map_or(1, RetryConfig::max_attempts);
        if read && attempts < READ_ATTEMPTS {
            cfg.interceptor_state()
                .store_put(RetryConfig::standard().with_max_attempts(READ_ATTEMPTS));
        }
        Ok(())
    }
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
        let shared = Arc::new(SharedReads::default());
        ClientPool {
            base,
            interceptors: vec![
                SharedInterceptor::new(ExpireOnWrite(shared.clone())),
                SharedInterceptor::new(RetryReads),
                SharedInterceptor::new(NameOperation),
            ],
            cache: Mutex::new(HashMap::new()),
            shared,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Adds an interceptor to every client the pool builds from now on.
    pub fn with_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// The tag indexes observation shares (see [`crate::tagging`]).
    pub fn tag_index(&self) -> &TagIndex {
        &self.shared.tag_index
    }

    /// The IAM authorization details the role and instance-profile clients share.
    pub(crate) fn role_details(&self) -> &ObservationMemo<RoleDetails> {
        &self.shared.role_details
    }

    /// The answer of a listing several clients make alike within one observation: fetched by
    /// the first to ask, shared with the others until the next observation or write. `key`
    /// names the call, its region and its arguments.
    pub(crate) async fn shared_read<T, F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<Arc<T>, ProviderError>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let answer = self
            .shared
            .listings
            .get(key, || async { Ok(Arc::new(fetch().await?) as AnyAnswer) })
            .await?;
        answer.downcast::<T>().map_err(|_| {
            ProviderError::terminal(format!("shared read `{key}` was made with another type"))
        })
    }

    /// Forgets every read shared within an observation (see [`crate::memo`]), so the next one
    /// sees what changed since.
    pub fn expire_observation(&self) {
        self.shared.expire();
    }

    /// The base configuration.
    pub fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// The limiter of `service` in `region` (one for the account for IAM and Route 53, which
    /// AWS meters per account whatever the region).
    pub fn limiter(&self, service: &'static str, region: &str) -> Arc<Limiter> {
        let scope = if matches!(service, "iam" | "route53") {
            "global"
        } else {
            region
        };
        let mut limiters = self.limiters.lock().expect("limiter map lock");
        limiters
            .entry((service, scope.to_string()))
            .or_insert_with(|| Arc::new(Limiter::new(service)))
            .clone()
    }

    /// The base configuration's HTTP client (the SDK's default when it names none), paced by
    /// the limiter of `service` in `region`.
    fn paced_http_client(&self, service: &'static str, region: &str) -> PacedClient {
        let inner = self.base.http_client().unwrap_or_else(|| {
            use aws_smithy_http_client::tls;
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https()
        });
        PacedClient::new(inner, self.limiter(service, region))
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
            .http_client(self.paced_http_client(service, region))
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
