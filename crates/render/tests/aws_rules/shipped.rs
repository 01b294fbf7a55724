//! The IAM documents shipped for operators in `docs/iam/` (see docs/operator.md): the deployer
//! policy and the permissions boundary every role the reconciler creates carries. Both pass the
//! same linter as every rendered policy; the deployer policy cannot make a role beyond the
//! boundary; and the boundary allows what every rendered role's own policies grant.

use std::collections::BTreeSet;

use reconciler_render::kinds;
use serde_json::Value;

use crate::policies::{lint, PolicyDoc};
use crate::support;

const DEPLOYER: &str = "docs/iam/deployer.json";
const BOUNDARY: &str = "docs/iam/boundary.json";

/// The boundary's ARN as the deployer policy requires it on every role write: the policy
/// `reconciler-boundary` of the caller's own account.
const BOUNDARY_ARN: &str = "arn:aws:iam::${aws:PrincipalAccount}:policy/reconciler-boundary";

/// The deployer statements that may grant on `*` actions that have a resource type, and why.
/// Any other `*` statement (of either document) may hold only actions without one.
const DEPLOYER_STAR: &[(&str, &str)] = &[
    (
        "ReadForObservation",
        "reads only: observation lists and describes what it then filters by name",
    ),
    (
        "NetworkInstancesAndFileSystems",
        "EC2 and EFS objects are addressed by the ids AWS assigns, and a launch spans AWS's \
         image, new network interfaces and volumes; the role an instance may carry is held by \
         PassRole",
    ),
];

/// The services the reconciler passes its roles to.
const PASSED_TO: &[&str] = &[
    "ec2.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "lambda.amazonaws.com",
    "backup.amazonaws.com",
];

/// The IAM actions that write a role's permissions: allowed only with the boundary.
const ROLE_WRITES: &[&str] = &[
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
];

/// The IAM reads observation makes, the only IAM actions allowed on `*`.
const IAM_READS: &[&str] = &[
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:GetInstanceProfile",
    "iam:List*",
    "iam:GetAccountAuthorizationDetails",
];

/// Every IAM write the deployer policy may allow.
const IAM_WRITES: &[&str] = &[
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:PassRole",
    "iam:CreateInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile",
    "iam:UntagInstanceProfile",
    "iam:CreateServiceLinkedRole",
];

/// What changes a boundary: denied by both documents.
const BOUNDARY_CHANGES: &[&str] = &[
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
];

/// The most a role's inline policies may hold (the deployer policy is attached inline).
const ROLE_INLINE_MAX: usize = 10_240;
/// The most a managed policy may hold (the boundary is one).
const MANAGED_MAX: usize = 6_144;

fn document(path: &str) -> Value {
    let text = std::fs::read_to_string(support::root().join(path)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Value) -> &[Value] {
    doc["Statement"].as_array().unwrap()
}

fn allows(st: &Value) -> bool {
    st["Effect"] == "Allow"
}

/// IAM's `*` wildcard (any run of characters, none included) over all of `text`.
fn iam_like(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(mut rest) = text.strip_prefix(parts.next().unwrap_or_default()) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether an action pattern of a statement covers `action` (action names are
/// case-insensitive).
fn covers_action(st: &Value, action: &str) -> bool {
    strings(&st["Action"])
        .iter()
        .any(|a| iam_like(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
}

/// The document's size as IAM counts it against its quotas: without whitespace.
fn size(doc: &Value) -> usize {
    serde_json::to_string(doc).unwrap().len()
}

#[test]
fn the_shipped_policies_pass_the_iam_linter() {
    let docs = [("deployer", DEPLOYER), ("boundary", BOUNDARY)].map(|(id, path)| PolicyDoc {
        id: id.into(),
        owner: path.into(),
        document: document(path),
        implied_resource: None,
    });
    let lint = lint(&docs);
    let star_reason = |id: &str, sid: &Option<String>| {
        DEPLOYER_STAR
            .iter()
            .find(|(s, _)| id == "deployer" && sid.as_deref() == Some(s))
    };
    let unexplained: Vec<String> = lint
        .findings
        .iter()
        .filter(|f| !(f.issue == "RESOURCE_STAR" && star_reason(&f.id, &f.sid).is_some()))
        .map(|f| format!("{} [{:?}] {}: {}", f.id, f.sid, f.issue, f.detail))
        .collect();
    assert!(unexplained.is_empty(), "{}", unexplained.join("\n"));
    let unknown: Vec<&String> = lint
        .actions
        .iter()
        .filter(|(_, a)| !a.known)
        .map(|(k, _)| k)
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
    // The read statement reads: listing, describing, getting.
    let deployer = &docs[0].document;
    let read = statements(deployer)
        .iter()
        .find(|st| st["Sid"] == "ReadForObservation")
        .unwrap();
    for action in strings(&read["Action"]) {
        let levels = &lint.actions[&action].access_levels;
        assert!(
            levels.iter().all(|l| l == "List" || l == "Read"),
            "{action} is {levels:?}"
        );
    }
    assert!(size(deployer) <= ROLE_INLINE_MAX, "{}", size(deployer));
    assert!(
        size(&docs[1].document) <= MANAGED_MAX,
        "{}",
        size(&docs[1].document)
    );
}

#[test]
fn the_deployer_cannot_make_a_role_beyond_the_boundary() {
    let deployer = document(DEPLOYER);
    let mut iam_allowed = BTreeSet::new();
    for st in statements(&deployer).iter().filter(|st| allows(st)) {
        let sid = st["Sid"].as_str().unwrap();
        let actions = strings(&st["Action"]);
        assert!(
            actions.iter().all(|a| !a.ends_with(":*") && a != "*"),
            "{sid}: a whole service"
        );
        let resources = strings(&st["Resource"]);
        if resources.iter().any(|r| r == "*") {
            let writes: Vec<&String> = actions
                .iter()
                .filter(|a| a.starts_with("iam:") && !IAM_READS.contains(&a.as_str()))
                .collect();
            assert!(writes.is_empty(), "{sid}: {writes:?} on `*`");
        }
        iam_allowed.extend(actions.iter().filter(|a| a.starts_with("iam:")).cloned());
        if actions.iter().any(|a| ROLE_WRITES.contains(&a.as_str())) {
            assert_eq!(resources, ["arn:aws:iam::*:role/rc-*"], "{sid}");
            assert_eq!(
                st["Condition"],
                serde_json::json!({ "ArnEquals": { "iam:PermissionsBoundary": BOUNDARY_ARN } }),
                "{sid}: role writes need the boundary"
            );
        }
        if actions.iter().any(|a| a == "iam:PassRole") {
            assert_eq!(actions, ["iam:PassRole"], "{sid}");
            assert_eq!(resources, ["arn:aws:iam::*:role/rc-*"], "{sid}");
            assert_eq!(
                strings(&st["Condition"]["StringEquals"]["iam:PassedToService"]),
                PASSED_TO,
                "{sid}"
            );
            assert_eq!(st["Condition"].as_object().unwrap().len(), 1, "{sid}");
        }
        if actions.iter().any(|a| a == "lambda:CreateFunction") {
            assert_eq!(resources, ["arn:aws:lambda:*:*:function:rc-*"], "{sid}");
        }
    }
    let extra: Vec<&String> = iam_allowed
        .iter()
        .filter(|a| !IAM_READS.contains(&a.as_str()) && !IAM_WRITES.contains(&a.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "IAM actions beyond the reviewed list: {extra:?}"
    );
    // The boundary stays on, and stays what it is.
    for doc in [&deployer, &document(BOUNDARY)] {
        let denied: Vec<&Value> = statements(doc).iter().filter(|st| !allows(st)).collect();
        for action in BOUNDARY_CHANGES {
            assert!(
                denied.iter().any(|st| covers_action(st, action)
                    && strings(&st["Resource"])
                        .iter()
                        .any(|r| r.ends_with(":policy/reconciler-boundary"))
                    && strings(&st["Resource"])
                        .iter()
                        .any(|r| r.ends_with(":role/*"))),
                "{action} is not denied"
            );
        }
    }
}

#[test]
fn the_boundary_allows_what_every_rendered_role_grants() {
    let boundary = document(BOUNDARY);
    let allowing: Vec<&Value> = statements(&boundary)
        .iter()
        .filter(|st| allows(st))
        .collect();
    let (set, _, _) = support::policy_set();
    let resources = support::resolved(&support::rendered(&set));
    let mut checked = 0;
    let mut missing = BTreeSet::new();
    for role in resources.iter().filter(|r| r.kind.as_str() == kinds::ROLE) {
        for policy in role.properties["inlinePolicies"]
            .as_object()
            .unwrap()
            .values()
        {
            for st in statements(policy).iter().filter(|st| allows(st)) {
                for action in strings(&st["Action"]) {
                    for resource in strings(&st["Resource"]) {
                        checked += 1;
                        let granted = allowing.iter().any(|b| {
                            covers_action(b, &action)
                                && strings(&b["Resource"])
                                    .iter()
                                    .any(|pattern| iam_like(pattern, &resource))
                                && conditions_hold(b, st)
                        });
                        if !granted {
                            missing.insert(format!("{action} on {resource}"));
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(
        missing.is_empty(),
        "the boundary does not allow:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Whether the role's statement `st` meets every condition of the boundary's statement `b`:
/// the role's own condition on the same key names only values the boundary's pattern allows.
fn conditions_hold(b: &Value, st: &Value) -> bool {
    let Some(ops) = b["Condition"].as_object() else {
        return true;
    };
    ops.iter().all(|(op, keys)| {
        keys.as_object().unwrap().iter().all(|(key, allowed)| {
            let own = st["Condition"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
                .filter_map(|k| k.get(key))
                .flat_map(strings)
                .collect::<Vec<_>>();
            let patterns = strings(allowed);
            !own.is_empty()
                && own.iter().all(|v| {
                    patterns.iter().any(|p| match op.as_str() {
                        "StringLike" => iam_like(p, v),
                        _ => p == v,
                    })
                })
        })
    })
}

#[test]
fn iam_wildcards_match_runs_of_characters() {
    assert!(iam_like(
        "arn:aws:logs:*:*:log-group:/reconciler/*",
        "arn:aws:logs:us-west-2:1:log-group:/reconciler/mc/container:*"
    ));
    assert!(iam_like("rc-*", "rc-"));
    assert!(iam_like("a*b*c", "abbc"));
    assert!(!iam_like("a*b*c", "acb"));
    assert!(!iam_like("rc-*", "xrc-a"));
    assert!(!iam_like("ecs:submit*", "ecs:poll"));
    assert!(iam_like("*", ""));
    assert!(!iam_like("abc", "abcd"));
}
