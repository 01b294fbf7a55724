//! Tag helpers shared by the service modules.

use indexmap::IndexMap;
use reconciler_engine::model::{DesiredResource, Observed};
use reconciler_engine::provider::ProviderError;
use reconciler_render::naming::{MANAGED_BY, TAG_MANAGED_BY};

/// True when tags mark an object as ours. Nothing without this tag is ever changed.
pub fn is_managed(tags: &IndexMap<String, String>) -> bool {
    tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
}

/// Refuses to change or delete an object that carries no ownership tag while the desired
/// resource does: the reconciler never touches what it does not own. Kinds without tags (mount
/// targets, backup selections) are owned through their parent and pass.
pub fn ensure_managed(
    desired: &DesiredResource,
    observed: &Observed,
    action: &str,
) -> Result<(), ProviderError> {
    if desired.tags.contains_key(TAG_MANAGED_BY) && !is_managed(&observed.tags) {
        return Err(ProviderError::terminal(format!(
            "{}: `{}` exists but has no `{TAG_MANAGED_BY}={MANAGED_BY}` tag, so it is not ours \
             to {action}; tag it to let the reconciler adopt it, or remove it",
            desired.id, desired.name
        )));
    }
    Ok(())
}

/// Tags to add or change (`desired` entries missing or different in `current`) and tag keys to
/// remove (managed keys in `current` that `desired` no longer has). Keys the reconciler does not
/// own (no `reconciler.dev/` prefix, not `Name`) are never removed.
pub fn tag_delta(
    desired: &IndexMap<String, String>,
    current: &IndexMap<String, String>,
) -> (IndexMap<String, String>, Vec<String>) {
    let set: IndexMap<String, String> = desired
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !desired.contains_key(*k) && k.starts_with("reconciler.dev/"))
        .cloned()
        .collect();
    (set, remove)
}

/// True when `current` leaves no tag to set or remove for `desired` (see [`tag_delta`]).
pub fn tags_agree(desired: &IndexMap<String, String>, current: &IndexMap<String, String>) -> bool {
    let (set, remove) = tag_delta(desired, current);
    set.is_empty() && remove.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_checked_only_for_tagged_kinds() {
        let desired = DesiredResource::new("iam.role", "r", "us-east-1", "rc-r")
            .with_tag(TAG_MANAGED_BY, MANAGED_BY);
        let mut observed = Observed::new("iam.role/r");
        assert!(ensure_managed(&desired, &observed, "change").is_err());
        observed
            .tags
            .insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
        assert!(ensure_managed(&desired, &observed, "change").is_ok());
        let untagged = DesiredResource::new("efs.mount-target", "m", "eu-west-1", "m-0");
        assert!(ensure_managed(&untagged, &Observed::new("efs.mount-target/m"), "delete").is_ok());
    }

    #[test]
    fn delta_sets_changed_and_removes_only_our_stale_keys() {
        let desired: IndexMap<String, String> = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let current: IndexMap<String, String> = [
            ("a", "1"),
            ("b", "x"),
            ("reconciler.dev/old", "y"),
            ("user", "z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let (set, remove) = tag_delta(&desired, &current);
        assert_eq!(set.len(), 1);
        assert_eq!(set["b"], "2");
        assert_eq!(remove, vec!["reconciler.dev/old".to_string()]);
    }

    #[test]
    fn agreement_needs_every_desired_tag_and_no_stale_managed_key() {
        let map = |tags: &[(&str, &str)]| -> IndexMap<String, String> {
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let desired = map(&[
            (TAG_MANAGED_BY, MANAGED_BY),
            ("reconciler.dev/server", "mc"),
        ]);
        assert!(tags_agree(
            &desired,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "mc"),
                ("team", "games")
            ])
        ));
        assert!(!tags_agree(&desired, &map(&[(TAG_MANAGED_BY, MANAGED_BY)])));
        assert!(!tags_agree(
            &desired,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "other")
            ])
        ));
        assert!(!tags_agree(
            &desired,
            &map(&[
                (TAG_MANAGED_BY, MANAGED_BY),
                ("reconciler.dev/server", "mc"),
                ("reconciler.dev/old", "1")
            ])
        ));
    }
}
