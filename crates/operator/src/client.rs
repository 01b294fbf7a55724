//! The real Kubernetes side: [`Kube`] and [`LeaseStore`] over a kube-rs [`Client`].

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::crd::{Base, ContainerSpec, Status, GROUP, VERSION};
use crate::leader::{LeaseStore, LeaseWriteError};
use crate::reconcile::{Kube, KubeError, ObjectKey};

/// [`Kube`] over the API server.
#[derive(Clone)]
pub struct KubeClient {
    client: Client,
    recorder: Recorder,
}

impl KubeClient {
    /// A client publishing events as `reporter` (the controller's name and this replica).
    pub fn new(client: Client, reporter: Reporter) -> Self {
        KubeClient {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    fn api(&self, key: &ObjectKey) -> Api<kube::api::DynamicObject> {
        let resource = kube::api::ApiResource {
            group: GROUP.into(),
            version: VERSION.into(),
            api_version: format!("{GROUP}/{VERSION}"),
            kind: key.kind.into(),
            plural: match key.kind {
                "Base" => "bases".into(),
                _ => "containerspecs".into(),
            },
        };
        Api::namespaced_with(self.client.clone(), &key.namespace, &resource)
    }
}

fn err(e: kube::Error) -> KubeError {
    KubeError(e.to_string())
}

#[async_trait]
impl Kube for KubeClient {
    async fn bases(&self, namespace: &str) -> Result<Vec<Base>, KubeError> {
        let api: Api<Base> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.list(&ListParams::default()).await.map_err(err)?.items)
    }

    async fn servers(&self, namespace: &str) -> Result<Vec<ContainerSpec>, KubeError> {
        let api: Api<ContainerSpec> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.list(&ListParams::default()).await.map_err(err)?.items)
    }

    async fn set_finalizers(
        &self,
        key: &ObjectKey,
        finalizers: Vec<String>,
        resource_version: Option<String>,
    ) -> Result<(), KubeError> {
        // A merge patch that carries the resourceVersion read is an optimistic lock: the API
        // server answers 409 when the object changed meanwhile, so no finalizer written by
        // someone else is dropped.
        let patch = json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": resource_version }
        });
        self.api(key)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn patch_status(&self, key: &ObjectKey, status: &Status) -> Result<(), KubeError> {
        self.api(key)
            .patch_status(
                &key.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status_patch(status) })),
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn event(&self, key: &ObjectKey, warning: bool, reason: &str, note: &str) {
        let reference = ObjectReference {
            api_version: Some(format!("{GROUP}/{VERSION}")),
            kind: Some(key.kind.to_string()),
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            uid: key.uid.clone(),
            ..ObjectReference::default()
        };
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1024).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(object = %key, %error, "could not publish an event");
        }
    }
}

/// The status as a merge patch that replaces it: fields that are absent now are written as
/// `null`, which a merge patch reads as "delete" (a stale `lastError` must not survive a
/// success).
pub fn status_patch(status: &Status) -> Value {
    let mut value = serde_json::to_value(status).expect("a status serializes");
    if let Value::Object(map) = &mut value {
        for key in [
            "observedGeneration",
            "conditions",
            "lastError",
            "lastReconcileTime",
            "changed",
            "runtime",
        ] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    value
}

/// [`LeaseStore`] over the API server.
pub struct KubeLeases {
    api: Api<Lease>,
    name: String,
}

impl KubeLeases {
    /// The Lease `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        KubeLeases {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }
}

fn write_err(e: kube::Error) -> LeaseWriteError {
    match &e {
        kube::Error::Api(status) if status.code == 409 => LeaseWriteError::Conflict,
        _ => LeaseWriteError::Other(e.to_string()),
    }
}

#[async_trait]
impl LeaseStore for KubeLeases {
    async fn get(&self) -> Result<Option<Lease>, KubeError> {
        // By status code: `get_opt` also wants the reason `NotFound`, which not every API
        // server implementation spells the same.
        match self.api.get(&self.name).await {
            Ok(lease) => Ok(Some(lease)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, LeaseWriteError> {
        self.api
            .create(&PostParams::default(), lease)
            .await
            .map_err(write_err)
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, LeaseWriteError> {
        // A merge patch carrying the resourceVersion read: the API server applies it only if
        // the Lease is unchanged (409 otherwise), exactly like a replace. Fields now unset are
        // written as null so that a merge removes them (a released Lease has no holder).
        let mut spec = serde_json::to_value(lease.spec.clone().unwrap_or_default())
            .map_err(|e| LeaseWriteError::Other(e.to_string()))?;
        if let Value::Object(map) = &mut spec {
            for key in [
                "holderIdentity",
                "leaseDurationSeconds",
                "acquireTime",
                "renewTime",
                "leaseTransitions",
            ] {
                map.entry(key).or_insert(Value::Null);
            }
        }
        let patch = json!({
            "metadata": { "resourceVersion": lease.metadata.resource_version },
            "spec": spec,
        });
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(write_err)
    }
}
