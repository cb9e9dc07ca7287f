"""Opt-in real-cloud tier: build-image bakes a tiny image (no solvers, the fixture
agent) on each provider with the real packer, confirms it through the store,
then deletes both layers whatever happened.

Runs only with credentials in the environment (GCP: ADC or
GOOGLE_APPLICATION_CREDENTIALS plus GOOGLE_CLOUD_PROJECT; Yandex: YC_TOKEN or
YC_SERVICE_ACCOUNT_KEY_FILE plus YC_FOLDER_ID, and Packer >= 1.7); otherwise
each test skips with the reason. Costs a few minutes of a small VM per provider.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from everbake import packer
from everbake.bake import build_image
from everbake.providers import get
from everbake.stores.gcp import gcp_credentials_hint
from everbake.stores.yandex import yandex_credentials_hint
from tests.cloud.test_build_flow_cloud import make_repo

pytestmark = [pytest.mark.cloud, pytest.mark.timeout(3600)]


def need(hint, location, variable):
    if not hint.ok:
        pytest.skip(f"{hint.what}: {hint.detail} (fix: {hint.fix})")
    if not location:
        pytest.skip(f"{hint.what}: {variable} is not set")
    if packer.detect_version_or_none() is None:
        pytest.skip(f"packer is not installed: {packer.INSTALL_FIX}")


def tiny_spec(repo: Path, family: str) -> str:
    (repo / "images" / "cloudci.toml").write_text(
        f'name = "cloudci"\nfamily = "{family}"\ndescription = "everbake CI, deleted after"\n'
        '[agent]\nsource = "agent-src"\nref = "ci"\n'
    )
    return "cloudci"


def build_and_delete(provider: str, location: str, tmp_path: Path) -> None:
    family = f"everbake-ci-{secrets.token_hex(4)}"
    repo = make_repo(tmp_path / "repo")
    name = tiny_spec(repo, family)
    store = get(provider).open_store(location, os.environ)
    try:
        outcome = build_image(name, get(provider), images_dir=repo / "images")
        assert not outcome.up_to_date
        fingerprint = outcome.record["fingerprints"]["image"]
        found = store.find_by_fingerprint(fingerprint, family)
        assert found is not None and found.id == outcome.record["image_id"]
        again = build_image(name, get(provider), images_dir=repo / "images")
        assert again.up_to_date
    finally:
        for fam in (family, f"{family}-base"):
            for image in store.list_family(fam):
                store.delete(image)
    assert store.list_family(family) == [] and store.list_family(f"{family}-base") == []


def test_gcp_build_image_round_trip(tmp_path):
    project = get("gcp").location_in_env(os.environ)
    need(gcp_credentials_hint(), project, "GOOGLE_CLOUD_PROJECT")
    assert project is not None
    build_and_delete("gcp", project, tmp_path)


def test_yandex_build_image_round_trip(tmp_path):
    folder = get("yandex").location_in_env(os.environ)
    need(yandex_credentials_hint(), folder, "YC_FOLDER_ID")
    version = packer.detect_version()
    if not packer.supports_plugins(version):
        pytest.skip(f"packer {'.'.join(map(str, version))} has no yandex builder; need >= 1.7")
    assert folder is not None
    build_and_delete("yandex", folder, tmp_path)
