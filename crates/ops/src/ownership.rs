//! Who may change what. AWS names ignore Kubernetes namespaces, so the same object name in two
//! namespaces renders the same AWS names; the operator therefore tags what it makes with its
//! owner (`reconciler.dev/owner` = `k8s:<namespace>/<Kind>/<name>`), and `reconciler apply`
//! makes resources without that tag. A converge or destroy whose plan would change or delete a
//! resource tagged for another owner is refused before any lock or write: one namespace cannot
//! take over (or delete) what another made, and the command and the operator do not fight.

use std::fmt;

use reconciler_engine::{Action, Plan};
use reconciler_render::naming::{Owner, TAG_MANAGED_BY, TAG_OWNER};

/// Whose resources a run makes and may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The operator's objects' namespace; `None` for `reconciler apply`, whose resources carry
    /// no owner tag.
    pub owner: Option<Owner>,
    /// Take over resources without an owner tag (a migration from `reconciler apply`, or from
    /// an operator version that did not tag): the run's owner tag is added to them.
    pub adopt_unowned: bool,
}

/// A resource the run may not touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The resource id.
    pub id: String,
    /// Its AWS name.
    pub name: String,
    /// The owner tag it carries; `None` when it has none.
    pub theirs: Option<String>,
    /// The owner tag this run would give it; `None` for `reconciler apply`.
    pub ours: Option<String>,
}

/// A converge or destroy refused because its plan would change or delete resources of another
/// owner. Nothing was locked or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedByOther {
    /// The resources in question, in plan order.
    pub conflicts: Vec<Conflict>,
}

/// Conflicts listed in a message; the rest are counted.
const LISTED: usize = 10;

impl fmt::Display for OwnedByOther {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused: {} AWS resources to change or delete belong to another owner; nothing was \
             changed",
            self.conflicts.len()
        )?;
        for c in self.conflicts.iter().take(LISTED) {
            let theirs = match &c.theirs {
                Some(owner) => format!("owned by `{owner}`"),
                None => "has no owner tag (made by `reconciler apply`)".to_string(),
            };
            let ours = match &c.ours {
                Some(owner) => format!("`{owner}`"),
                None => "`reconciler apply`".to_string(),
            };
            write!(f, "\n  - {} ({}): {theirs}, not {ours}", c.id, c.name)?;
        }
        if self.conflicts.len() > LISTED {
            write!(f, "\n  ... and {} more", self.conflicts.len() - LISTED)?;
        }
        let untagged = self.conflicts.iter().any(|c| c.theirs.is_none());
        if untagged {
            write!(
                f,
                "\nTo move resources made by `reconciler apply` to the operator, run it once with \
                 --adopt-unowned (chart value `operator.adoptUnowned`)."
            )?;
        }
        if self.conflicts.iter().any(|c| c.theirs.is_some()) {
            write!(
                f,
                "\nAWS names come from the Base's and servers' names, not the namespace: use \
                 names that no other namespace or `reconciler apply` uses in this account."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for OwnedByOther {}

/// Checks that every resource `plan` would change or delete is the run's own: its owner tag is
/// the one the run gives it, or it has none and `adopt_unowned` takes it over. Resources AWS
/// cannot tag are owned through their parent and pass.
pub fn check(plan: &Plan, ownership: &Ownership) -> Result<(), OwnedByOther> {
    let conflicts: Vec<Conflict> = plan
        .resources()
        .iter()
        .filter(|r| matches!(r.action, Action::Update | Action::Replace | Action::Delete))
        .filter(|r| r.desired().tags.contains_key(TAG_MANAGED_BY))
        .filter_map(|r| {
            let observed = r.observed()?;
            let ours = r.desired().tags.get(TAG_OWNER);
            let theirs = observed.tags.get(TAG_OWNER);
            let adopted = theirs.is_none() && ours.is_some() && ownership.adopt_unowned;
            (ours != theirs && !adopted).then(|| Conflict {
                id: r.id.to_string(),
                name: r.name.clone(),
                theirs: theirs.cloned(),
                ours: ours.cloned(),
            })
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(OwnedByOther { conflicts })
    }
}
