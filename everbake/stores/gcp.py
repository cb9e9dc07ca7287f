"""Google Compute Engine images through google-cloud-compute (imported lazily).

Mutations use the ``*_unary`` methods and wait on a GlobalOperationsClient built
with the same client options: the non-unary methods poll through an internal
client that ignores a custom endpoint and would talk to the real service.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from everbake.check_line import CheckLine
from everbake.errors import CloudError, CredentialsError
from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.stores import CloudImage, newest_first

T = TypeVar("T")

LOGIN_FIX = "run 'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"


def gcp_credentials_hint(env: dict[str, str] | None = None) -> CheckLine:
    """Say, without any network call, which GCP credentials would be used."""
    env = dict(os.environ) if env is None else env
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    if key_file:
        if Path(key_file).expanduser().is_file():
            return CheckLine("gcp: credentials", True, f"GOOGLE_APPLICATION_CREDENTIALS={key_file}")
        return CheckLine(
            "gcp: credentials",
            False,
            f"GOOGLE_APPLICATION_CREDENTIALS names {key_file}, which does not exist",
            "point GOOGLE_APPLICATION_CREDENTIALS at a service-account key file, "
            "or unset it and run 'gcloud auth application-default login'",
        )
    config_dir = env.get("CLOUDSDK_CONFIG")
    adc = (
        Path(config_dir) / "application_default_credentials.json"
        if config_dir
        else Path(env.get("HOME", "~")) / ".config/gcloud/application_default_credentials.json"
    )
    if adc.expanduser().is_file():
        return CheckLine("gcp: credentials", True, f"application default credentials in {adc}")
    return CheckLine(
        "gcp: credentials",
        False,
        "no application default credentials and GOOGLE_APPLICATION_CREDENTIALS is not set",
        "gcloud auth application-default login",
    )


def _image_from_api(image: Any) -> CloudImage:
    deprecated = None
    deprecated_at = None
    if "deprecated" in image and image.deprecated.state and image.deprecated.state != "ACTIVE":
        deprecated = image.deprecated.state
        deprecated_at = image.deprecated.deprecated or None
    return CloudImage(
        name=image.name,
        id=str(image.id),
        family=image.family,
        labels=dict(image.labels),
        created=image.creation_timestamp,
        deprecated=deprecated,
        deprecated_at=deprecated_at,
    )


class GcpImageStore:
    """Images of one GCP project. ``endpoint`` (e.g. http://127.0.0.1:8080) is for fakes."""

    provider = "gcp"

    def __init__(
        self,
        project: str,
        credentials: Any = None,
        endpoint: str | None = None,
        timeout: float = 60.0,
    ):
        if not project:
            raise CloudError(
                "gcp: no project: set build.gcp.project in the image spec or export "
                "GOOGLE_CLOUD_PROJECT=<project>"
            )
        from google.api_core import retry as retries
        from google.api_core.exceptions import ServiceUnavailable
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import compute_v1

        self.project = project
        self._compute = compute_v1
        self._timeout = timeout
        # Reads retry a 503 within our timeout (the library default is 600 s).
        self._retry = retries.Retry(
            initial=0.2,
            maximum=5.0,
            predicate=retries.if_exception_type(ServiceUnavailable),
            timeout=timeout,
        )
        options = {"api_endpoint": endpoint} if endpoint else None
        self._credentials, self._options = credentials, options
        try:
            self._images = compute_v1.ImagesClient(credentials=credentials, client_options=options)
            self._operations = compute_v1.GlobalOperationsClient(
                credentials=credentials, client_options=options
            )
        except DefaultCredentialsError:
            raise CredentialsError(
                f"gcp: no credentials for project {project}: {LOGIN_FIX}"
            ) from None

    # -- lookups ---------------------------------------------------------

    def find_by_fingerprint(self, fingerprint: str, family: str | None = None) -> CloudImage | None:
        value = fingerprint_label_value(fingerprint)
        what = f"find the image with fingerprint {value}"
        if family:
            # The family is the filter and the label is matched here: a family
            # holds few images, and no hyphenated label key reaches the filter.
            images = self.list_family(family)
        else:
            images = self._list(f'labels.{FINGERPRINT_LABEL} = "{value}"', what)
        found = [image for image in images if image.fingerprint_label == value]
        return found[0] if found else None

    def latest_in_family(self, family: str) -> CloudImage | None:
        what = f"get the latest image of family {family}"
        image = self._call(
            what,
            lambda: self._images.get_from_family(
                project=self.project, family=family, retry=self._retry, timeout=self._timeout
            ),
            not_found=None,
        )
        return None if image is None else _image_from_api(image)

    def list_family(self, family: str) -> list[CloudImage]:
        return self._list(f'family = "{family}"', f"list the images of family {family}")

    def _list(self, query: str, what: str) -> list[CloudImage]:
        """Images matching ``query``, newest first. The sorting is ours: GCE refuses a
        filter together with orderBy ("Specifying both a list filter and sort order
        is not currently supported")."""

        def run() -> list[CloudImage]:
            request = self._compute.ListImagesRequest(
                project=self.project, filter=query, max_results=500
            )
            pages = self._images.list(request=request, retry=self._retry, timeout=self._timeout)
            return newest_first([_image_from_api(image) for image in pages])

        return self._call(what, run, not_found=[])

    # -- build VMs ----------------------------------------------------------

    def build_vm_lost(self, zone: str, instance: str) -> bool:
        """Whether GCE preempted the build VM ``instance`` in ``zone``: the zone's
        operations hold one of type "compute.instances.preempted" targeting it
        (https://cloud.google.com/compute/docs/instances/preemptible#detecting_if_an_instance_was_preempted).
        """
        what = f"list the operations of zone {zone}"

        def run() -> bool:
            client = self._compute.ZoneOperationsClient(
                credentials=self._credentials, client_options=self._options
            )
            request = self._compute.ListZoneOperationsRequest(
                project=self.project,
                zone=zone,
                filter='operationType = "compute.instances.preempted"',
            )
            ops = client.list(request=request, retry=self._retry, timeout=self._timeout)
            return any(op.target_link.endswith(f"/instances/{instance}") for op in ops)

        return self._call(what, run)

    # -- mutations ---------------------------------------------------------

    def deprecate(
        self, image: CloudImage, replacement: CloudImage | None, state: str = "DEPRECATED"
    ) -> None:
        status = self._compute.DeprecationStatus(
            state=state,
            deprecated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if replacement is not None:
            status.replacement = f"projects/{self.project}/global/images/{replacement.name}"
        self._mutate(
            f"deprecate image {image.name}",
            lambda: self._images.deprecate_unary(
                project=self.project,
                image=image.name,
                deprecation_status_resource=status,
                timeout=self._timeout,
            ),
        )

    def delete(self, image: CloudImage) -> None:
        self._mutate(
            f"delete image {image.name}",
            lambda: self._images.delete_unary(
                project=self.project, image=image.name, timeout=self._timeout
            ),
        )

    def _mutate(self, what: str, start: Callable[[], Any]) -> None:
        operation = self._call(what, start)
        done = self._call(
            what,
            lambda: self._operations.wait(
                project=self.project, operation=operation.name, timeout=self._timeout
            ),
        )
        if done.status != self._compute.Operation.Status.DONE:
            raise CloudError(
                f"gcp: {what} in project {self.project}: operation {operation.name} "
                f"still {self._compute.Operation.Status(done.status).name} after "
                f"{self._timeout:.0f} s; check it with "
                f"'gcloud compute operations describe {operation.name}'"
            )
        errors = list(done.error.errors) if "error" in done else []
        if errors:
            message = "; ".join(f"{e.code}: {e.message}" for e in errors)
            raise CloudError(f"gcp: {what} in project {self.project} failed: {message}")

    # -- errors ----------------------------------------------------------------

    def _call(self, what: str, func: Callable[[], T], **fallback: Any) -> T:
        """Run ``func``; NotFound gives ``fallback['not_found']`` if given, else an error."""
        from google.api_core import exceptions as api
        from google.auth.exceptions import GoogleAuthError

        try:
            return func()
        except api.NotFound as exc:
            if f"The resource 'projects/{self.project}' was not found" in str(exc):
                # The project itself: never read as "no images" (cloud-sdks.md).
                raise CloudError(project_not_found(self.project)) from None
            if "not_found" in fallback:
                return fallback["not_found"]
            raise CloudError(
                f"gcp: cannot {what} in project {self.project}: not found ({_short(exc)})"
            ) from None
        except (api.Unauthorized, GoogleAuthError) as exc:
            raise CredentialsError(
                f"gcp: credentials refused while trying to {what} in project {self.project} "
                f"({_short(exc)}): {LOGIN_FIX}"
            ) from None
        except api.Forbidden as exc:
            raise CredentialsError(
                f"gcp: permission denied to {what} in project {self.project} ({_short(exc)}): "
                "grant the account roles/compute.storageAdmin on the project, or use another "
                "account"
            ) from None
        except api.BadRequest as exc:
            raise CloudError(
                f"gcp: the API rejected the request to {what} in project {self.project}: "
                f"{_short(exc)}; please report this as an everbake bug"
            ) from None
        except api.GoogleAPIError as exc:
            raise CloudError(
                f"gcp: cannot {what} in project {self.project}: {_short(exc)}; "
                "retry later or check https://status.cloud.google.com"
            ) from None
        except OSError as exc:
            raise CloudError(
                f"gcp: cannot {what} in project {self.project}: network error: {exc}"
            ) from None


def project_not_found(project: str) -> str:
    """One line for GCE's 404 on the project itself, with what usually causes it."""
    return (
        f"gcp: project {project} was not found or these credentials cannot see it: check "
        "the project id (build.gcp.project or GOOGLE_CLOUD_PROJECT), that the Compute "
        f"Engine API is enabled (gcloud services enable compute.googleapis.com --project "
        f"{project}) and that the account has a role on the project "
        "(e.g. roles/compute.storageAdmin)"
    )


def _short(exc: BaseException) -> str:
    """The first line of an SDK error, without the request dump some of them carry."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
