//! The last reconcile result of each server, kept in AWS (an SSM parameter per server beside
//! its apply record) so `status` can show it from any machine. Written after every apply and
//! watch cycle that changed (or failed to change) the server; a reconcile with nothing to do
//! writes nothing. Deleted with the server.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::Result;
use reconciler_engine::execute::Outcome;
use reconciler_engine::{retrying, ApplyReport};
use reconciler_render::naming::ServerNames;
use reconciler_spec::base_of;
use serde::{Deserialize, Serialize};

use crate::deploy::{server_owners, Prepared};

/// Longest error text kept per failure.
const ERROR_CHARS: usize = 300;
/// Failures kept per result.
const ERRORS_KEPT: usize = 3;

/// The SSM parameter name of a server's last result.
pub fn result_name(base: &str, server: &str) -> String {
    format!("/reconciler/{base}/results/{server}")
}

/// How the last apply of a server went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastResult {
    /// When it finished (RFC 3339, UTC).
    pub at: String,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// Resources created, changed or deleted.
    pub changed: usize,
    /// Resources that failed.
    pub failed: usize,
    /// Resources not attempted because something they need failed.
    pub skipped: usize,
    /// The first errors, shortened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl std::fmt::Display for LastResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.outcome, self.at)?;
        if self.failed + self.skipped > 0 {
            write!(f, " ({} failed, {} skipped)", self.failed, self.skipped)?;
        }
        Ok(())
    }
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    aws_smithy_types::DateTime::from(SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// The result of each server `report` touched, from the apply records among `resources`.
pub fn summarize<'a>(
    resources: impl IntoIterator<Item = &'a reconciler_engine::model::DesiredResource>,
    report: &ApplyReport,
    at: &str,
) -> BTreeMap<String, LastResult> {
    let owners = server_owners(resources);
    let mut results: BTreeMap<String, LastResult> = BTreeMap::new();
    for r in report.resources() {
        let Some(server) = owners.get(&r.id) else {
            continue;
        };
        // A server with nothing to do keeps its last result: a no-op writes nothing.
        if matches!(
            r.outcome,
            Outcome::Unchanged | Outcome::Retained | Outcome::Blocked
        ) {
            continue;
        }
        let entry = results.entry(server.clone()).or_insert_with(|| LastResult {
            at: at.to_string(),
            outcome: "succeeded".into(),
            changed: 0,
            failed: 0,
            skipped: 0,
            errors: Vec::new(),
        });
        match &r.outcome {
            Outcome::Succeeded => entry.changed += 1,
            Outcome::Failed { error } => {
                entry.failed += 1;
                if entry.errors.len() < ERRORS_KEPT {
                    let text: String = format!("{}: {error}", r.id)
                        .chars()
                        .take(ERROR_CHARS)
                        .collect();
                    entry.errors.push(text);
                }
            }
            Outcome::Skipped { .. } => entry.skipped += 1,
            _ => {}
        }
    }
    for result in results.values_mut() {
        if result.failed + result.skipped > 0 {
            result.outcome = "failed".into();
        }
    }
    results
}

/// Writes the results of the input's servers, each with the session's retry policy (SSM
/// throttles writes on real accounts). Every server's result is attempted; the errors of those
/// that could not be written are returned together.
pub async fn write(p: &Prepared, results: &BTreeMap<String, LastResult>) -> Result<()> {
    let mut errors = Vec::new();
    for server in &p.set.servers {
        let name = &server.doc.metadata.name;
        let (Some(result), Some(base)) = (results.get(name), base_of(&p.set, &server.doc)) else {
            continue;
        };
        let base_name = &base.doc.metadata.name;
        let tags = ServerNames::new(base_name, name).tags("record");
        let parameter = result_name(base_name, name);
        let value = serde_json::to_value(result)?;
        let region = &base.doc.spec.region;
        let written = retrying(&p.session.retry, &parameter, || {
            reconciler_aws::ssm::put_value(&p.session.pool, region, &parameter, &value, &tags)
        })
        .await;
        if let Err(e) = written {
            errors.push(format!("recording the result of server {name}: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(errors.join("; ")))
    }
}

/// The last results of `servers` (of the input), where recorded.
pub async fn read(p: &Prepared, servers: &[String]) -> Result<BTreeMap<String, LastResult>> {
    let mut by_region: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for server in &p.set.servers {
        let name = &server.doc.metadata.name;
        if !servers.contains(name) {
            continue;
        }
        if let Some(base) = base_of(&p.set, &server.doc) {
            by_region
                .entry(base.doc.spec.region.clone())
                .or_default()
                .push((name.clone(), result_name(&base.doc.metadata.name, name)));
        }
    }
    let mut out = BTreeMap::new();
    for (region, entries) in by_region {
        let names: Vec<String> = entries.iter().map(|(_, n)| n.clone()).collect();
        let values = reconciler_aws::ssm::get_values(&p.session.pool, &region, &names)
            .await
            .map_err(|e| anyhow::anyhow!("reading the last results: {e}"))?;
        for (server, parameter) in entries {
            if let Some(result) = values
                .get(&parameter)
                .and_then(|v| serde_json::from_value::<LastResult>(v.clone()).ok())
            {
                out.insert(server, result);
            }
        }
    }
    Ok(out)
}

/// Deletes the result of a server that is gone.
pub async fn delete(p: &Prepared, region: &str, base: &str, server: &str) -> Result<()> {
    let parameter = result_name(base, server);
    retrying(&p.session.retry, &parameter, || {
        reconciler_aws::ssm::delete_value(&p.session.pool, region, &parameter)
    })
    .await
    .map_err(|e| anyhow::anyhow!("deleting the last result of server {server}: {e}"))
}
