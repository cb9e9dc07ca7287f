"""GcpImageStore through the real google-cloud-compute client against the GCE REST fake."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from everbake.errors import CloudError, CredentialsError
from everbake.labels import FINGERPRINT_LABEL
from everbake.labels import fingerprint_label_value as fingerprint_label
from everbake.stores.gcp import GcpImageStore, gcp_credentials_hint
from tests.cloud.conftest import PROJECT, ROOT, service_account_key

FP_A = "a" * 64
FP_B = "b" * 64
NOW = datetime.now(timezone.utc)


def seed(gce, name, fingerprint, family="fam", days_ago=0.0, **kw):
    labels = {FINGERPRINT_LABEL: fingerprint_label(fingerprint)}
    return gce.add_image(
        PROJECT, name, family, labels, created=NOW - timedelta(days=days_ago), **kw
    )


def test_find_by_fingerprint_uses_the_label_filter(gce, gcp_store):
    seed(gce, "fam-aaaa", FP_A, days_ago=2)
    seed(gce, "fam-bbbb", FP_B, days_ago=1)
    found = gcp_store.find_by_fingerprint(FP_A)
    assert found is not None and found.name == "fam-aaaa"
    assert found.labels[FINGERPRINT_LABEL] == fingerprint_label(FP_A)
    query = gce.state.requests[-1].query
    assert query["filter"] == [f'labels.{FINGERPRINT_LABEL} = "{fingerprint_label(FP_A)}"']
    assert "orderBy" not in query  # GCE refuses a filter with a sort order


def test_find_by_fingerprint_in_a_family_filters_by_family_and_takes_the_newest(gce, gcp_store):
    seed(gce, "fam-old", FP_A, days_ago=3)
    seed(gce, "fam-new", FP_A, days_ago=1)
    seed(gce, "fam-bbbb", FP_B, days_ago=0)
    found = gcp_store.find_by_fingerprint(FP_A, family="fam")
    assert found is not None and found.name == "fam-new"
    query = gce.state.requests[-1].query
    assert query["filter"] == ['family = "fam"'] and "orderBy" not in query


def test_find_by_fingerprint_missing_is_none(gce, gcp_store):
    seed(gce, "fam-aaaa", FP_A)
    assert gcp_store.find_by_fingerprint(FP_B) is None


def test_find_by_fingerprint_restricted_to_family(gce, gcp_store):
    seed(gce, "other-aaaa", FP_A, family="other")
    assert gcp_store.find_by_fingerprint(FP_A, family="fam") is None
    assert gcp_store.find_by_fingerprint(FP_A, family="other").name == "other-aaaa"


def test_list_family_newest_first_across_pages(gce, gcp_store):
    for i in range(7):
        seed(gce, f"fam-{i}", f"{i}" * 64, days_ago=10 - i)
    seed(gce, "other-x", FP_A, family="other")
    # Force several pages: the store asks for 500, the fake would give all at once.
    gcp_store_small = gcp_store
    names = [image.name for image in gcp_store_small.list_family("fam")]
    assert names == [f"fam-{i}" for i in reversed(range(7))]


def test_pagination_is_followed(gce):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    for i in range(5):
        seed(gce, f"fam-{i}", f"{i}" * 64, days_ago=10 - i)
    client = compute_v1.ImagesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": gce.endpoint}
    )
    request = compute_v1.ListImagesRequest(
        project=PROJECT, max_results=2, order_by="creationTimestamp desc"
    )
    pages = client.list(request=request)
    assert [i.name for i in pages] == [f"fam-{i}" for i in reversed(range(5))]
    assert sum(1 for r in gce.state.requests if "pageToken" in r.query) == 2


def test_latest_in_family_skips_deprecated(gce, gcp_store):
    seed(gce, "fam-old", FP_A, days_ago=3)
    seed(gce, "fam-new", FP_B, days_ago=1, deprecated="DEPRECATED")
    assert gcp_store.latest_in_family("fam").name == "fam-old"
    assert gcp_store.latest_in_family("nothing") is None


def test_deprecate_names_replacement_and_time(gce, gcp_store):
    seed(gce, "fam-old", FP_A, days_ago=3)
    seed(gce, "fam-new", FP_B, days_ago=1)
    old, new = gcp_store.find_by_fingerprint(FP_A), gcp_store.find_by_fingerprint(FP_B)
    gcp_store.deprecate(old, new)
    status = gce.image(PROJECT, "fam-old")["deprecated"]
    assert status["state"] == "DEPRECATED"
    assert status["replacement"].endswith(f"projects/{PROJECT}/global/images/fam-new")
    again = gcp_store.find_by_fingerprint(FP_A)
    assert again.deprecated == "DEPRECATED" and again.deprecated_at is not None
    paths = [r.path for r in gce.state.requests]
    assert any(p.endswith("/wait") for p in paths), "must wait on the operation via our endpoint"


def test_delete_waits_and_removes(gce, gcp_store):
    seed(gce, "fam-old", FP_A)
    gcp_store.delete(gcp_store.find_by_fingerprint(FP_A))
    assert gce.image_names(PROJECT) == set()


def test_operation_error_is_reported(gce, gcp_store):
    seed(gce, "fam-old", FP_A)
    gce.state.operation_error = {"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", "message": "used"}
    with pytest.raises(CloudError, match=r"delete image fam-old .* RESOURCE_IN_USE"):
        gcp_store.delete(gcp_store.find_by_fingerprint(FP_A))


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (500, CloudError, "gcp: cannot find the image with fingerprint"),
        (403, CredentialsError, "permission denied"),
        (401, CredentialsError, "credentials refused"),
        (400, CloudError, "gcp: the API rejected the request to find"),
    ],
)
def test_errors_are_never_missing(gce, gcp_store, status, error, words):
    seed(gce, "fam-aaaa", FP_A)
    gce.fail(status)
    with pytest.raises(error, match=words) as info:
        gcp_store.find_by_fingerprint(FP_A)
    message = str(info.value)
    assert "\n" not in message and PROJECT in message


def test_service_unavailable_retries_within_timeout(gce, gcp_store):
    seed(gce, "fam-aaaa", FP_A)
    gce.fail(503, times=2)
    assert gcp_store.find_by_fingerprint(FP_A).name == "fam-aaaa"


def test_service_account_key_file_through_token_endpoint(gce, tmp_path, monkeypatch):
    """The real google-auth path from a key file: a Bearer token the fake accepts
    (a self-signed JWT, or an access token from the JWT exchange at token_uri)."""
    key_file = service_account_key(tmp_path / "sa.json", f"{gce.endpoint}/token")
    pem = json.loads(key_file.read_text())["private_key"]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    email = f"builder@{PROJECT}.iam.gserviceaccount.com"
    gce.state.require_token = gce.state.issued_token
    gce.state.accept_jwt_issuer = email
    seed(gce, "fam-aaaa", FP_A)
    store = GcpImageStore(PROJECT, endpoint=gce.endpoint, timeout=10)
    assert store.find_by_fingerprint(FP_A).name == "fam-aaaa"
    assert "Bearer " in gce.state.requests[-1].headers["authorization"]
    assert pem not in json.dumps([r.headers for r in gce.state.requests])
    # A refused token is one clear line, never taken for "missing".
    gce.state.require_token = "something-else"
    gce.state.accept_jwt_issuer = None
    store = GcpImageStore(PROJECT, endpoint=gce.endpoint, timeout=10)
    with pytest.raises(CredentialsError, match="gcp: credentials refused"):
        store.find_by_fingerprint(FP_A)


def test_no_credentials_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server either
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on a GCE VM: skip the slow probe
    with pytest.raises(CredentialsError) as info:
        GcpImageStore(PROJECT, endpoint="http://127.0.0.1:9")
    assert str(info.value).count("\n") == 0
    assert "gcloud auth application-default login" in str(info.value)


def test_credentials_hint_offline(tmp_path):
    missing = gcp_credentials_hint({"HOME": str(tmp_path)})
    assert not missing.ok and missing.fix == "gcloud auth application-default login"
    bad = gcp_credentials_hint({"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "nope.json")})
    assert not bad.ok and "does not exist" in bad.detail
    adc = tmp_path / ".config/gcloud/application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    assert gcp_credentials_hint({"HOME": str(tmp_path)}).ok


def test_importing_the_store_does_not_import_the_sdk():
    code = (
        "import sys; import everbake.stores.gcp, everbake.stores.yandex, everbake.retirement;"
        "bad=[m for m in sys.modules if m.startswith(('google.cloud','yandexcloud','grpc'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_fake_set_labels_needs_the_current_label_fingerprint(gce):
    """The fake keeps GCE's setLabels contract (whole map, current fingerprint)."""
    from google.api_core.exceptions import PreconditionFailed
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    seed(gce, "fam-aaaa", FP_A)
    client = compute_v1.ImagesClient(
        credentials=AnonymousCredentials(), client_options={"api_endpoint": gce.endpoint}
    )
    current = client.get(project=PROJECT, image="fam-aaaa")

    def set_labels(fingerprint):
        request = compute_v1.GlobalSetLabelsRequest(
            labels={"x": "1"}, label_fingerprint=fingerprint
        )
        return client.set_labels_unary(
            project=PROJECT, resource="fam-aaaa", global_set_labels_request_resource=request
        )

    with pytest.raises(PreconditionFailed):
        set_labels("stale=")
    set_labels(current.label_fingerprint)
    assert gce.image(PROJECT, "fam-aaaa")["labels"] == {"x": "1"}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.find_by_fingerprint(FP_A),
        lambda s: s.find_by_fingerprint(FP_A, "fam"),
        lambda s: s.latest_in_family("fam"),
        lambda s: s.list_family("fam"),
    ],
    ids=["find", "find-in-family", "latest", "list"],
)
def test_an_unknown_project_is_an_error_not_an_empty_project(gce, call):
    from google.auth.credentials import AnonymousCredentials

    store = GcpImageStore("no-such-project", AnonymousCredentials(), gce.endpoint, timeout=10)
    with pytest.raises(CloudError) as caught:
        call(store)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("gcp: project no-such-project was not found or these credentials")
    for cause in ("project id", "compute.googleapis.com", "role on the project"):
        assert cause in message
    assert gce.image_names("no-such-project") == set()  # the fake made no project either
