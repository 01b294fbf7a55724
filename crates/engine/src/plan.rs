//! Plans: what apply would do, per resource, with field-level changes.
//!
//! A plan is computed from a desired graph, what was observed, and the set
//! of graph resources that should *not* exist (destroy, prune). It is
//! self-contained: [`crate::execute`] runs a plan without the graph.

use std::collections::HashMap;
use std::fmt;

use indexmap::{IndexMap, IndexSet};
use serde::{Serialize, Serializer};

use crate::diff::{self, FieldChange};
use crate::model::{resolve_refs, DesiredGraph, DesiredResource, Kind, Observed, ResourceId};
use crate::observe::ObservedState;
use crate::provider::{Provider, ReplaceStrategy};

/// What apply does with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// It exists and matches.
    NoOp,
    /// It does not exist yet.
    Create,
    /// It exists; some mutable managed fields differ.
    Update,
    /// It exists; an immutable field differs.
    Replace,
    /// It exists and should not.
    Delete,
    /// It exists and should not, but is retained on delete: listed, kept.
    Retain,
    /// It would need a replacement, but it is retained on delete, so apply
    /// leaves it alone until the spec opts out of retention.
    Blocked,
}

impl Action {
    /// Whether this action changes AWS.
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update | Action::Replace | Action::Delete
        )
    }
}

/// The plan for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct ResourcePlan {
    /// Resource id.
    pub id: ResourceId,
    /// Resource kind.
    pub kind: Kind,
    /// AWS region.
    pub region: String,
    /// AWS name.
    pub name: String,
    /// What to do.
    pub action: Action,
    /// Field-level changes: every field for a create, the differing ones for
    /// update/replace/blocked, none otherwise.
    pub changes: Vec<FieldChange>,
    /// For a replacement, how it is carried out (a create-before-delete
    /// kind falls back to delete-before-create when a dependency is itself
    /// replaced delete-before-create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_strategy: Option<ReplaceStrategy>,
    /// Direct dependencies in the graph.
    pub depends_on: Vec<ResourceId>,
    /// Whether the resource is retained on delete.
    pub retain_on_delete: bool,
    /// Why an existing resource differs, when the caller could tell (see [`Plan::attribute`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<ChangeCause>,
    #[serde(skip)]
    pub(crate) desired: DesiredResource,
    #[serde(skip)]
    pub(crate) observed: Option<Observed>,
}

impl ResourcePlan {
    /// The desired resource as rendered (references unresolved).
    pub fn desired(&self) -> &DesiredResource {
        &self.desired
    }

    /// The observation the plan was computed from.
    pub fn observed(&self) -> Option<&Observed> {
        self.observed.as_ref()
    }
}

/// Why an existing resource is to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeCause {
    /// The specs changed what the resource should be since the last successful apply.
    Spec,
    /// The specs did not change it: AWS was changed out of band.
    Drift,
}

/// Counts of a plan, with replacements counted both as add and destroy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Creates plus replacements.
    pub add: usize,
    /// Updates.
    pub change: usize,
    /// Deletes plus replacements.
    pub destroy: usize,
    /// Resources kept although they are to be deleted.
    pub retain: usize,
    /// Replacements refused because the resource is retained.
    pub blocked: usize,
    /// Resources that already match.
    pub unchanged: usize,
}

/// A full plan, resources in execution order: creates and updates after
/// their dependencies, then deletes after their dependents.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    resources: Vec<ResourcePlan>,
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Plan", 3)?;
        s.serialize_field("resources", &self.resources)?;
        s.serialize_field("summary", &self.summary())?;
        s.serialize_field("has_changes", &!self.is_empty())?;
        s.end()
    }
}

/// A plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No client is registered for a kind.
    #[error("no provider client for kind `{kind}` (resource `{id}`)")]
    UnknownKind {
        /// The kind.
        kind: Kind,
        /// The first resource of that kind.
        id: ResourceId,
    },
    /// A resource to delete is not in the graph.
    #[error("cannot delete `{id}`: it is not in the desired graph")]
    UnknownDeleteTarget {
        /// The id.
        id: ResourceId,
    },
    /// A resource that should exist depends on one that should not.
    #[error("`{id}` should exist but depends on `{dependency}`, which is to be deleted")]
    DependsOnDeleted {
        /// The dependent resource.
        id: ResourceId,
        /// Its dependency marked for deletion.
        dependency: ResourceId,
    },
}

/// Computes the plan.
///
/// `delete` lists graph resources that should not exist. Everything else in
/// the graph should exist. References to resources that are created or
/// replaced by this plan stay unresolved and show as
/// `(known after apply)`; references to existing resources resolve from
/// their observed outputs (an update does not change ids).
pub fn plan(
    graph: &DesiredGraph,
    observed: &ObservedState,
    delete: &IndexSet<ResourceId>,
    provider: &Provider,
) -> Result<Plan, PlanError> {
    for id in delete {
        if !graph.contains(id) {
            return Err(PlanError::UnknownDeleteTarget { id: id.clone() });
        }
    }
    for r in graph.iter() {
        if provider.spec(&r.kind).is_none() {
            return Err(PlanError::UnknownKind {
                kind: r.kind.clone(),
                id: r.id.clone(),
            });
        }
        if !delete.contains(&r.id) {
            if let Some(dep) = graph
                .dependencies(&r.id)
                .iter()
                .find(|d| delete.contains(*d))
            {
                return Err(PlanError::DependsOnDeleted {
                    id: r.id.clone(),
                    dependency: dep.clone(),
                });
            }
        }
    }

    let mut actions: HashMap<ResourceId, (Action, Option<ReplaceStrategy>)> = HashMap::new();
    let mut present = Vec::new();
    for id in graph.topological_order() {
        if delete.contains(id) {
            continue;
        }
        let r = graph.get(id).expect("graph id");
        let spec = provider.spec(&r.kind).expect("checked");
        let obs = observed.get(id);
        let lookup = |reference: &crate::model::Reference| -> Option<serde_json::Value> {
            match actions.get(&reference.id) {
                Some((Action::NoOp | Action::Update | Action::Blocked, _)) => observed
                    .get(&reference.id)
                    .and_then(|o| o.output(&reference.attr))
                    .cloned(),
                _ => None,
            }
        };
        let mut props = r.properties.clone();
        resolve_refs(&mut props, &lookup);
        let (action, changes, strategy) = match obs {
            None => (
                Action::Create,
                diff::creation_changes(&props, &r.tags),
                None,
            ),
            Some(o) => {
                let d = diff::diff(&props, &r.tags, o, spec);
                if d.is_empty() {
                    (Action::NoOp, Vec::new(), None)
                } else if d.requires_replacement() {
                    if r.retain_on_delete {
                        (Action::Blocked, d.changes, None)
                    } else {
                        let dep_forces_dbc = graph.dependencies(id).iter().any(|dep| {
                            matches!(
                                actions.get(dep),
                                Some((Action::Replace, Some(ReplaceStrategy::DeleteBeforeCreate)))
                            )
                        });
                        let strategy = if dep_forces_dbc {
                            ReplaceStrategy::DeleteBeforeCreate
                        } else {
                            spec.replace
                        };
                        (Action::Replace, d.changes, Some(strategy))
                    }
                } else {
                    (Action::Update, d.changes, None)
                }
            }
        };
        actions.insert(id.clone(), (action, strategy));
        present.push(ResourcePlan {
            id: id.clone(),
            kind: r.kind.clone(),
            region: r.region.clone(),
            name: r.name.clone(),
            action,
            changes,
            replace_strategy: strategy,
            depends_on: graph.dependencies(id).to_vec(),
            retain_on_delete: r.retain_on_delete,
            cause: None,
            desired: r.clone(),
            observed: obs.cloned(),
        });
    }
    for id in graph.topological_order().iter().rev() {
        if !delete.contains(id) {
            continue;
        }
        let r = graph.get(id).expect("graph id");
        let obs = observed.get(id);
        let action = match (obs, r.retain_on_delete) {
            (None, _) => Action::NoOp,
            (Some(_), true) => Action::Retain,
            (Some(_), false) => Action::Delete,
        };
        present.push(ResourcePlan {
            id: id.clone(),
            kind: r.kind.clone(),
            region: r.region.clone(),
            name: r.name.clone(),
            action,
            changes: Vec::new(),
            replace_strategy: None,
            depends_on: graph.dependencies(id).to_vec(),
            retain_on_delete: r.retain_on_delete,
            cause: None,
            desired: r.clone(),
            observed: obs.cloned(),
        });
    }
    Ok(Plan { resources: present })
}

impl Plan {
    /// Labels each update, replacement or blocked replacement with its cause, as `cause` tells
    /// from the entry (`None`: unknown, left unlabelled). A create is labelled only as drift
    /// (something applied before was deleted out of band): a new resource needs no label.
    pub fn attribute(&mut self, cause: impl Fn(&ResourcePlan) -> Option<ChangeCause>) {
        for r in &mut self.resources {
            match r.action {
                Action::Update | Action::Replace | Action::Blocked => r.cause = cause(r),
                Action::Create => r.cause = cause(r).filter(|c| *c == ChangeCause::Drift),
                _ => {}
            }
        }
    }

    /// Resources whose difference is attributed to drift.
    pub fn drifted(&self) -> impl Iterator<Item = &ResourcePlan> {
        self.resources
            .iter()
            .filter(|r| r.cause == Some(ChangeCause::Drift))
    }

    /// Builds a plan from entries (for tools that assemble plans).
    pub fn from_resources(resources: Vec<ResourcePlan>) -> Self {
        Plan { resources }
    }

    /// Entries in execution order.
    pub fn resources(&self) -> &[ResourcePlan] {
        &self.resources
    }

    /// The entry for `id`.
    pub fn get(&self, id: &ResourceId) -> Option<&ResourcePlan> {
        self.resources.iter().find(|r| &r.id == id)
    }

    /// The action for `id`.
    pub fn action(&self, id: &ResourceId) -> Option<Action> {
        self.get(id).map(|r| r.action)
    }

    /// Entries with `action`.
    pub fn with_action(&self, action: Action) -> impl Iterator<Item = &ResourcePlan> {
        self.resources.iter().filter(move |r| r.action == action)
    }

    /// Counts.
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for r in &self.resources {
            match r.action {
                Action::NoOp => s.unchanged += 1,
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Delete => s.destroy += 1,
                Action::Retain => s.retain += 1,
                Action::Blocked => s.blocked += 1,
            }
        }
        s
    }

    /// True when AWS already matches: nothing to create, change or destroy,
    /// and no blocked replacement (which is drift too). Retained resources
    /// are not changes.
    pub fn is_empty(&self) -> bool {
        let s = self.summary();
        s.add + s.change + s.destroy + s.blocked == 0
    }

    /// Resources retained on delete, listed so a destroy says what survives.
    pub fn retained(&self) -> impl Iterator<Item = &ResourcePlan> {
        self.with_action(Action::Retain)
    }
}

fn header(r: &ResourcePlan) -> String {
    let cause = match r.cause {
        Some(ChangeCause::Drift) => " [drift: changed outside the reconciler]",
        Some(ChangeCause::Spec) => " [spec change]",
        None => "",
    };
    format!("{} ({}, {}){cause}", r.id, r.region, r.name)
}

fn fmt_before(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_owned(), diff::render_value)
}

fn fmt_after(v: &Option<diff::PlannedValue>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

impl fmt::Display for Plan {
    /// Human-readable text: one header line per resource that is not a
    /// no-op, field lines indented below it, and a closing summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listed: Vec<&ResourcePlan> = self
            .resources
            .iter()
            .filter(|r| r.action != Action::NoOp)
            .collect();
        if listed.is_empty() {
            return writeln!(f, "No changes. AWS matches the desired state.");
        }
        for r in listed {
            match r.action {
                Action::NoOp => {}
                Action::Create => {
                    writeln!(f, "+ create {}", header(r))?;
                    for c in &r.changes {
                        writeln!(f, "    {}: {}", c.path, fmt_after(&c.after))?;
                    }
                }
                Action::Update => {
                    writeln!(f, "~ update {}", header(r))?;
                    for c in &r.changes {
                        writeln!(
                            f,
                            "    {}: {} -> {}",
                            c.path,
                            fmt_before(&c.before),
                            fmt_after(&c.after)
                        )?;
                    }
                }
                Action::Replace | Action::Blocked => {
                    match (r.action, r.replace_strategy) {
                        (Action::Blocked, _) => writeln!(
                            f,
                            "! blocked {}: needs replacement, but it is retained on delete; \
                             opt out of retention to replace it",
                            header(r)
                        )?,
                        (_, Some(ReplaceStrategy::CreateBeforeDelete)) => {
                            writeln!(f, "+/- replace {} (create before delete)", header(r))?
                        }
                        _ => writeln!(f, "-/+ replace {}", header(r))?,
                    }
                    for c in &r.changes {
                        writeln!(
                            f,
                            "    {}: {} -> {}{}",
                            c.path,
                            fmt_before(&c.before),
                            fmt_after(&c.after),
                            if c.forces_replacement {
                                " (forces replacement)"
                            } else {
                                ""
                            }
                        )?;
                    }
                }
                Action::Delete => writeln!(f, "- delete {}", header(r))?,
                Action::Retain => {
                    writeln!(f, "= retain {}: retained on delete, not deleted", header(r))?
                }
            }
        }
        let s = self.summary();
        writeln!(f)?;
        writeln!(
            f,
            "Plan: {} to add, {} to change, {} to destroy, {} to retain.",
            s.add, s.change, s.destroy, s.retain
        )?;
        let drifted = self.drifted().count();
        if drifted > 0 {
            writeln!(
                f,
                "{drifted} resource(s) drifted: changed in AWS outside the reconciler; apply puts them back."
            )?;
        }
        if s.blocked > 0 {
            writeln!(
                f,
                "{} replacement(s) blocked by retention; apply leaves them unchanged.",
                s.blocked
            )?;
        }
        Ok(())
    }
}

/// Index of plan entries by id, used by the executor.
pub(crate) fn index(plan: &Plan) -> IndexMap<ResourceId, usize> {
    plan.resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect()
}
