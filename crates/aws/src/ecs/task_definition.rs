//! `ecs.task-definition` ([`reconciler_kinds::ecs::TaskDefinition`]): a family, observed as its
//! latest ACTIVE revision.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    Compatibility, NetworkMode, Tag, TaskDefinition as Revision, TaskDefinitionField,
    TaskDefinitionStatus,
};
use aws_sdk_ecs::Client;
use indexmap::IndexMap;
use reconciler_engine::diff::{self, FieldChange};
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::{ErrorClass, ProviderError};
use reconciler_kinds::ecs::TaskDefinition;
use reconciler_kinds::Properties;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::containers::{container_definition, container_value, volume_value, volumes};
use super::{ecs_error, ecs_tags, in_answer, tag_map, with_desired_tags};
use crate::managed::KindClient;
use crate::pool::ClientPool;
use crate::tagging;
use crate::tags::tags_agree;
use crate::util::{self, read_all};

/// The client of task definitions.
///
/// Revisions are immutable, so every content field is declared immutable and the kind replaces
/// create-before-delete: the engine registers the new revision, moves the service to it (the
/// service's `taskDefinition` reference becomes "known after apply" and is updated), then
/// deletes the old object, which deregisters the previous revision. An in-place update would
/// change the ARN other resources refer to, which the engine assumes updates never do. Only
/// tags are updated in place (on the current revision).
///
/// Deleting deregisters every ACTIVE revision up to the observed one, so older revisions left
/// ACTIVE by an interrupted run are cleaned up too, while a newer revision (the replacement) is
/// kept.
///
/// Container definitions may hold environment values that are sensitive: they are never put in
/// error messages or traces, only key paths are.
///
/// `RegisterTaskDefinition` has no idempotency token: a register whose answer was lost (the
/// connection reset or timed out after ECS acted) leaves a revision the retry would duplicate.
/// The client remembers such families and, before registering again, adopts the latest
/// revision when it already holds the desired definition.
#[derive(Debug, Clone)]
pub struct TaskDefinitionClient {
    pool: Arc<ClientPool>,
    unsettled: Arc<Mutex<HashSet<String>>>,
}

impl TaskDefinitionClient {
    /// A client over `pool`.
    pub fn new(pool: Arc<ClientPool>) -> Self {
        TaskDefinitionClient {
            pool,
            unsettled: Arc::default(),
        }
    }

    /// Notes whether the last register of `family` may have made a revision unseen.
    fn set_unsettled(&self, family: &str, unsettled: bool) {
        let mut families = self.unsettled.lock().expect("unsettled families lock");
        if unsettled {
            families.insert(family.to_string());
        } else {
            families.remove(family);
        }
    }

    fn is_unsettled(&self, family: &str) -> bool {
        self.unsettled
            .lock()
            .expect("unsettled families lock")
            .contains(family)
    }

    /// The latest revision of `family` when a register whose answer was lost made it and it
    /// holds the desired definition: adopted (and given its content digest) instead of
    /// registering a duplicate.
    async fn adopt_unanswered(
        &self,
        client: &Client,
        desired: &DesiredResource,
        family: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        if !self.is_unsettled(family) {
            return Ok(None);
        }
        let Some(found) = describe_latest(client.clone(), desired.clone()).await? else {
            return Ok(None);
        };
        let spec = TaskDefinition::spec();
        if !diff::matches("", &desired.properties, Some(&found.properties), &spec) {
            return Ok(None);
        }
        tracing::info!(%family, "adopting the revision an unanswered register made");
        self.set_unsettled(family, false);
        if let Some(arn) = found.output("arn").and_then(Value::as_str) {
            tag_content_digest(client, arn, desired).await;
        }
        Ok(Some(found))
    }

    /// Registers the next revision of the family; a failure other than a refusal leaves the
    /// family unsettled (ECS may have acted without the answer arriving).
    async fn register(
        &self,
        client: &Client,
        desired: &DesiredResource,
        props: &TaskDefinition,
    ) -> Result<Observed, ProviderError> {
        let bad = |m: String| ProviderError::terminal(format!("{}: {m}", desired.id));
        let containers = props
            .container_definitions
            .iter()
            .enumerate()
            .map(|(i, c)| container_definition(i, c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let volumes = volumes(&props.volumes).map_err(bad)?;
        let compat = props
            .requires_compatibilities
            .iter()
            .map(|c| Compatibility::from(c.as_str()))
            .collect();
        let family = props.family.as_str();
        let call = format!("RegisterTaskDefinition {}", desired.name);
        let out = client
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::from(props.network_mode.as_str()))
            .set_requires_compatibilities(Some(compat))
            .execution_role_arn(props.execution_role_arn.get("executionRoleArn")?)
            .set_container_definitions(Some(containers))
            .set_volumes(Some(volumes))
            .set_tags(Some(ecs_tags(&desired.tags)))
            .send()
            .await
            .map_err(|e| {
                let e = ecs_error(&call, e);
                // Only a refusal is sure to have made nothing.
                self.set_unsettled(family, !matches!(e.class, ErrorClass::Terminal));
                e
            })?;
        self.set_unsettled(family, false);
        let td = in_answer(out.task_definition(), &call, "task definition")?;
        let o = with_desired_tags(
            task_definition_observation(desired, td, out.tags()),
            desired,
        );
        // The digest needs the ARN, known only now.
        if let Some(arn) = td.task_definition_arn() {
            tag_content_digest(client, arn, desired).await;
        }
        Ok(o)
    }
}

/// The tag that vouches for a revision's content (see [`content_digest`]). Never part of an
/// observation's tags: it is the provider's, not the spec's.
const TAG_CONTENT: &str = "reconciler.dev/content";

/// The value of [`TAG_CONTENT`] on the revision `arn` registered from `desired`: a SHA-256 of
/// the revision's ARN and the desired definition. A revision never changes, so while the
/// latest ACTIVE revision of a family carries the digest of its own ARN and the current
/// desired definition, it is that definition and observation need not describe it. A revision
/// registered out of band with copied tags carries another ARN's digest and is described.
fn content_digest(arn: &str, desired: &DesiredResource) -> String {
    let mut hash = Sha256::new();
    hash.update(arn.as_bytes());
    hash.update(b"\n");
    hash.update(serde_json::to_vec(&desired.properties).unwrap_or_default());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The family and revision of a task definition ARN (`...:task-definition/family:7`).
fn family_revision(arn: &str) -> Option<(&str, i32)> {
    let (_, tail) = arn.rsplit_once(":task-definition/")?;
    let (family, revision) = tail.rsplit_once(':')?;
    Some((family, revision.parse().ok()?))
}

/// The latest ACTIVE revision of every family in the region, by family: one paged listing
/// (a hundred revisions a page), for observing many families at once. `None` when the region
/// holds so many other revisions that the listing would take more than `max_pages` calls
/// (describing each family is then cheaper).
async fn latest_revisions(
    client: &Client,
    max_pages: usize,
) -> Result<Option<HashMap<String, String>>, ProviderError> {
    let mut pages = client
        .list_task_definitions()
        .status(TaskDefinitionStatus::Active)
        .max_results(100)
        .into_paginator()
        .send();
    let mut arns: Vec<String> = Vec::new();
    let mut read = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ecs_error("ListTaskDefinitions", e))?;
        arns.extend(page.task_definition_arns().iter().cloned());
        read += 1;
        if read >= max_pages && page.next_token().is_some_and(|t| !t.is_empty()) {
            return Ok(None);
        }
    }
    let mut latest: HashMap<String, (i32, String)> = HashMap::new();
    for arn in arns {
        let Some((family, revision)) = family_revision(&arn) else {
            continue;
        };
        let newer = latest.get(family).is_none_or(|(r, _)| *r < revision);
        if newer {
            latest.insert(family.to_string(), (revision, arn.clone()));
        }
    }
    Ok(Some(
        latest.into_iter().map(|(f, (_, arn))| (f, arn)).collect(),
    ))
}

fn task_definition_observation(desired: &DesiredResource, td: &Revision, tags: &[Tag]) -> Observed {
    let containers: Vec<Value> = td
        .container_definitions()
        .iter()
        .map(container_value)
        .collect();
    let volumes: Vec<Value> = td.volumes().iter().map(volume_value).collect();
    let compat: Vec<&str> = td
        .requires_compatibilities()
        .iter()
        .map(Compatibility::as_str)
        .collect();
    util::observed(
        desired,
        json!({
            "family": td.family(),
            "networkMode": td.network_mode().map(NetworkMode::as_str),
            "requiresCompatibilities": compat,
            "executionRoleArn": td.execution_role_arn(),
            "containerDefinitions": containers,
            "volumes": volumes,
        }),
        [
            ("arn", json!(td.task_definition_arn())),
            ("revision", json!(td.revision())),
            ("family", json!(td.family())),
        ],
        without_content_tag(tag_map(tags)),
    )
}

fn without_content_tag(mut tags: IndexMap<String, String>) -> IndexMap<String, String> {
    tags.shift_remove(TAG_CONTENT);
    tags
}

/// Tags a revision with its [`content_digest`]. A failure only warns: the revision is right
/// without it, and observation then describes it instead of trusting the index.
async fn tag_content_digest(client: &Client, arn: &str, desired: &DesiredResource) {
    let tag = Tag::builder()
        .key(TAG_CONTENT)
        .value(content_digest(arn, desired))
        .build();
    if let Err(e) = client
        .tag_resource()
        .resource_arn(arn)
        .tags(tag)
        .send()
        .await
    {
        let e = ecs_error(&format!("TagResource {arn}"), e);
        tracing::warn!(%arn, error = %e, "task definition left without its content digest");
    }
}

/// Describes the latest ACTIVE revision of `desired`'s family; `None` when there is none.
async fn describe_latest(
    client: Client,
    desired: DesiredResource,
) -> Result<Option<Observed>, ProviderError> {
    let answer = client
        .describe_task_definition()
        .task_definition(&desired.name)
        .include(TaskDefinitionField::Tags)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(err) => {
            let e = ecs_error(&format!("DescribeTaskDefinition {}", desired.name), err);
            if e.class == ErrorClass::NotFound {
                return Ok(None);
            }
            return Err(e);
        }
    };
    // Without a revision number ECS answers the latest ACTIVE revision; check the status
    // anyway (a family whose revisions are all INACTIVE is absent).
    Ok(answer
        .task_definition()
        .filter(|td| td.status() == Some(&TaskDefinitionStatus::Active))
        .map(|td| task_definition_observation(&desired, td, answer.tags())))
}

/// The observation of `desired` from the tag index alone, when the revision `arn` carries the
/// digest of its ARN and the desired definition and the desired tags; `None` when it must be
/// described.
fn vouched(
    desired: &DesiredResource,
    arn: &str,
    indexed: Option<IndexMap<String, String>>,
) -> Option<Observed> {
    let tags = indexed.filter(|t| {
        t.get(TAG_CONTENT) == Some(&content_digest(arn, desired))
            && tags_agree(&desired.tags, &without_content_tag(t.clone()))
    })?;
    let (family, revision) = family_revision(arn)?;
    Some(util::observed(
        desired,
        desired.properties.clone(),
        [
            ("arn", json!(arn)),
            ("revision", json!(revision)),
            ("family", json!(family)),
        ],
        without_content_tag(tags),
    ))
}

#[async_trait]
impl KindClient<TaskDefinition> for TaskDefinitionClient {
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        let client = self.pool.ecs(region);
        // Many families: one listing gives each family's latest ACTIVE revision, and the tag
        // index shows which of them carry the digest of the desired definition (see
        // `content_digest`); only the others are described, one family per call. One family,
        // or a listing longer than describing each: DescribeTaskDefinition per family
        // ("unable to describe" for a family without an ACTIVE revision).
        let latest = if desired.len() > 1 {
            latest_revisions(&client, desired.len() - 1).await?
        } else {
            None
        };
        let Some(latest) = latest else {
            let reads = desired
                .iter()
                .map(|d| describe_latest(client.clone(), d.clone()))
                .collect();
            return Ok(read_all(reads).await?.into_iter().flatten().collect());
        };
        let present: Vec<(&DesiredResource, &String)> = desired
            .iter()
            .filter_map(|d| Some((d, latest.get(&d.name)?)))
            .collect();
        let arns: Vec<String> = present.iter().map(|(_, arn)| (*arn).clone()).collect();
        let index = tagging::indexed_tags(&self.pool, region, &arns).await?;
        let mut out = Vec::new();
        let mut reads = Vec::new();
        for ((d, arn), tags) in present.into_iter().zip(index) {
            match vouched(d, arn, tags) {
                Some(o) => out.push(o),
                None => reads.push(describe_latest(client.clone(), d.clone())),
            }
        }
        out.extend(read_all(reads).await?.into_iter().flatten());
        Ok(out)
    }

    async fn create(
        &self,
        desired: &DesiredResource,
        props: &TaskDefinition,
    ) -> Result<Observed, ProviderError> {
        let client = self.pool.ecs(&desired.region);
        if let Some(found) = self
            .adopt_unanswered(&client, desired, &props.family)
            .await?
        {
            return Ok(found);
        }
        self.register(&client, desired, props).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        _props: &TaskDefinition,
        _observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        // Every content field is immutable, so the engine plans a replacement instead; only
        // tags change in place, through `write_tags`.
        let path = changes.first().map_or("", |c| c.path.as_str());
        Err(ProviderError::terminal(format!(
            "{}: `{path}` cannot change in place (a new revision is registered by replacement)",
            desired.id
        )))
    }

    async fn write_tags(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        set: &IndexMap<String, String>,
        remove: &[String],
    ) -> Result<(), ProviderError> {
        // Tags live on each revision: these go on the observed one.
        super::write_tags(&self.pool, desired, observed, set, remove).await
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        let client = self.pool.ecs(&desired.region);
        let family = observed
            .outputs
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or(&desired.name);
        let upto = observed
            .outputs
            .get("revision")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        // `familyPrefix` matches the family exactly here, despite its name.
        let arns: Vec<String> = client
            .list_task_definitions()
            .family_prefix(family)
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| ecs_error(&format!("ListTaskDefinitions {family}"), e))?;
        // There is no batch deregister; one call per ACTIVE revision (normally one).
        for arn in arns {
            let belongs = family_revision(&arn)
                .is_some_and(|(f, revision)| f == family && i64::from(revision) <= upto);
            if belongs {
                deregister(&client, &arn).await?;
            }
        }
        Ok(())
    }
}

/// Deregisters one revision; one already gone is fine.
async fn deregister(client: &Client, arn: &str) -> Result<(), ProviderError> {
    match client
        .deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(err) => {
            let e = ecs_error(&format!("DeregisterTaskDefinition {arn}"), err);
            if e.class == ErrorClass::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_digest_binds_the_definition_to_one_revision() {
        let desired = DesiredResource::new(TaskDefinition::KIND, "t", "eu-west-1", "rc-x")
            .with_properties(json!({ "family": "rc-x", "image": "a:1" }));
        let arn = "arn:aws:ecs:eu-west-1:1:task-definition/rc-x:3";
        let digest = content_digest(arn, &desired);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, content_digest(arn, &desired), "stable");
        assert_ne!(
            digest,
            content_digest("arn:aws:ecs:eu-west-1:1:task-definition/rc-x:4", &desired)
        );
        let changed = desired
            .clone()
            .with_properties(json!({ "family": "rc-x", "image": "a:2" }));
        assert_ne!(digest, content_digest(arn, &changed));
        let tags: IndexMap<String, String> =
            [(TAG_CONTENT.to_string(), digest), ("k".into(), "v".into())]
                .into_iter()
                .collect();
        assert_eq!(
            without_content_tag(tags).keys().collect::<Vec<_>>(),
            vec!["k"]
        );
    }

    #[test]
    fn only_a_revision_carrying_its_own_digest_is_vouched_for() {
        let desired = DesiredResource::new(TaskDefinition::KIND, "t", "eu-west-1", "rc-x")
            .with_properties(json!({ "family": "rc-x" }))
            .with_tag("reconciler.dev/server", "x");
        let arn = "arn:aws:ecs:eu-west-1:1:task-definition/rc-x:3";
        let index = |digest: String| -> Option<IndexMap<String, String>> {
            Some(
                [
                    (TAG_CONTENT.to_string(), digest),
                    ("reconciler.dev/server".into(), "x".into()),
                ]
                .into_iter()
                .collect(),
            )
        };
        let o = vouched(&desired, arn, index(content_digest(arn, &desired))).unwrap();
        assert_eq!(o.properties, desired.properties);
        assert_eq!(o.output("revision"), Some(&json!(3)));
        assert!(!o.tags.contains_key(TAG_CONTENT));
        let other = "arn:aws:ecs:eu-west-1:1:task-definition/rc-x:2";
        assert!(vouched(&desired, arn, index(content_digest(other, &desired))).is_none());
        assert!(vouched(&desired, arn, None).is_none());
    }

    #[test]
    fn revisions_come_from_arns() {
        assert_eq!(
            family_revision("arn:aws:ecs:eu-west-1:1:task-definition/rc-x:12"),
            Some(("rc-x", 12))
        );
        assert_eq!(family_revision("rc-x"), None);
        assert_eq!(
            family_revision("arn:aws:ecs:eu-west-1:1:task-definition/rc-x"),
            None
        );
    }
}
