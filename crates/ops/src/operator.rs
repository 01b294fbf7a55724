//! The AWS side of `reconciler operator`: the operator hands over a server with its Base (or a
//! Base alone) as documents, and this module does exactly what `apply` and `destroy` do with
//! the same documents read from files: validate with the spec crate, prepare, plan, apply,
//! record the results, and read the server's runtime state for its status.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_types::region::Region;
use aws_types::SdkConfig;
use reconciler_engine::model::DesiredGraph;
use reconciler_operator::crd::Runtime;
use reconciler_operator::{ApplyOutcome, Aws, AwsError, Desired, DestroyOutcome};
use reconciler_render::naming::Owner;
use reconciler_spec::redact::Redactor;
use reconciler_spec::resolve::AllowList;
use reconciler_spec::{check_from, ContainerSpecDocument, Input, InstanceCatalog, SpecSet};

use crate::converge::{converge, ConvergeOptions, Quiet};
use crate::deploy::{self, PlanOptions, Prepared};
use crate::destroy::{destroy, DestroyTarget};
use crate::ownership::{OwnedByOther, Ownership};
use crate::session::{home_region, sdk_config, AwsOptions};

/// Where `${VAR}` values in the objects come from.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How to allow a variable, for the error about one that is not allowed.
const HOW_TO_ALLOW: &str = "allow it with `reconciler operator --env-allow NAME` (chart value \
                            `operator.envAllow`)";

/// [`Aws`] through the command's own functions.
pub struct OperatorAws {
    aws: AwsOptions,
    /// A fixed SDK configuration (its region is replaced per Base); the default chain when
    /// `None`.
    config: Option<SdkConfig>,
    env: EnvLookup,
    /// The only variables `${VAR}` may read: the operator's environment holds its own
    /// configuration and credentials, and whoever may create an object writes its references.
    env_allow: Vec<String>,
    /// Take over resources without an owner tag (see [`Ownership::adopt_unowned`]).
    adopt_unowned: bool,
}

impl OperatorAws {
    /// AWS through the default credential chain (IRSA in a pod), `${VAR}` from the process
    /// environment, as the command has them.
    pub fn new(aws: AwsOptions) -> Self {
        OperatorAws {
            aws,
            config: None,
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            env_allow: Vec::new(),
            adopt_unowned: false,
        }
    }

    /// AWS through `config` (a test's emulator), `${VAR}` from `env`.
    pub fn with_config(config: SdkConfig, env: EnvLookup) -> Self {
        OperatorAws {
            aws: AwsOptions::default(),
            config: Some(config),
            env,
            env_allow: Vec::new(),
            adopt_unowned: false,
        }
    }

    /// Lets reconciles take over AWS resources without an owner tag (a migration from
    /// `reconciler apply`); off by default, when they are refused as another owner's.
    pub fn adopting_unowned(mut self, adopt: bool) -> Self {
        self.adopt_unowned = adopt;
        self
    }

    /// Lets `${VAR}` read these variables (none by default): a reference to any other is an
    /// error naming it.
    pub fn allowing_env(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.env_allow = names.into_iter().map(Into::into).collect();
        self
    }

    /// The documents as a validated spec set, named `<namespace>/<Kind>/<name>` in
    /// diagnostics. The Base's other servers join only where they validate with it: a broken
    /// sibling is its own reconcile's error, never this one's.
    fn load(&self, desired: &Desired) -> Result<(SpecSet, InstanceCatalog), AwsError> {
        let yaml = |v: Result<String, serde_yaml_ng::Error>| {
            v.map(String::into_bytes)
                .map_err(|e| AwsError::Failed(format!("serializing the object: {e}")))
        };
        let base = Input {
            name: format!("{}/Base/{}", desired.namespace, desired.base.metadata.name),
            bytes: yaml(serde_yaml_ng::to_string(&desired.base))?,
        };
        let server = |doc: &ContainerSpecDocument| -> Result<Input, AwsError> {
            Ok(Input {
                name: format!("{}/ContainerSpec/{}", desired.namespace, doc.metadata.name),
                bytes: yaml(serde_yaml_ng::to_string(doc))?,
            })
        };
        let mut own = vec![base];
        if let Some(doc) = &desired.server {
            own.push(server(doc)?);
        }
        let catalog = InstanceCatalog::offline();
        let env = self.env.clone();
        let env = AllowList::new(
            self.env_allow.iter().cloned(),
            move |name: &str| env(name),
            HOW_TO_ALLOW,
        );
        let validate = |inputs: &[Input]| -> (SpecSet, Vec<String>) {
            let (set, diags) = check_from(inputs, &env, &catalog);
            let errors = diags
                .iter()
                .filter(|d| d.is_error())
                .map(ToString::to_string)
                .collect();
            (set, errors)
        };
        let mut all = own.clone();
        for doc in &desired.others {
            let input = server(doc)?;
            let alone = [own[0].clone(), input.clone()];
            if validate(&alone).1.is_empty() {
                all.push(input);
            } else {
                tracing::warn!(server = %doc.metadata.name, "a sibling that does not validate is left out of the Base's dashboards");
            }
        }
        let (set, problems) = validate(&all);
        if problems.is_empty() {
            return Ok((set, catalog));
        }
        // The siblings clash with each other or with this server: go on without them.
        tracing::warn!(
            "the Base's other servers do not validate together with this one; its dashboards \
             show this server alone until they do"
        );
        let (set, problems) = validate(&own);
        if !problems.is_empty() {
            return Err(AwsError::Invalid(problems.join("\n")));
        }
        Ok((set, catalog))
    }

    async fn prepare(
        &self,
        desired: &Desired,
        set: SpecSet,
        catalog: InstanceCatalog,
    ) -> Result<Prepared, AwsError> {
        let region = home_region(&set);
        let config = match &self.config {
            Some(config) => config.to_builder().region(Region::new(region)).build(),
            None => sdk_config(&self.aws, &region).await,
        };
        let ownership = Ownership {
            owner: Some(Owner {
                namespace: desired.namespace.clone(),
            }),
            adopt_unowned: self.adopt_unowned,
        };
        let mut p = deploy::prepare_owned(set, catalog, config, ownership)
            .await
            .map_err(failed)?;
        p.graph = without_others(&p.graph, desired);
        Ok(p)
    }
}

/// `graph` without the resources of the Base's other servers: they are rendered only so that
/// what the Base makes for all its servers (its dashboards, a shared wake zone's dispatcher) is
/// whole; each is applied by its own reconcile.
fn without_others(graph: &DesiredGraph, desired: &Desired) -> DesiredGraph {
    let others: BTreeSet<&str> = desired
        .others
        .iter()
        .map(|s| s.metadata.name.as_str())
        .collect();
    deploy::without_servers(graph, &others)
}

/// How long a reconcile waits for another run's lock before it fails (and is retried with
/// the object's backoff).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn failed(e: anyhow::Error) -> AwsError {
    if e.downcast_ref::<OwnedByOther>().is_some() {
        return AwsError::OwnedByOther(format!("{e:#}"));
    }
    AwsError::Failed(format!("{e:#}"))
}

fn errors(report: &reconciler_engine::ApplyReport) -> Vec<String> {
    let mut errors: Vec<String> = report
        .failures()
        .map(|(id, error)| format!("{id}: {error}"))
        .collect();
    let skipped = report.counts().skipped;
    if errors.is_empty() && skipped > 0 {
        errors.push(format!("{skipped} resources skipped"));
    }
    errors
}

/// The server's runtime state for its status; `None` (with a warning) when it cannot be read.
async fn runtime_of(p: &Prepared, name: &str) -> Option<Runtime> {
    match crate::day2::status(p, &[name.to_string()]).await {
        Ok(statuses) => statuses.into_iter().next().map(|s| Runtime {
            state: serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| s.state.to_string()),
            dns_name: Some(s.dns_name),
            public_ip: s.public_ip,
            desired_capacity: s.desired_capacity,
        }),
        Err(error) => {
            tracing::warn!(server = %name, error = %format!("{error:#}"), "could not read the server's state");
            None
        }
    }
}

/// `result` with no value from the environment in its messages: AWS's errors may quote what
/// was sent, and they go into the object's status and events.
fn redacted<T>(
    redactor: &Redactor,
    result: Result<T, AwsError>,
    errors: impl FnOnce(&mut T) -> &mut Vec<String>,
) -> Result<T, AwsError> {
    match result {
        Ok(mut outcome) => {
            for error in errors(&mut outcome).iter_mut() {
                *error = redactor.redact(error);
            }
            Ok(outcome)
        }
        Err(AwsError::Failed(message)) => Err(AwsError::Failed(redactor.redact(&message))),
        Err(AwsError::OwnedByOther(message)) => {
            Err(AwsError::OwnedByOther(redactor.redact(&message)))
        }
        Err(AwsError::Invalid(message)) => Err(AwsError::Invalid(redactor.redact(&message))),
    }
}

#[async_trait]
impl Aws for OperatorAws {
    async fn apply(&self, desired: &Desired) -> Result<ApplyOutcome, AwsError> {
        let (set, catalog) = self.load(desired)?;
        let redactor = set.redactor();
        let applied = self.apply_loaded(desired, set, catalog).await;
        redacted(&redactor, applied, |o| &mut o.errors)
    }

    async fn destroy(
        &self,
        desired: &Desired,
        allow_data_loss: bool,
    ) -> Result<DestroyOutcome, AwsError> {
        let (set, catalog) = self.load(desired)?;
        let redactor = set.redactor();
        let destroyed = self
            .destroy_loaded(desired, set, catalog, allow_data_loss)
            .await;
        redacted(&redactor, destroyed, |o| &mut o.errors)
    }
}

impl OperatorAws {
    async fn apply_loaded(
        &self,
        desired: &Desired,
        set: SpecSet,
        catalog: InstanceCatalog,
    ) -> Result<ApplyOutcome, AwsError> {
        let p = self.prepare(desired, set, catalog).await?;
        let rec = p.session.reconciler(&self.aws);
        let opts = ConvergeOptions {
            plan: PlanOptions::default(),
            lock_wait: LOCK_WAIT,
        };
        let converged = converge(&p, &rec, &opts, &Quiet).await.map_err(failed)?;
        if let Some(error) = &converged.record_error {
            tracing::warn!(error = %format!("{error:#}"), "could not record the results");
        }
        let drifted = converged
            .planned
            .plan
            .drifted()
            .map(|r| r.id.to_string())
            .collect();
        let report = converged.report.unwrap_or_default();
        let runtime = match &desired.server {
            Some(server) => runtime_of(&p, &server.metadata.name).await,
            None => None,
        };
        Ok(ApplyOutcome {
            changed: report.counts().succeeded,
            drifted,
            errors: errors(&report),
            runtime,
        })
    }

    async fn destroy_loaded(
        &self,
        desired: &Desired,
        set: SpecSet,
        catalog: InstanceCatalog,
        allow_data_loss: bool,
    ) -> Result<DestroyOutcome, AwsError> {
        let p = self.prepare(desired, set, catalog).await?;
        let rec = p.session.reconciler(&self.aws);
        let servers: Vec<String> = desired
            .server
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        let (graph, ids) = deploy::destroy_graph_owned(
            &p.session.context,
            p.session.ownership.owner.as_ref(),
            &p.set,
            &p.catalog,
            &servers,
            allow_data_loss,
        )
        .map_err(failed)?;
        let graph = without_others(&graph, desired);
        let target = DestroyTarget {
            graph: &graph,
            ids: &ids,
            servers: &servers,
        };
        let destroyed = destroy(&p, &rec, &target, LOCK_WAIT, &Quiet)
            .await
            .map_err(failed)?;
        if let Some(error) = &destroyed.forget_error {
            tracing::warn!(error = %format!("{error:#}"), "could not forget the results");
        }
        let (plan, report) = (destroyed.plan, destroyed.report.unwrap_or_default());
        Ok(DestroyOutcome {
            deleted: report.counts().succeeded,
            retained: plan.retained().map(|r| r.id.to_string()).collect(),
            errors: errors(&report),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../specs")
            .join(format!("{name}.yaml"));
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn servers(set: &SpecSet) -> Vec<&str> {
        set.servers
            .iter()
            .map(|s| s.doc.metadata.name.as_str())
            .collect()
    }

    /// The Base's other servers join the spec set so its dashboards are whole; one that does
    /// not validate is left out instead of failing this server's reconcile.
    #[test]
    fn siblings_join_where_they_validate() {
        let aws = OperatorAws::with_config(SdkConfig::builder().build(), Arc::new(|_| None))
            .allowing_env([
                "AWS_REGION",
                "DOMAIN_NAME",
                "HOSTED_ZONE_ID",
                "ADMIN_EMAILS",
                "MINECRAFT_EMAILS",
                "VALHEIM_SERVER_NAME",
            ]);
        let mut broken: ContainerSpecDocument = example("valheim");
        let volume = broken.spec.volumes.values().next().unwrap().clone();
        broken.spec.volumes.insert("9-not-an-id".into(), volume);
        let desired = Desired {
            namespace: "games".into(),
            base: example("base"),
            server: Some(example("minecraft")),
            others: vec![example("palworld"), broken],
        };
        let (set, _) = aws.load(&desired).expect("the reconciled server validates");
        assert_eq!(servers(&set), ["minecraft", "palworld"]);

        // The broken one alone, reconciled as itself, is still an error.
        let alone = Desired {
            server: desired.others.get(1).cloned(),
            others: Vec::new(),
            ..desired
        };
        assert!(matches!(aws.load(&alone), Err(AwsError::Invalid(_))));
    }
}
