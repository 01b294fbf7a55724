//! The contract with the provider over every option: each resource of the 64-server
//! combination render and of the longest-names render has exactly its kind's typed shape
//! (`reconciler-kinds`), optional fields included (adopt, restoreFrom, keys, spot, shared
//! zones).

use std::collections::HashMap;

use crate::support::{policy_set, rendered};

#[test]
fn every_option_renders_its_kinds_shape() {
    let kinds: HashMap<&str, reconciler_kinds::KindInfo> = reconciler_kinds::all()
        .into_iter()
        .map(|k| (k.kind, k))
        .collect();
    let (combinations, _, _) = policy_set();
    let (longest, _) = crate::names::longest_set();
    let mut seen = std::collections::BTreeSet::new();
    for set in [combinations, longest] {
        for r in rendered(&set).iter() {
            let info = kinds
                .get(r.kind.as_str())
                .unwrap_or_else(|| panic!("{}: no kind module for {}", r.id, r.kind));
            if let Err(e) = (info.conforms)(&r.properties) {
                panic!("{}: {e}", r.id);
            }
            seen.insert(r.kind.as_str().to_string());
        }
    }
    assert_eq!(seen.len(), kinds.len(), "every kind is rendered: {seen:?}");
}
