"""YandexImageStore through the real yandexcloud SDK against the gRPC fake (TLS)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from everbake.errors import CloudError, CredentialsError
from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.stores.yandex import YandexImageStore, yandex_credentials_hint
from tests.cloud.conftest import FOLDER

# The SDK can wait on UNAVAILABLE for minutes: no test here may hang.
pytestmark = pytest.mark.timeout(60)

FP_A = "a" * 64
FP_B = "b" * 64
NOW = datetime.now(timezone.utc)


def seed(yc, name, fingerprint, family="fam", days_ago=0.0, folder=FOLDER):
    labels = {FINGERPRINT_LABEL: fingerprint_label_value(fingerprint)}
    return yc.add_image(folder, name, family, labels, created=NOW - timedelta(days=days_ago))


def test_find_by_fingerprint_matches_the_label(yc, yandex_store):
    seed(yc, "fam-aaaa", FP_A, days_ago=2)
    seed(yc, "fam-bbbb", FP_B, days_ago=1)
    seed(yc, "fam-elsewhere", FP_B, folder="b1gotherfolder")
    found = yandex_store.find_by_fingerprint(FP_B)
    assert found is not None and found.name == "fam-bbbb" and found.id.startswith("fd8")
    assert yandex_store.find_by_fingerprint("c" * 64) is None
    assert yandex_store.find_by_fingerprint(FP_A, family="other") is None


def test_calls_carry_the_bearer_token_and_discover_endpoints(yc, yandex_store):
    seed(yc, "fam-aaaa", FP_A)
    yandex_store.find_by_fingerprint(FP_A)
    methods = [method for method, _ in yc.calls]
    assert methods[0] == "ApiEndpointService/List"
    listed = [meta for method, meta in yc.calls if method == "ImageService/List"]
    assert listed and listed[-1]["authorization"] == f"Bearer {yc.iam_token}"


def test_list_family_newest_first_across_pages(yc, yandex_store):
    for i in range(5):
        seed(yc, f"fam-{i}", f"{i}" * 64, days_ago=10 - i)
    seed(yc, "other-x", FP_A, family="other")
    names = [image.name for image in yandex_store.list_family("fam")]
    assert names == [f"fam-{i}" for i in reversed(range(5))]


def test_latest_in_family(yc, yandex_store):
    seed(yc, "fam-old", FP_A, days_ago=3)
    seed(yc, "fam-new", FP_B, days_ago=1)
    assert yandex_store.latest_in_family("fam").name == "fam-new"
    assert yandex_store.latest_in_family("nothing") is None


def test_delete_waits_for_the_operation(yc, yandex_store):
    seed(yc, "fam-old", FP_A)
    yandex_store.delete(yandex_store.find_by_fingerprint(FP_A))
    assert yc.image_names(FOLDER) == set()
    assert "OperationService/Get" in [method for method, _ in yc.calls]


def test_failed_operation_is_an_error(yc, yandex_store):
    seed(yc, "fam-old", FP_A)
    yc.operation_error = "image is used by a disk"
    with pytest.raises(CloudError, match=r"delete image fam-old .* used by a disk"):
        yandex_store.delete(yandex_store.find_by_fingerprint(FP_A))


def test_deprecate_is_not_supported(yc, yandex_store):
    image = yandex_store.find_by_fingerprint(seed(yc, "fam-a", FP_A).labels[FINGERPRINT_LABEL])
    with pytest.raises(CloudError, match="no deprecation"):
        yandex_store.deprecate(image, None)


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        (grpc.StatusCode.INTERNAL, CloudError, "INTERNAL"),
        (grpc.StatusCode.UNAUTHENTICATED, CredentialsError, "credentials refused"),
        (grpc.StatusCode.PERMISSION_DENIED, CredentialsError, "permission denied"),
        (grpc.StatusCode.UNAVAILABLE, CloudError, "unavailable after 3 attempts"),
    ],
)
def test_errors_are_never_missing(yc, yandex_store, code, error, words):
    seed(yc, "fam-aaaa", FP_A)
    yc.fail(code, "ImageService/")
    for lookup in (
        lambda: yandex_store.find_by_fingerprint(FP_A),
        lambda: yandex_store.latest_in_family("fam"),
    ):
        with pytest.raises(error, match=words) as info:
            lookup()
        assert "\n" not in str(info.value) and FOLDER in str(info.value)


def test_unavailable_then_recovers(yc, yandex_store):
    seed(yc, "fam-aaaa", FP_A)
    yc.fail(grpc.StatusCode.UNAVAILABLE, "ImageService/List", times=2)
    assert yandex_store.find_by_fingerprint(FP_A).name == "fam-aaaa"


def test_wrong_token_is_refused(yc):
    store = YandexImageStore(
        FOLDER, token="t1.wrong", endpoint=yc.endpoint, root_certificates=yc.root_certificates
    )
    with pytest.raises(CredentialsError, match=r"yandex: .*credentials refused"):
        store.find_by_fingerprint(FP_A)


def test_oauth_token_is_exchanged_for_an_iam_token(yc):
    seed(yc, "fam-aaaa", FP_A)
    store = YandexImageStore(
        FOLDER, token="y0_oauth", endpoint=yc.endpoint, root_certificates=yc.root_certificates
    )
    assert store.find_by_fingerprint(FP_A).name == "fam-aaaa"
    assert "IamTokenService/Create" in [method for method, _ in yc.calls]


def test_service_account_key_file_from_environment(yc, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "key.json"
    key_file.write_text(
        json.dumps({"id": "aje1", "service_account_id": "aje2", "private_key": pem})
    )
    monkeypatch.delenv("YC_TOKEN", raising=False)
    monkeypatch.setenv("YC_SERVICE_ACCOUNT_KEY_FILE", str(key_file))
    seed(yc, "fam-aaaa", FP_A)
    store = YandexImageStore(FOLDER, endpoint=yc.endpoint, root_certificates=yc.root_certificates)
    assert store.find_by_fingerprint(FP_A).name == "fam-aaaa"
    sent = json.dumps([meta for _, meta in yc.calls])
    assert "PRIVATE KEY" not in sent and pem[40:80] not in sent


def test_no_credentials_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("YC_TOKEN", raising=False)
    monkeypatch.delenv("YC_SERVICE_ACCOUNT_KEY_FILE", raising=False)
    with pytest.raises(CredentialsError) as info:
        YandexImageStore(FOLDER, endpoint="127.0.0.1:9")
    assert "\n" not in str(info.value) and "YC_TOKEN" in str(info.value)


def test_credentials_hint_offline(tmp_path):
    assert not yandex_credentials_hint({}).ok
    assert yandex_credentials_hint({}).fix == "export YC_TOKEN=$(yc iam create-token)"
    assert yandex_credentials_hint({"YC_TOKEN": "t1.x"}).ok
    missing = yandex_credentials_hint({"YC_SERVICE_ACCOUNT_KEY_FILE": str(tmp_path / "k.json")})
    assert not missing.ok and "does not exist" in missing.detail


def test_open_store_logs_in_with_the_env_it_is_given(yc, tmp_path, monkeypatch):
    from everbake.providers import get

    monkeypatch.setenv("YC_TOKEN", "t1.wrong")  # the process's own, not the one asked for
    env = yc.client_env(tmp_path)
    seed(yc, "fam-aaaa", FP_A)
    assert get("yandex").open_store(FOLDER, env).find_by_fingerprint(FP_A).name == "fam-aaaa"


def test_fake_image_names_are_unique_per_folder_only(yc):
    from yandex.cloud.compute.v1 import image_service_pb2, image_service_pb2_grpc

    channel = grpc.secure_channel(yc.endpoint, grpc.ssl_channel_credentials(yc.root_certificates))
    stub = image_service_pb2_grpc.ImageServiceStub(channel)
    auth = [("authorization", f"Bearer {yc.iam_token}")]

    def create(folder: str) -> None:
        request = image_service_pb2.CreateImageRequest(folder_id=folder, name="same-name")
        stub.Create(request, metadata=auth, timeout=10)

    create(FOLDER)
    create("b1gotherfolder")  # another folder may use the name
    with pytest.raises(grpc.RpcError) as caught:
        create(FOLDER)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    channel.close()
