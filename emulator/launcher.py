#!/usr/bin/env python3
"""Local AWS emulator for the reconciler's integration tests, demo and benchmarks.

Runs moto's server in this process on 127.0.0.1 and adds three things on top:

1. A WSGI middleware that speaks the Smithy RPC-v2-CBOR protocol. Current AWS
   SDKs for Rust send CloudWatch (and a few other services) as
   ``POST /service/<ServiceShape>/operation/<Op>`` with a CBOR body; moto only
   understands the JSON protocol for those services. The middleware converts
   the request to AWS-JSON, lets moto answer, and converts the answer (errors
   included) back to CBOR, using botocore's service model for field types.

2. Small in-memory patches for moto operations the reconciler needs but moto
   5.2.5 does not implement (or implements wrongly). Each patch names its gap.

3. Strictness: a WSGI middleware in front of moto that refuses what AWS
   refuses. Every request of the services the product calls is decoded into
   its botocore input shape and checked against the API model (required
   members, lengths, patterns, enums, ranges), then against AWS's documented
   quotas and resource-policy checks; a violation is answered with the
   service's own validation error.

Usage:
    python launcher.py [--host 127.0.0.1] [--port N] [--exit-on-stdin-eof]
                       [--exit-with-parent] [--quiet]

Prints exactly one line ``EMULATOR_READY http://127.0.0.1:PORT`` on stdout once
the socket is listening. ``--port 0`` picks a free port. With
``--exit-on-stdin-eof`` the process exits as soon as its stdin closes, so a
parent (a test binary) that dies for any reason takes the emulator with it;
``--exit-with-parent`` does the same by watching the parent pid, for a
foreground wrapper whose stdin is a terminal.
Accounts are isolated per request with the ``x-moto-account-id`` header.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import gzip
import io
import json
import math
import os
import re
import struct
import sys
import threading
import time
import traceback
from http import HTTPStatus
from typing import Any, Callable, Iterable

# Must be set before moto is imported: lets attach_role_policy find
# AWS-managed policies such as AmazonEC2ContainerServiceforEC2Role.
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

import botocore.session  # noqa: E402
import cbor2  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

READY_PREFIX = "EMULATOR_READY"

_BOTOCORE = botocore.session.get_session()


# ---------------------------------------------------------------------------
# Part 1: Smithy RPC-v2-CBOR <-> AWS-JSON translation
# ---------------------------------------------------------------------------

# Smithy service shape name (as it appears in the URL) -> botocore service
# name. Services not listed here are looked up once by scanning botocore's
# models (see _CborServiceIndex.lookup), so any CBOR-first service that moto
# implements works; these two are the ones the reconciler may touch.
KNOWN_CBOR_SERVICES = {
    "GraniteServiceVersion20100801": "cloudwatch",
    "ResourceGroupsTaggingAPI_20170126": "resourcegroupstaggingapi",
}


class _CborServiceIndex:
    """Maps a Smithy service shape name to a botocore ServiceModel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._scanned = False

    def lookup(self, shape_name: str) -> Any | None:
        with self._lock:
            if shape_name in self._models:
                return self._models[shape_name]
            name = KNOWN_CBOR_SERVICES.get(shape_name)
            if name is not None:
                model = _BOTOCORE.get_service_model(name)
                self._models[shape_name] = model
                return model
            if not self._scanned:
                self._scan()
            return self._models.get(shape_name)

    def _scan(self) -> None:
        # One-off (a few seconds): index every CBOR-capable model that also
        # has a JSON fallback by the unqualified part of its target prefix.
        self._scanned = True
        loader = _BOTOCORE.get_component("data_loader")
        for name in loader.list_available_services("service-2"):
            try:
                meta = loader.load_service_model(name, "service-2")["metadata"]
            except Exception:  # noqa: BLE001 - a broken model is just skipped
                continue
            protocols = meta.get("protocols", [meta.get("protocol")])
            prefix = meta.get("targetPrefix")
            if "smithy-rpc-v2-cbor" in protocols and "json" in protocols and prefix:
                short = prefix.rsplit(".", 1)[-1]
                self._models.setdefault(short, _BOTOCORE.get_service_model(name))


class Float32:
    """A value to be written as a CBOR single-precision float.

    The Rust SDK decodes Smithy `float` members with an f32 reader, which
    rejects 64-bit floats. (Not a float subclass: cbor2 would encode that as
    a double without asking `_cbor_default`.)"""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


def _cbor_default(encoder: Any, value: Any) -> None:
    if isinstance(value, Float32):
        encoder.write(b"\xfa" + struct.pack(">f", value.value))
        return
    raise cbor2.CBOREncodeError(f"cannot encode {type(value).__name__}")


def _cbor_dumps(value: Any) -> bytes:
    return cbor2.dumps(value, default=_cbor_default)


def _request_to_json(value: Any) -> Any:
    """Decoded CBOR request value -> JSON-able value (AWS-JSON conventions).

    No model needed: CBOR carries enough type information. Timestamps arrive
    as tag 1 (decoded by cbor2 into datetimes) and become epoch seconds;
    blobs become base64 strings; non-finite doubles become AWS-JSON strings.
    """
    if isinstance(value, dict):
        return {str(k): _request_to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_request_to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, cbor2.CBORTag):
        return _request_to_json(value.value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is cbor2.undefined:
        return None
    return value


def _to_epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.timestamp()


def _to_double(value: Any) -> float:
    # float() also reads AWS-JSON's "NaN", "Infinity" and "-Infinity".
    return float(value)


def _response_to_cbor(value: Any, shape: Any) -> Any:
    """moto's JSON reply value -> CBOR-ready value, typed by the botocore shape.

    The Rust decoder is strict: doubles must be CBOR floats, timestamps must be
    tag 1, blobs must be byte strings. JSON loses all of that, so the shape
    tells us what each field is. Unknown fields are converted generically
    (the client skips members it does not know)."""
    if value is None:
        return None
    kind = getattr(shape, "type_name", None)
    if kind == "structure":
        members = shape.members
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            out[key] = _response_to_cbor(item, members.get(key))
        return out
    if kind == "list":
        return [_response_to_cbor(item, shape.member) for item in value]
    if kind == "map":
        return {str(k): _response_to_cbor(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return cbor2.CBORTag(1, _to_epoch(value))
    if kind == "blob":
        return base64.b64decode(value) if isinstance(value, str) else bytes(value)
    if kind == "double":
        return _to_double(value)
    if kind == "float":
        return Float32(_to_double(value))
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "boolean":
        return bool(value) if not isinstance(value, str) else value.lower() == "true"
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    # No shape (or a document type): keep JSON's own types.
    if isinstance(value, dict):
        return {str(k): _response_to_cbor(v, None) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_response_to_cbor(v, None) for v in value]
    return value


class RpcV2CborShim:
    """WSGI middleware: Smithy RPC-v2-CBOR on the outside, AWS-JSON inside."""

    PATH = re.compile(r"^/service/(?P<service>[^/]+)/operation/(?P<operation>[^/?]+)/?$")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.services = _CborServiceIndex()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = self.PATH.match(environ.get("PATH_INFO", ""))
        is_cbor = (
            environ.get("HTTP_SMITHY_PROTOCOL", "").lower() == "rpc-v2-cbor"
            or environ.get("CONTENT_TYPE", "").startswith("application/cbor")
        )
        if environ.get("REQUEST_METHOD") != "POST" or match is None or not is_cbor:
            return self.app(environ, start_response)

        model = self.services.lookup(match["service"])
        if model is None:
            return self._error(start_response, 404, "UnknownOperationException",
                               f"unknown CBOR service {match['service']}")
        try:
            operation = model.operation_model(match["operation"])
        except Exception:  # noqa: BLE001 - botocore raises OperationNotFoundError
            return self._error(start_response, 404, "UnknownOperationException",
                               f"unknown operation {match['operation']}")

        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            # The SDKs gzip large bodies (PutMetricData over 10 KiB), as AWS accepts.
            if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
                raw = gzip.decompress(raw)
            decoded = cbor2.loads(raw) if raw else {}
        except Exception as exc:  # noqa: BLE001
            return self._error(start_response, 400, "SerializationException", f"bad CBOR: {exc}")
        body = json.dumps(_request_to_json(decoded or {})).encode()

        # Same request as botocore would send with the JSON protocol. All other
        # headers, including Authorization (moto finds the service and region
        # from its credential scope) and x-moto-account-id, are kept as sent.
        inner = dict(environ)
        inner.update({
            "PATH_INFO": "/",
            "RAW_URI": "/",
            "REQUEST_URI": "/",
            "QUERY_STRING": "",
            "CONTENT_TYPE": f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{model.metadata['targetPrefix']}.{operation.name}",
            "HTTP_ACCEPT": "application/json",
            "wsgi.input": io.BytesIO(body),
        })
        inner.pop("HTTP_SMITHY_PROTOCOL", None)
        inner.pop("HTTP_CONTENT_ENCODING", None)
        if "awsQueryCompatible" in model.metadata:
            inner["HTTP_X_AMZN_QUERY_MODE"] = "true"

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _chunk: None

        try:
            result = self.app(inner, capture)
            try:
                reply = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except NotImplementedError as exc:
            return self._error(start_response, 500, "NotImplemented", str(exc))
        except Exception as exc:  # noqa: BLE001 - report any moto crash as a CBOR error
            traceback.print_exc()
            return self._error(start_response, 500, "InternalFailure", f"{type(exc).__name__}: {exc}")

        code = int(captured["status"].split()[0])
        headers = {k.lower(): v for k, v in captured["headers"]}
        if code >= 300:
            return self._translate_error(start_response, code, headers, reply)

        try:
            payload = json.loads(reply) if reply.strip() else {}
        except ValueError:
            return self._error(start_response, 500, "InternalFailure",
                               "emulator returned a non-JSON body: " + reply[:300].decode("utf-8", "replace"))
        out = _response_to_cbor(payload, operation.output_shape) if operation.output_shape else {}
        return self._send(start_response, code, _cbor_dumps(out or {}), headers)

    def _translate_error(self, start_response: Callable[..., Any], code: int,
                         headers: dict[str, str], reply: bytes) -> Iterable[bytes]:
        try:
            payload = json.loads(reply)
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            # moto's NotImplementedError page, a routing 404, ...
            text = reply[:500].decode("utf-8", "replace").strip()
            kind = "InternalFailure" if code >= 500 else "UnknownOperationException"
            if "has not been implemented" in text or "NotImplemented" in text:
                kind = "NotImplemented"
            return self._error(start_response, code, kind, text, headers)
        error_type = payload.get("__type") or headers.get("x-amzn-errortype", "").split(":")[0]
        out = {k: v for k, v in payload.items() if v is not None and k != "__type"}
        out["__type"] = error_type or "InternalFailure"
        if "message" not in out and "Message" in out:
            out["message"] = out["Message"]
        return self._send(start_response, code, _cbor_dumps(out), headers)

    def _error(self, start_response: Callable[..., Any], code: int, error_type: str,
               message: str, headers: dict[str, str] | None = None) -> Iterable[bytes]:
        body = _cbor_dumps({"__type": error_type, "message": message})
        return self._send(start_response, code, body, headers or {})

    @staticmethod
    def _send(start_response: Callable[..., Any], code: int, body: bytes,
              upstream: dict[str, str]) -> Iterable[bytes]:
        headers = [
            ("Content-Type", "application/cbor"),
            ("Content-Length", str(len(body))),
            ("smithy-protocol", "rpc-v2-cbor"),
        ]
        # The SDK reads the error code of query-compatible services (such as
        # CloudWatch) from this header; request ids are nice for debugging.
        for name in ("x-amzn-query-error", "x-amzn-requestid", "x-amz-request-id"):
            if name in upstream:
                headers.append((name, upstream[name]))
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = "Unknown"
        start_response(f"{code} {reason}", headers)
        return [body]


# ---------------------------------------------------------------------------
# Part 2: patches for moto 5.2.5 gaps the reconciler runs into
# ---------------------------------------------------------------------------
# All state lives on moto's own backend objects, which moto keeps per account
# and per region, so the patches are account- and region-aware for free and
# are wiped by POST /moto-api/reset like everything else.

def _json_reply(payload: Any, status: int = 200) -> tuple[int, dict[str, Any], str]:
    return status, {"Content-Type": "application/json", "status": status}, json.dumps(payload)


def patch_backup() -> None:
    """Gap: backup create/get/list/delete_backup_selection and update_backup_plan
    answer 500 NotImplemented; a deleted plan's name can never be reused; list_tags
    finds nothing for the path the Rust SDK sends."""
    from moto.backup.exceptions import AlreadyExistsException, ResourceNotFoundException
    from moto.backup.models import BackupBackend, Plan
    from moto.backup.responses import BackupResponse
    from moto.core.utils import unix_time
    from moto.moto_api._internal import mock_random

    def live_plan(backend: BackupBackend, plan_id: str) -> Plan:
        plan = backend.plans.get(plan_id)
        if plan is None or plan.deletion_date is not None:
            raise ResourceNotFoundException(msg=f"Failed reading Backup plan {plan_id}")
        return plan

    def selections(backend: BackupBackend, plan_id: str) -> dict[str, dict[str, Any]]:
        store = backend.__dict__.setdefault("_emulator_selections", {})
        return store.setdefault(plan_id, {})

    def plan_and_selection_ids(path: str) -> tuple[str, str]:
        # /backup/plans/{planId}/selections/{selectionId}
        match = re.search(r"/backup/plans/([^/]+)/selections/?([^/?]*)", path)
        assert match, path
        return match[1], match[2]

    def create_backup_selection(self: BackupResponse) -> Any:
        plan_id, _ = plan_and_selection_ids(self.path)
        live_plan(self.backup_backend, plan_id)
        params = json.loads(self.body or "{}")
        selection_id = str(mock_random.uuid4())
        record = {
            "SelectionId": selection_id,
            "BackupPlanId": plan_id,
            "BackupSelection": params["BackupSelection"],
            "CreationDate": unix_time(),
            "CreatorRequestId": params.get("CreatorRequestId"),
        }
        selections(self.backup_backend, plan_id)[selection_id] = record
        return _json_reply({k: record[k] for k in ("SelectionId", "BackupPlanId", "CreationDate")})

    def get_backup_selection(self: BackupResponse) -> Any:
        plan_id, selection_id = plan_and_selection_ids(self.path)
        live_plan(self.backup_backend, plan_id)
        record = selections(self.backup_backend, plan_id).get(selection_id)
        if record is None:
            raise ResourceNotFoundException(msg=f"Failed reading backup selection {selection_id}")
        return _json_reply({k: v for k, v in record.items() if v is not None})

    def list_backup_selections(self: BackupResponse) -> Any:
        plan_id, _ = plan_and_selection_ids(self.path)
        live_plan(self.backup_backend, plan_id)
        items = [
            {
                "SelectionId": r["SelectionId"],
                "SelectionName": r["BackupSelection"].get("SelectionName"),
                "BackupPlanId": plan_id,
                "CreationDate": r["CreationDate"],
                "CreatorRequestId": r["CreatorRequestId"],
                "IamRoleArn": r["BackupSelection"].get("IamRoleArn"),
            }
            for r in selections(self.backup_backend, plan_id).values()
        ]
        return _json_reply({"BackupSelectionsList": [{k: v for k, v in i.items() if v is not None} for i in items]})

    def delete_backup_selection(self: BackupResponse) -> Any:
        plan_id, selection_id = plan_and_selection_ids(self.path)
        live_plan(self.backup_backend, plan_id)
        if selections(self.backup_backend, plan_id).pop(selection_id, None) is None:
            raise ResourceNotFoundException(msg=f"Failed reading backup selection {selection_id}")
        return _json_reply({})

    def update_backup_plan(self: BackupResponse) -> Any:
        plan_id = self.path.rstrip("/").split("/plans/")[-1]
        plan = live_plan(self.backup_backend, plan_id)
        params = json.loads(self.body or "{}")
        # Build a throw-away Plan to get moto's rule defaults and RuleIds,
        # then move its document and a new version id onto the stored plan.
        fresh = Plan(backup_plan=params["BackupPlan"], creator_request_id=plan.creator_request_id,
                     backend=self.backup_backend)
        plan.backup_plan = fresh.backup_plan
        plan.version_id = fresh.version_id
        plan.advanced_backup_settings = fresh.advanced_backup_settings
        return _json_reply(plan.to_dict())

    def list_tags(self: BackupResponse) -> Any:
        # Gap: moto reads the ARN as the path's second-to-last segment, which assumes the
        # trailing slash botocore sends (`/tags/{arn}/`); the Rust SDK sends `/tags/{arn}`,
        # so moto looked up the resource "tags" and answered no tags at all.
        from urllib.parse import unquote
        match = re.search(r"/tags/(.+?)/?$", self.path.split("?")[0])
        assert match, self.path
        tags = self.backup_backend.list_tags(resource_arn=unquote(match[1]))
        return _json_reply({"Tags": tags})

    for handler in (create_backup_selection, get_backup_selection, list_backup_selections,
                    delete_backup_selection, update_backup_plan, list_tags):
        setattr(BackupResponse, handler.__name__, handler)

    original_create = BackupBackend.create_backup_plan

    def create_backup_plan(self: BackupBackend, backup_plan: dict[str, Any], *args: Any, **kwargs: Any) -> Plan:
        # moto compares against deleted plans too; AWS only against live ones.
        name = backup_plan["BackupPlanName"]
        live = [p for p in self.plans.values() if p.deletion_date is None]
        if any(p.backup_plan["BackupPlanName"] == name for p in live):
            raise AlreadyExistsException(msg="Backup plan with the same plan document already exists")
        hidden = {k: p for k, p in self.plans.items() if p.deletion_date is not None}
        for key in hidden:
            del self.plans[key]
        try:
            return original_create(self, backup_plan, *args, **kwargs)
        finally:
            self.plans.update(hidden)

    BackupBackend.create_backup_plan = create_backup_plan


def patch_efs() -> None:
    """Gap: efs put_backup_policy answers 500 NotImplemented, and
    describe_backup_policy only knows file systems created with Backup=True
    (and crashes with 500 for an unknown file system id)."""
    from moto.efs.exceptions import BadRequest, FileSystemNotFound
    from moto.efs.models import EFSBackend, FileSystem
    from moto.efs.responses import EFSResponse

    def backup_policy(self: FileSystem) -> dict[str, str] | None:
        status = self.__dict__.get("_emulator_backup_status")
        if status is not None:
            return {"Status": status}
        return {"Status": "ENABLED"} if self._backup else None

    FileSystem.backup_policy = property(backup_policy)  # type: ignore[assignment]

    original_describe = EFSBackend.describe_backup_policy

    def describe_backup_policy(self: EFSBackend, file_system_id: str) -> dict[str, str]:
        if file_system_id not in self.file_systems_by_id:
            raise FileSystemNotFound(file_system_id)
        return original_describe(self, file_system_id)

    EFSBackend.describe_backup_policy = describe_backup_policy

    def put_backup_policy(self: EFSResponse) -> Any:
        file_system_id = self._get_param("FileSystemId")
        status = (self._get_param("BackupPolicy") or {}).get("Status")
        if status not in ("ENABLED", "DISABLED"):
            raise BadRequest(f"Invalid backup policy status {status!r}")
        if file_system_id not in self.efs_backend.file_systems_by_id:
            raise FileSystemNotFound(file_system_id)
        # AWS reports ENABLING/DISABLING for a moment; here the change is instant.
        self.efs_backend.file_systems_by_id[file_system_id].__dict__["_emulator_backup_status"] = status
        return json.dumps({"BackupPolicy": {"Status": status}}), {"Content-Type": "application/json"}

    EFSResponse.put_backup_policy = put_backup_policy


AUTOSCALING_NOTIFICATION_TYPES = [
    "autoscaling:EC2_INSTANCE_LAUNCH",
    "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
    "autoscaling:EC2_INSTANCE_TERMINATE",
    "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
    "autoscaling:TEST_NOTIFICATION",
]


def patch_autoscaling() -> None:
    """Gaps: put/describe/delete_notification_configuration(s) and
    describe_auto_scaling_notification_types answer 500 NotImplemented;
    put_scaling_policy returns `PolicyArn`, which the SDKs drop (the model
    says `PolicyARN`), so the caller never sees the policy ARN."""
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse

    def store(backend: AutoScalingBackend) -> dict[tuple[str, str], list[str]]:
        # (group name, topic ARN) -> notification types, in insertion order
        return backend.__dict__.setdefault("_emulator_notifications", {})

    def require_group(backend: AutoScalingBackend, name: str) -> None:
        if name not in backend.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")

    def put_notification_configuration(self: AutoScalingResponse) -> ActionResult:
        group = self._get_param("AutoScalingGroupName")
        topic = self._get_param("TopicARN")
        types = self._get_param("NotificationTypes") or []
        require_group(self.autoscaling_backend, group)
        unknown = [t for t in types if t not in AUTOSCALING_NOTIFICATION_TYPES]
        if unknown:
            raise ValidationError(f"Invalid notification types: {', '.join(unknown)}")
        store(self.autoscaling_backend)[(group, topic)] = list(dict.fromkeys(types))
        return EmptyResult()

    def delete_notification_configuration(self: AutoScalingResponse) -> ActionResult:
        group = self._get_param("AutoScalingGroupName")
        topic = self._get_param("TopicARN")
        require_group(self.autoscaling_backend, group)
        store(self.autoscaling_backend).pop((group, topic), None)
        return EmptyResult()

    def describe_notification_configurations(self: AutoScalingResponse) -> ActionResult:
        wanted = self._get_param("AutoScalingGroupNames") or []
        backend = self.autoscaling_backend
        configs = [
            {"AutoScalingGroupName": group, "TopicARN": topic, "NotificationType": kind}
            for (group, topic), kinds in store(backend).items()
            # Configurations die with their group (a deleted group's name may be reused).
            if group in backend.autoscaling_groups and (not wanted or group in wanted)
            for kind in kinds
        ]
        return ActionResult({"NotificationConfigurations": configs})

    def describe_auto_scaling_notification_types(self: AutoScalingResponse) -> ActionResult:
        return ActionResult({"AutoScalingNotificationTypes": AUTOSCALING_NOTIFICATION_TYPES})

    for handler in (put_notification_configuration, delete_notification_configuration,
                    describe_notification_configurations, describe_auto_scaling_notification_types):
        setattr(AutoScalingResponse, handler.__name__, handler)

    original_delete_group = AutoScalingBackend.delete_auto_scaling_group

    def delete_auto_scaling_group(self: AutoScalingBackend, group_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original_delete_group(self, group_name, *args, **kwargs)
        for key in [k for k in store(self) if k[0] == group_name]:
            del store(self)[key]
        return result

    AutoScalingBackend.delete_auto_scaling_group = delete_auto_scaling_group

    original_put_policy = AutoScalingResponse.put_scaling_policy

    def put_scaling_policy(self: AutoScalingResponse) -> ActionResult:
        result = original_put_policy(self)
        arn = result.result["PolicyArn"]  # type: ignore[index]
        return ActionResult({"PolicyARN": arn, "Alarms": []})

    AutoScalingResponse.put_scaling_policy = put_scaling_policy


def patch_launch_templates() -> None:
    """Gap: create_launch_template_version stores UserData as a plain string;
    any Auto Scaling group using that version then fails with 500
    (AssertionError: UserData is not wrapped as Base64). create_launch_template
    wraps it; do the same for new versions."""
    from moto.core.types import Base64EncodedString
    from moto.ec2.models.launch_templates import LaunchTemplate
    from moto.ec2.utils import parse_user_data

    original = LaunchTemplate.create_version

    def create_version(self: LaunchTemplate, data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if data.get("UserData") is not None and not isinstance(data["UserData"], Base64EncodedString):
            data["UserData"] = parse_user_data(data["UserData"])
        return original(self, data, *args, **kwargs)

    LaunchTemplate.create_version = create_version

    # Gap: a template's tags are copied once at creation, so CreateTags/DeleteTags on it never
    # show in DescribeLaunchTemplates; read them from the tag store as AWS does.
    LaunchTemplate.tags = property(lambda self: self.get_tags(), lambda self, value: None)


def patch_ecs() -> None:
    """Gap: register_task_definition with requiresCompatibilities EC2 demands a
    hard `memory` limit per container; AWS accepts `memoryReservation` alone
    (a soft limit), which is what the product sends. Keep moto's other checks."""
    from moto.ecs.exceptions import TaskDefinitionMemoryError
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend._validate_container_defs

    def validate(memory: Any, container_definitions: Any, requires_compatibilities: Any) -> None:
        for cd in container_definitions:
            if not memory and not any(
                k in cd for k in ("memory", "Memory", "memoryReservation", "MemoryReservation")
            ):
                raise TaskDefinitionMemoryError(cd.get("name", ""))
        # Call the original without the EC2-only hard-limit rule.
        original(memory, container_definitions, None)

    EC2ContainerServiceBackend._validate_container_defs = staticmethod(validate)

    # Gap: create_service drops deploymentConfiguration and enableECSManagedTags
    # (update_service keeps them), so a new service reads back without them.
    from moto.core.utils import camelcase_to_underscores
    from moto.ecs.responses import EC2ContainerServiceResponse

    original_create = EC2ContainerServiceResponse.create_service

    def create_service(self: Any) -> Any:
        result = original_create(self)
        cluster = self._get_param("cluster", "default")
        name = self._get_param("serviceName")
        service = self.ecs_backend._get_service(cluster, name)
        for param in ("deploymentConfiguration", "enableECSManagedTags"):
            value = self._get_param(param)
            if value is not None:
                setattr(service, camelcase_to_underscores(param), value)
        return result

    EC2ContainerServiceResponse.create_service = create_service


def patch_events() -> None:
    """Gaps: EventBridge pattern matching ignores fields inside arrays of objects,
    and TestEventPattern always answers false.

    AWS flattens an array of objects into arrays of leaf values, so
    `{"containers": {"exitCode": [{"anything-but": 0}]}}` matches an ECS task
    event whose `detail.containers` holds a container that exited with 1.
    moto flattens only nested objects, so such a field is always missing and
    the pattern never matches (TestEventPattern and rule delivery alike).
    """
    from moto.events.models import EventPattern

    def flatten(node: Any, prefix: str = "", result: dict[str, Any] | None = None) -> dict[str, Any]:
        if result is None:
            result = {}
        if not isinstance(node, dict):
            return result
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value:
                flatten(value, path, result)
            elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
                for item in value:
                    leaves = flatten(item, path, {}) if isinstance(item, dict) else {path: item}
                    for leaf, leaf_value in leaves.items():
                        values = leaf_value if isinstance(leaf_value, list) else [leaf_value]
                        existing = result.get(leaf, [])
                        if not isinstance(existing, list):
                            existing = [existing]
                        result[leaf] = existing + values
            else:
                result[path] = value
        return result

    EventPattern._flatten_dict = staticmethod(flatten)

    # Gap: TestEventPattern is a stub that answers an empty body, which SDKs
    # read as `Result: false` for every event.
    from moto.events.responses import EventsHandler

    def test_event_pattern(self: EventsHandler) -> str:
        pattern = EventPattern.load(self._get_param("EventPattern"))
        event = json.loads(self._get_param("Event"))
        return json.dumps({"Result": pattern.matches_event(event)})

    EventsHandler.test_event_pattern = test_event_pattern

    # Gap: the Resource Groups Tagging API lists event buses but not rules,
    # which AWS lists (`events:rule`) with the tags TagResource gave them.
    from moto.core.resource_tagging import TaggedResource
    from moto.events.models import EventsBackend

    original_iter = EventsBackend.iter_tagged_resources

    def iter_tagged_resources(self: EventsBackend) -> Any:
        yield from original_iter(self)
        for bus in self.event_buses.values():
            for rule in bus.rules.values():
                yield TaggedResource(
                    arn=rule.arn,
                    tags=self.tagger.get_tag_dict_for_resource(rule.arn),
                    resource_type="events:rule",
                )

    EventsBackend.iter_tagged_resources = iter_tagged_resources


def patch_instances() -> None:
    """Gap: an EBS block device mapping without a size or snapshot fails every launch.

    AWS takes the size from the AMI's snapshot when a mapping only sets the
    volume type or encryption (as the reconciler's launch templates do for
    the root device); moto raises MissingParameter "size/snapshot", so an Auto
    Scaling group never gets its instance. The patch uses moto's default root
    volume size (8 GiB) then.
    """
    from moto.ec2.models.instances import Instance

    original = Instance.add_block_device

    def add_block_device(self: Instance, size: Any, device_path: str, snapshot_id: Any,
                         *args: Any, **kwargs: Any) -> None:
        if size is None and snapshot_id is None:
            size = 8
        original(self, size, device_path, snapshot_id, *args, **kwargs)

    Instance.add_block_device = add_block_device


def patch_idempotency() -> None:
    """Gaps: two idempotency keys AWS honours and moto ignores, so a create
    retried after a lost answer makes a second object where AWS would not.

    - CreateHostedZone: a caller reference is accepted once per account, ever;
      a second use answers HostedZoneAlreadyExists.
    - CreateRouteTable: a repeated ClientToken returns the route table the
      first call made instead of a new one."""
    from moto.ec2.responses.route_tables import RouteTables
    from moto.route53.exceptions import Route53ClientError
    from moto.route53.models import Route53Backend

    class HostedZoneAlreadyExists(Route53ClientError):
        def __init__(self, reference: str) -> None:
            super().__init__(
                "HostedZoneAlreadyExists",
                f"A hosted zone has already been created with the specified caller reference {reference}.",
            )

    original_zone = Route53Backend.create_hosted_zone

    def create_hosted_zone(self: Route53Backend, name: str, private_zone: bool,
                           caller_reference: Any = None, *args: Any, **kwargs: Any) -> Any:
        used = self.__dict__.setdefault("_used_caller_references", set())
        if caller_reference is not None and caller_reference in used:
            raise HostedZoneAlreadyExists(caller_reference)
        zone = original_zone(self, name, private_zone, caller_reference, *args, **kwargs)
        if caller_reference is not None:
            used.add(caller_reference)
        return zone

    Route53Backend.create_hosted_zone = create_hosted_zone

    original_route_table = RouteTables.create_route_table

    def create_route_table(self: RouteTables) -> Any:
        token = self._get_param("ClientToken")
        tokens = self.ec2_backend.__dict__.setdefault("_route_table_tokens", {})
        if token and token in tokens:
            try:
                table = self.ec2_backend.get_route_table(tokens[token])
                return ActionResult({"RouteTable": table})
            except Exception:
                del tokens[token]
        result = original_route_table(self)
        if token:
            tokens[token] = result.result["RouteTable"].id  # type: ignore[index]
        return result

    RouteTables.create_route_table = create_route_table


def patch_query_logging() -> None:
    """Gap: CreateQueryLoggingConfig looks for the log group among the first
    50 groups of us-east-1 only (describe_log_groups pages by 50), so in an
    account with more groups it answers NoSuchCloudWatchLogsLogGroup for a
    group that exists. Look the group up by name instead."""
    import threading

    from moto.logs import logs_backends
    from moto.route53.models import LOGS_GROUP_REGION, Route53Backend

    original = Route53Backend.create_query_logging_config
    lock = threading.Lock()

    def create_query_logging_config(self: Route53Backend, hosted_zone_id: str, log_group_arn: str) -> Any:
        logs = logs_backends[self.account_id][LOGS_GROUP_REGION]
        name = (log_group_arn or "").split(":log-group:", 1)[-1]
        if name.endswith(":*"):
            name = name[:-2]
        group = logs.groups.get(name)
        if group is None:
            return original(self, hosted_zone_id, log_group_arn)
        with lock:
            logs.describe_log_groups = lambda *args, **kwargs: ([group], None)
            try:
                return original(self, hosted_zone_id, log_group_arn)
            finally:
                del logs.describe_log_groups

    Route53Backend.create_query_logging_config = create_query_logging_config


def patch_tagging_pages() -> None:
    """Gap: GetResources limits every page to 100 tags even when the caller
    gives only ResourcesPerPage, so pages of resources with five tags hold
    twenty. AWS limits tags per page only when TagsPerPage is given (its
    documentation recommends ResourcesPerPage instead)."""
    import threading

    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
    from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse

    original_response = ResourceGroupsTaggingAPIResponse.get_resources
    original_backend = ResourceGroupsTaggingAPIBackend.get_resources
    request = threading.local()

    def backend_get_resources(self: ResourceGroupsTaggingAPIBackend, *args: Any, **kwargs: Any) -> Any:
        if getattr(request, "tags_unlimited", False):
            kwargs["tags_per_page"] = 1 << 31
        return original_backend(self, *args, **kwargs)

    def get_resources(self: ResourceGroupsTaggingAPIResponse) -> Any:
        request.tags_unlimited = self._get_param("TagsPerPage") is None
        try:
            return original_response(self)
        finally:
            request.tags_unlimited = False

    ResourceGroupsTaggingAPIBackend.get_resources = backend_get_resources
    ResourceGroupsTaggingAPIResponse.get_resources = get_resources


def patch_log_group_identifiers() -> None:
    """Gap: DescribeLogGroups ignores logGroupIdentifiers (up to 50 names or
    ARNs, not to be combined with a prefix) and answers every group."""
    import json

    from moto.logs.exceptions import InvalidParameterException
    from moto.logs.responses import LogsResponse

    original = LogsResponse.describe_log_groups

    def describe_log_groups(self: LogsResponse) -> Any:
        identifiers = self._get_param("logGroupIdentifiers")
        if not identifiers:
            return original(self)
        if len(identifiers) > 50 or self._get_param("logGroupNamePrefix"):
            raise InvalidParameterException(
                msg="logGroupIdentifiers takes at most 50 entries and no logGroupNamePrefix")
        wanted = set(identifiers)
        groups = [
            group for name, group in sorted(self.logs_backend.groups.items())
            if name in wanted or group.arn in wanted or group.arn.removesuffix(":*") in wanted
        ]
        return json.dumps({"logGroups": [g.to_describe_dict() for g in groups]})

    LogsResponse.describe_log_groups = describe_log_groups


def patch_tagging_services() -> None:
    """Gap: the Resource Groups Tagging API lists backup vaults but not backup
    plans (AWS lists `backup:backup-plan`), and no Route 53 hosted zones (AWS
    lists `route53:hostedzone`, in us-east-1, Route 53 being global)."""
    from moto.backup.models import BackupBackend
    from moto.core.resource_tagging import TaggedResource
    from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
    from moto.route53.models import route53_backends

    original_backup = BackupBackend.iter_tagged_resources

    def backup_resources(self: BackupBackend) -> Any:
        yield from original_backup(self)
        for plan in self.plans.values():
            if getattr(plan, "deletion_date", None) is None:
                yield TaggedResource(
                    arn=plan.backup_plan_arn,
                    tags=self.tagger.get_tag_dict_for_resource(plan.backup_plan_arn),
                    resource_type="backup:backup-plan",
                )

    BackupBackend.iter_tagged_resources = backup_resources

    original_generator = ResourceGroupsTaggingAPIBackend._get_resources_generator

    def resources(self: ResourceGroupsTaggingAPIBackend, tag_filters: Any = None,
                  resource_type_filters: Any = None, resource_arn_list: Any = None) -> Any:
        yield from original_generator(self, tag_filters, resource_type_filters, resource_arn_list)
        if self.region_name != "us-east-1" or self.account_id not in route53_backends:
            return
        from moto.core.resource_tagging import make_tag_matcher, match_resource_type
        matcher = make_tag_matcher(tag_filters)
        backend = route53_backends[self.account_id]["aws"]
        for zone in list(backend.zones.values()):
            bare = zone.id.rsplit("/", 1)[-1]
            tags = dict(backend.list_tags_for_resource(bare) or {})
            arn = f"arn:aws:route53:::hostedzone/{bare}"
            if not tags or not match_resource_type("route53:hostedzone", resource_type_filters):
                continue
            if matcher(tags) and (not resource_arn_list or arn in resource_arn_list):
                yield TaggedResource(arn=arn, tags=tags, resource_type="route53:hostedzone")

    ResourceGroupsTaggingAPIBackend._get_resources_generator = resources


def patch_task_definition_pages() -> None:
    """Gap: list_task_definitions answers every revision in one page and ignores
    maxResults and nextToken; AWS pages at most 100 (100 by default)."""
    from moto.core.responses import ActionResult
    from moto.ecs.responses import EC2ContainerServiceResponse

    def list_task_definitions(self: EC2ContainerServiceResponse) -> Any:
        arns = self.ecs_backend.list_task_definitions(
            self._get_param("familyPrefix"), self._get_param("status", "ACTIVE"))
        if self._get_param("sort") == "DESC":
            arns = list(reversed(arns))
        size = min(int(self._get_param("maxResults") or 100), 100)
        start = int(self._get_param("nextToken") or 0)
        result: dict[str, Any] = {"taskDefinitionArns": arns[start:start + size]}
        if start + size < len(arns):
            result["nextToken"] = str(start + size)
        return ActionResult(result)

    EC2ContainerServiceResponse.list_task_definitions = list_task_definitions


def patch_atomic_parameter_create() -> None:
    """Gap: put_parameter without Overwrite checks that the name is free and then
    stores the parameter, with nothing between the two, so two concurrent creates of
    one name can both succeed. AWS makes the create atomic (the second answers
    ParameterAlreadyExists), and the reconciler's lock relies on it: the backend's
    put_parameter runs one call at a time."""
    import threading

    from moto.ssm.models import SimpleSystemManagerBackend

    original = SimpleSystemManagerBackend.put_parameter
    serialised = threading.Lock()

    def put_parameter(self: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Any:
        with serialised:
            return original(self, *args, **kwargs)

    SimpleSystemManagerBackend.put_parameter = put_parameter


def patch_subscription_filters() -> None:
    """Gap: PutSubscriptionFilter on a log group that has two filters fails
    with LimitExceededException even when it replaces one of them by name,
    which AWS accepts (the limit counts filters, and a same-named filter is
    updated in place). Update first, count only new filters."""
    from moto.logs.models import LogGroup

    original = LogGroup.put_subscription_filter

    def put_subscription_filter(self: LogGroup, filter_name: str, filter_pattern: str,
                                destination_arn: str, role_arn: str) -> None:
        if filter_name in self.subscription_filters:
            self.subscription_filters[filter_name].update(filter_pattern, destination_arn, role_arn)
            return
        original(self, filter_name, filter_pattern, destination_arn, role_arn)

    LogGroup.put_subscription_filter = put_subscription_filter


PATCHES = [patch_backup, patch_efs, patch_autoscaling, patch_launch_templates, patch_ecs, patch_events,
           patch_instances, patch_idempotency, patch_query_logging, patch_tagging_pages,
           patch_log_group_identifiers, patch_tagging_services, patch_task_definition_pages,
           patch_atomic_parameter_create, patch_subscription_filters]


# ---------------------------------------------------------------------------
# Part 3: strictness -- refuse what AWS refuses
# ---------------------------------------------------------------------------
# moto accepts many requests AWS rejects: names too long, characters a
# pattern forbids, a 51st tag, a subscription filter whose Lambda may not be
# invoked by CloudWatch Logs. A WSGI middleware between the CBOR shim and moto
# decodes every request of the services the product calls into its botocore
# input shape and refuses it, in the service's own error shape, when AWS
# would: first against the API model (required members, lengths, patterns,
# enums, ranges, list and map sizes, at any depth), then against the
# documented quotas and resource-policy checks the models do not carry
# (STRICT_RULES). docs/emulator.md, section "Strictness", lists each rule
# with its AWS source.

# The services the product calls (the aws-sdk-* dependencies of crates/aws,
# crates/lambdas and crates/ops), by botocore name.
STRICT_SERVICES = (
    "autoscaling", "backup", "cloudwatch", "ec2", "ecs", "efs", "events", "iam", "lambda",
    "logs", "resourcegroupstaggingapi", "route53", "sns", "ssm", "sts",
)

# The error code each service answers a request that breaks its model with
# ("1 validation error detected: Value ... at ... failed to satisfy
# constraint: ..."). Query services answer ValidationError (CloudWatch too:
# it is query-compatible), EC2 InvalidParameterValue, Route 53 InvalidInput,
# CloudWatch Logs and the tagging API InvalidParameterException, the other
# JSON services ValidationException.
VALIDATION_ERROR_CODES = {
    "autoscaling": "ValidationError", "cloudwatch": "ValidationError", "iam": "ValidationError",
    "sns": "ValidationError", "sts": "ValidationError", "ec2": "InvalidParameterValue",
    "route53": "InvalidInput", "logs": "InvalidParameterException",
    "resourcegroupstaggingapi": "InvalidParameterException",
}
DEFAULT_VALIDATION_ERROR = "ValidationException"

DEFAULT_ACCOUNT = "123456789012"


class PatternError(ValueError):
    """A model pattern this translator cannot turn into an equivalent Python regex."""


class UnicodeCategories:
    """Code point ranges of each Unicode general category, for Java's ``\\p{..}``.

    Python's ``re`` has no property classes, so they become explicit ranges.
    Scanning all code points takes about half a second; the result is cached
    in the venv, keyed by the Unicode version."""

    def __init__(self) -> None:
        self._ranges: dict[str, list[tuple[int, int]]] | None = None

    def ranges(self, category: str) -> list[tuple[int, int]]:
        if self._ranges is None:
            self._ranges = self._load()
        found = [r for name, rs in self._ranges.items() if name.startswith(category) for r in rs]
        if not found:
            raise PatternError(f"unknown Unicode category {category!r}")
        return sorted(found)

    @staticmethod
    def _load() -> dict[str, list[tuple[int, int]]]:
        import unicodedata
        cache = os.path.join(sys.prefix, f".unicode-categories-{unicodedata.unidata_version}.json")
        try:
            with open(cache, encoding="utf-8") as file:
                return {k: [tuple(r) for r in v] for k, v in json.load(file).items()}
        except (OSError, ValueError):
            pass
        ranges: dict[str, list[tuple[int, int]]] = {}
        category = unicodedata.category
        previous, start = category("\0"), 0
        for code in range(1, 0x110000):
            current = category(chr(code))
            if current != previous:
                ranges.setdefault(previous, []).append((start, code - 1))
                previous, start = current, code
        ranges.setdefault(previous, []).append((start, 0x10FFFF))
        try:
            temporary = f"{cache}.{os.getpid()}"
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(ranges, file)
            os.replace(temporary, cache)
        except OSError:
            pass
        return ranges


# Java's POSIX classes (ASCII-only, as Java's defaults are).
_JAVA_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": r"\x00-\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": r"\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e",
    "Graph": r"\x21-\x7e", "Print": r"\x20-\x7e", "Blank": r" \t", "Cntrl": r"\x00-\x1f\x7f",
    "XDigit": "0-9a-fA-F", "Space": r" \t\n\x0b\f\r",
}
# Java's `.` stops at every line terminator, Python's only at \n; Java's `$`
# also matches before a final line terminator of any kind.
_JAVA_TERMINATORS = "\\n\\r\\u0085\\u2028\\u2029"
_JAVA_DOT = f"[^{_JAVA_TERMINATORS}]"
_JAVA_END = f"(?=(?:\\r\\n|[{_JAVA_TERMINATORS}])?\\Z)"


def _class_char(code: int) -> str:
    """One code point as it may stand inside a Python character class."""
    char = chr(code)
    if code < 0x20 or char in "\\]^-[&~|":
        return f"\\U{code:08x}"
    return char


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    """Code point ranges as the inside of a Python character class, adjacent
    and overlapping ranges merged, characters literal (re parses them far
    faster than escapes)."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in merged)


class JavaPatternTranslator:
    """Translates the models' `pattern` traits (Java regular expressions, as
    AWS's services evaluate them) into Python ``re`` patterns with the same
    meaning, for ``re.fullmatch`` (AWS matches the whole value: IAM refuses
    the role name "my role" against ``[\\w+=,.@-]+``).

    Compiled with ``re.ASCII`` so that ``\\w \\d \\s \\b`` and ``(?i)`` keep
    Java's ASCII-only defaults. ``\\p{..}`` becomes explicit code point ranges,
    a UTF-16 surrogate pair written as two ``\\u`` escapes becomes the code
    point it encodes, ``.`` and ``$`` keep Java's line terminators. Anything
    else Java-specific (nested classes, ``&&``, ``\\Q``, unknown escapes)
    raises PatternError, so a model the translator does not understand stops
    the launcher instead of being skipped."""

    def __init__(self, categories: UnicodeCategories) -> None:
        self.categories = categories

    def compile(self, pattern: str) -> re.Pattern[str]:
        import warnings
        translated = self.translate(pattern)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return re.compile(translated, re.ASCII)
        except (re.error, FutureWarning) as exc:
            raise PatternError(f"{pattern!r}: {exc}") from exc

    def translate(self, pattern: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\":
                text, i, _ = self._escape(pattern, i, in_class=False)
                out.append(text)
            elif c == "[":
                text, i = self._char_class(pattern, i)
                out.append(text)
            elif c == ".":
                out.append(_JAVA_DOT)
                i += 1
            elif c == "$":
                out.append(_JAVA_END)
                i += 1
            elif c == "(" and pattern.startswith("(?", i):
                text, i = self._group(pattern, i)
                out.append(text)
            else:
                out.append(c)
                i += 1
        return "".join(out)

    @staticmethod
    def _group(pattern: str, i: int) -> tuple[str, int]:
        for opener in ("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"):
            if pattern.startswith(opener, i):
                return opener, i + len(opener)
        named = re.match(r"\(\?<([A-Za-z][A-Za-z0-9]*)>", pattern[i:])
        if named:
            return f"(?P<{named[1]}>", i + named.end()
        flags = re.match(r"\(\?([imsx]+)([):])", pattern[i:])
        if flags:
            return flags[0], i + flags.end()
        raise PatternError(f"{pattern!r}: unsupported group at {i}")

    def _char_class(self, pattern: str, i: int) -> tuple[str, int]:
        out = ["["]
        i += 1
        if pattern.startswith("^", i):
            out.append("^")
            i += 1
        first, after_set = True, False
        # Unicode categories of the class, merged into as few ranges as possible
        # (re's parser is slow on long classes and the models repeat them).
        categories: list[tuple[int, int]] = []
        while True:
            if i >= len(pattern):
                raise PatternError(f"{pattern!r}: unterminated character class")
            c = pattern[i]
            if c == "]" and not first:
                out.append(_ranges_text(categories) + "]")
                return "".join(out), i + 1
            if c == "[" or pattern.startswith("&&", i) or (c == "]" and first):
                raise PatternError(f"{pattern!r}: nested class, intersection or leading ] at {i}")
            category = re.match(r"\\p\{(?:Is)?([LMNPSZC][a-z]?)\}|\\p([LMNPSZC])", pattern[i:])
            if category:
                categories.extend(self.categories.ranges(category[1] or category[2]))
                i += category.end()
                after_set, first = True, False
                continue
            if c == "\\":
                text, i, kind = self._escape(pattern, i, in_class=True)
                out.append(text)
                after_set = kind == "set"
            elif c == "-":
                at_edge = first or after_set or pattern.startswith("]", i + 1)
                out.append("\\-" if at_edge else "-")
                i += 1
                after_set = False
            else:
                # Python warns about (and may one day reinterpret) these doubled.
                out.append("\\" + c if c in "&~|" else c)
                i += 1
                after_set = False
            first = False

    def _property(self, name: str, negated: bool, in_class: bool) -> str:
        if name in _JAVA_POSIX:
            body = _JAVA_POSIX[name]
        elif re.fullmatch(r"(Is)?[LMNPSZC][a-z]?", name):
            category = name[2:] if name.startswith("Is") else name
            body = _ranges_text(self.categories.ranges(category))
        else:
            raise PatternError(f"unsupported property class \\p{{{name}}}")
        if in_class:
            if negated:
                raise PatternError(f"negated property \\P{{{name}}} inside a class")
            return body
        return f"[{'^' if negated else ''}{body}]"

    def _escape(self, pattern: str, i: int, in_class: bool) -> tuple[str, int, str]:
        """One escape at pattern[i] == '\\' -> (Python text, next index, "set" | "char")."""
        if i + 1 >= len(pattern):
            raise PatternError(f"{pattern!r}: trailing backslash")
        c = pattern[i + 1]
        if c in "pP":
            if pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 2)
                if end < 0:
                    raise PatternError(f"{pattern!r}: unterminated \\p{{")
                name, nxt = pattern[i + 3:end], end + 1
            else:
                name, nxt = pattern[i + 2:i + 3], i + 3
            return self._property(name, c == "P", in_class), nxt, "set"
        if c in "dDwWsS":
            return "\\" + c, i + 2, "set"
        if c == "u":
            return self._unicode_escape(pattern, i)
        if c == "x":
            if pattern.startswith("{", i + 2):
                end = pattern.find("}", i + 2)
                return f"\\U{int(pattern[i + 3:end], 16):08x}", end + 1, "char"
            return pattern[i:i + 4], i + 4, "char"
        if c in "tnrf":
            return "\\" + c, i + 2, "char"
        if c == "a":
            return "\\x07", i + 2, "char"
        if c == "e":
            return "\\x1b", i + 2, "char"
        if c == "0":
            digits = re.match(r"[0-7]{1,3}", pattern[i + 2:])
            if not digits:
                raise PatternError(f"{pattern!r}: bad octal escape")
            return f"\\x{int(digits[0], 8):02x}", i + 2 + digits.end(), "char"
        if not in_class:
            if c in "bB":
                return "\\" + c, i + 2, "char"
            if c == "A":
                return "\\A", i + 2, "char"
            if c == "z":
                return "\\Z", i + 2, "char"
            if c == "Z":
                return _JAVA_END, i + 2, "char"
            if c in "123456789":
                digits = re.match(r"[0-9]+", pattern[i + 1:])
                return "\\" + digits[0], i + 1 + digits.end(), "char"
            if c == "k" and pattern.startswith("<", i + 2):
                end = pattern.find(">", i + 3)
                return f"(?P={pattern[i + 3:end]})", end + 1, "char"
        if not c.isalnum():
            return "\\" + c, i + 2, "char"
        raise PatternError(f"{pattern!r}: unsupported escape \\{c}")

    @staticmethod
    def _unicode_escape(pattern: str, i: int) -> tuple[str, int, str]:
        unit = pattern[i + 2:i + 6]
        if not re.fullmatch(r"[0-9a-fA-F]{4}", unit):
            raise PatternError(f"{pattern!r}: bad \\u escape")
        code = int(unit, 16)
        low = re.match(r"\\u([dD][c-fC-F][0-9a-fA-F]{2})", pattern[i + 6:])
        if 0xD800 <= code <= 0xDBFF and low:
            # Java reads a surrogate pair as the supplementary code point it encodes.
            code = 0x10000 + ((code - 0xD800) << 10) + (int(low[1], 16) - 0xDC00)
            return f"\\U{code:08x}", i + 12, "char"
        return f"\\U{code:08x}", i + 6, "char"


class Refusal(Exception):
    """A request AWS would refuse: answered with `code` and `message`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class ServiceSchema:
    """One botocore service model, indexed for decoding and validating requests."""

    def __init__(self, name: str, raw: dict[str, Any], compile_pattern: Callable[[str], re.Pattern[str]]) -> None:
        self.name = name
        self.metadata = raw["metadata"]
        self.shapes: dict[str, dict[str, Any]] = raw["shapes"]
        self.operations: dict[str, dict[str, Any]] = raw["operations"]
        self.protocol = self.metadata.get("protocol")
        self.validation_code = VALIDATION_ERROR_CODES.get(name, DEFAULT_VALIDATION_ERROR)
        self.patterns = {
            shape_name: compile_pattern(shape["pattern"])
            for shape_name, shape in self.shapes.items() if "pattern" in shape
        }
        self.enums = {
            shape_name: frozenset(shape["enum"])
            for shape_name, shape in self.shapes.items() if "enum" in shape
        }
        self.routes = self._routes() if self.protocol in ("rest-json", "rest-xml") else []

    # --- operations -------------------------------------------------------

    def _routes(self) -> list[tuple[str, re.Pattern[str], list[str], list[str], str]]:
        routes = []
        for op_name, op in self.operations.items():
            http = op.get("http", {})
            path, _, query = http.get("requestUri", "/").partition("?")
            regex, labels = "", []
            for piece in re.split(r"(\{[^}]+\})", path):
                if piece.startswith("{"):
                    labels.append(piece[1:-1].rstrip("+"))
                    regex += "(.+)" if piece.endswith("+}") else "([^/]+)"
                else:
                    regex += re.escape(piece)
            regex = regex.rstrip("/") + "/?"
            needed = [q.split("=")[0] for q in query.split("&") if q]
            literal = len(re.sub(r"\{[^}]+\}", "", path)) + len(query)
            routes.append((literal, http.get("method", "POST"), re.compile(regex), labels, needed, op_name))
        routes.sort(key=lambda r: -r[0])
        return [r[1:] for r in routes]

    def match_rest(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[str, dict[str, str]] | None:
        from urllib.parse import unquote
        for route_method, regex, labels, needed, op_name in self.routes:
            if route_method != method or any(q not in query for q in needed):
                continue
            found = regex.fullmatch(path)
            if found:
                return op_name, {name: unquote(value) for name, value in zip(labels, found.groups())}
        return None

    def input_shape(self, operation: str) -> dict[str, Any] | None:
        name = self.operations[operation].get("input", {}).get("shape")
        return self.shapes[name] if name else None

    # --- validation ---------------------------------------------------------

    def validate(self, shape_name: str, value: Any, path: str, errors: list[str]) -> None:
        """Appends one Coral-style message per constraint `value` breaks."""
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            self._validate_structure(shape, value, path, errors)
        elif kind == "list":
            if not isinstance(value, list):
                return
            self._check_size(shape, len(value), value, path, errors)
            for index, item in enumerate(value, 1):
                if item is not None:
                    self.validate(shape["member"]["shape"], item, f"{path}.{index}.member", errors)
        elif kind == "map":
            if not isinstance(value, dict):
                return
            self._check_size(shape, len(value), value, path, errors)
            for key, item in value.items():
                inner: list[str] = []
                self.validate(shape["key"]["shape"], key, path, inner)
                errors.extend(m.replace("failed to satisfy constraint: ",
                                        "failed to satisfy constraint: Map keys must satisfy constraint: ")
                              for m in inner)
                if item is not None:
                    self.validate(shape["value"]["shape"], item, f"{path}.{key}", errors)
        elif kind == "string" and isinstance(value, str):
            self._validate_string(shape_name, shape, value, path, errors)
        elif kind == "blob" and isinstance(value, (bytes, bytearray)):
            self._check_size(shape, len(value), "(blob)", path, errors)
        elif kind in ("integer", "long", "double", "float") and isinstance(value, (int, float)):
            self._check_range(shape, value, path, errors)

    def _validate_structure(self, shape: dict[str, Any], value: Any, path: str, errors: list[str]) -> None:
        if not isinstance(value, dict):
            return
        prefix = f"{path}." if path else ""
        for required in shape.get("required", []):
            if value.get(required) is None:
                errors.append(f"Value null at '{prefix}{_lower_first(required)}' failed to satisfy "
                              "constraint: Member must not be null")
        members = shape.get("members", {})
        for name, item in value.items():
            member = members.get(name)
            if member is not None and item is not None:
                self.validate(member["shape"], item, prefix + _lower_first(name), errors)

    def _validate_string(self, shape_name: str, shape: dict[str, Any], value: str, path: str,
                         errors: list[str]) -> None:
        # Smithy's length trait counts Unicode scalar values (Python's len), as
        # botocore's own client-side check does.
        self._check_size(shape, len(value), value, path, errors)
        pattern = self.patterns.get(shape_name)
        if pattern is not None and pattern.fullmatch(value) is None:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                          f"satisfy regular expression pattern: {shape['pattern']}")
        allowed = self.enums.get(shape_name)
        if allowed is not None and value not in allowed:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                          f"satisfy enum value set: [{', '.join(shape['enum'])}]")

    @staticmethod
    def _check_size(shape: dict[str, Any], size: int, value: Any, path: str, errors: list[str]) -> None:
        low, high = shape.get("min"), shape.get("max")
        if low is not None and size < low:
            errors.append(f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member "
                          f"must have length greater than or equal to {low}")
        if high is not None and size > high:
            errors.append(f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member "
                          f"must have length less than or equal to {high}")

    @staticmethod
    def _check_range(shape: dict[str, Any], value: float, path: str, errors: list[str]) -> None:
        low, high = shape.get("min"), shape.get("max")
        if low is not None and value < low:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                          f"have value greater than or equal to {low}")
        if high is not None and value > high:
            errors.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                          f"have value less than or equal to {high}")


class _FormNode:
    """A query/EC2 form body as a tree of dotted names (`Tags.member.1.Key`)."""

    __slots__ = ("value", "children")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _FormNode] = {}

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> "_FormNode":
        root = cls()
        for key, value in pairs:
            node = root
            for part in key.split("."):
                node = node.children.setdefault(part, cls())
            node.value = value
        return root

    def numbered(self) -> list["_FormNode"]:
        keys = sorted((int(k), v) for k, v in self.children.items() if k.isdigit())
        return [node for _, node in keys]


class RequestDecoder:
    """Turns one HTTP request into (operation, params), params keyed by the
    model's member names, whatever the protocol put on the wire."""

    def __init__(self, schema: ServiceSchema) -> None:
        self.schema = schema
        self.shapes = schema.shapes

    def decode(self, environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, Any]] | None:
        target = environ.get("HTTP_X_AMZ_TARGET")
        content_type = environ.get("CONTENT_TYPE", "")
        if target:
            operation = target.rsplit(".", 1)[-1]
            if operation not in self.schema.operations:
                return None
            shape = self.schema.operations[operation].get("input", {}).get("shape")
            payload = json.loads(body) if body.strip() else {}
            return operation, (self._from_json(shape, payload) if shape else {})
        if content_type.startswith("application/x-www-form-urlencoded") and self.schema.protocol in ("query", "ec2"):
            return self._decode_form(body)
        if self.schema.protocol in ("rest-json", "rest-xml"):
            return self._decode_rest(environ, body)
        return None

    # --- query and EC2 ----------------------------------------------------

    def _decode_form(self, body: bytes) -> tuple[str, dict[str, Any]] | None:
        from urllib.parse import parse_qsl
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        operation = dict(pairs).get("Action")
        if operation not in self.schema.operations:
            return None
        shape = self.schema.operations[operation].get("input", {}).get("shape")
        tree = _FormNode.parse(pairs)
        return operation, (self._from_form(shape, tree) if shape else {})

    def _form_name(self, name: str, member: dict[str, Any]) -> str:
        if self.schema.protocol == "ec2":
            if "queryName" in member:
                return member["queryName"]
            location = member.get("locationName")
            return location[:1].upper() + location[1:] if location else name
        target = self.shapes[member["shape"]]
        if target["type"] == "list" and (target.get("flattened") or member.get("flattened")):
            return target["member"].get("locationName", member.get("locationName", name))
        return member.get("locationName", name)

    def _from_form(self, shape_name: str, node: _FormNode) -> Any:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            out = {}
            for name, member in shape.get("members", {}).items():
                child = node.children.get(self._form_name(name, member))
                if child is not None:
                    out[name] = self._from_form(member["shape"], child)
            return out
        if kind == "list":
            member = shape["member"]
            items = node
            if self.schema.protocol != "ec2" and not shape.get("flattened"):
                items = node.children.get(member.get("locationName", "member"), _FormNode())
            return [self._from_form(member["shape"], item) for item in items.numbered()]
        if kind == "map":
            entries = node if shape.get("flattened") else node.children.get("entry", _FormNode())
            key_name = shape["key"].get("locationName", "key")
            value_name = shape["value"].get("locationName", "value")
            out = {}
            for entry in entries.numbered():
                key = entry.children.get(key_name)
                value = entry.children.get(value_name)
                if key is not None and key.value is not None:
                    out[key.value] = self._from_form(shape["value"]["shape"], value) if value else None
            return out
        return self._scalar(kind, node.value)

    @staticmethod
    def _scalar(kind: str, text: str | None) -> Any:
        if text is None:
            return None
        try:
            if kind in ("integer", "long"):
                return int(text)
            if kind in ("double", "float"):
                return float(text)
        except ValueError:
            return text
        if kind == "boolean":
            return text.lower() == "true"
        if kind == "blob":
            try:
                return base64.b64decode(text)
            except ValueError:
                return text
        return text

    # --- JSON ---------------------------------------------------------------

    def _from_json(self, shape_name: str, value: Any) -> Any:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure" and isinstance(value, dict):
            by_wire = {m.get("locationName", n): (n, m) for n, m in shape.get("members", {}).items()}
            out = {}
            for key, item in value.items():
                if key in by_wire:
                    name, member = by_wire[key]
                    out[name] = self._from_json(member["shape"], item)
            return out
        if kind == "list" and isinstance(value, list):
            return [self._from_json(shape["member"]["shape"], item) for item in value]
        if kind == "map" and isinstance(value, dict):
            return {k: self._from_json(shape["value"]["shape"], v) for k, v in value.items()}
        if kind == "blob" and isinstance(value, str):
            try:
                return base64.b64decode(value)
            except ValueError:
                return value
        return value

    # --- REST (JSON and XML bodies) ----------------------------------------

    def _decode_rest(self, environ: dict[str, Any], body: bytes) -> tuple[str, dict[str, Any]] | None:
        from urllib.parse import parse_qs
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        path = raw_uri.split("?", 1)[0]
        if "://" in path:  # an absolute-form request target
            path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        matched = self.schema.match_rest(environ.get("REQUEST_METHOD", "GET"), path, query)
        if matched is None:
            return None
        operation, labels = matched
        shape_name = self.schema.operations[operation].get("input", {}).get("shape")
        if not shape_name:
            return operation, {}
        shape = self.shapes[shape_name]
        params = self._rest_body(shape, body)
        for name, member in shape.get("members", {}).items():
            location = member.get("location")
            wire = member.get("locationName", name)
            kind = self.shapes[member["shape"]]["type"]
            if location == "uri" and wire in labels:
                params[name] = self._scalar(kind, labels[wire])
            elif location == "querystring":
                self._rest_query(params, name, member, kind, query)
            elif location == "header":
                header = environ.get("HTTP_" + wire.upper().replace("-", "_"))
                if header is not None:
                    params[name] = ([h.strip() for h in header.split(",")] if kind == "list"
                                    else self._scalar(kind, header))
        return operation, params

    def _rest_query(self, params: dict[str, Any], name: str, member: dict[str, Any], kind: str,
                    query: dict[str, list[str]]) -> None:
        if kind == "map":
            params[name] = {k: v[0] for k, v in query.items()}
            return
        values = query.get(member.get("locationName", name))
        if values is None:
            return
        if kind == "list":
            item_kind = self.shapes[self.shapes[member["shape"]]["member"]["shape"]]["type"]
            params[name] = [self._scalar(item_kind, v) for v in values]
        else:
            params[name] = self._scalar(kind, values[0])

    def _rest_body(self, shape: dict[str, Any], body: bytes) -> dict[str, Any]:
        members = shape.get("members", {})
        payload = shape.get("payload")
        if payload:
            member = members[payload]
            target = self.shapes[member["shape"]]
            if target["type"] != "structure":
                return {payload: body} if body else {}
            return {payload: self._parse_body(member["shape"], body)} if body.strip() else {}
        if not body.strip():
            return {}
        parsed = self._parse_body(None, body, shape)
        return {k: v for k, v in parsed.items() if "location" not in members.get(k, {})}

    def _parse_body(self, shape_name: str | None, body: bytes, shape: dict[str, Any] | None = None) -> Any:
        if self.schema.protocol == "rest-json":
            value = json.loads(body)
            if shape_name is not None:
                return self._from_json(shape_name, value)
            return self._from_json_shape(shape, value)
        import xml.etree.ElementTree as ElementTree
        root = ElementTree.fromstring(body)
        return self._from_xml(shape if shape is not None else self.shapes[shape_name], root)

    def _from_json_shape(self, shape: dict[str, Any], value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {}
        out = {}
        for name, member in shape.get("members", {}).items():
            wire = member.get("locationName", name) if "location" not in member else None
            if wire is not None and wire in value:
                out[name] = self._from_json(member["shape"], value[wire])
        return out

    def _from_xml(self, shape: dict[str, Any], element: Any) -> Any:
        kind = shape["type"]
        if kind == "structure":
            out = {}
            for name, member in shape.get("members", {}).items():
                if "location" in member:
                    continue
                wire = member.get("locationName", name)
                target = self.shapes[member["shape"]]
                children = [c for c in element if c.tag.rsplit("}", 1)[-1] == wire]
                if target["type"] == "list" and target.get("flattened"):
                    out[name] = [self._from_xml(self.shapes[target["member"]["shape"]], c) for c in children]
                elif children:
                    out[name] = self._from_xml(target, children[0])
            return out
        if kind == "list":
            item = shape["member"].get("locationName", "member")
            target = self.shapes[shape["member"]["shape"]]
            return [self._from_xml(target, c) for c in element if c.tag.rsplit("}", 1)[-1] == item]
        if kind == "map":
            out = {}
            for entry in element:
                parts = {c.tag.rsplit("}", 1)[-1]: c for c in entry}
                key = parts.get(shape["key"].get("locationName", "key"))
                value = parts.get(shape["value"].get("locationName", "value"))
                if key is not None:
                    out[key.text or ""] = self._from_xml(self.shapes[shape["value"]["shape"]], value) \
                        if value is not None else None
            return out
        return self._scalar(kind, element.text or "")


class StrictModels:
    """The API models of STRICT_SERVICES, loaded and indexed once at start-up.

    Every `pattern` of every model is translated and compiled here, so a
    pattern the translator cannot handle stops the launcher with its text."""

    def __init__(self, services: Iterable[str] = STRICT_SERVICES) -> None:
        loader = _BOTOCORE.get_component("data_loader")
        translator = JavaPatternTranslator(UnicodeCategories())
        compiled: dict[str, re.Pattern[str]] = {}

        def compile_pattern(pattern: str) -> re.Pattern[str]:
            if pattern not in compiled:
                compiled[pattern] = translator.compile(pattern)
            return compiled[pattern]

        self.services: dict[str, ServiceSchema] = {}
        self.by_signing_name: dict[str, ServiceSchema] = {}
        for name in services:
            schema = ServiceSchema(name, loader.load_service_model(name, "service-2"), compile_pattern)
            self.services[name] = schema
            signing = schema.metadata.get("signingName") or schema.metadata["endpointPrefix"]
            self.by_signing_name[signing] = schema
        self.pattern_count = len(compiled)
        self.decoders = {name: RequestDecoder(schema) for name, schema in self.services.items()}

    _SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")

    def for_request(self, environ: dict[str, Any]) -> tuple[ServiceSchema, str] | None:
        """The service and region of a SigV4-signed request (from its credential scope)."""
        scope = self._SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope is None:
            return None
        schema = self.by_signing_name.get(scope[2])
        return (schema, scope[1]) if schema else None


class Call:
    """One decoded request, for the rules beyond the models."""

    def __init__(self, schema: ServiceSchema, operation: str, params: dict[str, Any],
                 account: str, region: str) -> None:
        self.schema, self.operation, self.params = schema, operation, params
        self.account, self.region = account, region


# --- resource policies, evaluated where AWS evaluates them -------------------

def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's `*` (any run, also empty) and `?` (one character) matching."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """IAM ArnLike/ArnEquals: the six colon-separated parts are compared one by
    one, each with `*` and `?` wildcards (the resource part may hold colons)."""
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return pattern == "*"
    return all(_wildcard(w, a) for w, a in zip(wanted, actual))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "stringequals": lambda want, have: want == have,
    "stringequalsignorecase": lambda want, have: want.lower() == have.lower(),
    "stringlike": lambda want, have: _wildcard(want, have),
    "arnequals": _arn_like,
    "arnlike": _arn_like,
}


def _condition_holds(operator: str, tests: dict[str, Any], context: dict[str, str]) -> bool:
    name = operator.lower()
    if_exists = name.endswith("ifexists")
    name = name.removesuffix("ifexists")
    negated = "not" in name
    test = _CONDITION_TESTS.get(name.replace("not", ""))
    if test is None:
        return False  # an operator this evaluator does not know grants nothing
    lowered = {k.lower(): v for k, v in context.items()}
    for key, wanted in tests.items():
        have = lowered.get(key.lower())
        if have is None:
            if not (if_exists or negated):
                return False
            continue
        hit = any(test(str(w), have) for w in _as_list(wanted))
        if hit == negated:
            return False
    return True


def policy_allows(documents: Iterable[dict[str, Any]], service: Iterable[str], action: str,
                  resource: str, context: dict[str, str]) -> bool:
    """Whether resource policies let an AWS service principal do `action` on
    `resource` in `context` (aws:SourceArn, aws:SourceAccount): some Allow
    statement matches and no Deny does."""
    principals = set(service)
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement", [])):
            principal = statement.get("Principal")
            if principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS", []))):
                pass
            elif not (isinstance(principal, dict) and principals & set(_as_list(principal.get("Service", [])))):
                continue
            if "Action" in statement:
                if not any(_wildcard(a, action, True) for a in _as_list(statement["Action"])):
                    continue
            elif any(_wildcard(a, action, True) for a in _as_list(statement.get("NotAction", []))):
                continue
            if "Resource" in statement:
                if not any(_arn_like(r, resource) for r in _as_list(statement["Resource"])):
                    continue
            elif any(_arn_like(r, resource) for r in _as_list(statement.get("NotResource", []))):
                continue
            conditions = statement.get("Condition", {})
            if not all(_condition_holds(op, tests, context) for op, tests in conditions.items()):
                continue
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _lambda_function(arn: str) -> Any:
    """moto's function for a Lambda ARN, or None."""
    from moto.awslambda.models import lambda_backends
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        return None
    region, account = parts[3], parts[4]
    try:
        return lambda_backends[account][region].get_function(parts[6], parts[7] if len(parts) > 7 else None)
    except Exception:  # noqa: BLE001 - moto raises its own not-found errors
        return None


def rule_subscription_filter_invoke(call: Call) -> None:
    """PutSubscriptionFilter to a Lambda function: CloudWatch Logs test-invokes
    it, which fails unless the function's policy lets logs.amazonaws.com
    invoke it from this log group (source ARN `...:log-group:<name>:*`)."""
    destination = call.params.get("destinationArn", "")
    if ":lambda:" not in destination:
        return
    group = call.params.get("logGroupName") or call.params.get("logGroupIdentifier", "")
    group_arn = f"arn:aws:logs:{call.region}:{call.account}:log-group:{group}:*"
    function = _lambda_function(destination)
    statements = function.policy.statements if function is not None else []
    context = {"aws:SourceArn": group_arn, "aws:SourceAccount": call.account}
    # logs.<region>.amazonaws.com is the principal older AWS documentation used; both work.
    principals = ("logs.amazonaws.com", f"logs.{call.region}.amazonaws.com")
    resource = function.function_arn if function is not None else destination
    if function is None or not policy_allows([{"Statement": statements}], principals,
                                             "lambda:InvokeFunction", resource, context):
        raise Refusal("InvalidParameterException",
                      "Could not execute the lambda function. Make sure you have given CloudWatch "
                      "Logs permission to execute your function.")


def rule_query_logging_policy(call: Call) -> None:
    """CreateQueryLoggingConfig: Route 53 must be allowed, by a CloudWatch Logs
    resource policy in us-east-1, to create log streams in the group and put
    query logs into them."""
    from moto.logs import logs_backends
    group_arn = call.params.get("CloudWatchLogsLogGroupArn", "")
    parts = group_arn.split(":")
    if len(parts) < 7 or parts[2] != "logs":
        return
    name = group_arn.split(":log-group:", 1)[-1].removesuffix(":*")
    backend = logs_backends[call.account][parts[3]]
    documents = []
    for policy in list(backend.resource_policies.values()):
        try:
            documents.append(json.loads(policy.policy_document))
        except (TypeError, ValueError):
            continue
    stream = f"arn:aws:logs:{parts[3]}:{parts[4]}:log-group:{name}:log-stream:{call.params.get('HostedZoneId')}"
    context = {"aws:SourceArn": f"arn:aws:route53:::hostedzone/{call.params.get('HostedZoneId')}",
               "aws:SourceAccount": call.account}
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        if not policy_allows(documents, ["route53.amazonaws.com"], action, stream, context):
            raise Refusal("InsufficientCloudWatchLogsResourcePolicy",
                          "Amazon Route 53 doesn't have the permissions required to create log streams "
                          f"and send query logs to log streams ({action} on {stream} is not allowed by "
                          "any CloudWatch Logs resource policy in the log group's region).")


# --- quotas beyond the models ------------------------------------------------

MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256


def _tag_pairs(value: Any) -> list[tuple[Any, Any]] | None:
    """(key, value) pairs of a tag list or tag map, or None for anything else."""
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return list(value.items())
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        pairs = []
        for tag in value:
            keys = {k.lower(): k for k in tag}
            if "key" not in keys:
                return None
            pairs.append((tag[keys["key"]], tag.get(keys.get("value", ""))))
        return pairs
    return None


def _tag_errors(value: Any, path: str, errors: list[str]) -> None:
    """Every tag list or map in a request, at any depth: 50 tags, keys of 128
    and values of 256 characters (AWS's tagging rules, for all services)."""
    if isinstance(value, dict):
        for name, item in value.items():
            where = f"{path}.{_lower_first(name)}" if path else _lower_first(name)
            pairs = _tag_pairs(item) if name.lower().endswith("tags") else None
            if pairs is None:
                _tag_errors(item, where, errors)
                continue
            if len(pairs) > MAX_TAGS:
                errors.append(f"Value '{_shown(item)}' at '{where}' failed to satisfy constraint: Member "
                              f"must have length less than or equal to {MAX_TAGS}")
            for key, text in pairs:
                if isinstance(key, str) and len(key) > MAX_TAG_KEY:
                    errors.append(f"Value '{key}' at '{where}' failed to satisfy constraint: Tag keys "
                                  f"must have length less than or equal to {MAX_TAG_KEY}")
                if isinstance(text, str) and len(text) > MAX_TAG_VALUE:
                    errors.append(f"Value '{text}' at '{where}' failed to satisfy constraint: Tag values "
                                  f"must have length less than or equal to {MAX_TAG_VALUE}")
    elif isinstance(value, list):
        for index, item in enumerate(value, 1):
            _tag_errors(item, f"{path}.{index}.member", errors)


def _too_many_tags(existing: Iterable[str], added: Iterable[str], code: str, what: str) -> None:
    keys = set(existing) | set(added)
    if len(keys) > MAX_TAGS:
        raise Refusal(code, f"{what} would have {len(keys)} tags; the limit is {MAX_TAGS} per resource.")


def rule_autoscaling_tag_count(call: Call) -> None:
    """CreateOrUpdateTags: at most 50 tags per Auto Scaling group, counting those it has."""
    from moto.autoscaling.models import autoscaling_backends
    backend = autoscaling_backends[call.account][call.region]
    added: dict[str, set[str]] = {}
    for tag in call.params.get("Tags", []):
        added.setdefault(tag.get("ResourceId", ""), set()).add(tag.get("Key", ""))
    for group_name, keys in added.items():
        group = backend.autoscaling_groups.get(group_name)
        existing = [t["Key"] for t in group.tags] if group is not None else []
        _too_many_tags(existing, keys, "LimitExceeded", f"Auto Scaling group {group_name}")


def rule_iam_role_tag_count(call: Call) -> None:
    """TagRole: at most 50 tags per role, counting those it has."""
    from moto.iam.models import iam_backends
    try:
        role = iam_backends[call.account]["global"].get_role(call.params.get("RoleName", ""))
    except Exception:  # noqa: BLE001 - NoSuchEntity is moto's to answer
        return
    _too_many_tags([t["Key"] for t in role.tags], [t.get("Key") for t in call.params.get("Tags", [])],
                   "LimitExceeded", f"Role {role.name}")


def rule_logs_tag_count(call: Call) -> None:
    """TagResource / TagLogGroup: at most 50 tags per log group, counting those it has."""
    from moto.logs import logs_backends
    backend = logs_backends[call.account][call.region]
    arn = call.params.get("resourceArn")
    if arn is None:
        group = backend.groups.get(call.params.get("logGroupName", ""))
        arn = group.arn if group is not None else None
    if arn is None:
        return
    _too_many_tags(backend.list_tags_for_resource(arn).keys(), call.params.get("tags", {}).keys(),
                   "TooManyTagsException", arn)


def rule_metric_math_size(call: Call) -> None:
    """PutMetricAlarm: at most 20 MetricDataQuery items, of which at most 10
    retrieve a metric (MetricStat) and at most 10 are expressions."""
    metrics = call.params.get("Metrics") or []
    stats = sum(1 for q in metrics if q.get("MetricStat"))
    expressions = sum(1 for q in metrics if q.get("Expression"))
    if len(metrics) > 20 or stats > 10 or expressions > 10:
        raise Refusal("ValidationError",
                      f"Metrics has {len(metrics)} items ({stats} MetricStat, {expressions} Expression): "
                      "an alarm takes at most 20, of which at most 10 MetricStat and 10 Expression.")


LAMBDA_ENVIRONMENT_LIMIT = 4096
LAMBDA_NAME_LIMIT = 64


def rule_lambda_environment_size(call: Call) -> None:
    """CreateFunction / UpdateFunctionConfiguration: the environment variables
    take at most 4 KB together, measured as Lambda does (their JSON)."""
    variables = (call.params.get("Environment") or {}).get("Variables")
    if not variables:
        return
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode("utf-8")) > LAMBDA_ENVIRONMENT_LIMIT:
        raise Refusal("InvalidParameterValueException",
                      "Lambda was unable to configure your environment variables because the environment "
                      "variables you have provided exceeded the 4KB limit. String measured: " + measured)


def rule_lambda_function_name(call: Call) -> None:
    """Any Lambda call: a function's name (bare, or inside an ARN) has at most
    64 characters; the models allow 140 only for the ARN forms."""
    name = call.params.get("FunctionName")
    if not isinstance(name, str):
        return
    parts = name.split(":")
    if len(parts) == 1:
        bare = name
    elif "function" in parts and parts.index("function") + 1 < len(parts):
        bare = parts[parts.index("function") + 1]
    else:
        return
    if len(bare) > LAMBDA_NAME_LIMIT:
        raise Refusal("ValidationException",
                      f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
                      f"constraint: Member must have length less than or equal to {LAMBDA_NAME_LIMIT}")


def rule_route53_batch_size(call: Call) -> None:
    """ChangeResourceRecordSets: at most 1,000 ResourceRecord elements and
    32,000 characters of Value per request; an UPSERT counts twice."""
    records = characters = 0
    for change in (call.params.get("ChangeBatch") or {}).get("Changes", []):
        weight = 2 if change.get("Action") == "UPSERT" else 1
        for record in (change.get("ResourceRecordSet") or {}).get("ResourceRecords", []):
            records += weight
            characters += weight * len(record.get("Value") or "")
    if records > 1000:
        raise Refusal("InvalidChangeBatch", "Number of records limit of 1000 exceeded.")
    if characters > 32000:
        raise Refusal("InvalidChangeBatch", "RDATA character limit of 32000 exceeded.")


def rule_subscription_filter_count(call: Call) -> None:
    """PutSubscriptionFilter: at most 2 subscription filters per log group (a
    filter of the same name is replaced, not added)."""
    from moto.logs import logs_backends
    group = logs_backends[call.account][call.region].groups.get(call.params.get("logGroupName", ""))
    if group is None:
        return
    if call.params.get("filterName") not in group.subscription_filters and len(group.subscription_filters) >= 2:
        raise Refusal("LimitExceededException", "Resource limit exceeded.")


def rule_logs_resource_policy_count(call: Call) -> None:
    """PutResourcePolicy: at most 10 CloudWatch Logs resource policies per
    region (a policy of the same name is replaced, not added)."""
    from moto.logs import logs_backends
    policies = logs_backends[call.account][call.region].resource_policies
    if call.params.get("policyName") not in policies and len(policies) >= 10:
        raise Refusal("LimitExceededException", "Resource limit exceeded.")


# (service, operation) -> rules, run in order after the model checks passed.
STRICT_RULES: dict[tuple[str, str], list[Callable[[Call], None]]] = {
    ("cloudwatch", "PutMetricAlarm"): [rule_metric_math_size],
    ("autoscaling", "CreateOrUpdateTags"): [rule_autoscaling_tag_count],
    ("iam", "TagRole"): [rule_iam_role_tag_count],
    ("logs", "TagResource"): [rule_logs_tag_count],
    ("logs", "TagLogGroup"): [rule_logs_tag_count],
    ("lambda", "CreateFunction"): [rule_lambda_function_name, rule_lambda_environment_size],
    ("lambda", "UpdateFunctionConfiguration"): [rule_lambda_function_name, rule_lambda_environment_size],
    ("route53", "ChangeResourceRecordSets"): [rule_route53_batch_size],
    ("logs", "PutSubscriptionFilter"): [rule_subscription_filter_count, rule_subscription_filter_invoke],
    ("logs", "PutResourcePolicy"): [rule_logs_resource_policy_count],
    ("route53", "CreateQueryLoggingConfig"): [rule_query_logging_policy],
}
# Every other Lambda call names its function too.
_LAMBDA_NAMED = [rule_lambda_function_name]


class Strictness:
    """WSGI middleware in front of moto: refuses what AWS refuses (see Part 3's header)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], models: StrictModels) -> None:
        self.app = app
        self.models = models

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = self.models.for_request(environ)
        if found is None:
            return self.app(environ, start_response)
        schema, region = found
        length = environ.get("CONTENT_LENGTH")
        if length:
            body = environ["wsgi.input"].read(int(length))
        else:  # a chunked body, which the server has already de-chunked
            body = environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else b""
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            if environ.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
                body = gzip.decompress(body)
            decoded = self.models.decoders[schema.name].decode(environ, body)
        except Exception as exc:  # noqa: BLE001 - a request we cannot read is not waved through
            traceback.print_exc()
            return self._refuse(start_response, environ, schema,
                                Refusal("InternalFailure", f"strictness: cannot decode the request: {exc}", 500))
        if decoded is None:
            return self.app(environ, start_response)
        operation, params = decoded
        call = Call(schema, operation, params, environ.get("HTTP_X_MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT, region)
        try:
            self.check(call)
        except Refusal as refusal:
            return self._refuse(start_response, environ, schema, refusal)
        return self.app(environ, start_response)

    @staticmethod
    def check(call: Call) -> None:
        """Raises Refusal when AWS would refuse the call."""
        errors: list[str] = []
        shape = call.schema.operations[call.operation].get("input", {}).get("shape")
        if shape:
            call.schema.validate(shape, call.params, "", errors)
        if not errors:
            # AWS's tagging rules, for models that do not spell them out.
            _tag_errors(call.params, "", errors)
        if errors:
            count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
            raise Refusal(call.schema.validation_code, count + "; ".join(errors))
        rules = STRICT_RULES.get((call.schema.name, call.operation))
        if rules is None and call.schema.name == "lambda":
            rules = _LAMBDA_NAMED
        for rule in rules or []:
            rule(call)

    @staticmethod
    def _refuse(start_response: Callable[..., Any], environ: dict[str, Any], schema: ServiceSchema,
                refusal: Refusal) -> Iterable[bytes]:
        from xml.sax.saxutils import escape
        request_id = "strict-" + os.urandom(8).hex()
        code, message = refusal.code, refusal.message
        headers = [("x-amzn-RequestId", request_id)]
        if environ.get("HTTP_X_AMZ_TARGET") or schema.protocol == "rest-json":
            body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
            headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
            if "awsQueryCompatible" in schema.metadata:
                headers.append(("x-amzn-query-error", f"{code};Sender"))
        elif schema.protocol == "ec2":
            body = (f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}"
                    f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
            headers.append(("Content-Type", "text/xml"))
        else:
            namespace = schema.metadata.get("xmlNamespace", "")
            if isinstance(namespace, dict):
                namespace = namespace.get("uri", "")
            body = (f'<ErrorResponse xmlns="{escape(namespace)}"><Error><Type>Sender</Type>'
                    f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
                    f"<RequestId>{request_id}</RequestId></ErrorResponse>").encode()
            headers.append(("Content-Type", "text/xml"))
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{refusal.status} {HTTPStatus(refusal.status).phrase}", headers)
        return [body]


# ---------------------------------------------------------------------------
# Part 4: the server
# ---------------------------------------------------------------------------

class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without the per-request access log line."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _exit_when_stdin_closes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        # The parent is gone (or closed the pipe on purpose): stop right now,
        # without waiting for request threads.
        os._exit(0)


def _exit_when_parent_dies(parent: int) -> None:
    # A dead parent's children are re-parented (to init or a subreaper).
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit as soon as stdin is closed (for test harnesses)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the parent process dies (for foreground wrappers)")
    parser.add_argument("--quiet", action="store_true", help="do not log every request on stderr")
    args = parser.parse_args(argv)

    for patch in PATCHES:
        patch()
    strictness = Strictness(DomainDispatcherApplication(create_backend_app), StrictModels())
    shim = RpcV2CborShim(strictness)
    shim.services.lookup("GraniteServiceVersion20100801")  # warm up CloudWatch's model

    handler = QuietRequestHandler if args.quiet else MotoRequestHandler
    server = make_server(args.host, args.port, shim, threaded=True, request_handler=handler)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs from it

    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
    if args.exit_with_parent:
        threading.Thread(target=_exit_when_parent_dies, args=(os.getppid(),),
                         name="parent-watch", daemon=True).start()

    # The socket is listening already, so connections made from now on queue
    # up until serve_forever() picks them.
    print(f"{READY_PREFIX} http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
