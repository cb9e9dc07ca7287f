"""Opt-in real-cloud tier: the stores against the real APIs.

Runs only with credentials in the environment (GCP: ADC or
GOOGLE_APPLICATION_CREDENTIALS plus GOOGLE_CLOUD_PROJECT; Yandex: YC_TOKEN or
YC_SERVICE_ACCOUNT_KEY_FILE plus YC_FOLDER_ID). Each test copies a small public
image into a throwaway image labelled with a random fingerprint, finds it by
that fingerprint, retires it and deletes it, whatever happens in between.
"""

from __future__ import annotations

import os
import secrets

import pytest

from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.providers import get
from everbake.stores.gcp import gcp_credentials_hint
from everbake.stores.yandex import yandex_credentials_hint

pytestmark = [pytest.mark.cloud, pytest.mark.timeout(900)]


def need(hint, location, variable):
    if not hint.ok:
        pytest.skip(f"{hint.what}: {hint.detail} (fix: {hint.fix})")
    if not location:
        pytest.skip(f"{hint.what}: {variable} is not set")


def test_gcp_image_round_trip():
    project = get("gcp").location_in_env(os.environ)
    need(gcp_credentials_hint(), project, "GOOGLE_CLOUD_PROJECT")
    from google.cloud import compute_v1

    from everbake.stores.gcp import GcpImageStore

    fingerprint = secrets.token_hex(32)
    name = f"everbake-ci-{fingerprint[:12]}"
    store = GcpImageStore(project, timeout=600)
    client = compute_v1.ImagesClient()
    image = compute_v1.Image(
        name=name,
        family="everbake-ci",
        source_image="projects/debian-cloud/global/images/family/debian-12",
        labels={FINGERPRINT_LABEL: fingerprint_label_value(fingerprint)},
    )
    client.insert(project=project, image_resource=image).result(timeout=600)
    try:
        found = store.find_by_fingerprint(fingerprint, family="everbake-ci")
        assert found is not None and found.name == name
        store.deprecate(found, None)
        assert store.find_by_fingerprint(fingerprint).deprecated == "DEPRECATED"
    finally:
        store.delete(store.find_by_fingerprint(fingerprint) or found)
    assert store.find_by_fingerprint(fingerprint) is None


def test_yandex_image_round_trip():
    folder = get("yandex").location_in_env(os.environ)
    need(yandex_credentials_hint(), folder, "YC_FOLDER_ID")
    from yandex.cloud.compute.v1 import image_service_pb2, image_service_pb2_grpc

    from everbake.stores.yandex import YandexImageStore

    fingerprint = secrets.token_hex(32)
    store = YandexImageStore(folder, timeout=600)
    public = YandexImageStore("standard-images", timeout=60).latest_in_family("debian-12")
    assert public is not None, "standard-images has no debian-12 family"
    import yandexcloud

    from everbake.stores.yandex import auth_kwargs

    sdk = yandexcloud.SDK(**auth_kwargs(None, None))
    stub = sdk.client(image_service_pb2_grpc.ImageServiceStub)
    request = image_service_pb2.CreateImageRequest(
        folder_id=folder,
        name=f"everbake-ci-{fingerprint[:12]}",
        family="everbake-ci",
        labels={FINGERPRINT_LABEL: fingerprint_label_value(fingerprint)},
        image_id=public.id,
    )
    sdk.wait_operation_and_get_result(stub.Create(request), timeout=600)
    try:
        found = store.find_by_fingerprint(fingerprint, family="everbake-ci")
        assert found is not None
    finally:
        leftover = store.find_by_fingerprint(fingerprint)
        if leftover is not None:
            store.delete(leftover)
    assert store.find_by_fingerprint(fingerprint) is None
