"""Open the image store of a provider from plain settings and the environment.

``EVERBAKE_GCE_ENDPOINT`` / ``EVERBAKE_YANDEX_ENDPOINT`` (and
``EVERBAKE_YANDEX_CA_FILE``, a PEM file to trust) point the SDKs at another
API endpoint: a private one, or the loopback fakes in tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from everbake.errors import CloudError, EverbakeError
from everbake.location import from_env, missing
from everbake.stores import CredentialsHint, ImageStore

PROVIDERS = ("gcp", "yandex")


def open_store(
    provider: str, location: str | None, env: Mapping[str, str] | None = None
) -> ImageStore:
    """The store for ``provider`` in ``location`` (GCP project / Yandex folder id).

    An empty location falls back to the environment (everbake.location.from_env).
    """
    env = os.environ if env is None else env
    if provider == "gcp":
        from everbake.stores.gcp import GcpImageStore

        project = location or from_env("gcp", env)
        if not project:
            raise CloudError(missing("gcp"))
        return GcpImageStore(project, endpoint=env.get("EVERBAKE_GCE_ENDPOINT") or None)
    if provider == "yandex":
        from everbake.stores.yandex import YandexImageStore

        folder = location or from_env("yandex", env)
        if not folder:
            raise CloudError(missing("yandex"))
        ca_file = env.get("EVERBAKE_YANDEX_CA_FILE")
        try:
            roots = Path(ca_file).read_bytes() if ca_file else None
        except OSError as exc:
            raise CloudError(
                f"EVERBAKE_YANDEX_CA_FILE={ca_file}: {exc.strerror}; point it at a PEM file "
                "or unset it"
            ) from None
        # The credentials of ``env``, the same ones credentials_hint() judged.
        return YandexImageStore(
            folder,
            token=env.get("YC_TOKEN") or None,
            service_account_key=env.get("YC_SERVICE_ACCOUNT_KEY_FILE") or None,
            endpoint=env.get("EVERBAKE_YANDEX_ENDPOINT") or None,
            root_certificates=roots,
        )
    raise EverbakeError(f"unknown provider '{provider}': choose one of {', '.join(PROVIDERS)}")


def credentials_hint(provider: str, env: Mapping[str, str]) -> CredentialsHint:
    """Whether ``env`` holds credentials for ``provider``'s cloud (no network)."""
    if provider == "gcp":
        from everbake.stores.gcp import gcp_credentials_hint

        return gcp_credentials_hint(dict(env))
    from everbake.stores.yandex import yandex_credentials_hint

    return yandex_credentials_hint(env)
