"""A Compute Engine REST fake on 127.0.0.1: the image and global-operation calls
google-cloud-compute makes, with the same paths, JSON shapes and error bodies.

Projects exist only when named (``FakeGce(projects=[...])``, ``add_project`` or
``add_image``): like GCE, any call under another project answers 404. Seed
images with ``add_image``; inject failures with ``fail(status, ...)``;
``require_token`` makes every API call demand ``Authorization: Bearer <token>``,
and ``/token`` answers an OAuth2 JWT-bearer exchange (as oauth2.googleapis.com
does for a service-account key file whose ``token_uri`` points here).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler

PREFIX = "/compute/v1/projects/"
_CLAUSE = re.compile(r'\(?\s*([A-Za-z][\w.-]*)\s*(=|!=|eq|ne)\s*"?([^"()\s]*)"?\s*\)?')


@dataclass
class Failure:
    status: int
    path_part: str
    remaining: int


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class GceState:
    images: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # project -> name
    projects: set[str] = field(default_factory=set)  # what the caller can see
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    require_token: str | None = None
    # Also accept a self-signed service-account JWT (what google-auth sends for
    # a key file when the client allows JWT access) whose issuer is this email.
    accept_jwt_issuer: str | None = None
    issued_token: str = "ya29.fake-access-token"
    operation_error: dict[str, Any] | None = None
    # Build VMs: (project, zone) -> name -> instance, and each zone's operations.
    instances: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    zone_operations: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # zone -> what happens to a VM created there: "preempt" (it runs, then GCE
    # preempts it), "stockout" or "failed-start" (the insert operation fails).
    zone_trouble: dict[str, str] = field(default_factory=dict)


class FakeGce(LoopbackHttpServer):
    """Start with ``with FakeGce() as gce:``; ``gce.endpoint`` is the api_endpoint."""

    def __init__(self, projects: Iterable[str] = ()) -> None:
        self.state = GceState(projects=set(projects))
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        handler = type("Handler", (_Handler,), {"fake": self})
        super().__init__(handler)

    @property
    def endpoint(self) -> str:
        return self.url

    # -- seeding and inspection ------------------------------------------------

    def add_project(self, project: str) -> None:
        with self._lock:
            self.state.projects.add(project)

    def add_image(
        self,
        project: str,
        name: str,
        family: str = "",
        labels: dict[str, str] | None = None,
        created: datetime | str | None = None,
        deprecated: str | None = None,
        deprecated_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        when = created or datetime.now(timezone.utc)
        image: dict[str, Any] = {
            "kind": "compute#image",
            "id": str(next(self._ids)),
            "name": name,
            "family": family,
            "labels": dict(labels or {}),
            "labelFingerprint": "42WmSpB8rSM=",
            "creationTimestamp": when if isinstance(when, str) else _rfc3339(when),
            "status": "READY",
            "selfLink": f"https://compute.example/{PREFIX}{project}/global/images/{name}",
        }
        if deprecated:
            stamp = deprecated_at or datetime.now(timezone.utc)
            image["deprecated"] = {
                "state": deprecated,
                "deprecated": stamp if isinstance(stamp, str) else _rfc3339(stamp),
            }
        with self._lock:
            self.state.projects.add(project)
            self.state.images.setdefault(project, {})[name] = image
        return image

    def image_names(self, project: str) -> set[str]:
        with self._lock:
            return set(self.state.images.get(project, {}))

    def image(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            return self.state.images[project][name]

    def fail(self, status: int, path_part: str = "", times: int = 1_000_000) -> None:
        """Answer requests whose path contains ``path_part`` with ``status``."""
        with self._lock:
            self.state.failures.append(Failure(status, path_part, times))

    def clear_failures(self) -> None:
        with self._lock:
            self.state.failures.clear()

    # -- request handling ------------------------------------------------

    def handle(self, req: Request) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.state.requests.append(req)
            if req.path == "/token":
                return self._token(req)
            for failure in self.state.failures:
                if failure.remaining > 0 and failure.path_part in req.path:
                    failure.remaining -= 1
                    # A test's injected fault: only the status matters, the text is ours.
                    return failure.status, _error(failure.status, "injected failure")
            if self.state.require_token is not None:
                sent = req.headers.get("authorization", "")
                if sent != f"Bearer {self.state.require_token}" and not self._jwt_ok(sent):
                    # Google APIs' 401 text begins so (its whole text in
                    # makingglitches/GooglePhotoDownload#6, status UNAUTHENTICATED).
                    return 401, _error(401, "Request had invalid authentication credentials.")
            return self._route(req)

    def _jwt_ok(self, header: str) -> bool:
        if not self.state.accept_jwt_issuer or not header.startswith("Bearer "):
            return False
        parts = header[len("Bearer ") :].split(".")
        if len(parts) != 3:
            return False
        try:
            padded = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = json.loads(base64.urlsafe_b64decode(padded))
        except ValueError:
            return False
        return bool(claims.get("iss") == self.state.accept_jwt_issuer)

    def _token(self, req: Request) -> tuple[int, dict[str, Any]]:
        form = parse_qs(req.body.decode())
        if not form.get("assertion"):
            return 400, {"error": "invalid_grant", "error_description": "no assertion"}
        return 200, {
            "access_token": self.state.issued_token,
            "expires_in": 3600,
            "token_type": "Bearer",
        }

    def _route(self, req: Request) -> tuple[int, dict[str, Any]]:
        if not req.path.startswith(PREFIX):
            # guess: Google's front end answers an unknown path with an HTML 404
            # ("The requested URL ... was not found on this server."); JSON here.
            return 404, _error(404, f"The requested URL {req.path} was not found.")
        parts = [unquote(p) for p in req.path[len(PREFIX) :].split("/")]
        project, rest = parts[0], parts[1:]
        if project not in self.state.projects:
            # A project that does not exist, or that the caller cannot see, is
            # not an empty one: GCE answers 404 on every call under it, e.g.
            # "Error 404: The resource 'projects/miner-project-12345' was not
            # found, notFound" (mludvig/gcp-ethereum-miner#1; also
            # saltstack/salt#56862).
            return 404, _error(404, f"The resource 'projects/{project}' was not found")
        images = self.state.images.setdefault(project, {})
        match req.method, rest:
            case "GET", ["global", "images"]:
                return self._list(project, images, req.query)
            case "GET", ["global", "images", "family", family]:
                return self._from_family(project, images, family)
            case "GET", ["global", "images", name]:
                if name not in images:
                    return _not_found(project, name)
                return 200, images[name]
            case "DELETE", ["global", "images", name]:
                if name not in images:
                    return _not_found(project, name)
                del images[name]
                return 200, self._operation(project, "delete", name)
            case "POST", ["global", "images", name, "deprecate"]:
                if name not in images:
                    return _not_found(project, name)
                status = json.loads(req.body or b"{}")
                if status.get("state", "ACTIVE") == "ACTIVE":
                    images[name].pop("deprecated", None)
                else:
                    images[name]["deprecated"] = status
                return 200, self._operation(project, "deprecate", name)
            case "POST", ["global", "images", name, "setLabels"]:
                if name not in images:
                    return _not_found(project, name)
                body = json.loads(req.body or b"{}")
                if body.get("labelFingerprint") != images[name]["labelFingerprint"]:
                    # "googleapi: Error 412: Labels fingerprint either invalid or resource
                    # labels have changed, conditionNotMet"
                    # (hashicorp/terraform-provider-google#18826).
                    return 412, _error(
                        412, "Labels fingerprint either invalid or resource labels have changed"
                    )
                images[name]["labels"] = dict(body.get("labels", {}))
                images[name]["labelFingerprint"] = f"fp{next(self._ids)}="
                return 200, self._operation(project, "setLabels", name)
            case "POST", ["global", "images"]:
                body = json.loads(req.body or b"{}")
                name = body.get("name", "")
                if name in images:
                    # "409 POST .../global/images: The resource
                    # 'projects/***/global/images/img-...' already exists"
                    # (gardenlinux/gardenlinux#2016).
                    return 409, _error(
                        409,
                        f"The resource 'projects/{project}/global/images/{name}' already exists",
                    )
                self.add_image(project, name, body.get("family", ""), body.get("labels"))
                return 200, self._operation(project, "insert", name)
            case "POST", ["zones", zone, "instances"]:
                return self._insert_instance(project, zone, json.loads(req.body or b"{}"))
            case "GET", ["zones", zone, "instances", name]:
                found = self.state.instances.get((project, zone), {}).get(name)
                if found is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/instances/{name}")
                return 200, found
            case "DELETE", ["zones", zone, "instances", name]:
                if self.state.instances.get((project, zone), {}).pop(name, None) is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/instances/{name}")
                return 200, self._zone_operation(project, zone, "delete", name)
            case "GET", ["zones", zone, "operations"]:
                return self._list_zone_operations(project, zone, req.query)
            case (("GET" | "POST"), ["zones", _zone, "operations", op, *_wait]):
                return self._get_operation(op)
            case (("GET" | "POST"), ["global", "operations", op]):
                return self._get_operation(op)
            case "POST", ["global", "operations", op, "wait"]:
                return self._get_operation(op)
        # guess: as for an unknown path above.
        return 404, _error(404, f"The requested URL {req.path} was not found.")

    def _list(
        self, project: str, images: dict[str, dict[str, Any]], query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        text = query.get("filter", [""])[0]
        try:
            clauses = _parse_filter(text)
        except ValueError:
            # guess: the wording of GCE's answer to a filter it cannot parse.
            return 400, _error(
                400, f"Invalid value for field 'filter': '{text}'. Invalid list filter expression."
            )
        chosen = [i for i in images.values() if all(_matches(i, c) for c in clauses)]
        order = query.get("orderBy", [""])[0]
        if text and order:
            # What GCE answers (seen in doitintl/kubeip#132): no filter with a sort order.
            return 400, _error(
                400,
                f"Invalid value for field 'orderBy': '{order}'. Specifying both a list "
                "filter and sort order is not currently supported.",
            )
        if order == "creationTimestamp desc":
            chosen.sort(key=lambda i: i["creationTimestamp"], reverse=True)
        elif order in ("", "name"):
            chosen.sort(key=lambda i: i["name"])
        else:
            # The start of GCE's orderBy message (doitintl/kubeip#132, above).
            return 400, _error(400, f"Invalid value for field 'orderBy': '{order}'.")
        start = int(query.get("pageToken", ["0"])[0] or 0)
        size = int(query.get("maxResults", ["500"])[0])
        page = chosen[start : start + size]
        body: dict[str, Any] = {
            "kind": "compute#imageList",
            "id": f"projects/{project}/global/images",
            "items": page,
        }
        if start + size < len(chosen):
            body["nextPageToken"] = str(start + size)
        return 200, body

    def _from_family(
        self, project: str, images: dict[str, dict[str, Any]], family: str
    ) -> tuple[int, dict[str, Any]]:
        live = [
            i
            for i in images.values()
            if i["family"] == family and i.get("deprecated", {}).get("state", "ACTIVE") == "ACTIVE"
        ]
        if not live:
            # "googleapi: Error 404: The resource
            # 'projects/debian-cloud/global/images/family/ubuntu-2004-lts' was not
            # found, notFound" (attacksurge/ax#43).
            return 404, _error(
                404,
                f"The resource 'projects/{project}/global/images/family/{family}' was not found",
            )
        return 200, max(live, key=lambda i: i["creationTimestamp"])

    def _operation(self, project: str, kind: str, target: str) -> dict[str, Any]:
        op = self._new_operation(f"{project}/global", kind, f"images/{target}")
        if self.state.operation_error:
            op["error"] = {"errors": [self.state.operation_error]}
        return op

    def _new_operation(self, scope: str, kind: str, target: str) -> dict[str, Any]:
        """A finished operation under projects/<scope> (global or zones/<zone>)."""
        name = f"operation-{next(self._ids)}"
        base = f"https://compute.example{PREFIX}{scope}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "operationType": kind,
            "status": "DONE",
            "progress": 100,
            "targetLink": f"{base}/{target}",
            "selfLink": f"{base}/operations/{name}",
        }
        self.state.operations[name] = op
        return op

    def _insert_instance(
        self, project: str, zone: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        name = body.get("name", "")
        trouble = self.state.zone_trouble.get(zone, "")
        op = self._zone_operation(project, zone, "insert", name)
        if trouble == "stockout":
            # The operation's error as GCE reports a stock-out
            # (https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-resource-availability:
            # ZONE_RESOURCE_POOL_EXHAUSTED, "The zone '...' does not have enough
            # resources available to fulfill the request. Try a different zone, or
            # try again later.").
            op["error"] = {
                "errors": [
                    {
                        "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                        "message": f"The zone 'projects/{project}/zones/{zone}' does not have "
                        "enough resources available to fulfill the request.  Try a different "
                        "zone, or try again later.",
                    }
                ]
            }
            return 200, op
        preemptible = bool(body.get("scheduling", {}).get("preemptible"))
        if trouble == "failed-start" and preemptible:
            # "Instance failed to start due to preemption." (hashicorp/packer#9133);
            # guess: the error code beside it.
            op["error"] = {
                "errors": [
                    {
                        "code": "RESOURCE_ERROR",
                        "message": "Instance failed to start due to preemption.",
                    }
                ]
            }
            return 200, op
        link = f"https://compute.example{PREFIX}{project}/zones/{zone}/instances/{name}"
        instance = {"kind": "compute#instance", "name": name, "status": "RUNNING", "selfLink": link}
        self.state.instances.setdefault((project, zone), {})[name] = instance
        if trouble == "preempt" and preemptible:
            # What GCE leaves when it preempts a VM: status TERMINATED and a zone
            # operation of type compute.instances.preempted targeting it
            # (https://cloud.google.com/compute/docs/instances/preemptible#detecting_if_an_instance_was_preempted).
            instance["status"] = "TERMINATED"
            self._zone_operation(project, zone, "compute.instances.preempted", name)
        return 200, op

    def _zone_operation(self, project: str, zone: str, kind: str, target: str) -> dict[str, Any]:
        op = self._new_operation(f"{project}/zones/{zone}", kind, f"instances/{target}")
        op["zone"] = f"https://compute.example{PREFIX}{project}/zones/{zone}"
        self.state.zone_operations.setdefault((project, zone), []).append(op)
        return op

    def _list_zone_operations(
        self, project: str, zone: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        text = query.get("filter", [""])[0]
        try:
            clauses = _parse_filter(text)
        except ValueError:
            # guess: as for images.list above.
            return 400, _error(400, f"Invalid value for field 'filter': '{text}'.")
        ops = self.state.zone_operations.get((project, zone), [])
        items = [op for op in ops if all(_matches(op, c) for c in clauses)]
        return 200, {"kind": "compute#operationList", "items": items}

    def _get_operation(self, name: str) -> tuple[int, dict[str, Any]]:
        if name not in self.state.operations:
            # guess: shaped like GCE's other 404s (projects/.../operations/<name>).
            return 404, _error(404, f"The resource 'operations/{name}' was not found")
        return 200, self.state.operations[name]


class _Handler(QuietHandler):
    fake: FakeGce
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        req = Request(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        status, body = self.fake.handle(req)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve


def _parse_filter(text: str) -> list[tuple[str, str, str]]:
    clauses: list[tuple[str, str, str]] = []
    rest = text.strip()
    while rest:
        match = _CLAUSE.match(rest)
        if not match:
            raise ValueError(text)
        field_name, op, value = match.groups()
        clauses.append((field_name, "!=" if op in ("!=", "ne") else "=", value))
        rest = rest[match.end() :].strip()
        if rest.upper().startswith("AND "):
            rest = rest[4:].strip()
    return clauses


def _matches(image: dict[str, Any], clause: tuple[str, str, str]) -> bool:
    field_name, op, value = clause
    if field_name.startswith("labels."):
        actual = image["labels"].get(field_name[len("labels.") :])
    else:
        actual = image.get(field_name)
    equal = actual is not None and str(actual) == value
    return equal if op == "=" else not equal


def _error(code: int, message: str) -> dict[str, Any]:
    # The body of a GCE error: {"error": {"code", "message", "errors": [{"message",
    # "domain", "reason"}]}}, reasons as in "..., notFound" / "..., conditionNotMet"
    # of the googleapi errors quoted above; 401 authError per
    # googleapis/google-api-dotnet-client#231.
    reason = {400: "invalid", 401: "authError", 403: "forbidden", 404: "notFound"}.get(
        code, "backendError"
    )
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


def _not_found(project: str, name: str) -> tuple[int, dict[str, Any]]:
    # "googleapi: Error 404: The resource 'projects/centos-cloud/global/images/
    # almalinux-9-v20220920' was not found, notFound"
    # (hashicorp/packer-plugin-googlecompute#119).
    return 404, _error(404, f"The resource 'projects/{project}/global/images/{name}' was not found")


def _resource_not_found(path: str) -> tuple[int, dict[str, Any]]:
    # GCE's 404 for any missing resource: "The resource '<path>' was not found"
    # (as for images above).
    return 404, _error(404, f"The resource '{path}' was not found")


def _rfc3339(when: datetime) -> str:
    # GCE reports creation times like 2024-05-01T03:04:05.123-07:00.
    return when.astimezone(timezone(timedelta(hours=-7))).isoformat(timespec="milliseconds")
