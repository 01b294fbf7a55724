//! An in-process Kubernetes side that behaves like the API server where the reconcile depends
//! on it (resource versions and conflicts, generations, finalizers holding a deletion), and an
//! in-memory AWS side that records what it was asked and answers what a test queued.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use reconciler_operator::crd::{Base, ContainerSpec, Runtime, Status};
use reconciler_operator::{
    ApplyOutcome, Aws, AwsError, Desired, DestroyOutcome, Kube, KubeError, ObjectKey,
};
use reconciler_spec::{BaseDocument, ContainerSpecDocument};

pub const NS: &str = "games";

#[derive(Default)]
struct State {
    bases: BTreeMap<String, Base>,
    servers: BTreeMap<String, ContainerSpec>,
    version: u64,
    events: Vec<(String, bool, String, String)>,
    status_writes: usize,
    fail_next: Option<String>,
}

/// The Kubernetes side.
#[derive(Default)]
pub struct FakeKube {
    state: Mutex<State>,
    /// The namespace of its objects; [`NS`] when empty.
    namespace: String,
}

macro_rules! object_ops {
    ($put:ident, $get:ident, $delete:ident, $field:ident, $ty:ty) => {
        /// Creates or updates the object as `kubectl apply` would: a changed spec bumps the
        /// generation; status and finalizers stay.
        pub fn $put(&self, mut obj: $ty) {
            let mut s = self.state.lock().unwrap();
            s.version += 1;
            let name = obj.metadata.name.clone().unwrap();
            obj.metadata.namespace = Some(self.namespace().into());
            obj.metadata.resource_version = Some(s.version.to_string());
            match s.$field.get(&name) {
                Some(old) => {
                    let changed = old.spec != obj.spec;
                    obj.metadata.generation =
                        Some(old.metadata.generation.unwrap_or(1) + i64::from(changed));
                    obj.metadata.finalizers = old.metadata.finalizers.clone();
                    obj.metadata.uid = old.metadata.uid.clone();
                    obj.metadata.deletion_timestamp = old.metadata.deletion_timestamp.clone();
                    obj.status = old.status.clone();
                }
                None => {
                    obj.metadata.generation = Some(1);
                    obj.metadata.uid = Some(format!("uid-{name}"));
                }
            }
            s.$field.insert(name, obj);
        }

        /// The object as the API server has it now.
        pub fn $get(&self, name: &str) -> Option<$ty> {
            self.state.lock().unwrap().$field.get(name).cloned()
        }

        /// `kubectl delete`: gone at once without finalizers, else marked for deletion (which
        /// bumps the generation).
        pub fn $delete(&self, name: &str) {
            let mut s = self.state.lock().unwrap();
            s.version += 1;
            let version = s.version.to_string();
            let Some(obj) = s.$field.get_mut(name) else {
                return;
            };
            if obj
                .metadata
                .finalizers
                .as_ref()
                .is_none_or(|f| f.is_empty())
            {
                s.$field.remove(name);
                return;
            }
            if obj.metadata.deletion_timestamp.is_none() {
                obj.metadata.deletion_timestamp = Some(Time(k8s_openapi::chrono::Utc::now()));
                obj.metadata.generation = obj.metadata.generation.map(|g| g + 1);
            }
            obj.metadata.resource_version = Some(version);
        }
    };
}

impl FakeKube {
    /// A Kubernetes side whose objects live in `namespace`.
    pub fn in_namespace(namespace: &str) -> Self {
        FakeKube {
            namespace: namespace.into(),
            ..FakeKube::default()
        }
    }

    /// The namespace of its objects.
    pub fn namespace(&self) -> &str {
        if self.namespace.is_empty() {
            NS
        } else {
            &self.namespace
        }
    }

    object_ops!(put_base, base, delete_base, bases, Base);
    object_ops!(put_server, server, delete_server, servers, ContainerSpec);

    /// Events published so far: `(object, warning, reason, note)`.
    pub fn events(&self) -> Vec<(String, bool, String, String)> {
        self.state.lock().unwrap().events.clone()
    }

    /// Status writes so far.
    pub fn status_writes(&self) -> usize {
        self.state.lock().unwrap().status_writes
    }

    /// The next write fails with `message`.
    pub fn fail_next_write(&self, message: &str) {
        self.state.lock().unwrap().fail_next = Some(message.into());
    }
}

fn set_meta(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    finalizers: Vec<String>,
    resource_version: Option<String>,
    version: u64,
) -> Result<bool, KubeError> {
    if resource_version.is_some() && resource_version != meta.resource_version {
        return Err(KubeError(
            "409 Conflict: the object has been modified".into(),
        ));
    }
    meta.finalizers = Some(finalizers);
    meta.resource_version = Some(version.to_string());
    Ok(meta.deletion_timestamp.is_some() && meta.finalizers.as_ref().unwrap().is_empty())
}

#[async_trait]
impl Kube for FakeKube {
    async fn bases(&self, namespace: &str) -> Result<Vec<Base>, KubeError> {
        assert_eq!(namespace, self.namespace());
        Ok(self.state.lock().unwrap().bases.values().cloned().collect())
    }

    async fn servers(&self, namespace: &str) -> Result<Vec<ContainerSpec>, KubeError> {
        assert_eq!(namespace, self.namespace());
        Ok(self
            .state
            .lock()
            .unwrap()
            .servers
            .values()
            .cloned()
            .collect())
    }

    async fn set_finalizers(
        &self,
        key: &ObjectKey,
        finalizers: Vec<String>,
        resource_version: Option<String>,
    ) -> Result<(), KubeError> {
        let mut s = self.state.lock().unwrap();
        if let Some(message) = s.fail_next.take() {
            return Err(KubeError(message));
        }
        s.version += 1;
        let version = s.version;
        let gone = match key.kind {
            "Base" => {
                let obj = s.bases.get_mut(&key.name).ok_or(KubeError("404".into()))?;
                set_meta(&mut obj.metadata, finalizers, resource_version, version)?
            }
            _ => {
                let obj = s
                    .servers
                    .get_mut(&key.name)
                    .ok_or(KubeError("404".into()))?;
                set_meta(&mut obj.metadata, finalizers, resource_version, version)?
            }
        };
        if gone {
            match key.kind {
                "Base" => {
                    s.bases.remove(&key.name);
                }
                _ => {
                    s.servers.remove(&key.name);
                }
            }
        }
        Ok(())
    }

    async fn patch_status(&self, key: &ObjectKey, status: &Status) -> Result<(), KubeError> {
        let mut s = self.state.lock().unwrap();
        if let Some(message) = s.fail_next.take() {
            return Err(KubeError(message));
        }
        s.version += 1;
        s.status_writes += 1;
        let version = s.version.to_string();
        let meta_status = match key.kind {
            "Base" => s
                .bases
                .get_mut(&key.name)
                .map(|o| (&mut o.metadata, &mut o.status)),
            _ => s
                .servers
                .get_mut(&key.name)
                .map(|o| (&mut o.metadata, &mut o.status)),
        };
        let (meta, slot) = meta_status.ok_or(KubeError("404".into()))?;
        meta.resource_version = Some(version);
        *slot = Some(status.clone());
        Ok(())
    }

    async fn event(&self, key: &ObjectKey, warning: bool, reason: &str, note: &str) {
        self.state.lock().unwrap().events.push((
            format!("{}/{}", key.kind, key.name),
            warning,
            reason.into(),
            note.into(),
        ));
    }
}

/// A call the AWS side received.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Apply(Desired),
    Destroy(Desired, bool),
}

/// The AWS side: answers from queues, succeeding by default.
#[derive(Default)]
pub struct FakeAws {
    pub calls: Mutex<Vec<Call>>,
    pub applies: Mutex<VecDeque<Result<ApplyOutcome, AwsError>>>,
    pub destroys: Mutex<VecDeque<Result<DestroyOutcome, AwsError>>>,
}

impl FakeAws {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn queue_apply(&self, outcome: Result<ApplyOutcome, AwsError>) {
        self.applies.lock().unwrap().push_back(outcome);
    }

    pub fn queue_destroy(&self, outcome: Result<DestroyOutcome, AwsError>) {
        self.destroys.lock().unwrap().push_back(outcome);
    }
}

/// What a successful apply of a new server returns.
pub fn created() -> ApplyOutcome {
    ApplyOutcome {
        changed: 42,
        drifted: Vec::new(),
        errors: Vec::new(),
        runtime: Some(Runtime {
            state: "asleep".into(),
            dns_name: Some("minecraft.games.example.com".into()),
            public_ip: None,
            desired_capacity: Some(0),
        }),
    }
}

#[async_trait]
impl Aws for FakeAws {
    async fn apply(&self, desired: &Desired) -> Result<ApplyOutcome, AwsError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Apply(desired.clone()));
        self.applies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(created()))
    }

    async fn destroy(
        &self,
        desired: &Desired,
        allow_data_loss: bool,
    ) -> Result<DestroyOutcome, AwsError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Destroy(desired.clone(), allow_data_loss));
        self.destroys
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| {
                Ok(DestroyOutcome {
                    deleted: 40,
                    retained: vec!["efs.file-system/minecraft-Data".into()],
                    errors: Vec::new(),
                })
            })
    }
}

fn specs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs")
}

/// The example Base, as an object.
pub fn example_base() -> Base {
    let text = std::fs::read_to_string(specs_dir().join("base.yaml")).unwrap();
    let doc: BaseDocument = serde_yaml_ng::from_str(&text).unwrap();
    Base::new(NS, &doc.metadata.name, doc.spec)
}

/// An example server (`minecraft`, `valheim`, `palworld`), as an object.
pub fn example_server(name: &str) -> ContainerSpec {
    let text = std::fs::read_to_string(specs_dir().join(format!("{name}.yaml"))).unwrap();
    let doc: ContainerSpecDocument = serde_yaml_ng::from_str(&text).unwrap();
    ContainerSpec::new(NS, &doc.metadata.name, doc.spec)
}

/// The status condition `type_` as `(status, reason)`.
pub fn condition(status: &Status, type_: &str) -> (String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:?}"));
    (c.status.clone(), c.reason.clone())
}
