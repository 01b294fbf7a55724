#!/usr/bin/env python3
"""Offline checks of the reconciler Helm chart, with no cluster.

- `helm lint --strict` for each Kubernetes version and mode (Helm's Go SDK, through
  helm-python-sdk: no helm binary is published to the package registries this project uses);
- the templates rendered (`helm template`) for both modes and each Kubernetes version;
- every rendered built-in object, and the CRDs, validated against that version's OpenAPI
  schema (kubernetes-validate, strict: unknown fields are errors);
- the example spec files, as custom objects, validated against the CRDs' openAPIV3Schema with
  check-jsonschema, plus objects that must be rejected;
- what the chart promises: least-privilege RBAC, a non-root read-only pod, the IRSA
  annotation, and the CronJob running `reconciler apply -f /specs`.

Prints one line per check and `N passed, M failed`; exits 1 when anything failed.
"""

import argparse
import copy
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import helm_python
import kubernetes_validate
import yaml
from helm_python import _native

RESULTS = {"passed": 0, "failed": 0}
ROLE_ARN = "arn:aws:iam::123456789012:role/reconciler"


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok' if ok else 'FAIL'}  {name}" + (f"\n      {detail}" if detail and not ok else ""))
    return ok


def lint(chart, values, kube):
    report = helm_python.lint(str(chart), values, strict=True, kube_version=f"v{kube}")
    # Strict: warnings count as errors (severity 2 = warning, 3 = error).
    return [m for m in report["messages"] if m["severity"] >= 2] + list(report.get("errors") or [])


def render(chart, values, kube, namespace="reconciler"):
    """`helm template rel CHART -n NAMESPACE --kube-version KUBE`, as (template, object)."""
    # Chart.render does not expose the Kubernetes version; the C ABI under it does.
    options = {"name": "rel", "namespace": namespace, "is_install": True, "kube_version": f"v{kube}"}
    text = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
    out = []
    for path, manifest in sorted(json.loads(text).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(manifest):
            if doc:
                out.append((path, doc))
    return out


def by_kind(objects, kind):
    return [o for _, o in objects if o.get("kind") == kind]


def validate_builtin(objects, kube, label):
    for path, obj in objects:
        name = f"{label}: {obj['kind']}/{obj['metadata']['name']} valid in Kubernetes {kube}"
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
            check(name, True)
        except kubernetes_validate.ValidationError as e:
            check(name, False, f"{path}: {e}".splitlines()[0])
        except kubernetes_validate.SchemaNotFoundError:
            check(name, False, f"{path}: no schema for {obj['apiVersion']}/{obj['kind']}")


def pod_is_locked_down(label, pod):
    ok = pod.get("securityContext", {}).get("runAsNonRoot") is True
    check(f"{label}: pod runs as non-root", ok, str(pod.get("securityContext")))
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        check(f"{label}: {c['name']} has a read-only root filesystem", sc.get("readOnlyRootFilesystem") is True)
        check(f"{label}: {c['name']} cannot escalate privileges", sc.get("allowPrivilegeEscalation") is False)
        check(f"{label}: {c['name']} drops all capabilities", "ALL" in sc.get("capabilities", {}).get("drop", []))
        check(f"{label}: {c['name']} has resources", bool(c.get("resources", {}).get("requests")))


def rbac_is_least_privilege(label, objects, release_ns, watch_ns):
    roles = by_kind(objects, "ClusterRole") + by_kind(objects, "Role")
    for role in roles:
        for rule in role["rules"]:
            star = any("*" in rule.get(k, []) for k in ("verbs", "resources", "apiGroups"))
            check(f"{label}: {role['kind']}/{role['metadata']['name']} has no wildcard", not star, str(rule))
            if "reconciler.dev" in rule["apiGroups"]:
                extra = set(rule["verbs"]) - {"get", "list", "watch", "patch", "update"}
                check(f"{label}: no create/delete on reconciler.dev objects", not extra, str(rule))
                if "update" in rule["verbs"]:
                    check(f"{label}: update only on finalizers", all(r.endswith("/finalizers") for r in rule["resources"]), str(rule))
            if "coordination.k8s.io" in rule["apiGroups"]:
                check(f"{label}: leases only in a namespaced Role", role["kind"] == "Role" and role["metadata"]["namespace"] == release_ns)
                if set(rule["verbs"]) - {"create"}:
                    check(f"{label}: lease reads and renewals limited to the one Lease", rule.get("resourceNames") == ["reconciler-operator"], str(rule))
    cluster = by_kind(objects, "ClusterRole")
    if watch_ns:
        check(f"{label}: watching one namespace needs no ClusterRole", not cluster)
        objects_role = [r for r in by_kind(objects, "Role") if r["metadata"]["namespace"] == watch_ns]
        check(f"{label}: the objects' Role is in {watch_ns}", len(objects_role) == 1)
    else:
        check(f"{label}: watching all namespaces uses one ClusterRole", len(cluster) == 1)


def strict_schema(node):
    """The CRD schema as JSON Schema, with unknown fields rejected as the API server's strict
    field validation (kubectl's default) does, and `nullable` as a null type."""
    node = copy.deepcopy(node)

    def walk(n):
        if not isinstance(n, dict):
            return
        if n.pop("nullable", False) and isinstance(n.get("type"), str):
            n["type"] = [n["type"], "null"]
        if "properties" in n and "additionalProperties" not in n and not n.get("x-kubernetes-preserve-unknown-fields"):
            n["additionalProperties"] = False
        for key in ("properties",):
            for child in n.get(key, {}).values():
                walk(child)
        for key in ("items", "additionalProperties"):
            if isinstance(n.get(key), dict):
                walk(n[key])

    walk(node)
    # metadata is the API server's; any valid ObjectMeta passes.
    node["properties"]["metadata"] = {"type": "object"}
    return node


def jsonschema_check(schema, objects, tmp, name):
    schema_path = tmp / f"{name}.schema.json"
    schema_path.write_text(json.dumps(schema))
    files = []
    for i, obj in enumerate(objects):
        f = tmp / f"{name}-{i}.yaml"
        f.write_text(yaml.safe_dump(obj))
        files.append(str(f))
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema_path), *files],
        capture_output=True,
        text=True,
    )
    return run.returncode == 0, (run.stdout + run.stderr).strip()


def custom_objects(chart_dir, specs_dir, tmp):
    crds = {}
    for path in sorted((chart_dir / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    examples = {"Base": [], "ContainerSpec": []}
    for path in sorted(specs_dir.glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        obj["metadata"]["namespace"] = "games"
        examples[obj["kind"]].append(obj)
    for kind, schema in crds.items():
        strict = strict_schema(schema)
        ok, out = jsonschema_check(strict, examples[kind], tmp, kind)
        check(f"example {kind} objects validate against the CRD schema ({len(examples[kind])})", ok and examples[kind], out)
        bad = []
        first = examples[kind][0]
        typo = copy.deepcopy(first)
        typo["spec"]["regoin" if kind == "Base" else "watchdgo"] = "x"
        bad.append(("an unknown field", typo))
        wrong = copy.deepcopy(first)
        if kind == "Base":
            wrong["spec"]["vpc"]["maxAzs"] = 9
        else:
            wrong["spec"]["container"]["ports"][0]["port"] = "25565/tcp"
        bad.append(("a value out of range or of the wrong type", wrong))
        if kind == "ContainerSpec":
            enum = copy.deepcopy(first)
            enum["spec"]["maturity"] = "production"
            bad.append(("a value outside an enum", enum))
        for what, obj in bad:
            ok, out = jsonschema_check(strict, [obj], tmp, f"{kind}-bad")
            check(f"a {kind} with {what} is rejected by the CRD schema", not ok, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", required=True, type=pathlib.Path)
    parser.add_argument("--specs", required=True, type=pathlib.Path)
    parser.add_argument("--kube", action="append", required=True, help="e.g. 1.29.0; repeat")
    args = parser.parse_args()
    chart_dir = args.chart.resolve()
    chart = helm_python.Chart.load(str(chart_dir))
    spec_files = {p.name: p.read_text() for p in sorted(args.specs.glob("*.yaml"))}
    scenarios = {
        "operator, all namespaces": ({"serviceAccount": {"roleArn": ROLE_ARN}}, None),
        "operator, one namespace": (
            {"operator": {"watchNamespace": "games", "replicas": 1, "allowDataLoss": True, "adoptUnowned": True, "envAllow": ["HOSTED_ZONE_ID", "DOMAIN_NAME"]}, "aws": {"region": "us-west-2"}},
            "games",
        ),
        "cronjob": ({"mode": "cronjob", "cronjob": {"specs": spec_files, "prune": True}, "serviceAccount": {"roleArn": ROLE_ARN}}, None),
    }
    for kube in args.kube:
        for label, (values, watch_ns) in scenarios.items():
            label = f"[{kube}] {label}"
            problems = lint(chart_dir, values, kube)
            check(f"{label}: helm lint --strict", not problems, json.dumps(problems))
            try:
                objects = render(chart, values, kube)
            except Exception as e:  # a template error fails every check below
                check(f"{label}: helm template", False, str(e))
                continue
            check(f"{label}: helm template", True)
            validate_builtin(objects, kube, label)
            sa = by_kind(objects, "ServiceAccount")[0]
            annotations = sa["metadata"].get("annotations", {})
            if "roleArn" in values.get("serviceAccount", {}):
                check(f"{label}: IRSA role annotation", annotations.get("eks.amazonaws.com/role-arn") == ROLE_ARN, str(annotations))
            if values.get("mode") == "cronjob":
                jobs = by_kind(objects, "CronJob")
                check(f"{label}: a CronJob and no Deployment", len(jobs) == 1 and not by_kind(objects, "Deployment"))
                check(f"{label}: no RBAC (the job never calls the Kubernetes API)", not by_kind(objects, "Role") and not by_kind(objects, "ClusterRole"))
                pod = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                pod_is_locked_down(label, pod)
                container = pod["containers"][0]
                check(f"{label}: runs reconciler apply -f /specs --prune --yes", container["args"][:5] == ["apply", "-f", "/specs", "--prune", "--yes"], str(container["args"]))
                mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
                check(f"{label}: specs mounted read-only at /specs", mounts.get("/specs", {}).get("readOnly") is True)
                cm = by_kind(objects, "ConfigMap")
                check(f"{label}: the ConfigMap holds the spec files", len(cm) == 1 and sorted(cm[0]["data"]) == sorted(spec_files))
                if cm:
                    check(f"{label}: spec files are kept verbatim", all(cm[0]["data"][k].strip() == v.strip() for k, v in spec_files.items()))
            else:
                deps = by_kind(objects, "Deployment")
                check(f"{label}: a Deployment and no CronJob", len(deps) == 1 and not by_kind(objects, "CronJob"))
                pod = deps[0]["spec"]["template"]["spec"]
                pod_is_locked_down(label, pod)
                c = pod["containers"][0]
                check(f"{label}: runs reconciler operator", c["args"][0] == "operator", str(c["args"]))
                check(f"{label}: liveness and readiness probes", c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz" and c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz")
                env = {e["name"] for e in c.get("env", [])}
                check(f"{label}: the pod knows its name and namespace (Lease identity)", {"POD_NAME", "POD_NAMESPACE"} <= env)
                if watch_ns:
                    check(f"{label}: --namespace passed", f"--namespace={watch_ns}" in c["args"], str(c["args"]))
                allowed = values.get("operator", {}).get("envAllow", [])
                passed = [a.removeprefix("--env-allow=") for a in c["args"] if a.startswith("--env-allow")]
                check(f"{label}: exactly the envAllow names are passed as --env-allow (none by default)", passed == allowed, str(c["args"]))
                adopt = values.get("operator", {}).get("adoptUnowned", False)
                check(f"{label}: --adopt-unowned only when operator.adoptUnowned", ("--adopt-unowned" in c["args"]) == adopt, str(c["args"]))
                rbac_is_least_privilege(label, objects, "reconciler", watch_ns)
        crds = [yaml.safe_load(p.read_text()) for p in sorted((chart_dir / "crds").glob("*.yaml"))]
        validate_builtin([("crds", c) for c in crds], kube, f"[{kube}] CRD")

    # The version option is honoured: the chart refuses Kubernetes older than 1.29.
    try:
        render(chart, {}, "1.28.0")
        check("rendering for Kubernetes 1.28 fails (the CRDs need 1.29)", False)
    except Exception as e:
        check("rendering for Kubernetes 1.28 fails (the CRDs need 1.29)", "too old" in str(e), str(e))
    # The lint is able to fail: a template error in a copy of the chart is reported.
    with tempfile.TemporaryDirectory() as tmp:
        broken = pathlib.Path(tmp) / "reconciler"
        shutil.copytree(chart_dir, broken)
        (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.image.repository.nope }\n")
        problems = lint(broken, {}, args.kube[0])
        check("helm lint reports a broken template", bool(problems), json.dumps(problems))
    for values, what in (({"mode": "daemon"}, "an unknown mode"), ({"mode": "cronjob"}, "cronjob mode without specs")):
        try:
            render(chart, values, args.kube[0])
            check(f"{what} fails to render", False)
        except Exception:
            check(f"{what} fails to render", True)

    with tempfile.TemporaryDirectory() as tmp:
        custom_objects(chart_dir, args.specs.resolve(), pathlib.Path(tmp))

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
