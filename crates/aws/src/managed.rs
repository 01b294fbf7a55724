//! The rules every kind shares, enforced once: a client of a kind ([`KindClient`]) only speaks
//! its service's API over the kind's typed properties, and [`Managed`] wraps it into the
//! engine's [`ResourceClient`], adding what no client may forget:
//!
//! - the kind's name and diff rules come from its module in `reconciler-kinds`;
//! - properties reach the client typed, read once ([`reconciler_kinds::read`]);
//! - nothing without the ownership tag is changed or deleted ([`ensure_managed`], or the
//!   kind's own proof of ownership, [`KindClient::ensure_owned`]);
//! - tag changes are split from property changes and written through the client's
//!   [`KindClient::write_tags`], with the same delta rules for every kind ([`tag_delta`]: keys
//!   the reconciler does not own are never removed).

use std::marker::PhantomData;

use async_trait::async_trait;
use indexmap::IndexMap;
use reconciler_engine::diff::FieldChange;
use reconciler_engine::model::{DesiredResource, Kind, Observed};
use reconciler_engine::provider::{KindSpec, ProviderError, ResourceClient};
use reconciler_kinds::Properties;

use crate::tags::{ensure_managed, tag_delta};
use crate::util::updated;

/// What a client does for one kind, over its typed properties `P`.
#[async_trait]
pub trait KindClient<P: Properties>: Send + Sync {
    /// Reads every desired object of the kind in `region` (references unresolved), in as few
    /// calls as the service allows.
    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError>;

    /// Creates the object, tags included, and returns it as read back.
    async fn create(&self, desired: &DesiredResource, props: &P)
        -> Result<Observed, ProviderError>;

    /// Applies `changes`, which are never tag changes; returns the observation afterwards. The
    /// default suits kinds whose every field is immutable (a change replaces the object).
    async fn update(
        &self,
        desired: &DesiredResource,
        _props: &P,
        observed: &Observed,
        _changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        Ok(updated(observed, desired))
    }

    /// Sets the tags `set` and removes the keys `remove` on the object. The default is for
    /// kinds AWS cannot tag (render gives them no tags, so it is never called).
    async fn write_tags(
        &self,
        desired: &DesiredResource,
        _observed: &Observed,
        _set: &IndexMap<String, String>,
        _remove: &[String],
    ) -> Result<(), ProviderError> {
        Err(ProviderError::terminal(format!(
            "{}: {} takes no tags",
            desired.id,
            P::KIND
        )))
    }

    /// Refuses to change or delete (`action`) an object that is not the reconciler's. The
    /// default is the ownership tag ([`ensure_managed`]); a kind with another proof of
    /// ownership (a hosted zone's caller reference) accepts that as well.
    fn ensure_owned(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        action: &str,
    ) -> Result<(), ProviderError> {
        ensure_managed(desired, observed, action)
    }

    /// Deletes the object; a missing one may answer not-found.
    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError>;
}

/// A [`KindClient`] as the engine's client, with the shared rules (see the module doc).
pub struct Managed<P, C> {
    client: C,
    kind: PhantomData<fn() -> P>,
}

impl<P: Properties, C: KindClient<P>> Managed<P, C> {
    /// Wraps `client`.
    pub fn new(client: C) -> Self {
        Managed {
            client,
            kind: PhantomData,
        }
    }

    /// The wrapped client (tests tune its waits through it).
    pub fn inner(&self) -> &C {
        &self.client
    }
}

#[async_trait]
impl<P, C> ResourceClient for Managed<P, C>
where
    P: Properties + Send + Sync + 'static,
    C: KindClient<P> + 'static,
{
    fn kind(&self) -> Kind {
        Kind::from(P::KIND)
    }

    fn spec(&self) -> KindSpec {
        P::spec()
    }

    async fn observe(
        &self,
        region: &str,
        desired: &[DesiredResource],
    ) -> Result<Vec<Observed>, ProviderError> {
        if desired.is_empty() {
            return Ok(Vec::new());
        }
        self.client.observe(region, desired).await
    }

    async fn create(&self, desired: &DesiredResource) -> Result<Observed, ProviderError> {
        let props = reconciler_kinds::read::<P>(desired)?;
        self.client.create(desired, &props).await
    }

    async fn update(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
        changes: &[FieldChange],
    ) -> Result<Observed, ProviderError> {
        self.client.ensure_owned(desired, observed, "change")?;
        let (tags, fields): (Vec<FieldChange>, Vec<FieldChange>) =
            changes.iter().cloned().partition(FieldChange::is_tag);
        let mut after = if fields.is_empty() {
            updated(observed, desired)
        } else {
            let props = reconciler_kinds::read::<P>(desired)?;
            self.client
                .update(desired, &props, observed, &fields)
                .await?
        };
        if !tags.is_empty() {
            let (set, remove) = tag_delta(&desired.tags, &observed.tags);
            self.client
                .write_tags(desired, observed, &set, &remove)
                .await?;
            for key in &remove {
                after.tags.shift_remove(key);
            }
            after.tags.extend(set);
        }
        Ok(after)
    }

    async fn delete(
        &self,
        desired: &DesiredResource,
        observed: &Observed,
    ) -> Result<(), ProviderError> {
        self.client.ensure_owned(desired, observed, "delete")?;
        self.client.delete(desired, observed).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use reconciler_engine::diff::PlannedValue;
    use reconciler_kinds::logs::LogGroup;
    use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};
    use serde_json::json;

    use super::*;

    /// Records what the wrapper asks of it.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl KindClient<LogGroup> for Recorder {
        async fn observe(
            &self,
            _region: &str,
            _desired: &[DesiredResource],
        ) -> Result<Vec<Observed>, ProviderError> {
            Ok(Vec::new())
        }
        async fn create(
            &self,
            desired: &DesiredResource,
            props: &LogGroup,
        ) -> Result<Observed, ProviderError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("create {}", props.retention_in_days));
            Ok(Observed::new(desired.id.clone()))
        }
        async fn update(
            &self,
            desired: &DesiredResource,
            _props: &LogGroup,
            observed: &Observed,
            changes: &[FieldChange],
        ) -> Result<Observed, ProviderError> {
            let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
            self.calls
                .lock()
                .unwrap()
                .push(format!("update {}", paths.join(",")));
            Ok(updated(observed, desired))
        }
        async fn write_tags(
            &self,
            _desired: &DesiredResource,
            _observed: &Observed,
            set: &IndexMap<String, String>,
            remove: &[String],
        ) -> Result<(), ProviderError> {
            let keys: Vec<&str> = set.keys().map(String::as_str).collect();
            self.calls.lock().unwrap().push(format!(
                "tags +{} -{}",
                keys.join(","),
                remove.join(",")
            ));
            Ok(())
        }
        async fn delete(
            &self,
            _desired: &DesiredResource,
            _observed: &Observed,
        ) -> Result<(), ProviderError> {
            self.calls.lock().unwrap().push("delete".into());
            Ok(())
        }
    }

    fn desired() -> DesiredResource {
        reconciler_kinds::desired(
            "mc",
            "us-east-1",
            "/g",
            &LogGroup {
                retention_in_days: 7,
            },
        )
        .with_tag(TAG_MANAGED_BY, MANAGED_BY)
        .with_tag("team", "games")
    }

    fn observed(owned: bool) -> Observed {
        let mut o = Observed::new(desired().id);
        o.properties = json!({ "retentionInDays": 1 });
        if owned {
            o.tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
        }
        o.tags.insert("reconciler.dev/old".into(), "x".into());
        o
    }

    fn change(path: &str) -> FieldChange {
        FieldChange {
            path: path.into(),
            before: None,
            after: Some(PlannedValue::Known(json!(1))),
            forces_replacement: false,
        }
    }

    fn calls(client: &Managed<LogGroup, Recorder>) -> Vec<String> {
        client.inner().calls.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn property_and_tag_changes_go_their_own_ways() {
        let client = Managed::new(Recorder::default());
        let changes = [change("/retentionInDays"), change("/tags/team")];
        let after = client
            .update(&desired(), &observed(true), &changes)
            .await
            .unwrap();
        assert_eq!(
            calls(&client),
            ["update /retentionInDays", "tags +team -reconciler.dev/old"]
        );
        assert_eq!(after.tags.get("team").map(String::as_str), Some("games"));
        assert!(!after.tags.contains_key("reconciler.dev/old"));
        assert_eq!(after.properties["retentionInDays"], 7);
    }

    #[tokio::test]
    async fn what_is_not_ours_is_neither_changed_nor_deleted() {
        let client = Managed::new(Recorder::default());
        let refused = client
            .update(&desired(), &observed(false), &[change("/retentionInDays")])
            .await
            .unwrap_err();
        assert!(refused.message.contains("not ours to change"), "{refused}");
        let refused = client
            .delete(&desired(), &observed(false))
            .await
            .unwrap_err();
        assert!(refused.message.contains("not ours to delete"), "{refused}");
        assert!(calls(&client).is_empty());
        client.delete(&desired(), &observed(true)).await.unwrap();
        assert_eq!(calls(&client), ["delete"]);
    }

    #[tokio::test]
    async fn the_client_gets_typed_properties_and_the_kinds_rules() {
        let client = Managed::new(Recorder::default());
        client.create(&desired()).await.unwrap();
        assert_eq!(calls(&client), ["create 7"]);
        assert_eq!(client.kind().as_str(), "logs.log-group");
        let mut wrong = desired();
        wrong.properties = json!({ "retentionInDays": "seven" });
        let err = client.create(&wrong).await.unwrap_err();
        assert!(err.message.contains("at `retentionInDays`"), "{err}");
    }
}
