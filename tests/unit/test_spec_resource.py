"""The [resource] table's service account references and oversubscribe: accepted
as references, a key is refused in one line that never echoes it."""

from __future__ import annotations

import json

import pytest

from everbake.errors import SpecError
from everbake.fingerprint import fingerprints
from everbake.spec import load_spec

EMAIL = "runner@test-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
YANDEX_ID = "ajelprpohp7r8e1pv7m2"
ACCOUNTS = (
    f'[resource.gcp]\nservice_account = "{EMAIL}"\nscopes = ["{SCOPE}"]\n'
    f'[resource.yandex]\nservice_account_id = "{YANDEX_ID}"\n'
)
PEM = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANhunter2\\n-----END PRIVATE KEY-----"
# The shape of a GCE JSON key file; the marker stands in for the key's value.
JSON_KEY = json.dumps({"type": "service_account", "private_key": "hunter2", "client_email": EMAIL})


def problems_of(path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


def test_defaults_name_no_account_and_no_oversubscribing(write_spec, minimal_spec):
    resource = load_spec(write_spec(minimal_spec)).resource
    assert (resource.gcp.service_account, resource.gcp.scopes) == ("", ())
    assert resource.yandex.service_account_id == ""
    assert resource.oversubscribe is False


def test_references_are_accepted(write_spec, minimal_spec):
    spec = load_spec(write_spec(minimal_spec + f"\n[resource]\noversubscribe = true\n{ACCOUNTS}"))
    assert spec.resource.gcp.service_account == EMAIL
    assert spec.resource.gcp.scopes == (SCOPE,)
    assert spec.resource.yandex.service_account_id == YANDEX_ID
    assert spec.resource.oversubscribe is True


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gcp.service_account", JSON_KEY),
        ("gcp.service_account", PEM),
        ("gcp.service_account", "/home/me/keys/runner-1a2b3c.json"),
        ("yandex.service_account_id", JSON_KEY),
        ("yandex.service_account_id", "authorized_key.json"),
        ("yandex.service_account_id", PEM),
    ],
    ids=["gcp-json", "gcp-pem", "gcp-path", "yandex-json", "yandex-path", "yandex-pem"],
)
def test_a_key_is_refused_in_one_line_without_echoing_it(write_spec, minimal_spec, key, value):
    table, name = key.split(".")
    quoted = json.dumps(value)  # a TOML basic string
    problems = problems_of(write_spec(f"{minimal_spec}\n[resource.{table}]\n{name} = {quoted}\n"))
    assert len(problems) == 1, problems
    assert f"resource.{key}: this looks like a service account key" in problems[0]
    assert "give the account's email or id instead, never a key" in problems[0]
    assert "\n" not in problems[0] and "hunter2" not in problems[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[resource.gcp]\nservice_account = "runner"', "resource.gcp.service_account: 'runner'"),
        ('[resource.gcp]\nscopes = ["cloud-platform"]', "resource.gcp.scopes[0]:"),
        (f'[resource.gcp]\nscopes = ["{SCOPE}"]', "set resource.gcp.service_account too"),
        ('[resource.yandex]\nservice_account_id = "Runner SA"', "is not a service account id"),
        ("[resource.gcp]\nservice_acount = 'x'", "did you mean 'service_account'?"),
        ("[resource]\noversubscribe = 'yes'", "resource.oversubscribe: expected"),
    ],
    ids=["not-email", "bad-scope", "scopes-alone", "bad-id", "typo", "not-bool"],
)
def test_bad_references_are_one_clear_line(write_spec, minimal_spec, extra, expected):
    problems = problems_of(write_spec(f"{minimal_spec}\n{extra}\n"))
    assert any(expected in p for p in problems), problems


def test_resource_keys_do_not_change_the_fingerprints(write_spec, minimal_spec):
    plain = fingerprints(load_spec(write_spec(minimal_spec)), agent="")
    extra = f"\n[resource]\noversubscribe = true\ntask_slots = 16\n{ACCOUNTS}"
    assert fingerprints(load_spec(write_spec(minimal_spec + extra)), agent="") == plain
