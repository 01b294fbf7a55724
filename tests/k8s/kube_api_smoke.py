#!/usr/bin/env python3
"""Smoke test of `reconciler operator` over real HTTP against kmock's Kubernetes API emulator.

The emulator keeps objects in memory and serves list, watch, get, create, patch and delete
on 127.0.0.1. The operator binary runs against it through a kubeconfig, as it would against
a cluster. AWS is never reached: the ContainerSpec names a Base that does not exist. The test
checks what crosses the wire:

- the operator takes the leader Lease;
- it lists and watches ContainerSpecs, adds its finalizer and writes a status (BaseNotFound);
- a ContainerSpec created later reaches it through the watch;
- a deletion is seen through the watch, and the finalizer is released, so the object goes;
- on SIGTERM it stops with exit status 0 and releases the Lease.

Prints one line per check and `N passed, M failed`; exits 1 when anything failed.
"""

import argparse
import asyncio
import os
import pathlib
import signal
import sys
import tempfile
import time

from kmock._internal import apps, k8s

NS = "games"
LEASE = "reconciler-operator"
RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok' if ok else 'FAIL'}  {name}" + (f"\n      {detail}" if detail and not ok else ""), flush=True)
    return ok


def server(name, base_ref):
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "ContainerSpec",
        # The emulator keeps objects as posted and assigns no resourceVersion; a watch needs one.
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1", "generation": 1},
        "spec": {
            "baseRef": base_ref,
            "ec2": {"instanceType": "m5.large"},
            "container": {"image": "itzg/minecraft-server", "ports": [{"port": 25565}]},
            "watchdog": {"threshold": 1175},
        },
    }


def stored(emulator, plural, group_version, name, namespace=NS):
    for (resource, ns, n), obj in emulator.objects.items():
        if resource.plural == plural and f"{resource.group}/{resource.version}".strip("/") == group_version and n == name and ns == namespace:
            return None if obj.deleted else obj.raw
    return None


async def until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    return None


async def main_async(binary, timeout, show_log):
    emulator = k8s.KubernetesEmulator()
    for resource in (
        "reconciler.dev/v1alpha1/containerspecs",
        "reconciler.dev/v1alpha1/bases",
        "coordination.k8s.io/v1/leases",
        "events.k8s.io/v1/events",
    ):
        emulator.resources[resource] = {}
    async with emulator, apps.Server(emulator) as srv:
        url = str(srv.url).rstrip("/")
        session = srv.client
        # One object before the operator starts (seen by its initial list)...
        response = await session.post(f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/containerspecs", json=server("minecraft", "main"))
        check("the emulator accepts a ContainerSpec", response.status < 300, await response.text())

        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = pathlib.Path(tmp) / "kubeconfig"
            kubeconfig.write_text(
                "apiVersion: v1\nkind: Config\n"
                f"clusters: [{{name: kmock, cluster: {{server: '{url}'}}}}]\n"
                "users: [{name: smoke, user: {token: smoke}}]\n"
                "contexts: [{name: smoke, context: {cluster: kmock, user: smoke, namespace: games}}]\n"
                "current-context: smoke\n"
            )
            env = dict(os.environ)
            env.update({
                "KUBECONFIG": str(kubeconfig),
                "POD_NAME": "smoke-0",
                "POD_NAMESPACE": NS,
                "AWS_ACCESS_KEY_ID": "smoke",
                "AWS_SECRET_ACCESS_KEY": "smoke",
                "AWS_REGION": "us-east-1",
                "RECONCILER_LOG": "info,kube=warn,hyper=warn",
            })
            for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "AWS_PROFILE"):
                env.pop(var, None)
            log = open(pathlib.Path(tmp) / "operator.log", "w+")
            process = await asyncio.create_subprocess_exec(
                binary,
                # AWS is never reached in this test; if it were, nothing would answer here.
                "--endpoint-url", "http://127.0.0.1:9",
                "operator", "--namespace", NS, "--health-addr", "127.0.0.1:0", "--retry-min", "1s",
                env=env, stdout=log, stderr=log,
            )
            try:
                await scenario(emulator, session, timeout)
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.wait_for(process.wait(), timeout)
                except asyncio.TimeoutError:
                    process.kill()
                    code = await process.wait()
                check("SIGTERM stops the operator with exit status 0", code == 0, f"exit status {code}")
                lease = stored(emulator, "leases", "coordination.k8s.io/v1", LEASE)
                holder = (lease or {}).get("spec", {}).get("holderIdentity")
                check("the Lease is released on shutdown", lease is not None and not holder, str(lease))
                if RESULTS["failed"] or show_log:
                    log.seek(0)
                    print("--- operator log ---\n" + log.read()[-6000:])
                log.close()


async def scenario(emulator, session, timeout):
    lease = await until("lease", lambda: stored(emulator, "leases", "coordination.k8s.io/v1", LEASE), timeout)
    check("the operator takes the leader Lease", (lease or {}).get("spec", {}).get("holderIdentity") == "smoke-0", str(lease))

    def status_of(name, reason):
        obj = stored(emulator, "containerspecs", "reconciler.dev/v1alpha1", name) or {}
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        synced = conditions.get("Synced", {})
        return obj if synced.get("reason") == reason else None

    obj = await until("status", lambda: status_of("minecraft", "BaseNotFound"), timeout)
    check("an existing object gets a status through list and patch", obj is not None)
    if obj:
        check("its finalizer is added", obj["metadata"].get("finalizers") == ["reconciler.dev/cleanup"], str(obj["metadata"]))
        check("its status names the missing Base", "Base `main` not found" in (obj["status"].get("lastError") or ""), str(obj["status"]))

    # ... and one created while it runs (seen through the watch).
    response = await session.post(f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/containerspecs", json=server("valheim", "other"))
    check("a second ContainerSpec is created", response.status < 300)
    obj = await until("watch", lambda: status_of("valheim", "BaseNotFound"), timeout)
    check("an object created later is reconciled through the watch", obj is not None)

    response = await session.delete(f"/apis/reconciler.dev/v1alpha1/namespaces/{NS}/containerspecs/minecraft")
    check("the deletion is accepted", response.status < 300, await response.text())
    gone = await until("gone", lambda: stored(emulator, "containerspecs", "reconciler.dev/v1alpha1", "minecraft") is None or None, timeout)
    check("the finalizer is released and the object goes", gone is not None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="the reconciler binary")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--show-log", action="store_true", help="print the operator's log")
    args = parser.parse_args()
    asyncio.run(main_async(args.binary, args.timeout, args.show_log))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
