//! What every AWS-facing command needs: validated specs, an SDK configuration honouring
//! `--endpoint-url` / `AWS_ENDPOINT_URL`, the client pool with its call counter, the account
//! context, and the rendered graph.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use aws_types::region::Region;
use aws_types::SdkConfig;
use reconciler_aws::{CallCounter, ClientPool};
use reconciler_engine::model::DesiredGraph;
use reconciler_engine::{Options, Reconciler, RetryPolicy};
use reconciler_render::Context;
use reconciler_spec::{check, collect_inputs, Diagnostic, InstanceCatalog, SpecSet};

use crate::ownership::Ownership;

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// An endpoint to use instead of AWS's (a local emulator, a proxy).
    pub endpoint_url: Option<String>,
    /// Provider calls in flight at once.
    pub max_concurrency: Option<usize>,
}

/// Loads and validates spec files; prints every diagnostic and fails when there are errors.
/// Unknown instance types are looked up online only when `online` gives a pool.
pub fn load_specs(
    files: &[PathBuf],
    catalog: &InstanceCatalog,
) -> Result<(SpecSet, Vec<Diagnostic>)> {
    load_specs_with(files, catalog, &|name: &str| std::env::var(name).ok())
}

/// [`load_specs`] with `${VAR}` values from `env` instead of the process environment.
pub fn load_specs_with(
    files: &[PathBuf],
    catalog: &InstanceCatalog,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(SpecSet, Vec<Diagnostic>)> {
    if files.is_empty() {
        bail!("no spec files given; pass -f PATH (a file, a directory, or - for standard input)");
    }
    let inputs = match collect_inputs(files) {
        Ok(inputs) => inputs,
        Err(diags) => return Ok((SpecSet::default(), diags)),
    };
    let (set, diags) = check(&inputs, env, catalog);
    Ok((set, diags))
}

/// Builds the base SDK configuration: the default credential chain, one attempt per call (the
/// engine owns retries, by error class; the client pool gives reads a few attempts in place),
/// and bounded timeouts.
pub async fn sdk_config(opts: &AwsOptions, region: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// A connected session: pool, call counter and account context.
#[derive(Clone)]
pub struct Session {
    /// The SDK clients.
    pub pool: Arc<ClientPool>,
    /// Every call made through the pool.
    pub counter: CallCounter,
    /// Account and partition for ARNs.
    pub context: Context,
    /// Patience for the calls a use case makes outside the graph (locks, results, wake and
    /// sleep): the engine's policy, so they ride out throttling as graph operations do.
    pub retry: RetryPolicy,
    /// Whose resources this session makes and may change: nobody's for the command, the
    /// objects' for the operator.
    pub ownership: Ownership,
}

impl Session {
    /// Connects with an SDK configuration (the CLI's, or a test's).
    pub async fn connect(config: SdkConfig, home_region: &str) -> Result<Session> {
        let counter = CallCounter::new();
        let pool = Arc::new(
            ClientPool::new(config).with_interceptor(SharedInterceptor::new(counter.clone())),
        );
        let context = reconciler_aws::identity::context(&pool, home_region)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("reading the AWS account (STS GetCallerIdentity); are credentials set?")?;
        Ok(Session {
            pool,
            counter,
            context,
            retry: RetryPolicy::default(),
            ownership: Ownership::default(),
        })
    }

    /// Looks up instance types the offline table lacks, in one EC2 call.
    pub async fn complete_catalog(
        &self,
        set: &SpecSet,
        catalog: &mut InstanceCatalog,
        region: &str,
    ) -> Result<()> {
        let unknown = catalog.unknown(
            set.servers
                .iter()
                .map(|s| s.doc.spec.ec2.instance_type.as_str()),
        );
        reconciler_aws::identity::complete_catalog(&self.pool, region, &unknown, catalog)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("looking up instance types in EC2")
    }

    /// The engine over this session's provider.
    pub fn reconciler(&self, opts: &AwsOptions) -> Reconciler {
        let mut options = Options::default();
        if let Some(n) = opts.max_concurrency {
            options = options.with_max_concurrency(n);
        }
        Reconciler::new(reconciler_aws::provider(&self.pool), options)
    }

    /// Renders the graph for this account.
    pub fn render(&self, set: &SpecSet, catalog: &InstanceCatalog) -> Result<DesiredGraph> {
        Ok(reconciler_render::render_owned(
            &self.context,
            set,
            catalog,
            self.ownership.owner.as_ref(),
        )?)
    }
}

/// The region used for account-level calls: the first Base's.
pub fn home_region(set: &SpecSet) -> String {
    set.bases
        .first()
        .map(|b| b.doc.spec.region.clone())
        .or_else(|| std::env::var("AWS_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_string())
}
