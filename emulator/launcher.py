#!/usr/bin/env python3
"""Local AWS emulator for the reconciler's integration tests, demo and benchmarks.

Runs moto's server in this process on 127.0.0.1 and adds two things on top:

1. A WSGI middleware that speaks the Smithy RPC-v2-CBOR protocol. Current AWS
   SDKs for Rust send CloudWatch (and a few other services) as
   ``POST /service/<ServiceShape>/operation/<Op>`` with a CBOR body; moto only
   understands the JSON protocol for those services. The middleware converts
   the request to AWS-JSON, lets moto answer, and converts the answer (errors
   included) back to CBOR, using botocore's service model for field types.

2. Small in-memory patches for moto operations the reconciler needs but moto
   5.2.5 does not implement (or implements wrongly). Each patch names its gap.

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


PATCHES = [patch_backup, patch_efs, patch_autoscaling, patch_launch_templates, patch_ecs, patch_events,
           patch_instances, patch_idempotency, patch_query_logging, patch_tagging_pages,
           patch_log_group_identifiers, patch_tagging_services, patch_task_definition_pages,
           patch_atomic_parameter_create]


# ---------------------------------------------------------------------------
# Part 3: the server
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
    shim = RpcV2CborShim(DomainDispatcherApplication(create_backend_app))
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
