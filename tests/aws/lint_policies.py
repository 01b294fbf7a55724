"""Lints IAM policy documents with parliament, in one process for the whole batch.

Reads from standard input a JSON list of documents:

    [{"id": "...", "document": {...}, "implied_resource": "arn:..." or null}, ...]

`implied_resource` is the ARN of the object a policy without a `Resource` element is attached
to: the role of a trust policy, the file system of an EFS file system policy. IAM evaluates
such a statement against that object, so the linter checks its actions against it (parliament
itself expects every statement to name its resources).

Writes to standard output one JSON object:

    {"findings": [{"id", "statement", "sid", "issue", "severity", "detail"}, ...],
     "actions": {"service:Action": {"known": bool, "resource_types": [...],
                                    "access_levels": [...]}, ...}}

`statement` is the index of the statement a finding is about (null for the whole document).
`findings` are parliament's, every one of them (unknown prefix or action, a resource that fits
none of the action's resource types, an unnecessary `Resource: *`, an unknown condition key for
the action, a mistyped condition operator, ...). `actions` describes every action the documents
name, from the same database: its resource types as AWS's service authorization reference lists
them ("" where the action takes no resource type, that is `*` only), and its access levels
("List", "Read", "Write", "Permissions management", "Tagging").
"""

import copy
import json
import sys

import parliament
from parliament import analyze_policy_string, expand_action


def describe(action):
    """The resource types and access levels AWS lists for `action` (`service:Name`, wildcards
    expanded), or None if unknown."""
    try:
        expanded = expand_action(action)
    except Exception:  # parliament raises its own UnknownAction/UnknownPrefix exceptions
        return None
    types = set()
    levels = set()
    for item in expanded:
        for service in parliament.iam_definition:
            if service["prefix"] != item["service"]:
                continue
            for privilege in service["privileges"]:
                if privilege["privilege"] == item["action"]:
                    levels.add(privilege["access_level"])
                    for rt in privilege["resource_types"]:
                        types.add(rt["resource_type"].rstrip("*"))
    return sorted(types), sorted(levels)


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def main():
    batch = json.load(sys.stdin)
    findings = []
    actions = {}
    for entry in batch:
        document = copy.deepcopy(entry["document"])
        implied = entry.get("implied_resource")
        for statement in as_list(document.get("Statement")):
            if implied and "Resource" not in statement and "NotResource" not in statement:
                statement["Resource"] = implied
            for action in as_list(statement.get("Action")) + as_list(statement.get("NotAction")):
                if action != "*" and action not in actions:
                    described = describe(action)
                    types, levels = described or ([], [])
                    actions[action] = {
                        "known": described is not None,
                        "resource_types": types,
                        "access_levels": levels,
                    }
        # One statement per line, so a finding's line names its statement.
        statements = as_list(document.get("Statement"))
        head = {k: v for k, v in document.items() if k != "Statement"}
        text = json.dumps(head)[:-1] + (", " if head else "") + '"Statement": [\n'
        text += ",\n".join(json.dumps(s) for s in statements) + "\n]}"
        policy = analyze_policy_string(
            text,
            ignore_private_auditors=True,
            include_community_auditors=False,
        )
        for finding in policy.findings:
            location = finding.location if isinstance(finding.location, dict) else {}
            line = location.get("line", location.get("lineno"))
            index = line - 2 if isinstance(line, int) else -1
            statement = statements[index] if 0 <= index < len(statements) else {}
            findings.append(
                {
                    "id": entry["id"],
                    "statement": index if statement else None,
                    "sid": statement.get("Sid"),
                    "issue": finding.issue,
                    "severity": finding.severity,
                    "detail": finding.detail,
                }
            )
    json.dump({"findings": findings, "actions": actions}, sys.stdout, default=str)


if __name__ == "__main__":
    main()
