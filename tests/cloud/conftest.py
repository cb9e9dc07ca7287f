"""Fixtures for the cloud tier: the loopback fakes and stores wired to them."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests.fakes.* without installing the repo
    sys.path.insert(0, str(ROOT))

from tests.fakes.gce import FakeGce  # noqa: E402
from tests.fakes.yandex_grpc import FakeYandex  # noqa: E402

PROJECT = "test-project"
FOLDER = "b1gtestfolder"


def service_account_key(
    path: Path, token_uri: str, email: str = f"builder@{PROJECT}.iam.gserviceaccount.com"
) -> Path:
    """A GCP service-account key file with a fresh RSA key, for the fake's token endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": email,
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


@pytest.fixture
def gce() -> Iterator[FakeGce]:
    with FakeGce(projects=[PROJECT]) as fake:
        yield fake


@pytest.fixture
def yc() -> Iterator[FakeYandex]:
    with FakeYandex() as fake:
        yield fake


@pytest.fixture
def gcp_store(gce: FakeGce):
    from google.auth.credentials import AnonymousCredentials

    from everbake.stores.gcp import GcpImageStore

    return GcpImageStore(PROJECT, AnonymousCredentials(), endpoint=gce.endpoint, timeout=10)


@pytest.fixture
def yandex_store(yc: FakeYandex):
    from everbake.stores.yandex import YandexImageStore

    return YandexImageStore(
        FOLDER,
        token=yc.iam_token,
        endpoint=yc.endpoint,
        root_certificates=yc.root_certificates,
        timeout=10,
    )
