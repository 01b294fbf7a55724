//! Operator mode: the reconciler inside Kubernetes.
//!
//! `ContainerSpec` and `Base` objects are the same documents as the spec files ([`crd`]); each
//! is reconciled with the engine through the same functions the `reconciler` command uses
//! (the [`reconcile::Aws`] side, implemented by the command's library), with a status, a
//! finalizer that deletes the AWS resources under `destroy`'s retention rules, per-object
//! exponential backoff ([`backoff`]) and leader election over a Lease ([`leader`]) so that
//! several replicas can run.

pub mod backoff;
pub mod client;
pub mod crd;
pub mod leader;
pub mod reconcile;
pub mod run;

pub use reconcile::{
    ApplyOutcome, Aws, AwsError, Config, Context, Desired, DestroyOutcome, Kube, KubeError,
    ObjectKey,
};
pub use run::{run, Options};

/// Selects rustls's aws-lc-rs provider for the process. Both rustls providers end up compiled
/// into the binary (the AWS SDK and kube pull different defaults), and rustls then refuses to
/// guess; the AWS SDK already uses aws-lc-rs.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
