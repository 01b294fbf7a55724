//! The operator process: health endpoint, leader election, and the two controllers.
//!
//! Every replica serves `/healthz` and `/readyz` and competes for the Lease; the leader runs
//! the ContainerSpec and Base controllers. On SIGTERM the controllers stop taking new work,
//! finish the reconciles in progress (an AWS apply is not cut in half), and the Lease is
//! released so a standby replica takes over at once. A leader that cannot renew its Lease
//! exits with an error rather than risk two replicas reconciling the same objects.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use futures::StreamExt;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::client::{KubeClient, KubeLeases};
use crate::crd::{Base, ContainerSpec};
use crate::leader::{self, Elector, Timing};
use crate::reconcile::{self, Aws, Config, Context};

/// The controller's name in events and the Lease's default name.
pub const CONTROLLER: &str = "reconciler-operator";

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Reconcile settings.
    pub config: Config,
    /// Elect a leader through a Lease (off: this replica always reconciles).
    pub leader_election: bool,
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub lease_namespace: String,
    /// This replica's identity in the Lease (the pod name).
    pub identity: String,
    /// Election timing.
    pub timing: Timing,
    /// Where `/healthz` and `/readyz` are served (none when `None`).
    pub health_addr: Option<SocketAddr>,
    /// Objects reconciled at once (AWS work itself is serialised).
    pub concurrency: u16,
}

/// Runs until `shutdown` resolves (then drains and returns `Ok`) or leadership is lost
/// (`Err`).
pub async fn run<A: Aws>(
    client: Client,
    aws: A,
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing the reconciles in progress");
        let _ = stop_tx.send(true);
    });
    let leading = Arc::new(AtomicBool::new(!opts.leader_election));
    if let Some(addr) = opts.health_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the health endpoint to {addr}"))?;
        tokio::spawn(serve_health(listener, leading.clone()));
    }
    let ctx = Arc::new(Context::new(
        KubeClient::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER.into(),
                instance: Some(opts.identity.clone()),
            },
        ),
        aws,
        opts.config.clone(),
    ));
    if !opts.leader_election {
        controllers(client, ctx, &opts, stop).await;
        return Ok(());
    }
    let mut elector = Elector::new(
        KubeLeases::new(client.clone(), &opts.lease_namespace, &opts.lease_name),
        &opts.lease_name,
        &opts.identity,
        opts.timing.lease_duration,
    );
    tracing::info!(lease = %opts.lease_name, namespace = %opts.lease_namespace, identity = %opts.identity, "waiting for the lease");
    if !leader::acquire(&mut elector, opts.timing, &mut stop).await {
        return Ok(());
    }
    tracing::info!(identity = %opts.identity, "leading: starting the controllers");
    leading.store(true, Ordering::SeqCst);
    let lost = tokio::select! {
        _ = controllers(client, ctx, &opts, stop) => false,
        _ = leader::keep(&mut elector, opts.timing) => true,
    };
    leading.store(false, Ordering::SeqCst);
    if lost {
        bail!("lost the leader lease; exiting so that only one replica reconciles");
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "could not release the lease; a standby takes over when it expires");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The ContainerSpec and Base controllers, until `stop` turns true.
async fn controllers<A: Aws>(
    client: Client,
    ctx: Arc<Context<KubeClient, A>>,
    opts: &Options,
    stop: watch::Receiver<bool>,
) {
    let (servers, bases): (Api<ContainerSpec>, Api<Base>) = match &opts.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let config = controller::Config::default().concurrency(opts.concurrency);
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|s| *s).await;
    };

    let server_controller = Controller::new(servers.clone(), watcher::Config::default())
        .with_config(config.clone())
        .graceful_shutdown_on(stopped(stop.clone()))
        .run(
            reconcile::reconcile_server,
            reconcile::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { log_result(result) });

    // A Base waiting to be deleted is woken when one of its servers goes away.
    let base_controller = Controller::new(bases, watcher::Config::default());
    let base_store = base_controller.store();
    let base_controller = base_controller
        .watches(servers, watcher::Config::default(), move |server| {
            if server.metadata.deletion_timestamp.is_none() {
                return Vec::new();
            }
            let ns = server.namespace().unwrap_or_default();
            match &server.spec.base_ref {
                Some(name) => vec![ObjectRef::new(name).within(&ns)],
                None => base_store
                    .state()
                    .iter()
                    .filter(|b| b.namespace().as_deref() == Some(ns.as_str()))
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect(),
            }
        })
        .with_config(config)
        .graceful_shutdown_on(stopped(stop))
        .run(reconcile::reconcile_base, reconcile::error_policy, ctx)
        .for_each(|result| async move { log_result(result) });

    futures::join!(server_controller, base_controller);
}

fn log_result<K: kube::Resource, E, QE>(
    result: Result<(ObjectRef<K>, kube::runtime::controller::Action), controller::Error<E, QE>>,
) where
    E: std::error::Error + 'static,
    QE: std::error::Error + 'static,
{
    match result {
        Ok((object, action)) => tracing::debug!(%object, ?action, "reconciled"),
        Err(controller::Error::ReconcilerFailed(error, object)) => {
            tracing::debug!(%object, %error, "reconcile failed (status written, backing off)")
        }
        // A requeue or a mapped trigger for an object deleted meanwhile: nothing to do.
        Err(controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(%object, "object gone before its reconcile")
        }
        Err(error) => tracing::warn!(error = %chain(&error), "controller"),
    }
}

/// An error with its sources, `outer: inner: ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// `/healthz` (the process answers) and `/readyz` (it is ready to lead or standing by), on
/// plain HTTP/1.0: kubelet probes need nothing more, and no web framework is pulled in.
async fn serve_health(listener: tokio::net::TcpListener, leading: Arc<AtomicBool>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let leading = leading.load(Ordering::SeqCst);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (code, body) = match path {
                "/healthz" | "/readyz" => (
                    "200 OK",
                    if leading {
                        "ok: leading\n"
                    } else {
                        "ok: standing by\n"
                    },
                ),
                _ => ("404 Not Found", "not found\n"),
            };
            let response = format!(
                "HTTP/1.0 {code}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
