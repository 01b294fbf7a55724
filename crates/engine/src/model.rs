//! The model the pure render step produces and the engine consumes.
//!
//! A [`DesiredGraph`] is an ordered, validated set of [`DesiredResource`]s.
//! Resources point at each other in two ways, both of which become edges of
//! the dependency DAG:
//!
//! * explicitly, through [`DesiredResource::depends_on`];
//! * implicitly, through a reference inside `properties`: the JSON object
//!   `{"$ref": "<resource id>", "attr": "<output attribute>"}` stands for an
//!   output (`id`, `arn`, ...) of another resource. The engine substitutes it
//!   just before calling a provider, from the outputs of the observed or
//!   freshly created resource. A plan shows a reference it cannot resolve yet
//!   as `(known after apply)`.
//!
//! What the provider reads back is an [`Observed`], shaped like the desired
//! properties so the two can be compared field by field.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use indexmap::{IndexMap, IndexSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path;

/// The JSON key that marks a reference object inside properties.
pub const REF_KEY: &str = "$ref";
/// The JSON key naming the referenced output attribute.
pub const ATTR_KEY: &str = "attr";

/// A resource kind such as `ec2.security-group`: `<service>.<type>`.
///
/// Kinds select the [`crate::provider::ResourceClient`] that manages a
/// resource, and observation is batched per kind and region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kind(String);

impl Kind {
    /// Wraps a kind name.
    pub fn new(kind: impl Into<String>) -> Self {
        Kind(kind.into())
    }

    /// The kind name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Kind {
    fn from(value: &str) -> Self {
        Kind(value.to_owned())
    }
}

impl From<String> for Kind {
    fn from(value: String) -> Self {
        Kind(value)
    }
}

/// The stable identity of a resource inside one desired graph:
/// `<kind>/<logical name>`, e.g. `ec2.security-group/minecraft-instance`.
///
/// The identity is the key that ties a desired resource to what a provider
/// observes, to plan entries, to events and to the apply report. It is not
/// the AWS name (see [`DesiredResource::name`]) nor the AWS id (an output).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceId(String);

impl ResourceId {
    /// Builds `<kind>/<local>`.
    pub fn new(kind: &Kind, local: &str) -> Self {
        ResourceId(format!("{}/{local}", kind.as_str()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind part (everything before the first `/`), when the id has the
    /// `<kind>/<name>` shape.
    pub fn kind_part(&self) -> Option<&str> {
        self.0.split_once('/').map(|(k, _)| k)
    }

    /// The logical-name part (everything after the first `/`).
    pub fn local_part(&self) -> &str {
        self.0.split_once('/').map_or(self.0.as_str(), |(_, n)| n)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ResourceId {
    fn from(value: &str) -> Self {
        ResourceId(value.to_owned())
    }
}

impl From<String> for ResourceId {
    fn from(value: String) -> Self {
        ResourceId(value)
    }
}

impl From<&ResourceId> for ResourceId {
    fn from(value: &ResourceId) -> Self {
        value.clone()
    }
}

/// A reference to an output attribute of another resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The referenced resource.
    pub id: ResourceId,
    /// The output attribute, a key of [`Observed::outputs`] (`id`, `arn`, ...).
    pub attr: String,
}

impl Reference {
    /// Builds a reference.
    pub fn new(id: impl Into<ResourceId>, attr: impl Into<String>) -> Self {
        Reference {
            id: id.into(),
            attr: attr.into(),
        }
    }

    /// The JSON form to embed in properties:
    /// `{"$ref": "<id>", "attr": "<attr>"}`.
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert(REF_KEY.to_owned(), Value::String(self.id.0.clone()));
        map.insert(ATTR_KEY.to_owned(), Value::String(self.attr.clone()));
        Value::Object(map)
    }

    /// Reads a reference object. `Ok(None)` when `value` is not a reference
    /// at all; `Err(())` when it has a `$ref` key but not the exact shape.
    #[allow(clippy::result_unit_err)]
    pub fn parse(value: &Value) -> Result<Option<Reference>, ()> {
        let Value::Object(map) = value else {
            return Ok(None);
        };
        let Some(target) = map.get(REF_KEY) else {
            return Ok(None);
        };
        match (target, map.get(ATTR_KEY), map.len()) {
            (Value::String(id), Some(Value::String(attr)), 2) => {
                Ok(Some(Reference::new(id.as_str(), attr.as_str())))
            }
            _ => Err(()),
        }
    }
}

impl From<Reference> for Value {
    fn from(value: Reference) -> Self {
        value.to_value()
    }
}

/// Shorthand for `Reference::new(id, attr).to_value()`, for building
/// properties with `serde_json::json!`.
pub fn reference(id: impl Into<ResourceId>, attr: impl Into<String>) -> Value {
    Reference::new(id, attr).to_value()
}

/// Visits every well-formed reference in `value` with its path.
pub fn visit_refs(value: &Value, at: &str, f: &mut dyn FnMut(&str, Reference)) {
    let mut path = at.to_owned();
    walk_refs(value, &mut path, f);
}

fn walk_refs(value: &Value, path: &mut String, f: &mut dyn FnMut(&str, Reference)) {
    // Only objects can be references; scalars end the walk at once.
    match value {
        Value::Object(map) => {
            if let Ok(Some(r)) = Reference::parse(value) {
                f(path, r);
                return;
            }
            for (k, v) in map {
                let len = path::push(path, k);
                walk_refs(v, path, f);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path::push(path, itoa(i).as_str());
                walk_refs(v, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A short decimal, without a heap allocation for the common small indexes.
fn itoa(i: usize) -> IndexText {
    let mut buf = [0u8; 20];
    let mut n = i;
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    IndexText { buf, start: at }
}

struct IndexText {
    buf: [u8; 20],
    start: usize,
}

impl IndexText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).expect("ASCII digits")
    }
}

/// Whether `value` still holds a reference anywhere.
pub fn contains_ref(value: &Value) -> bool {
    let mut found = false;
    visit_refs(value, "", &mut |_, _| found = true);
    found
}

/// Substitutes references in `value` with what `lookup` returns; references
/// `lookup` cannot answer stay in place (they are "known after apply").
/// Returns the references left unresolved.
pub fn resolve_refs(
    value: &mut Value,
    lookup: &dyn Fn(&Reference) -> Option<Value>,
) -> Vec<Reference> {
    let mut unresolved = Vec::new();
    resolve_into(value, lookup, &mut unresolved);
    unresolved
}

fn resolve_into(
    value: &mut Value,
    lookup: &dyn Fn(&Reference) -> Option<Value>,
    unresolved: &mut Vec<Reference>,
) {
    if let Ok(Some(r)) = Reference::parse(value) {
        match lookup(&r) {
            Some(v) => *value = v,
            None => unresolved.push(r),
        }
        return;
    }
    match value {
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| resolve_into(v, lookup, unresolved)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| resolve_into(v, lookup, unresolved)),
        _ => {}
    }
    if let Some(joined) = join_value(value) {
        *value = Value::String(joined);
    }
}

/// The JSON key of a text join: `{"$join": ["text", {"$ref": ..}, "more text"]}` becomes one
/// string once every part is known. It lets text embed outputs of other resources (a file
/// system id inside a boot script) the way a whole-value reference cannot.
pub const JOIN_KEY: &str = "$join";

/// The joined text when `value` is a `$join` whose parts are all strings (references
/// resolved); `None` otherwise.
fn join_value(value: &Value) -> Option<String> {
    let Value::Object(map) = value else {
        return None;
    };
    let Some(Value::Array(parts)) = map.get(JOIN_KEY) else {
        return None;
    };
    if map.len() != 1 {
        return None;
    }
    let mut out = String::new();
    for part in parts {
        out.push_str(part.as_str()?);
    }
    Some(out)
}

/// One resource as the specs want it to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredResource {
    /// Stable identity inside the graph.
    pub id: ResourceId,
    /// Which client manages it.
    pub kind: Kind,
    /// AWS region, e.g. `us-east-1`. Global services use the region their
    /// API lives in.
    pub region: String,
    /// The deterministic AWS name, which (with kind and region) lets a
    /// provider find the object again without a state file.
    pub name: String,
    /// The managed fields. Fields absent here are not managed: what AWS adds
    /// or defaults is never reported as drift.
    pub properties: Value,
    /// Managed tags (ownership tags included). Tags AWS or others add are
    /// ignored, like unmanaged properties.
    #[serde(default)]
    pub tags: IndexMap<String, String>,
    /// Explicit dependencies, in addition to those implied by references.
    #[serde(default)]
    pub depends_on: Vec<ResourceId>,
    /// Keep the AWS object when the resource is deleted or would be
    /// replaced: data survives by default.
    #[serde(default)]
    pub retain_on_delete: bool,
}

impl DesiredResource {
    /// A resource with id `<kind>/<local>`, empty properties and no tags.
    pub fn new(
        kind: impl Into<Kind>,
        local: &str,
        region: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let kind = kind.into();
        DesiredResource {
            id: ResourceId::new(&kind, local),
            kind,
            region: region.into(),
            name: name.into(),
            properties: Value::Object(serde_json::Map::new()),
            tags: IndexMap::new(),
            depends_on: Vec::new(),
            retain_on_delete: false,
        }
    }

    /// Replaces the properties.
    pub fn with_properties(mut self, properties: Value) -> Self {
        self.properties = properties;
        self
    }

    /// Adds or replaces one tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds an explicit dependency.
    pub fn with_dependency(mut self, id: impl Into<ResourceId>) -> Self {
        self.depends_on.push(id.into());
        self
    }

    /// Marks the resource as retained on delete.
    pub fn retained(mut self) -> Self {
        self.retain_on_delete = true;
        self
    }

    /// A short stable hash of everything apply writes for this resource (kind, region, name,
    /// properties with references unresolved, tags, retention). Recorded after a successful
    /// apply, it tells a later plan whether a difference comes from the specs (the fingerprint
    /// changed) or from AWS (it did not: drift).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        /// Feeds serialized JSON straight into the hash, without building it in memory.
        struct HashWriter(Sha256);
        impl std::io::Write for HashWriter {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.update(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut tags: Vec<(&String, &String)> = self.tags.iter().collect();
        tags.sort();
        // A JSON array: `[kind, region, name, properties, [[key, value]...], retain]`.
        let canonical = (
            self.kind.as_str(),
            &self.region,
            &self.name,
            &self.properties,
            tags,
            self.retain_on_delete,
        );
        let mut hasher = HashWriter(Sha256::new());
        serde_json::to_writer(&mut hasher, &canonical).expect("hashing cannot fail");
        let digest = hasher.0.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// References found in the properties, with their paths.
    pub fn references(&self) -> Vec<(String, Reference)> {
        let mut out = Vec::new();
        visit_refs(&self.properties, "", &mut |p, r| {
            out.push((p.to_owned(), r))
        });
        out
    }
}

/// What a provider read back for one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The desired resource this object belongs to.
    pub id: ResourceId,
    /// The fields as read back, in the same shape as the desired properties
    /// (extra fields are fine and ignored by the diff).
    pub properties: Value,
    /// Attributes other resources may reference: `id`, `arn`, ...
    #[serde(default)]
    pub outputs: IndexMap<String, Value>,
    /// All tags on the object.
    #[serde(default)]
    pub tags: IndexMap<String, String>,
}

impl Observed {
    /// An observation with empty properties, outputs and tags.
    pub fn new(id: impl Into<ResourceId>) -> Self {
        Observed {
            id: id.into(),
            properties: Value::Object(serde_json::Map::new()),
            outputs: IndexMap::new(),
            tags: IndexMap::new(),
        }
    }

    /// Looks up an output attribute.
    pub fn output(&self, attr: &str) -> Option<&Value> {
        self.outputs.get(attr)
    }
}

/// One problem found while validating a desired graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Two resources share an id.
    #[error("duplicate resource id `{id}`")]
    DuplicateId {
        /// The repeated id.
        id: ResourceId,
    },
    /// Two resources of one kind and region share an AWS name, so a provider
    /// could not tell them apart when observing.
    #[error(
        "resources `{first}` and `{second}` both use the AWS name `{name}` for {kind} in {region}"
    )]
    DuplicateName {
        /// The kind both resources have.
        kind: Kind,
        /// The region both resources live in.
        region: String,
        /// The shared name.
        name: String,
        /// The first resource using the name.
        first: ResourceId,
        /// The second resource using the name.
        second: ResourceId,
    },
    /// A reference names a resource that is not in the graph.
    #[error("`{from}` references unknown resource `{to}` at `{path}`")]
    UnknownReference {
        /// The referencing resource.
        from: ResourceId,
        /// The missing target.
        to: ResourceId,
        /// Where the reference sits in the properties.
        path: String,
    },
    /// A `depends_on` entry names a resource that is not in the graph.
    #[error("`{from}` depends on unknown resource `{to}`")]
    UnknownDependency {
        /// The dependent resource.
        from: ResourceId,
        /// The missing dependency.
        to: ResourceId,
    },
    /// An object has a `$ref` key but is not `{"$ref": "<id>", "attr": "<attr>"}`.
    #[error("`{id}` has a malformed reference at `{path}` (expected {{\"$ref\": \"<id>\", \"attr\": \"<attribute>\"}})")]
    MalformedReference {
        /// The resource.
        id: ResourceId,
        /// Where the malformed object sits.
        path: String,
    },
    /// Properties must be a JSON object.
    #[error("`{id}` has properties that are not a JSON object")]
    PropertiesNotObject {
        /// The resource.
        id: ResourceId,
    },
    /// `tags` is reserved at the top level of properties, because tag
    /// changes are reported under `/tags/<key>`.
    #[error("`{id}` uses the reserved top-level property `tags` (put tags in `tags`)")]
    ReservedProperty {
        /// The resource.
        id: ResourceId,
    },
    /// The dependencies form a cycle; `cycle` lists it in order, starting and
    /// ending with the same id.
    #[error("dependency cycle: {}", cycle.iter().map(ResourceId::as_str).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The ids on the cycle, first repeated at the end.
        cycle: Vec<ResourceId>,
    },
}

/// All problems found in a desired graph, so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid desired graph:\n{}", errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct GraphErrors {
    /// The problems, in resource order.
    pub errors: Vec<GraphError>,
}

/// An ordered, validated collection of desired resources with its
/// dependency DAG.
///
/// Construction checks that ids are unique, names are unique per kind and
/// region, references and dependencies point at known resources, and that
/// the dependencies have no cycle. The insertion order is kept and is the
/// tie-breaker of [`DesiredGraph::topological_order`], so plans and
/// schedules are deterministic.
#[derive(Debug, Clone, Default)]
pub struct DesiredGraph {
    resources: IndexMap<ResourceId, DesiredResource>,
    dependencies: IndexMap<ResourceId, Vec<ResourceId>>,
    dependents: IndexMap<ResourceId, Vec<ResourceId>>,
    order: Vec<ResourceId>,
}

impl DesiredGraph {
    /// Validates and builds a graph.
    pub fn new(resources: impl IntoIterator<Item = DesiredResource>) -> Result<Self, GraphErrors> {
        let mut errors = Vec::new();
        let mut map: IndexMap<ResourceId, DesiredResource> = IndexMap::new();
        let mut names: HashMap<(Kind, String, String), ResourceId> = HashMap::new();
        for r in resources {
            if map.contains_key(&r.id) {
                errors.push(GraphError::DuplicateId { id: r.id.clone() });
                continue;
            }
            let key = (r.kind.clone(), r.region.clone(), r.name.clone());
            if let Some(first) = names.get(&key) {
                errors.push(GraphError::DuplicateName {
                    kind: r.kind.clone(),
                    region: r.region.clone(),
                    name: r.name.clone(),
                    first: first.clone(),
                    second: r.id.clone(),
                });
            } else {
                names.insert(key, r.id.clone());
            }
            map.insert(r.id.clone(), r);
        }

        let mut dependencies: IndexMap<ResourceId, Vec<ResourceId>> = IndexMap::new();
        for r in map.values() {
            match &r.properties {
                Value::Object(props) => {
                    if props.contains_key("tags") {
                        errors.push(GraphError::ReservedProperty { id: r.id.clone() });
                    }
                }
                _ => errors.push(GraphError::PropertiesNotObject { id: r.id.clone() }),
            }
            let mut deps: IndexSet<ResourceId> = IndexSet::new();
            check_malformed(&r.properties, "", &r.id, &mut errors);
            for (at, reference) in r.references() {
                if map.contains_key(&reference.id) {
                    deps.insert(reference.id);
                } else {
                    errors.push(GraphError::UnknownReference {
                        from: r.id.clone(),
                        to: reference.id,
                        path: at,
                    });
                }
            }
            for dep in &r.depends_on {
                if map.contains_key(dep) {
                    deps.insert(dep.clone());
                } else {
                    errors.push(GraphError::UnknownDependency {
                        from: r.id.clone(),
                        to: dep.clone(),
                    });
                }
            }
            dependencies.insert(r.id.clone(), deps.into_iter().collect());
        }

        let mut dependents: IndexMap<ResourceId, Vec<ResourceId>> =
            map.keys().map(|id| (id.clone(), Vec::new())).collect();
        for (id, deps) in &dependencies {
            for d in deps {
                if let Some(list) = dependents.get_mut(d) {
                    list.push(id.clone());
                }
            }
        }

        let order = match topological(&map, &dependencies) {
            Ok(order) => order,
            Err(cycle) => {
                errors.push(GraphError::Cycle { cycle });
                Vec::new()
            }
        };

        if !errors.is_empty() {
            return Err(GraphErrors { errors });
        }
        Ok(DesiredGraph {
            resources: map,
            dependencies,
            dependents,
            order,
        })
    }

    /// An empty graph.
    pub fn empty() -> Self {
        DesiredGraph::default()
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether the graph has no resource.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Looks a resource up.
    pub fn get(&self, id: &ResourceId) -> Option<&DesiredResource> {
        self.resources.get(id)
    }

    /// Whether the graph holds `id`.
    pub fn contains(&self, id: &ResourceId) -> bool {
        self.resources.contains_key(id)
    }

    /// Resources in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &DesiredResource> {
        self.resources.values()
    }

    /// Ids in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = &ResourceId> {
        self.resources.keys()
    }

    /// Direct dependencies of `id` (explicit and through references).
    pub fn dependencies(&self, id: &ResourceId) -> &[ResourceId] {
        self.dependencies.get(id).map_or(&[], Vec::as_slice)
    }

    /// Direct dependents of `id`.
    pub fn dependents(&self, id: &ResourceId) -> &[ResourceId] {
        self.dependents.get(id).map_or(&[], Vec::as_slice)
    }

    /// Every resource after its dependencies; among independent resources
    /// the insertion order wins. Deletes walk this order backwards.
    pub fn topological_order(&self) -> &[ResourceId] {
        &self.order
    }

    /// Resources grouped by (kind, region), groups and members in insertion
    /// order: the unit of batched observation.
    pub fn groups(&self) -> IndexMap<(Kind, String), Vec<&DesiredResource>> {
        let mut groups: IndexMap<(Kind, String), Vec<&DesiredResource>> = IndexMap::new();
        for r in self.resources.values() {
            groups
                .entry((r.kind.clone(), r.region.clone()))
                .or_default()
                .push(r);
        }
        groups
    }

    /// Every resource that `id` depends on, directly or not.
    pub fn transitive_dependencies(&self, id: &ResourceId) -> IndexSet<ResourceId> {
        let mut seen = IndexSet::new();
        let mut stack: Vec<&ResourceId> = self.dependencies(id).iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone()) {
                stack.extend(self.dependencies(next));
            }
        }
        seen
    }
}

fn check_malformed(value: &Value, at: &str, id: &ResourceId, errors: &mut Vec<GraphError>) {
    let mut path = at.to_owned();
    walk_malformed(value, &mut path, id, errors);
}

fn walk_malformed(value: &Value, path: &mut String, id: &ResourceId, errors: &mut Vec<GraphError>) {
    match value {
        Value::Object(map) => match Reference::parse(value) {
            Err(()) => errors.push(GraphError::MalformedReference {
                id: id.clone(),
                path: path.clone(),
            }),
            Ok(Some(_)) => {}
            Ok(None) => {
                for (k, v) in map {
                    let len = path::push(path, k);
                    walk_malformed(v, path, id, errors);
                    path.truncate(len);
                }
            }
        },
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path::push(path, itoa(i).as_str());
                walk_malformed(v, path, id, errors);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Kahn's algorithm with the insertion index as priority; on a cycle,
/// returns one cycle found among the resources left over.
fn topological(
    map: &IndexMap<ResourceId, DesiredResource>,
    deps: &IndexMap<ResourceId, Vec<ResourceId>>,
) -> Result<Vec<ResourceId>, Vec<ResourceId>> {
    let index = |id: &ResourceId| map.get_index_of(id).expect("validated id");
    let mut remaining: Vec<usize> = map
        .keys()
        .map(|id| deps.get(id).map_or(0, Vec::len))
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); map.len()];
    for (id, ds) in deps {
        for d in ds {
            dependents[index(d)].push(index(id));
        }
    }
    let mut ready: BTreeSet<usize> = (0..map.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(map.len());
    while let Some(i) = ready.pop_first() {
        order.push(map.get_index(i).expect("index").0.clone());
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == map.len() {
        return Ok(order);
    }
    // Walk dependencies from a leftover node until a node repeats.
    let left: HashSet<usize> = (0..map.len()).filter(|&i| remaining[i] > 0).collect();
    let start = *left.iter().min().expect("a leftover node");
    let mut path = vec![start];
    let mut pos: HashMap<usize, usize> = HashMap::from([(start, 0)]);
    let mut cur = start;
    loop {
        let id = map.get_index(cur).expect("index").0;
        let next = deps[id]
            .iter()
            .map(index)
            .find(|j| left.contains(j))
            .expect("a node on a cycle has a dependency on the cycle");
        if let Some(&p) = pos.get(&next) {
            let mut cycle: Vec<ResourceId> = path[p..]
                .iter()
                .map(|&i| map.get_index(i).expect("index").0.clone())
                .collect();
            cycle.push(map.get_index(next).expect("index").0.clone());
            return Err(cycle);
        }
        pos.insert(next, path.len());
        path.push(next);
        cur = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(local: &str) -> DesiredResource {
        DesiredResource::new("test.thing", local, "us-east-1", local)
    }

    #[test]
    fn ids_and_refs() {
        let id = ResourceId::new(&Kind::from("ec2.vpc"), "main");
        assert_eq!(id.as_str(), "ec2.vpc/main");
        assert_eq!(id.kind_part(), Some("ec2.vpc"));
        assert_eq!(id.local_part(), "main");
        let v = reference("ec2.vpc/main", "id");
        assert_eq!(v, json!({"$ref": "ec2.vpc/main", "attr": "id"}));
        assert_eq!(
            Reference::parse(&v),
            Ok(Some(Reference::new("ec2.vpc/main", "id")))
        );
        assert_eq!(Reference::parse(&json!({"$ref": 1, "attr": "id"})), Err(()));
        assert_eq!(Reference::parse(&json!({"a": 1})), Ok(None));
    }

    #[test]
    fn resolve_keeps_unknown_refs() {
        let mut v = json!({"a": reference("x/a", "id"), "b": [reference("x/b", "id"), 1]});
        let left = resolve_refs(&mut v, &|r| (r.id.as_str() == "x/a").then(|| json!("id-a")));
        assert_eq!(v["a"], json!("id-a"));
        assert_eq!(left, vec![Reference::new("x/b", "id")]);
        assert!(contains_ref(&v));
    }

    #[test]
    fn topological_order_respects_deps_and_insertion() {
        let g = DesiredGraph::new([
            res("c").with_properties(json!({"p": reference("test.thing/b", "id")})),
            res("a"),
            res("b").with_dependency("test.thing/a"),
            res("d"),
        ])
        .unwrap();
        let order: Vec<&str> = g
            .topological_order()
            .iter()
            .map(|i| i.local_part())
            .collect();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
        assert_eq!(
            g.dependencies(&"test.thing/c".into()),
            &["test.thing/b".into()]
        );
        assert_eq!(
            g.dependents(&"test.thing/a".into()),
            &["test.thing/b".into()]
        );
        assert_eq!(
            g.transitive_dependencies(&"test.thing/c".into()).len(),
            2,
            "c depends on b and, through b, on a"
        );
        assert_eq!(g.groups().len(), 1);
    }

    #[test]
    fn duplicate_id_and_name() {
        let err = DesiredGraph::new([res("a"), res("a")]).unwrap_err();
        assert_eq!(
            err.errors,
            vec![GraphError::DuplicateId {
                id: "test.thing/a".into()
            }]
        );
        let mut b = res("b");
        b.name = "a".into();
        let err = DesiredGraph::new([res("a"), b]).unwrap_err();
        assert!(matches!(&err.errors[0], GraphError::DuplicateName { name, .. } if name == "a"));
    }

    #[test]
    fn unknown_ref_and_dependency() {
        let err = DesiredGraph::new([res("a")
            .with_properties(json!({"vpc": {"id": reference("ec2.vpc/nope", "id")}}))
            .with_dependency("test.thing/ghost")])
        .unwrap_err();
        assert_eq!(
            err.errors,
            vec![
                GraphError::UnknownReference {
                    from: "test.thing/a".into(),
                    to: "ec2.vpc/nope".into(),
                    path: "/vpc/id".into()
                },
                GraphError::UnknownDependency {
                    from: "test.thing/a".into(),
                    to: "test.thing/ghost".into()
                }
            ]
        );
        assert!(err
            .to_string()
            .contains("references unknown resource `ec2.vpc/nope` at `/vpc/id`"));
    }

    #[test]
    fn cycle_is_named() {
        let err = DesiredGraph::new([
            res("x"),
            res("a").with_dependency("test.thing/c"),
            res("b").with_properties(json!({"p": reference("test.thing/a", "id")})),
            res("c").with_dependency("test.thing/b"),
        ])
        .unwrap_err();
        assert_eq!(
            err.errors,
            vec![GraphError::Cycle {
                cycle: vec![
                    "test.thing/a".into(),
                    "test.thing/c".into(),
                    "test.thing/b".into(),
                    "test.thing/a".into()
                ]
            }]
        );
        assert_eq!(
            err.errors[0].to_string(),
            "dependency cycle: test.thing/a -> test.thing/c -> test.thing/b -> test.thing/a"
        );
        let err = DesiredGraph::new([res("s").with_dependency("test.thing/s")]).unwrap_err();
        assert!(matches!(&err.errors[0], GraphError::Cycle { cycle } if cycle.len() == 2));
    }

    #[test]
    fn malformed_and_reserved() {
        let err = DesiredGraph::new([
            res("a").with_properties(json!({"x": {"$ref": "test.thing/b"}})),
            res("b").with_properties(json!({"tags": {}})),
            res("c").with_properties(json!([1])),
        ])
        .unwrap_err();
        assert_eq!(
            err.errors,
            vec![
                GraphError::MalformedReference {
                    id: "test.thing/a".into(),
                    path: "/x".into()
                },
                GraphError::ReservedProperty {
                    id: "test.thing/b".into()
                },
                GraphError::PropertiesNotObject {
                    id: "test.thing/c".into()
                },
            ]
        );
    }
}

#[cfg(test)]
mod join_tests {
    use super::*;

    #[test]
    fn joins_resolve_once_every_reference_is_known() {
        let mut value = serde_json::json!({
            "script": { "$join": ["mount ", reference("efs.file-system/a", "id"), ":/ /mnt"] }
        });
        let left = resolve_refs(&mut value, &|_| None);
        assert_eq!(left.len(), 1);
        assert!(
            value["script"].get(JOIN_KEY).is_some(),
            "unresolved joins stay as they are"
        );
        let left = resolve_refs(&mut value, &|r| {
            Some(Value::String(format!("fs-{}", r.attr)))
        });
        assert!(left.is_empty());
        assert_eq!(value["script"], "mount fs-id:/ /mnt");
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_see_every_written_field() {
        let r = DesiredResource::new("ec2.vpc", "main", "eu-west-1", "rc-main")
            .with_properties(serde_json::json!({"cidrBlock": "10.0.0.0/16"}))
            .with_tag("b", "2")
            .with_tag("a", "1");
        // The value recorded in AWS must not change between versions: pinned (the SHA-256 of
        // `["ec2.vpc","eu-west-1","rc-main",{"cidrBlock":"10.0.0.0/16"},[["a","1"],["b","2"]],false]`).
        assert_eq!(r.fingerprint(), "fccca1fac679f79f");
        let mut tags_reordered = r.clone();
        tags_reordered.tags.sort_keys();
        assert_eq!(tags_reordered.fingerprint(), r.fingerprint());
        for changed in [
            r.clone().with_tag("a", "x"),
            r.clone().retained(),
            r.clone()
                .with_properties(serde_json::json!({"cidrBlock": "10.1.0.0/16"})),
            DesiredResource {
                name: "other".into(),
                ..r.clone()
            },
        ] {
            assert_ne!(changed.fingerprint(), r.fingerprint());
        }
    }
}
