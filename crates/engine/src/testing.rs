//! An in-memory cloud for tests (feature `testing`).
//!
//! [`FakeCloud`] stores objects found by (kind, region, name), generates ids
//! and ARNs, and behaves like AWS where it matters to the engine:
//!
//! * creating an object whose name is taken answers
//!   [`ErrorClass::Conflict`] (unless the kind replaces create-before-delete:
//!   then the new object shadows the old one until the old one is deleted);
//! * creating or updating an object that points at an id the cloud issued
//!   but no longer holds answers [`ErrorClass::NotFound`];
//! * deleting an object that another object still points at answers
//!   [`ErrorClass::EventualConsistency`] with code `DependencyViolation`;
//! * updating or deleting a missing object answers [`ErrorClass::NotFound`].
//!
//! It counts calls per kind and verb, records their order, tracks how many
//! run at once, injects scripted failures, lets tests change objects out of
//! band (drift, interrupted runs), and records contract violations (an
//! unresolved reference reaching the provider, an unknown value in an
//! update) for [`FakeCloud::assert_no_violations`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;

use crate::diff::{FieldChange, PlannedValue};
use crate::model::{contains_ref, DesiredGraph, DesiredResource, Kind, Observed, ResourceId};
use crate::path;
use crate::provider::{
    ErrorClass, KindSpec, Provider, ProviderError, ReplaceStrategy, ResourceClient,
};

/// A provider verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `observe`
    Observe,
    /// `create`
    Create,
    /// `update`
    Update,
    /// `delete`
    Delete,
}

impl Verb {
    /// Whether the verb changes the cloud.
    pub fn is_mutating(self) -> bool {
        !matches!(self, Verb::Observe)
    }
}

/// An object stored in the fake cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeObject {
    /// The desired id it was created for.
    pub id: ResourceId,
    /// Its kind.
    pub kind: Kind,
    /// Its region.
    pub region: String,
    /// Its AWS name.
    pub name: String,
    /// The generated AWS id (`<type>-000001`).
    pub aws_id: String,
    /// The generated ARN.
    pub arn: String,
    /// Its fields as they would be read back.
    pub properties: Value,
    /// Its tags.
    pub tags: IndexMap<String, String>,
}

impl FakeObject {
    fn observed(&self, id: &ResourceId) -> Observed {
        let mut outputs = IndexMap::new();
        outputs.insert("id".to_owned(), Value::String(self.aws_id.clone()));
        outputs.insert("arn".to_owned(), Value::String(self.arn.clone()));
        outputs.insert("name".to_owned(), Value::String(self.name.clone()));
        Observed {
            id: id.clone(),
            properties: self.properties.clone(),
            outputs,
            tags: self.tags.clone(),
        }
    }
}

/// One recorded provider call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// The kind called.
    pub kind: Kind,
    /// The verb.
    pub verb: Verb,
    /// The region.
    pub region: String,
    /// The resources concerned (all of them for an observe).
    pub ids: Vec<ResourceId>,
    /// Global sequence number when the call started.
    pub started: u64,
    /// Global sequence number when it returned (`None` while running).
    pub finished: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
}

/// A scripted failure: the next `times` calls matching it fail with
/// `class`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    kind: Option<Kind>,
    id: Option<ResourceId>,
    verb: Option<Verb>,
    class: ErrorClass,
    code: Option<String>,
    message: String,
    times: usize,
}

impl Failure {
    /// Fails calls for any resource of `kind`.
    pub fn on_kind(kind: impl Into<Kind>) -> Self {
        Failure {
            kind: Some(kind.into()),
            id: None,
            verb: None,
            class: ErrorClass::Terminal,
            code: None,
            message: "scripted failure".to_owned(),
            times: 1,
        }
    }

    /// Fails calls concerning resource `id`.
    pub fn on_resource(id: impl Into<ResourceId>) -> Self {
        Failure {
            kind: None,
            id: Some(id.into()),
            verb: None,
            class: ErrorClass::Terminal,
            code: None,
            message: "scripted failure".to_owned(),
            times: 1,
        }
    }

    /// Only calls with this verb.
    pub fn verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    /// The error class (default terminal).
    pub fn class(mut self, class: ErrorClass) -> Self {
        self.class = class;
        self
    }

    /// An error code to report.
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The message to report.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// How many matching calls fail (default 1); `usize::MAX` for always.
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn matches(&self, kind: &Kind, verb: Verb, ids: &[ResourceId]) -> bool {
        self.times > 0
            && self.kind.as_ref().is_none_or(|k| k == kind)
            && self.verb.is_none_or(|v| v == verb)
            && self.id.as_ref().is_none_or(|id| ids.contains(id))
    }

    fn error(&self) -> ProviderError {
        ProviderError {
            class: self.class,
            code: self.code.clone(),
            message: self.message.clone(),
        }
    }
}

/// How the fake treats one kind.
#[derive(Debug, Clone)]
pub struct FakeKind {
    kind: Kind,
    spec: KindSpec,
    id_prefix: String,
    read_back_extra: Value,
    latency: Option<Duration>,
}

impl FakeKind {
    /// A kind with the default spec; ids are prefixed with the part of the
    /// kind after the last `.`.
    pub fn new(kind: impl Into<Kind>) -> Self {
        let kind = kind.into();
        let id_prefix = kind.as_str().rsplit('.').next().unwrap_or("res").to_owned();
        FakeKind {
            kind,
            spec: KindSpec::default(),
            id_prefix,
            read_back_extra: Value::Null,
            latency: None,
        }
    }

    /// The spec the client declares.
    pub fn spec(mut self, spec: KindSpec) -> Self {
        self.spec = spec;
        self
    }

    /// The prefix of generated ids.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = prefix.into();
        self
    }

    /// Fields the cloud adds on create (defaults, status), which the diff
    /// must ignore because nobody asked for them.
    pub fn read_back_extra(mut self, extra: Value) -> Self {
        self.read_back_extra = extra;
        self
    }

    /// Latency of every call of this kind (overrides the cloud's).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }
}

#[derive(Default)]
struct State {
    /// By AWS id, in creation order.
    objects: IndexMap<String, FakeObject>,
    issued: HashSet<String>,
    next: u64,
    seq: u64,
    calls: Vec<CallRecord>,
    failures: Vec<Failure>,
    violations: Vec<String>,
    latency: Duration,
}

/// The in-memory cloud. Cheap to clone; clones share state.
#[derive(Clone, Default)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FakeCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FakeCloud")
            .field("objects", &s.objects.len())
            .field("calls", &s.calls.len())
            .finish()
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeCloud {
    /// An empty cloud with no latency.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from assertions.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Latency of every call (virtual time under a paused tokio clock), so
    /// independent calls overlap and concurrency can be observed.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// A client for one kind.
    pub fn client(&self, kind: FakeKind) -> Arc<dyn ResourceClient> {
        Arc::new(FakeClient {
            cloud: self.clone(),
            config: kind,
        })
    }

    /// A provider with a client per kind.
    pub fn provider(&self, kinds: impl IntoIterator<Item = FakeKind>) -> Provider {
        let mut provider = Provider::new();
        for k in kinds {
            provider.register(self.client(k));
        }
        provider
    }

    /// Scripts a failure.
    pub fn inject(&self, failure: Failure) {
        self.lock().failures.push(failure);
    }

    /// Drops all scripted failures not consumed yet.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    // ----- inspection -----

    /// All calls so far, in start order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.lock().calls.clone()
    }

    /// Forgets recorded calls (objects stay).
    pub fn reset_calls(&self) {
        self.lock().calls.clear();
        self.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// Calls of `kind` with `verb`.
    pub fn calls(&self, kind: impl Into<Kind>, verb: Verb) -> usize {
        let kind = kind.into();
        self.lock()
            .calls
            .iter()
            .filter(|c| c.kind == kind && c.verb == verb)
            .count()
    }

    /// Calls with `verb`, any kind.
    pub fn calls_of(&self, verb: Verb) -> usize {
        self.lock().calls.iter().filter(|c| c.verb == verb).count()
    }

    /// Calls concerning resource `id` with `verb`.
    pub fn calls_for(&self, id: &ResourceId, verb: Verb) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.verb == verb && c.ids.contains(id))
            .count()
    }

    /// Create, update and delete calls, failed ones included.
    pub fn mutating_calls(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.verb.is_mutating())
            .count()
    }

    /// The most calls that were in flight at once since the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Resources whose `verb` call succeeded, in completion order.
    pub fn completed(&self, verb: Verb) -> Vec<ResourceId> {
        let s = self.lock();
        let mut done: Vec<&CallRecord> = s
            .calls
            .iter()
            .filter(|c| c.verb == verb && c.ok && c.finished.is_some())
            .collect();
        done.sort_by_key(|c| c.finished);
        done.iter().flat_map(|c| c.ids.clone()).collect()
    }

    /// Contract violations seen (should be none).
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The object created for `id`.
    pub fn object(&self, id: &ResourceId) -> Option<FakeObject> {
        self.lock().objects.values().rfind(|o| &o.id == id).cloned()
    }

    /// Whether an object exists for `id`.
    pub fn exists(&self, id: &ResourceId) -> bool {
        self.object(id).is_some()
    }

    /// A field of the object for `id`.
    pub fn property(&self, id: &ResourceId, at: &str) -> Option<Value> {
        self.object(id)
            .and_then(|o| path::get(&o.properties, at).cloned())
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// Whether the cloud is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().objects.is_empty()
    }

    // ----- out-of-band changes -----

    fn with_object<T>(&self, id: &ResourceId, f: impl FnOnce(&mut FakeObject) -> T) -> T {
        let mut s = self.lock();
        let obj = s
            .objects
            .values_mut()
            .rfind(|o| &o.id == id)
            .unwrap_or_else(|| panic!("no object for {id} in the fake cloud"));
        f(obj)
    }

    /// Changes a field behind the engine's back (drift).
    pub fn set_property(&self, id: &ResourceId, at: &str, value: Value) {
        self.with_object(id, |o| {
            assert!(path::set(&mut o.properties, at, value), "cannot set {at}")
        });
    }

    /// Removes a field behind the engine's back.
    pub fn remove_property(&self, id: &ResourceId, at: &str) {
        self.with_object(id, |o| path::remove(&mut o.properties, at));
    }

    /// Sets a tag behind the engine's back.
    pub fn set_tag(&self, id: &ResourceId, key: &str, value: &str) {
        self.with_object(id, |o| o.tags.insert(key.to_owned(), value.to_owned()));
    }

    /// Deletes an object behind the engine's back.
    pub fn delete_out_of_band(&self, id: &ResourceId) {
        self.lock().objects.retain(|_, o| &o.id != id);
    }

    /// Creates an object as an earlier (interrupted) run would have, without
    /// recording a call. `desired` must have its references resolved.
    pub fn create_out_of_band(&self, desired: &DesiredResource) -> FakeObject {
        let mut s = self.lock();
        let obj = new_object(&mut s, desired, &Value::Null, &prefix_of(&desired.kind));
        s.objects.insert(obj.aws_id.clone(), obj.clone());
        obj
    }

    // ----- assertions -----

    /// Panics if a contract violation was recorded.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "provider contract violations: {v:#?}");
    }

    /// Panics unless an object exists for `id`.
    pub fn assert_exists(&self, id: &ResourceId) {
        assert!(self.exists(id), "expected {id} to exist in the fake cloud");
    }

    /// Panics if an object exists for `id`.
    pub fn assert_absent(&self, id: &ResourceId) {
        assert!(
            !self.exists(id),
            "expected {id} not to exist in the fake cloud"
        );
    }

    /// Panics unless exactly `n` mutating calls were made.
    pub fn assert_mutating_calls(&self, n: usize) {
        let got = self.mutating_calls();
        assert_eq!(got, n, "mutating calls: {:#?}", self.mutating_log());
    }

    fn mutating_log(&self) -> Vec<(Verb, Vec<ResourceId>)> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.verb.is_mutating())
            .map(|c| (c.verb, c.ids.clone()))
            .collect()
    }

    /// Panics unless every successful create started after the successful
    /// creates of the resource's dependencies had finished.
    pub fn assert_created_after_dependencies(&self, graph: &DesiredGraph) {
        let calls = self.call_log();
        let create_of = |id: &ResourceId| {
            calls
                .iter()
                .rfind(|c| c.verb == Verb::Create && c.ok && c.ids.contains(id))
        };
        for r in graph.iter() {
            let Some(mine) = create_of(&r.id) else {
                continue;
            };
            for dep in graph.dependencies(&r.id) {
                if let Some(theirs) = create_of(dep) {
                    assert!(
                        theirs.finished.is_some_and(|f| f < mine.started),
                        "{} was created before its dependency {dep} finished",
                        r.id
                    );
                }
            }
        }
    }

    /// Panics unless every successful delete started after the successful
    /// deletes of the resource's dependents had finished.
    pub fn assert_deleted_after_dependents(&self, graph: &DesiredGraph) {
        let calls = self.call_log();
        let delete_of = |id: &ResourceId| {
            calls
                .iter()
                .rfind(|c| c.verb == Verb::Delete && c.ok && c.ids.contains(id))
        };
        for r in graph.iter() {
            let Some(mine) = delete_of(&r.id) else {
                continue;
            };
            for dependent in graph.dependents(&r.id) {
                if let Some(theirs) = delete_of(dependent) {
                    assert!(
                        theirs.finished.is_some_and(|f| f < mine.started),
                        "{} was deleted before its dependent {dependent} was",
                        r.id
                    );
                }
            }
        }
    }

    // ----- call plumbing -----

    fn begin(&self, kind: &Kind, verb: Verb, region: &str, ids: Vec<ResourceId>) -> usize {
        let mut s = self.lock();
        s.seq += 1;
        let started = s.seq;
        s.calls.push(CallRecord {
            kind: kind.clone(),
            verb,
            region: region.to_owned(),
            ids,
            started,
            finished: None,
            ok: false,
        });
        s.calls.len() - 1
    }

    fn finish<T>(&self, call: usize, result: Result<T, ProviderError>) -> Result<T, ProviderError> {
        let mut s = self.lock();
        s.seq += 1;
        let seq = s.seq;
        let rec = &mut s.calls[call];
        rec.finished = Some(seq);
        rec.ok = result.is_ok();
        result
    }

    async fn enter(&self, kind: &FakeKind) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(&self.in_flight);
        let latency = kind.latency.unwrap_or_else(|| self.lock().latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        guard
    }

    fn scripted(&self, kind: &Kind, verb: Verb, ids: &[ResourceId]) -> Option<ProviderError> {
        let mut s = self.lock();
        let rule = s.failures.iter_mut().find(|f| f.matches(kind, verb, ids))?;
        rule.times = rule.times.saturating_sub(1);
        Some(rule.error())
    }

    fn violation(&self, message: String) -> ProviderError {
        self.lock().violations.push(message.clone());
        ProviderError::terminal(message)
    }
}

impl State {
    /// The newest object with the kind, region and name of `r`.
    fn find(&self, r: &DesiredResource) -> Option<&FakeObject> {
        self.objects
            .values()
            .rfind(|o| o.kind == r.kind && o.region == r.region && o.name == r.name)
    }
}

fn prefix_of(kind: &Kind) -> String {
    kind.as_str().rsplit('.').next().unwrap_or("res").to_owned()
}

fn new_object(s: &mut State, desired: &DesiredResource, extra: &Value, prefix: &str) -> FakeObject {
    s.next += 1;
    let aws_id = format!("{prefix}-{:06}", s.next);
    let (service, kind_type) = desired
        .kind
        .as_str()
        .split_once('.')
        .unwrap_or(("svc", desired.kind.as_str()));
    let arn = format!(
        "arn:aws:{service}:{}:000000000000:{kind_type}/{aws_id}",
        desired.region
    );
    s.issued.insert(aws_id.clone());
    s.issued.insert(arn.clone());
    let mut properties = desired.properties.clone();
    if let (Value::Object(props), Value::Object(extra)) = (&mut properties, extra) {
        for (k, v) in extra {
            props.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    FakeObject {
        id: desired.id.clone(),
        kind: desired.kind.clone(),
        region: desired.region.clone(),
        name: desired.name.clone(),
        aws_id,
        arn,
        properties,
        tags: desired.tags.clone(),
    }
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// Ids and ARNs the cloud issued that `props` points at but that no longer
/// exist.
fn dangling(s: &State, props: &Value) -> Option<String> {
    let mut found = Vec::new();
    strings(props, &mut found);
    found.into_iter().find(|v| {
        s.issued.contains(v) && !s.objects.values().any(|o| &o.aws_id == v || &o.arn == v)
    })
}

struct FakeClient {
    cloud: FakeCloud,
    config: FakeKind,
}

#[async_trait]
impl ResourceClient for FakeClient {
    fn kind(&self) -> Kind {
        self.config.kind.clone()
    }

    fn spec(&self) -> KindSpec {
        self.config.spec.clone()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let kind = &self.config.kind;
        let ids: Vec<ResourceId> = desired.iter().map(|d| d.id.clone()).collect();
        let call = self.cloud.begin(kind, Verb::Observe, region, ids.clone());
        let _guard = self.cloud.enter(&self.config).await;
        if let Some(e) = self.cloud.scripted(kind, Verb::Observe, &ids) {
            return self.cloud.finish(call, Err(e));
        }
        let result = {
            let s = self.cloud.lock();
            desired
                .iter()
                .filter(|d| d.region == region && &d.kind == kind)
                .filter_map(|d| s.find(d).map(|o| o.observed(&d.id)))
                .collect()
        };
        self.cloud.finish(call, Ok(result))
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let kind = &self.config.kind;
        let ids = vec![desired.id.clone()];
        let call = self
            .cloud
            .begin(kind, Verb::Create, &desired.region, ids.clone());
        let _guard = self.cloud.enter(&self.config).await;
        if let Some(e) = self.cloud.scripted(kind, Verb::Create, &ids) {
            return self.cloud.finish(call, Err(e));
        }
        if contains_ref(&desired.properties) {
            let e = self.cloud.violation(format!(
                "create of {} received an unresolved reference",
                desired.id
            ));
            return self.cloud.finish(call, Err(e));
        }
        let result = {
            let mut s = self.cloud.lock();
            let shadows = self.config.spec.replace == ReplaceStrategy::CreateBeforeDelete;
            if !shadows && s.find(desired).is_some() {
                Err(
                    ProviderError::conflict(format!("{} already exists", desired.name))
                        .with_code("AlreadyExists"),
                )
            } else if let Some(missing) = dangling(&s, &desired.properties) {
                Err(ProviderError::not_found(format!(
                    "{missing} does not exist"
                )))
            } else {
                let obj = new_object(
                    &mut s,
                    desired,
                    &self.config.read_back_extra,
                    &self.config.id_prefix,
                );
                let observed = obj.observed(&desired.id);
                s.objects.insert(obj.aws_id.clone(), obj);
                Ok(observed)
            }
        };
        self.cloud.finish(call, result)
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        let kind = &self.config.kind;
        let ids = vec![desired.id.clone()];
        let call = self
            .cloud
            .begin(kind, Verb::Update, &desired.region, ids.clone());
        let _guard = self.cloud.enter(&self.config).await;
        if let Some(e) = self.cloud.scripted(kind, Verb::Update, &ids) {
            return self.cloud.finish(call, Err(e));
        }
        if contains_ref(&desired.properties) || changes.iter().any(FieldChange::after_unknown) {
            let e = self.cloud.violation(format!(
                "update of {} received an unresolved value",
                desired.id
            ));
            return self.cloud.finish(call, Err(e));
        }
        if changes.is_empty() {
            let e = self
                .cloud
                .violation(format!("update of {} with no changes", desired.id));
            return self.cloud.finish(call, Err(e));
        }
        let result = {
            let mut s = self.cloud.lock();
            if let Some(missing) = dangling(&s, &desired.properties) {
                Err(ProviderError::not_found(format!(
                    "{missing} does not exist"
                )))
            } else {
                let key = s.find(desired).map(|o| o.aws_id.clone());
                match key.and_then(|k| s.objects.get_mut(&k)) {
                    None => Err(ProviderError::not_found(format!(
                        "{} not found",
                        desired.name
                    ))),
                    Some(obj) => {
                        for c in changes {
                            let value = c.after.as_ref().and_then(PlannedValue::known).cloned();
                            if let Some(key) = c.path.strip_prefix("/tags/") {
                                let key = path::unescape(key);
                                match value {
                                    Some(Value::String(v)) => {
                                        obj.tags.insert(key, v);
                                    }
                                    _ => {
                                        obj.tags.shift_remove(&key);
                                    }
                                }
                            } else {
                                match value {
                                    Some(v) => {
                                        path::set(&mut obj.properties, &c.path, v);
                                    }
                                    None => {
                                        path::remove(&mut obj.properties, &c.path);
                                    }
                                }
                            }
                        }
                        Ok(obj.observed(&desired.id))
                    }
                }
            }
        };
        self.cloud.finish(call, result)
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let kind = &self.config.kind;
        let ids = vec![desired.id.clone()];
        let call = self
            .cloud
            .begin(kind, Verb::Delete, &desired.region, ids.clone());
        let _guard = self.cloud.enter(&self.config).await;
        if let Some(e) = self.cloud.scripted(kind, Verb::Delete, &ids) {
            return self.cloud.finish(call, Err(e));
        }
        let result = {
            let mut s = self.cloud.lock();
            // Delete exactly the observed object (a create-before-delete
            // replacement has two with the same name); fall back to the name.
            let target = observed
                .output("id")
                .and_then(Value::as_str)
                .and_then(|id| s.objects.get(id))
                .or_else(|| s.find(desired))
                .cloned();
            match target {
                None => Err(ProviderError::not_found(format!(
                    "{} not found",
                    desired.name
                ))),
                Some(obj) => {
                    let user = s.objects.values().find(|o| {
                        o.id != obj.id && {
                            let mut found = Vec::new();
                            strings(&o.properties, &mut found);
                            found.iter().any(|v| v == &obj.aws_id || v == &obj.arn)
                        }
                    });
                    if let Some(user) = user {
                        Err(ProviderError::eventual_consistency(format!(
                            "{} is still used by {}",
                            obj.aws_id, user.id
                        ))
                        .with_code("DependencyViolation"))
                    } else {
                        s.objects.shift_remove(&obj.aws_id);
                        Ok(())
                    }
                }
            }
        };
        self.cloud.finish(call, result)
    }
}
