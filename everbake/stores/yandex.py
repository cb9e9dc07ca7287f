"""Yandex Cloud images through yandexcloud (imported lazily).

Image List filters on ``name`` only (exact match) and the image name is the
naming module's business, so lookups by fingerprint list the folder and match
the ``fingerprint`` label here. Yandex has no image deprecation: retiring an
image means deleting it. Operations are awaited with our own bounded loop: the
SDK's waiter retries UNAVAILABLE for minutes whatever its timeout says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from datetime import timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from everbake.check_line import CheckLine
from everbake.errors import CloudError, CredentialsError
from everbake.labels import fingerprint_label_value
from everbake.stores import CloudImage, newest_first

T = TypeVar("T")

TOKEN_FIX = (
    "set YC_TOKEN (e.g. export YC_TOKEN=$(yc iam create-token)) or "
    "YC_SERVICE_ACCOUNT_KEY_FILE=<key.json> (yc iam key create --service-account-name <sa> "
    "--output key.json)"
)


def yandex_credentials_hint(env: Mapping[str, str] | None = None) -> CheckLine:
    """Say, without any network call, which Yandex credentials would be used."""
    env = os.environ if env is None else env
    key_file = env.get("YC_SERVICE_ACCOUNT_KEY_FILE", "")
    if env.get("YC_TOKEN"):
        return CheckLine("yandex: credentials", True, "YC_TOKEN is set")
    if key_file:
        if Path(key_file).expanduser().is_file():
            return CheckLine("yandex: credentials", True, f"YC_SERVICE_ACCOUNT_KEY_FILE={key_file}")
        return CheckLine(
            "yandex: credentials",
            False,
            f"YC_SERVICE_ACCOUNT_KEY_FILE names {key_file}, which does not exist",
            "yc iam key create --service-account-name <sa> --output key.json && "
            "export YC_SERVICE_ACCOUNT_KEY_FILE=$PWD/key.json",
        )
    return CheckLine(
        "yandex: credentials",
        False,
        "neither YC_TOKEN nor YC_SERVICE_ACCOUNT_KEY_FILE is set",
        "export YC_TOKEN=$(yc iam create-token)",
    )


def auth_kwargs(
    token: str | None, service_account_key: Mapping[str, str] | str | None
) -> dict[str, Any]:
    """SDK auth arguments from explicit values, else from the environment."""
    if token is None and service_account_key is None:
        token = os.environ.get("YC_TOKEN") or None
        service_account_key = os.environ.get("YC_SERVICE_ACCOUNT_KEY_FILE") or None
    if token:
        # IAM tokens start with 't1.'; anything else is an OAuth token to exchange.
        return {"iam_token": token} if token.startswith("t1.") else {"token": token}
    if service_account_key is None:
        raise CredentialsError(f"yandex: no credentials: {TOKEN_FIX}")
    if isinstance(service_account_key, str):
        path = Path(service_account_key).expanduser()
        try:
            key = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialsError(
                f"yandex: cannot read the service-account key {path}: {exc}; {TOKEN_FIX}"
            ) from None
    else:
        key = dict(service_account_key)
    missing = [k for k in ("id", "service_account_id", "private_key") if not key.get(k)]
    if missing:
        raise CredentialsError(
            f"yandex: the service-account key lacks {', '.join(missing)}: {TOKEN_FIX}"
        )
    return {"service_account_key": key}


def _image_from_api(image: Any) -> CloudImage:
    created = image.created_at.ToDatetime(tzinfo=timezone.utc)
    return CloudImage(
        name=image.name,
        id=image.id,
        family=image.family,
        labels=dict(image.labels),
        created=created.isoformat(timespec="microseconds"),
        deprecated=None,
    )


class YandexImageStore:
    """Images of one Yandex Cloud folder. ``endpoint``/``root_certificates`` are for fakes."""

    provider = "yandex"

    def __init__(
        self,
        folder_id: str,
        token: str | None = None,
        service_account_key: Mapping[str, str] | str | None = None,
        endpoint: str | None = None,
        root_certificates: bytes | None = None,
        timeout: float = 60.0,
        attempts: int = 3,
    ):
        if not folder_id:
            raise CloudError(
                "yandex: no folder: set build.yandex.folder_id in the image spec or export "
                "YC_FOLDER_ID=<folder_id>"
            )
        self.folder_id = folder_id
        self._timeout = timeout
        self._attempts = max(1, attempts)
        auth = auth_kwargs(token, service_account_key)
        import yandexcloud
        from yandex.cloud.compute.v1 import image_service_pb2, image_service_pb2_grpc
        from yandex.cloud.operation import operation_service_pb2, operation_service_pb2_grpc

        self._pb = image_service_pb2
        self._op_pb = operation_service_pb2
        kwargs: dict[str, Any] = dict(auth)
        if endpoint:
            kwargs["endpoint"] = endpoint
        if root_certificates:
            kwargs["root_certificates"] = root_certificates
        sdk = yandexcloud.SDK(**kwargs)
        # Endpoint discovery happens on the first client: failures are errors too.
        self._images = self._call(
            "discover the API endpoints",
            lambda: sdk.client(image_service_pb2_grpc.ImageServiceStub),
        )
        self._operations = self._call(
            "discover the API endpoints",
            lambda: sdk.client(operation_service_pb2_grpc.OperationServiceStub),
        )
        self._sdk = sdk

    # -- build VMs -----------------------------------------------------------

    def build_vm_lost(self, zone: str, instance: str) -> bool:
        """Whether the build VM ``instance`` (its name) is stopped or stopping: how
        Yandex ends a preemptible VM ("Preemptible VMs ... are stopped",
        https://yandex.cloud/en/docs/compute/concepts/preemptible-vm). Packer's
        cleanup deletes the VM after a failure, so a VM already gone is not
        confirmed: the caller then stops rather than retry blindly."""
        from yandex.cloud.compute.v1 import instance_pb2, instance_service_pb2
        from yandex.cloud.compute.v1 import instance_service_pb2_grpc as stubs

        client = self._call(
            "discover the API endpoints", lambda: self._sdk.client(stubs.InstanceServiceStub)
        )
        request = instance_service_pb2.ListInstancesRequest(
            folder_id=self.folder_id, filter=f'name = "{instance}"'
        )
        found = self._call(
            f"look up the build VM {instance}",
            lambda: client.List(request, timeout=self._timeout),
        )
        gone = (instance_pb2.Instance.STOPPED, instance_pb2.Instance.STOPPING)
        return any(
            i.name == instance and i.zone_id == zone and i.status in gone for i in found.instances
        )

    # -- lookups -------------------------------------------------------------

    def find_by_fingerprint(self, fingerprint: str, family: str | None = None) -> CloudImage | None:
        value = fingerprint_label_value(fingerprint)
        found = [
            image
            for image in self._list_folder(f"find the image with fingerprint {value}")
            if image.fingerprint_label == value and (family is None or image.family == family)
        ]
        return found[0] if found else None

    def latest_in_family(self, family: str) -> CloudImage | None:
        request = self._pb.GetImageLatestByFamilyRequest(folder_id=self.folder_id, family=family)
        image = self._call(
            f"get the latest image of family {family}",
            lambda: self._images.GetLatestByFamily(request, timeout=self._timeout),
            not_found=None,
        )
        return None if image is None else _image_from_api(image)

    def list_family(self, family: str) -> list[CloudImage]:
        what = f"list the images of family {family}"
        return [image for image in self._list_folder(what) if image.family == family]

    def _list_folder(self, what: str) -> list[CloudImage]:
        images: list[CloudImage] = []
        token = ""
        while True:
            request = self._pb.ListImagesRequest(
                folder_id=self.folder_id, page_size=1000, page_token=token
            )
            page: Any = self._call(what, partial(self._images.List, request, timeout=self._timeout))
            images.extend(_image_from_api(image) for image in page.images)
            token = page.next_page_token
            if not token:
                return newest_first(images)

    # -- mutations -------------------------------------------------------------

    def deprecate(
        self, image: CloudImage, replacement: CloudImage | None, state: str = "DEPRECATED"
    ) -> None:
        raise CloudError(
            f"yandex: images cannot be deprecated (folder {self.folder_id}, image {image.name}): "
            "Yandex Cloud has no deprecation; retire images by deleting them"
        )

    def delete(self, image: CloudImage) -> None:
        what = f"delete image {image.name} ({image.id})"
        request = self._pb.DeleteImageRequest(image_id=image.id)
        operation = self._call(
            what, lambda: self._images.Delete(request, timeout=self._timeout), retry=False
        )
        self._wait(operation, what)

    def rename(self, image: CloudImage, name: str) -> CloudImage:
        """Give ``image`` another name (UpdateImage with the field mask ``name``)."""
        from google.protobuf.field_mask_pb2 import FieldMask

        what = f"rename image {image.name} ({image.id}) to {name}"
        request = self._pb.UpdateImageRequest(
            image_id=image.id, update_mask=FieldMask(paths=["name"]), name=name
        )
        operation = self._call(
            what, lambda: self._images.Update(request, timeout=self._timeout), retry=False
        )
        self._wait(operation, what)
        return dataclasses.replace(image, name=name)

    def _wait(self, operation: Any, what: str) -> None:
        deadline = time.monotonic() + self._timeout
        delay = 0.1
        while not operation.done:
            if time.monotonic() > deadline:
                raise CloudError(
                    f"yandex: {what} in folder {self.folder_id}: operation {operation.id} not "
                    f"done after {self._timeout:.0f} s; check it with "
                    f"'yc operation get {operation.id}'"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            request = self._op_pb.GetOperationRequest(operation_id=operation.id)
            operation = self._call(
                what, partial(self._operations.Get, request, timeout=self._timeout)
            )
        if operation.HasField("error") and operation.error.code:
            raise CloudError(
                f"yandex: {what} in folder {self.folder_id} failed: {operation.error.message} "
                f"(operation {operation.id})"
            )

    # -- errors ------------------------------------------------------------------

    def _call(self, what: str, func: Callable[[], T], retry: bool = True, **fallback: Any) -> T:
        """Run ``func`` with a few retries on UNAVAILABLE; map gRPC errors to ours."""
        import grpc

        attempts = self._attempts if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return func()
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                detail = exc.details() if hasattr(exc, "details") else str(exc)
                if code == grpc.StatusCode.NOT_FOUND and "not_found" in fallback:
                    return fallback["not_found"]
                plugin_failed = "metadata from plugin" in (detail or "")
                if code == grpc.StatusCode.UNAVAILABLE and attempt < attempts and not plugin_failed:
                    time.sleep(0.5 * attempt)
                    continue
                raise self._error(what, code, detail) from None
        raise AssertionError("unreachable")

    def _error(self, what: str, code: Any, detail: str | None) -> Exception:
        import grpc

        where = f"yandex: cannot {what} in folder {self.folder_id}"
        name = code.name if code is not None else "error"
        detail = (detail or "").strip().splitlines()[0] if detail else ""
        if code == grpc.StatusCode.UNAUTHENTICATED or "metadata from plugin" in detail:
            return CredentialsError(f"{where}: credentials refused ({name}: {detail}); {TOKEN_FIX}")
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return CredentialsError(
                f"{where}: permission denied ({detail}): give the account the role "
                "compute.editor on the folder (yc resource-manager folder add-access-binding)"
            )
        if code == grpc.StatusCode.UNAVAILABLE:
            return CloudError(
                f"{where}: service unavailable after {self._attempts} attempts ({detail}); "
                "check the network and retry"
            )
        return CloudError(f"{where}: {name}: {detail}")
