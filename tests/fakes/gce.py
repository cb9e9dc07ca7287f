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
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler

PREFIX = "/compute/v1/projects/"
_CLAUSE = re.compile(r'\(?\s*([A-Za-z][\w.-]*)\s*(=|!=|eq|ne|:)\s*"?([^"()\s]*)"?\s*\)?')


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
    # preempts it), "stockout", "failed-start", "quota-preemptible" or "quota-cpus"
    # (the insert operation fails).
    zone_trouble: dict[str, str] = field(default_factory=dict)
    # Seconds a preemptible VM in a "preempt" zone runs before GCE takes it back.
    preempt_after: float = 0.0
    # (project, zone) -> name -> disk; googlecompute's boot disk outlives its VM
    # (AutoDelete false, driver_gce.go) until the builder's cleanup deletes it.
    disks: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    # region -> metric -> (limit, usage), served by regions.get.
    quotas: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # Permissions projects.testIamPermissions answers as held (None: all asked).
    granted: set[str] | None = None
    # The Compute Engine API is not enabled: every compute call answers 403.
    api_disabled: bool = False


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
            if req.path.startswith("/v1/projects/") and req.path.endswith(":testIamPermissions"):
                return self._test_permissions(req)
            if self.state.api_disabled and req.path.startswith(PREFIX):
                # "googleapi: Error 403: Compute Engine API has not been used in project
                # <n> before or it is disabled. Enable it by visiting https://console.
                # developers.google.com/apis/api/compute.googleapis.com/overview?project=<n>
                # then retry. ..., accessNotConfigured" (midl-dev/tezos-on-gke#34,
                # terraform-google-modules/cloud-foundation-training#17).
                project = req.path[len(PREFIX) :].split("/")[0]
                message = (
                    f"Compute Engine API has not been used in project {project} before or it "
                    "is disabled. Enable it by visiting https://console.developers.google.com/"
                    f"apis/api/compute.googleapis.com/overview?project={project} then retry."
                )
                return 403, _error(403, message, reason="accessNotConfigured")
            self._advance()
            return self._route(req)

    def _test_permissions(self, req: Request) -> tuple[int, dict[str, Any]]:
        """Cloud Resource Manager projects.testIamPermissions: the asked permissions the
        caller holds (https://cloud.google.com/resource-manager/reference/rest/v1/projects/
        testIamPermissions); an empty list is left out, as proto3 JSON leaves out empty
        repeated fields."""
        project = req.path[len("/v1/projects/") : -len(":testIamPermissions")]
        if project not in self.state.projects:
            # guess: Resource Manager's answer for a project the caller cannot see.
            return 403, _error(403, f"The caller does not have permission on {project}")
        asked = json.loads(req.body or b"{}").get("permissions", [])
        held = self.state.granted
        answer = [p for p in asked if held is None or p in held]
        return 200, {"permissions": answer} if answer else {}

    def _advance(self) -> None:
        """Instances whose preemption time has come: GCE stops them (STOPPING, then
        TERMINATED) and logs a compute.instances.preempted zone operation
        (https://cloud.google.com/compute/docs/instances/preemptible
        #detecting_if_an_instance_was_preempted)."""
        now = time.monotonic()
        for (project, zone), instances in self.state.instances.items():
            for name, vm in instances.items():
                due = vm.get("_preempt_at")
                if due is None or now < due:
                    continue
                if vm["status"] == "RUNNING":
                    # The preemption's operation exists from the moment it starts.
                    vm["status"] = "STOPPING"
                    self._zone_operation(project, zone, "compute.instances.preempted", name)
                elif vm["status"] == "STOPPING" and now >= due + 0.2:
                    vm["status"] = "TERMINATED"
                    vm.pop("_preempt_at")

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
                source = body.get("sourceImage", "").rsplit("/", 1)[-1]
                if source and source not in images:
                    return _not_found(project, source)
                if name in images:
                    # "409 POST .../global/images: The resource
                    # 'projects/***/global/images/img-...' already exists"
                    # (gardenlinux/gardenlinux#2016).
                    return 409, _error(
                        409,
                        f"The resource 'projects/{project}/global/images/{name}' already exists",
                    )
                added = self.add_image(project, name, body.get("family", ""), body.get("labels"))
                added["description"] = body.get("description", "")
                return 200, self._operation(project, "insert", name)
            case "POST", ["zones", zone, "instances"]:
                return self._insert_instance(project, zone, json.loads(req.body or b"{}"))
            case "GET", ["zones", zone, "instances"]:
                return self._list_items(
                    "instanceList", self.state.instances.get((project, zone), {}), req.query
                )
            case "GET", ["zones", zone, "disks"]:
                return self._list_items(
                    "diskList", self.state.disks.get((project, zone), {}), req.query
                )
            case "GET", ["zones", zone, "disks", name]:
                disk = self.state.disks.get((project, zone), {}).get(name)
                if disk is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/disks/{name}")
                return 200, disk
            case "DELETE", ["zones", zone, "disks", name]:
                if self.state.disks.get((project, zone), {}).pop(name, None) is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/disks/{name}")
                return 200, self._zone_operation(project, zone, "delete", name, "disks")
            case "GET", ["regions", region]:
                # The Region resource's quotas: [{metric, limit, usage}]
                # (https://cloud.google.com/compute/docs/reference/rest/v1/regions/get).
                quotas = self.state.quotas.get(region, {})
                return 200, {
                    "kind": "compute#region",
                    "name": region,
                    "status": "UP",
                    "quotas": [
                        {"metric": m, "limit": lim, "usage": use}
                        for m, (lim, use) in sorted(quotas.items())
                    ],
                }
            case "GET", ["zones", zone, "instances", name]:
                found = self.state.instances.get((project, zone), {}).get(name)
                if found is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/instances/{name}")
                return 200, _public(found)
            case "DELETE", ["zones", zone, "instances", name]:
                if self.state.instances.get((project, zone), {}).pop(name, None) is None:
                    return _resource_not_found(f"projects/{project}/zones/{zone}/instances/{name}")
                return 200, self._zone_operation(project, zone, "delete", name)
            case "GET", ["zones", zone, "operations"]:
                ops = self.state.zone_operations.get((project, zone), [])
                return self._list_items("operationList", {o["name"]: o for o in ops}, req.query)
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
        region = zone.rpartition("-")[0]
        quota = {"quota-preemptible": "PREEMPTIBLE_CPUS", "quota-cpus": "CPUS"}.get(trouble)
        if quota and (preemptible or quota == "CPUS"):
            # "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-east1."
            # (mesosphere-backup/terraform-dcos#61); code QUOTA_EXCEEDED
            # (GoogleCloudPlatform/ai-on-gke#849).
            op["error"] = {
                "errors": [
                    {
                        "code": "QUOTA_EXCEEDED",
                        "message": f"Quota '{quota}' exceeded.  Limit: 8.0 in region {region}.",
                    }
                ]
            }
            return 200, op
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
        stamp = _rfc3339(datetime.now(timezone.utc))
        instance = {
            "kind": "compute#instance",
            "name": name,
            "status": "RUNNING",
            "selfLink": link,
            "labels": dict(body.get("labels", {})),
            "creationTimestamp": stamp,
        }
        self.state.instances.setdefault((project, zone), {})[name] = instance
        # The boot disk, named as the builder names it (DiskName, default the
        # instance's name: packer-plugin-googlecompute builder/googlecompute/config.go).
        disk_name = (body.get("disks") or [{}])[0].get("initializeParams", {}).get("diskName")
        disk_name = disk_name or name
        self.state.disks.setdefault((project, zone), {})[disk_name] = {
            "kind": "compute#disk",
            "name": disk_name,
            "creationTimestamp": stamp,
            "labels": {},
            "status": "READY",
        }
        if trouble == "preempt" and preemptible:
            # What GCE leaves when it preempts a VM: status TERMINATED and a zone
            # operation of type compute.instances.preempted targeting it
            # (https://cloud.google.com/compute/docs/instances/preemptible#detecting_if_an_instance_was_preempted).
            if self.state.preempt_after > 0:
                instance["_preempt_at"] = time.monotonic() + self.state.preempt_after
            else:
                instance["status"] = "TERMINATED"
                self._zone_operation(project, zone, "compute.instances.preempted", name)
        return 200, op

    def _zone_operation(
        self, project: str, zone: str, kind: str, target: str, collection: str = "instances"
    ) -> dict[str, Any]:
        op = self._new_operation(f"{project}/zones/{zone}", kind, f"{collection}/{target}")
        op["zone"] = f"https://compute.example{PREFIX}{project}/zones/{zone}"
        self.state.zone_operations.setdefault((project, zone), []).append(op)
        return op

    def _list_items(
        self, kind: str, items: dict[str, dict[str, Any]], query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        text = query.get("filter", [""])[0]
        try:
            clauses = _parse_filter(text)
        except ValueError:
            # guess: as for images.list above.
            return 400, _error(400, f"Invalid value for field 'filter': '{text}'.")
        chosen = [_public(i) for i in items.values() if all(_matches(i, c) for c in clauses)]
        return 200, {"kind": f"compute#{kind}", "items": chosen}

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
        # ":" is the list filter's "has" operator; "labels.k:*" means the label is set
        # (https://cloud.google.com/compute/docs/reference/rest/v1/instances/list, filter).
        kind = ":" if op == ":" else "!=" if op in ("!=", "ne") else "="
        clauses.append((field_name, kind, value))
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
    if op == ":":
        return actual is not None and (value == "*" or str(actual) == value)
    equal = actual is not None and str(actual) == value
    return equal if op == "=" else not equal


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource without the fake's own bookkeeping (keys starting with "_")."""
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _error(code: int, message: str, reason: str = "") -> dict[str, Any]:
    # The body of a GCE error: {"error": {"code", "message", "errors": [{"message",
    # "domain", "reason"}]}}, reasons as in "..., notFound" / "..., conditionNotMet"
    # of the googleapi errors quoted above; 401 authError per
    # googleapis/google-api-dotnet-client#231.
    reason = reason or {400: "invalid", 401: "authError", 403: "forbidden", 404: "notFound"}.get(
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
