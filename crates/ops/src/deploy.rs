//! render, plan, apply and destroy: the commands that reach AWS. Each is a function over a
//! [`Prepared`] input so tests drive exactly what the binary runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, Result};
use reconciler_engine::execute::{ApplyEvent, EventKind, Operation};
use reconciler_engine::model::{DesiredGraph, DesiredResource, ResourceId};
use reconciler_engine::{Action, ApplyReport, ChangeCause, ObservedState, Plan, Reconciler};
use reconciler_render::naming::Owner;
use reconciler_render::naming::{dashboard_name, TAG_SERVER};
use reconciler_render::record::ApplyRecord;
use reconciler_render::{kinds, render_resources_owned, Context};
use reconciler_spec::{InstanceCatalog, SpecSet, WakeZone};

use crate::ownership::Ownership;
use crate::prune::{Orphan, Unreadable};
use crate::session::{home_region, Session};

/// Validated specs, connected session and rendered graph.
#[derive(Clone)]
pub struct Prepared {
    /// The specs.
    pub set: SpecSet,
    /// Instance types, completed online.
    pub catalog: InstanceCatalog,
    /// The AWS session.
    pub session: Session,
    /// The desired graph.
    pub graph: DesiredGraph,
}

/// Connects, completes the instance catalog and renders.
pub async fn prepare(
    set: SpecSet,
    catalog: InstanceCatalog,
    config: aws_types::SdkConfig,
) -> Result<Prepared> {
    prepare_owned(set, catalog, config, Ownership::default()).await
}

/// [`prepare`] for a session with an owner (the operator's): what it renders carries the
/// owner's tag, and it changes only resources with that tag.
pub async fn prepare_owned(
    set: SpecSet,
    mut catalog: InstanceCatalog,
    config: aws_types::SdkConfig,
    ownership: Ownership,
) -> Result<Prepared> {
    let region = home_region(&set);
    let mut session = Session::connect(config, &region).await?;
    session.ownership = ownership;
    session
        .complete_catalog(&set, &mut catalog, &region)
        .await?;
    let graph = session.render(&set, &catalog)?;
    Ok(Prepared {
        set,
        catalog,
        session,
        graph,
    })
}

/// What `plan` and `apply` do beyond converging the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Delete the servers of the input's Bases whose specs are gone from the input.
    pub prune: bool,
    /// With `prune`: also delete file systems whose spec did not ask to keep them.
    pub allow_data_loss: bool,
}

/// A plan with what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The plan, each change attributed to the specs or to drift where the records tell.
    pub plan: Plan,
    /// Servers in AWS whose specs are not in the input (pruned only with `prune`).
    pub orphans: Vec<Orphan>,
    /// Apply records that could not be read (nothing is done about them).
    pub unreadable: Vec<Unreadable>,
    /// With `prune`: resources named like an orphan's but not tagged as ours; kept.
    pub unowned: Vec<ResourceId>,
    /// With `prune`: which orphan each pruned resource belongs to.
    pub pruned_owners: BTreeMap<ResourceId, String>,
    /// Resources in the graph planned over.
    pub graph_len: usize,
}

impl Planned {
    /// A plan over `graph_len` resources that found nothing about servers outside the input
    /// (a destroy's).
    pub fn of(plan: Plan, graph_len: usize) -> Planned {
        Planned {
            plan,
            orphans: Vec::new(),
            unreadable: Vec::new(),
            unowned: Vec::new(),
            pruned_owners: BTreeMap::new(),
            graph_len,
        }
    }

    /// The inventory of a prune: per server, what is deleted and what is kept. Empty when
    /// nothing is pruned.
    pub fn prune_inventory(&self) -> String {
        let mut out = String::new();
        let mut servers: BTreeSet<&str> = BTreeSet::new();
        servers.extend(self.pruned_owners.values().map(String::as_str));
        for server in servers {
            let mut deleted = Vec::new();
            let mut kept = Vec::new();
            for r in self.plan.resources() {
                if self.pruned_owners.get(&r.id).map(String::as_str) != Some(server) {
                    continue;
                }
                let line = format!("{} ({})", r.id, r.name);
                match r.action {
                    Action::Delete => deleted.push(line),
                    Action::Retain if self.unowned.contains(&r.id) => {
                        kept.push(format!("{line}: not tagged as ours, left alone"))
                    }
                    Action::Retain => kept.push(format!("{line}: data, kept")),
                    _ => {}
                }
            }
            out.push_str(&format!(
                "Prune server {server} (its spec is not in the input): {} to delete, {} kept\n",
                deleted.len(),
                kept.len()
            ));
            for line in deleted {
                out.push_str(&format!("  - {line}\n"));
            }
            for line in kept {
                out.push_str(&format!("  = {line}\n"));
            }
        }
        out
    }

    /// A hint about servers left in AWS when not pruning.
    pub fn orphan_hint(&self) -> Option<String> {
        if self.orphans.is_empty() || !self.pruned_owners.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.orphans.iter().map(|o| o.server.as_str()).collect();
        Some(format!(
            "Not in the input but still in AWS: {} (apply --prune deletes them, keeping their data)",
            names.join(", ")
        ))
    }
}

/// Observes AWS and plans what apply would change.
pub async fn plan(p: &Prepared, rec: &Reconciler) -> Result<Plan> {
    Ok(plan_with(p, rec, PlanOptions::default()).await?.plan)
}

/// [`plan`], with pruning when asked and what it found about servers not in the input.
pub async fn plan_with(p: &Prepared, rec: &Reconciler, opts: PlanOptions) -> Result<Planned> {
    // A missing or wrong Lambda binary stops here, before AWS is read or changed.
    reconciler_aws::lambda::check_artifacts(
        &reconciler_aws::lambda::ArtifactLocator::from_process(),
        p.graph.iter(),
    )
    .await?;
    // Without pruning, observe first: looking for orphans then reuses the observation's tag
    // index instead of fetching its own.
    let observed = if opts.prune {
        None
    } else {
        Some(rec.observe(&p.graph).await?)
    };
    let (orphans, unreadable) = crate::prune::find_orphans(p).await?;
    let mut planned = Planned {
        plan: Plan::default(),
        orphans,
        unreadable,
        unowned: Vec::new(),
        pruned_owners: BTreeMap::new(),
        graph_len: p.graph.len(),
    };
    if opts.prune && !planned.orphans.is_empty() {
        let pg = crate::prune::prune_graph(p, &planned.orphans, opts.allow_data_loss).await?;
        let observed = rec.observe(&pg.graph).await?;
        let unowned = crate::prune::unowned(&pg.graph, &pg.delete, &observed);
        let graph = crate::prune::retaining(&pg.graph, &unowned)?;
        planned.plan = rec.plan(&graph, &observed, &pg.delete)?;
        planned.unowned = unowned;
        planned.pruned_owners = pg.owners;
        planned.graph_len = graph.len();
    } else {
        let observed = match observed {
            Some(observed) => observed,
            None => rec.observe(&p.graph).await?,
        };
        let retired = retired(p, &observed)?;
        if retired.is_empty() {
            planned.plan = rec.plan(&p.graph, &observed, &[])?;
        } else {
            // What an earlier apply made and the input no longer renders goes, in this apply.
            let ids: Vec<ResourceId> = retired.iter().map(|r| r.id.clone()).collect();
            let graph = DesiredGraph::new(p.graph.iter().cloned().chain(retired))?;
            let observed = rec.observe(&graph).await?;
            planned.plan = rec.plan(&graph, &observed, &ids)?;
            planned.graph_len = graph.len();
        }
    }
    attribute(&mut planned.plan);
    Ok(planned)
}

/// The resources an earlier apply made that the input no longer renders, to delete in this
/// apply: a Base's dashboard once no server shows on it, the per-server dashboards of earlier
/// versions, the mount targets of a volume taken out of its spec, and after a Base switched its
/// wake zone mode (`spec.domain.wakeZone`) what the other mode made (each server's zone,
/// delegation, A record, query log, logging config, filter and invoke permission, or the Base's
/// dispatcher, its query log and filter and the servers' A records in the root zone).
///
/// Found from the apply records observed with `observed`: the ids an apply made, and each
/// server's spec as applied. Rendering those specs (and the input in the other wake zone mode)
/// says how to find and delete what is gone from the input, so a plan where nothing was
/// retired costs no extra call. Data survives: a file system or backup vault found this way
/// is kept (listed as retained), never deleted.
pub fn retired(p: &Prepared, observed: &ObservedState) -> Result<Vec<DesiredResource>> {
    // Each recorded id, with the region of the record that lists it.
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    let mut applied_specs = BTreeMap::new();
    for r in p.graph.iter() {
        if r.kind.as_str() != kinds::PARAMETER {
            continue;
        }
        let record = observed
            .get(&r.id)
            .and_then(|o| o.properties.get("value"))
            .and_then(ApplyRecord::from_value);
        if let Some(record) = record {
            recorded.extend(
                record
                    .resources
                    .into_keys()
                    .map(|id| (id, r.region.clone())),
            );
            if let Some(spec) = record.spec {
                applied_specs.insert(spec.metadata.name.clone(), spec);
            }
        }
    }
    let stale = |id: &ResourceId| recorded.contains_key(id.as_str()) && p.graph.get(id).is_none();
    if !recorded.keys().any(|id| stale(&id.as_str().into())) {
        return Ok(Vec::new());
    }
    let mut applied = p.set.clone();
    for server in &mut applied.servers {
        if let Some(spec) = applied_specs.get(&server.doc.metadata.name) {
            server.doc = spec.clone();
        }
    }
    let mut found: BTreeMap<ResourceId, DesiredResource> = BTreeMap::new();
    let applied_other_zone = other_wake_zone(&applied);
    for set in [applied, other_wake_zone(&p.set), applied_other_zone] {
        let owner = p.session.ownership.owner.as_ref();
        let resources = match render_resources_owned(&p.session.context, &set, &p.catalog, owner) {
            Ok(resources) => resources,
            Err(e) => {
                // An applied spec this version cannot render: what only it made stays.
                tracing::warn!(error = %e, "could not render the specs as last applied");
                continue;
            }
        };
        for mut r in resources {
            if stale(&r.id) && !found.contains_key(&r.id) {
                if STATEFUL_KINDS.contains(&r.kind.as_str()) {
                    r.retain_on_delete = true;
                }
                found.insert(r.id.clone(), r);
            }
        }
    }
    // A dashboard no render makes any more (the per-server dashboards of earlier versions, a
    // Base's dashboard whose servers all turned theirs off) is found by its name alone.
    let dashboard_prefix = format!("{}/", kinds::DASHBOARD);
    for (id, region) in &recorded {
        let Some(local) = id.strip_prefix(&dashboard_prefix) else {
            continue;
        };
        let id = ResourceId::from(id.as_str());
        if stale(&id) && !found.contains_key(&id) {
            let dashboard =
                DesiredResource::new(kinds::DASHBOARD, local, region, dashboard_name(local));
            found.insert(id, dashboard);
        }
    }
    Ok(found.into_values().collect())
}

/// `set` with every Base in the other wake zone mode.
fn other_wake_zone(set: &SpecSet) -> SpecSet {
    let mut other = set.clone();
    for base in &mut other.bases {
        let zone = &mut base.doc.spec.domain.wake_zone;
        *zone = match zone {
            WakeZone::PerServer => WakeZone::Shared,
            WakeZone::Shared => WakeZone::PerServer,
        };
    }
    other
}

/// Labels each change to an existing resource as a spec change or drift, from the apply
/// records observed with it: a resource whose fingerprint equals the one recorded at the last
/// successful apply was not changed by the specs, so its difference is drift.
pub fn attribute(plan: &mut Plan) {
    let mut recorded: BTreeMap<String, String> = BTreeMap::new();
    for r in plan.resources() {
        if r.kind.as_str() != kinds::PARAMETER {
            continue;
        }
        let record = r
            .observed()
            .and_then(|o| o.properties.get("value"))
            .and_then(ApplyRecord::from_value);
        if let Some(record) = record {
            recorded.extend(record.resources);
        }
    }
    plan.attribute(|r| {
        if r.kind.as_str() == kinds::PARAMETER {
            return None;
        }
        let before = recorded.get(r.id.as_str())?;
        // A change that only follows a dependency's new output (a task definition's next
        // revision) comes from whatever changed the dependency, not from outside.
        let follows_dependency =
            !r.changes.is_empty() && r.changes.iter().all(|c| c.after_unknown());
        Some(
            if *before == r.desired().fingerprint() && !follows_dependency {
                ChangeCause::Drift
            } else {
                ChangeCause::Spec
            },
        )
    });
}

fn verb(op: Operation) -> (&'static str, &'static str) {
    match op.as_str() {
        "create" => ("+", "created"),
        "update" => ("~", "updated"),
        "delete" => ("-", "deleted"),
        _ => ("*", "done"),
    }
}

/// One human line for a progress event; `None` for events not worth a line.
pub fn progress_line(event: &ApplyEvent, started: Instant) -> Option<String> {
    let at = format!("[{:>5.1}s]", started.elapsed().as_secs_f64());
    match &event.kind {
        EventKind::Started { .. } => None,
        EventKind::Succeeded { operation, .. } => {
            let (sign, done) = verb(*operation);
            Some(format!("{at} {sign} {} {done}", event.id))
        }
        EventKind::Retrying {
            operation,
            attempt,
            class,
            delay,
            message,
        } => Some(format!(
            "{at}   {} {}: attempt {attempt} failed ({class}), retrying in {:.1}s: {message}",
            event.id,
            operation.as_str(),
            delay.as_secs_f64()
        )),
        EventKind::Failed {
            operation, error, ..
        } => Some(format!(
            "{at} ! {} {} failed: {error}",
            event.id,
            operation.as_str()
        )),
        EventKind::Skipped { blocked_by } => Some(format!(
            "{at}   {} skipped: waits for {}",
            event.id,
            blocked_by
                .iter()
                .map(ResourceId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `graph` without the resources of `servers`: `watch` leaves out the servers backing off,
/// and the operator the Base's servers other reconciles own. The Base's own resources stay
/// whole (its dashboards show every server). Where the Base's resources refer to those of a
/// left-out server, the whole graph is kept: converging them too beats a graph that does not
/// hold together.
pub fn without_servers(graph: &DesiredGraph, servers: &BTreeSet<&str>) -> DesiredGraph {
    if servers.is_empty() {
        return graph.clone();
    }
    let owners = server_owners(graph.iter());
    let kept = graph.iter().filter(|r| {
        owners
            .get(&r.id)
            .is_none_or(|server| !servers.contains(server.as_str()))
    });
    DesiredGraph::new(kept.cloned()).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "the Base refers to left-out servers' resources; keeping them");
        graph.clone()
    })
}

/// Kinds that hold data: never deleted unless the command line confirms.
pub const STATEFUL_KINDS: &[&str] = &[kinds::FILE_SYSTEM, kinds::BACKUP_VAULT];

/// Which server each server-owned resource of `graph` belongs to, read from the servers'
/// apply records: a record depends on exactly the resources its server renders. Base
/// resources belong to none.
pub fn server_owners<'a>(
    resources: impl IntoIterator<Item = &'a DesiredResource>,
) -> BTreeMap<ResourceId, String> {
    let mut owners = BTreeMap::new();
    for r in resources {
        if r.kind.as_str() != kinds::PARAMETER {
            continue;
        }
        let Some(server) = r.tags.get(TAG_SERVER) else {
            continue;
        };
        for dep in &r.depends_on {
            owners.insert(dep.clone(), server.clone());
        }
        owners.insert(r.id.clone(), server.clone());
    }
    owners
}

/// The graph to destroy: the whole input, or only the named servers (their Base stays). Data
/// (file systems, backup vaults) is marked retained unless `allow_data_loss`; even then, what
/// the spec keeps on delete stays.
pub fn destroy_graph(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
    servers: &[String],
    allow_data_loss: bool,
) -> Result<(DesiredGraph, Vec<ResourceId>)> {
    destroy_graph_owned(cx, None, set, catalog, servers, allow_data_loss)
}

/// [`destroy_graph`] rendered with an owner's tags (the operator's), so that the ownership
/// check compares the owner the resources should have.
pub fn destroy_graph_owned(
    cx: &Context,
    owner: Option<&Owner>,
    set: &SpecSet,
    catalog: &InstanceCatalog,
    servers: &[String],
    allow_data_loss: bool,
) -> Result<(DesiredGraph, Vec<ResourceId>)> {
    let all = render_resources_owned(cx, set, catalog, owner)?;
    let targets: BTreeSet<ResourceId> = if servers.is_empty() {
        all.iter().map(|r| r.id.clone()).collect()
    } else {
        let known: BTreeSet<&str> = set
            .servers
            .iter()
            .map(|s| s.doc.metadata.name.as_str())
            .collect();
        for name in servers {
            if !known.contains(name.as_str()) {
                return Err(anyhow!("no server named `{name}` in the given specs"));
            }
        }
        let wanted: BTreeSet<&String> = servers.iter().collect();
        server_owners(&all)
            .into_iter()
            .filter(|(_, server)| wanted.contains(server))
            .map(|(id, _)| id)
            .collect()
    };
    let resources: Vec<DesiredResource> = all
        .into_iter()
        .map(|mut r| {
            if !allow_data_loss && STATEFUL_KINDS.contains(&r.kind.as_str()) {
                r.retain_on_delete = true;
            }
            r
        })
        .collect();
    let graph = DesiredGraph::new(resources)?;
    let ids = graph
        .ids()
        .filter(|id| targets.contains(*id))
        .cloned()
        .collect();
    Ok((graph, ids))
}

/// Observes and plans the deletion of `ids`.
pub async fn plan_destroy(
    rec: &Reconciler,
    graph: &DesiredGraph,
    ids: &[ResourceId],
) -> Result<Plan> {
    let observed = rec.observe(graph).await?;
    if ids.len() == graph.len() {
        Ok(rec.plan_destroy(graph, &observed)?)
    } else {
        Ok(rec.plan(graph, &observed, ids)?)
    }
}

/// Records how the apply went for each server of the input it touched, and forgets the
/// results of pruned servers that are now gone.
pub async fn record_results(p: &Prepared, planned: &Planned, report: &ApplyReport) -> Result<()> {
    let results = crate::results::summarize(
        planned.plan.resources().iter().map(|r| r.desired()),
        report,
        &crate::results::now_rfc3339(),
    );
    crate::results::write(p, &results).await?;
    for orphan in &planned.orphans {
        let pruned = results
            .get(&orphan.server)
            .is_some_and(|r| r.failed + r.skipped == 0)
            && planned.pruned_owners.values().any(|s| s == &orphan.server);
        if pruned {
            let region = p
                .set
                .bases
                .iter()
                .find(|b| b.doc.metadata.name == orphan.base)
                .map(|b| b.doc.spec.region.clone())
                .unwrap_or_else(|| home_region(&p.set));
            crate::results::delete(p, &region, &orphan.base, &orphan.server).await?;
        }
    }
    Ok(())
}

/// Forgets the last results of destroyed servers (`servers`, or all of the input).
pub async fn forget_results(p: &Prepared, servers: &[String]) -> Result<()> {
    for server in &p.set.servers {
        let name = &server.doc.metadata.name;
        if !servers.is_empty() && !servers.contains(name) {
            continue;
        }
        if let Some(base) = reconciler_spec::base_of(&p.set, &server.doc) {
            crate::results::delete(p, &base.doc.spec.region, &base.doc.metadata.name, name).await?;
        }
    }
    Ok(())
}

/// The closing summary of an apply or destroy.
pub fn summary(
    report: &ApplyReport,
    plan: &Plan,
    calls: &reconciler_aws::CallCounts,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let c = report.counts();
    writeln!(
        out,
        "\n{} succeeded, {} unchanged, {} failed, {} skipped, {} retained; {} AWS calls ({} changed something)",
        c.succeeded, c.unchanged, c.failed, c.skipped, c.retained, calls.reads + calls.mutations, calls.mutations
    )?;
    let retained: Vec<String> = plan
        .retained()
        .map(|r| format!("  = {} ({})", r.id, r.name))
        .collect();
    if !retained.is_empty() {
        writeln!(out, "Retained (data is kept; delete by hand or with --allow-data-loss where the spec allows):")?;
        for line in retained {
            writeln!(out, "{line}")?;
        }
    }
    for (id, err) in report.failures() {
        writeln!(out, "error: {id}: {err}")?;
    }
    Ok(())
}
