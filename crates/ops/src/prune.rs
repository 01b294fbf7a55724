//! `--prune`: finding servers that AWS still runs but the input no longer holds, and the graph
//! that deletes them.
//!
//! A server is found by its apply record (an SSM parameter under the Base's path, tagged as
//! ours); the record holds the spec it was applied with, so the deletion is rendered from the
//! same spec, exactly, with no guessing from names. Only Bases in the input are searched: the
//! servers of other Bases are never touched. Data follows `destroy`'s rules: file systems are
//! kept unless `--allow-data-loss` is given *and* their spec did not ask to keep them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use reconciler_engine::model::{DesiredGraph, DesiredResource, ResourceId};
use reconciler_engine::ObservedState;
use reconciler_render::naming::{MANAGED_BY, TAG_BASE, TAG_MANAGED_BY, TAG_SERVER};
use reconciler_render::record::{servers_prefix, ApplyRecord};
use reconciler_render::{kinds, render_resources_owned};
use reconciler_spec::{ContainerSpecDocument, Input, Lookup, SpecSet};

use crate::deploy::{Prepared, STATEFUL_KINDS};
use crate::session::home_region;

/// A server with an apply record in AWS and no spec in the input.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// Its Base (in the input).
    pub base: String,
    /// Its name.
    pub server: String,
    /// The spec it was last applied with.
    pub spec: ContainerSpecDocument,
}

/// Apply records under a Base's path that are ours but could not be read: reported, never
/// acted on.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The parameter.
    pub parameter: String,
}

/// Servers of the input's Bases that have an apply record but no spec in the input.
pub async fn find_orphans(p: &Prepared) -> Result<(Vec<Orphan>, Vec<Unreadable>)> {
    let present: BTreeSet<&str> = p
        .set
        .servers
        .iter()
        .map(|s| s.doc.metadata.name.as_str())
        .collect();
    let mut orphans = Vec::new();
    let mut unreadable = Vec::new();
    for base in &p.set.bases {
        let base_name = base.doc.metadata.name.as_str();
        let prefix = servers_prefix(base_name);
        let stored =
            reconciler_aws::ssm::list_by_path(&p.session.pool, &base.doc.spec.region, &prefix)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("listing the apply records of Base {base_name}"))?;
        for param in stored {
            let Some(server) = param.name.strip_prefix(&prefix) else {
                continue;
            };
            let ours = param.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
                && param.tags.get(TAG_BASE).map(String::as_str) == Some(base_name)
                && param.tags.get(TAG_SERVER).map(String::as_str) == Some(server);
            if !ours || present.contains(server) {
                continue;
            }
            match param
                .value
                .as_ref()
                .and_then(ApplyRecord::from_value)
                .and_then(|r| r.spec)
            {
                Some(mut spec) if spec.metadata.name == server => {
                    spec.spec.base_ref = Some(base_name.to_string());
                    orphans.push(Orphan {
                        base: base_name.to_string(),
                        server: server.to_string(),
                        spec,
                    });
                }
                _ => unreadable.push(Unreadable {
                    parameter: param.name.clone(),
                }),
            }
        }
    }
    Ok((orphans, unreadable))
}

/// The input plus the orphans' specs, as a spec set render accepts.
pub fn with_orphans(set: &SpecSet, orphans: &[Orphan]) -> Result<SpecSet> {
    let mut combined = set.clone();
    if orphans.is_empty() {
        return Ok(combined);
    }
    let inputs: Vec<Input> = orphans
        .iter()
        .map(|o| {
            Ok(Input {
                name: format!("<apply record of server {}>", o.server),
                bytes: serde_yaml_ng::to_string(&o.spec)?.into_bytes(),
            })
        })
        .collect::<Result<_>>()?;
    let (loaded, diags) = reconciler_spec::load(&inputs, &|_: &str| None);
    if let Some(d) = diags.iter().find(|d| d.is_error()) {
        anyhow::bail!("an apply record does not load as a spec: {d}");
    }
    combined.servers.extend(loaded.servers);
    Ok(combined)
}

/// What a prune deletes and keeps, per orphan.
#[derive(Debug, Clone, Default)]
pub struct PruneGraph {
    /// The input's resources and every orphan's.
    pub graph: DesiredGraph,
    /// The orphans' resources, to delete (retained ones are kept by the plan).
    pub delete: Vec<ResourceId>,
    /// Which orphan each resource to delete belongs to.
    pub owners: BTreeMap<ResourceId, String>,
}

/// Renders the input with the orphans and marks the orphans' resources for deletion. Each
/// orphan's record goes last (its resources are made to depend on it), so an interrupted
/// prune leaves the record and the next one finds the rest. Stateful kinds are retained unless
/// `allow_data_loss`; then the spec's own `keepOnDelete` still holds.
pub async fn prune_graph(
    p: &Prepared,
    orphans: &[Orphan],
    allow_data_loss: bool,
) -> Result<PruneGraph> {
    let combined = with_orphans(&p.set, orphans)?;
    let mut catalog = p.catalog.clone();
    p.session
        .complete_catalog(&combined, &mut catalog, &home_region(&p.set))
        .await?;
    for o in orphans {
        // A type EC2 no longer offers: deleting needs no instance facts, so any serves.
        let name = &o.spec.spec.ec2.instance_type;
        if !matches!(catalog.lookup(name), Lookup::Known(_)) {
            if let Lookup::Known(info) = catalog.lookup("t3.medium") {
                catalog.record_online(name, Some(info));
            }
        }
    }
    let owner = p.session.ownership.owner.as_ref();
    let resources = render_resources_owned(&p.session.context, &combined, &catalog, owner)?;
    let orphan_names: BTreeSet<&str> = orphans.iter().map(|o| o.server.as_str()).collect();
    let owners: BTreeMap<ResourceId, String> = crate::deploy::server_owners(&resources)
        .into_iter()
        .filter(|(_, server)| orphan_names.contains(server.as_str()))
        .collect();
    // What the orphans do not own stays as the input renders it: a shared wake zone's
    // dispatcher, say, must not gain routes to the servers being deleted.
    let mut resources: Vec<DesiredResource> = resources
        .into_iter()
        .map(|r| match p.graph.get(&r.id) {
            Some(input) if !owners.contains_key(&r.id) => input.clone(),
            _ => r,
        })
        .collect();
    let records: BTreeMap<String, ResourceId> = owners
        .iter()
        .filter(|(id, _)| id.kind_part() == Some(kinds::PARAMETER))
        .map(|(id, server)| (server.clone(), id.clone()))
        .collect();
    for r in &mut resources {
        let Some(server) = owners.get(&r.id) else {
            continue;
        };
        let record = &records[server];
        if &r.id == record {
            r.depends_on.clear();
        } else {
            r.depends_on.push(record.clone());
        }
        if !allow_data_loss && STATEFUL_KINDS.contains(&r.kind.as_str()) {
            r.retain_on_delete = true;
        }
    }
    let graph = DesiredGraph::new(resources)?;
    let delete = graph
        .ids()
        .filter(|id| owners.contains_key(*id))
        .cloned()
        .collect();
    Ok(PruneGraph {
        graph,
        delete,
        owners,
    })
}

/// Resources to delete that exist without our ownership tag: they are kept, whatever their
/// name says, and listed.
pub fn unowned(
    graph: &DesiredGraph,
    delete: &[ResourceId],
    observed: &ObservedState,
) -> Vec<ResourceId> {
    delete
        .iter()
        .filter(|id| {
            let (Some(d), Some(o)) = (graph.get(id), observed.get(id)) else {
                return false;
            };
            d.tags.contains_key(TAG_MANAGED_BY)
                && o.tags.get(TAG_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY)
        })
        .cloned()
        .collect()
}

/// `graph` with `keep` marked retained.
pub fn retaining(graph: &DesiredGraph, keep: &[ResourceId]) -> Result<DesiredGraph> {
    let resources: Vec<DesiredResource> = graph
        .iter()
        .cloned()
        .map(|mut r| {
            if keep.contains(&r.id) {
                r.retain_on_delete = true;
            }
            r
        })
        .collect();
    Ok(DesiredGraph::new(resources)?)
}
