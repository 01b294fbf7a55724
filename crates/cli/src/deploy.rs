//! render, plan, apply and destroy: the commands that reach AWS. Each is a function over a
//! [`Prepared`] input so tests drive exactly what the binary runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, Result};
use reconciler_engine::execute::{ApplyEvent, EventKind, Operation};
use reconciler_engine::model::{DesiredGraph, DesiredResource, ResourceId};
use reconciler_engine::{ApplyReport, Plan, Reconciler};
use reconciler_render::{kinds, render_resources, Context};
use reconciler_spec::{InstanceCatalog, SpecSet};

use crate::session::{home_region, Session};

/// Validated specs, connected session and rendered graph.
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
    mut catalog: InstanceCatalog,
    config: aws_types::SdkConfig,
) -> Result<Prepared> {
    let region = home_region(&set);
    let session = Session::connect(config, &region).await?;
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

/// Observes AWS and plans what apply would change.
pub async fn plan(p: &Prepared, rec: &Reconciler) -> Result<Plan> {
    // A missing or wrong Lambda binary stops here, before AWS is read or changed.
    reconciler_aws::lambda::check_artifacts(
        &reconciler_aws::lambda::ArtifactLocator::from_process(),
        p.graph.iter(),
    )
    .await?;
    let observed = rec.observe(&p.graph).await?;
    Ok(rec.plan(&p.graph, &observed, &[])?)
}

/// Applies a plan, printing one progress line per resource operation to `progress`.
pub async fn apply(
    rec: &Reconciler,
    plan: &Plan,
    progress: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> ApplyReport {
    let started = Instant::now();
    let sink = |event: ApplyEvent| {
        if let Some(print) = progress {
            if let Some(line) = progress_line(&event, started) {
                print(&line);
            }
        }
    };
    rec.apply(plan, &sink).await
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

/// Kinds that hold data: never deleted unless the command line confirms.
pub const STATEFUL_KINDS: &[&str] = &[kinds::FILE_SYSTEM, kinds::BACKUP_VAULT];

/// Which of `servers` each server-owned resource belongs to: a server's resources are those
/// it renders beyond its Base's. Base resources belong to none.
pub fn server_owners(
    cx: &Context,
    set: &SpecSet,
    catalog: &InstanceCatalog,
    servers: &[String],
) -> Result<BTreeMap<ResourceId, String>> {
    let mut base_only = set.clone();
    base_only.servers.clear();
    let base_ids: BTreeSet<ResourceId> = render_resources(cx, &base_only, catalog)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut owners = BTreeMap::new();
    for name in servers {
        let mut one = set.clone();
        one.servers.retain(|s| &s.doc.metadata.name == name);
        for r in render_resources(cx, &one, catalog)? {
            if !base_ids.contains(&r.id) {
                owners.insert(r.id, name.clone());
            }
        }
    }
    Ok(owners)
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
    let all = render_resources(cx, set, catalog)?;
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
        let owners = server_owners(cx, set, catalog, servers)?;
        owners.into_keys().collect()
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
