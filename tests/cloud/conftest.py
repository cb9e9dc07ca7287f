"""Fixtures for the cloud tier: the loopback fakes and stores wired to them."""

from __future__ import annotations

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


@pytest.fixture
def gce() -> Iterator[FakeGce]:
    with FakeGce() as fake:
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
