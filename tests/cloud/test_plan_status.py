"""`exists` and `action` per layer, image and provider: looked up in the fakes through
the real SDKs; unknown (with the reason) whenever a lookup cannot be made."""

from __future__ import annotations

import json

import pytest

from everbake import build_plan as planning
from everbake import naming
from everbake.fingerprint import fingerprints
from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.localbuild.step_plan import base_cache_name, cache_dir_in
from everbake.providers import get
from tests.cloud.conftest import FOLDER, PROJECT
from tests.cloud.test_build_flow_cloud import cloud, repo, spec_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(120)


def seed(fakes, spec, layers, provider="gcp"):
    fps = fingerprints(spec)
    for layer in layers:
        name = naming.image_name(spec, fps, layer)
        labels = {FINGERPRINT_LABEL: fingerprint_label_value(fps.of(layer))}
        family = naming.family(spec, layer)
        if provider == "gcp":
            fakes["gce"].add_image(PROJECT, name, family, labels)
        else:
            fakes["yc"].add_image(FOLDER, name, family, labels)


def status(spec, names, **kwargs):
    providers = [get(name) for name in names]
    rows = planning.plan_rows([spec], providers)
    planning.add_status(rows, [spec], providers, **kwargs)
    return {(r["provider"], r["layer"]): (r["exists"], r["action"]) for r in rows}


def test_nothing_built_then_base_only_then_both(repo, cloud):  # noqa: F811
    spec = spec_in(repo)
    assert status(spec, ["gcp", "yandex"]) == {
        ("gcp", "base"): (False, "build"),
        ("gcp", "image"): (False, "build (base missing)"),
        ("yandex", "base"): (False, "build"),
        ("yandex", "image"): (False, "build (base missing)"),
    }
    seed(cloud, spec, ["base"], "gcp")
    seed(cloud, spec, ["base", "image"], "yandex")
    assert status(spec, ["gcp", "yandex"]) == {
        ("gcp", "base"): (True, "reuse"),
        ("gcp", "image"): (False, "build"),
        ("yandex", "base"): (True, "none (image up to date)"),
        ("yandex", "image"): (True, "up to date"),
    }
    # An image whose base was retired since: nothing to build either.
    seed(cloud, spec, ["image"], "gcp")
    del cloud["gce"].state.images[PROJECT][naming.image_name(spec, fingerprints(spec), "base")]
    assert status(spec, ["gcp"]) == {
        ("gcp", "base"): (False, "none (image up to date)"),
        ("gcp", "image"): (True, "up to date"),
    }


def test_offline_skips_every_lookup(repo, cloud):  # noqa: F811
    spec = spec_in(repo)
    got = status(spec, ["gcp", "yandex"], offline=True)
    assert set(got.values()) == {(None, "unknown (--offline)")}
    assert cloud["gce"].state.requests == [] and cloud["yc"].calls == []


def test_no_credentials_says_unknown_with_the_fix(repo, cloud, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.delenv("YC_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    got = status(spec_in(repo), ["gcp", "yandex"])
    assert got[("gcp", "image")] == (
        None,
        "unknown (no credentials: gcloud auth application-default login)",
    )
    assert got[("yandex", "base")] == (
        None,
        "unknown (no credentials: export YC_TOKEN=$(yc iam create-token))",
    )
    assert cloud["gce"].state.requests == [] and cloud["yc"].calls == []


def test_a_failed_lookup_is_unknown_not_missing(repo, cloud):  # noqa: F811
    cloud["gce"].fail(500, "/global/images")
    got = status(spec_in(repo), ["gcp"])
    for layer in ("base", "image"):
        exists, action = got[("gcp", layer)]
        assert exists is None and action.startswith("unknown (lookup failed: gcp: ")


def test_no_project_is_unknown_with_the_fix(repo, cloud, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    exists, action = status(spec_in(repo), ["gcp"])[("gcp", "image")]
    assert exists is None and "export GOOGLE_CLOUD_PROJECT=<project>" in action


def test_local_status_from_cache_and_record(repo, cloud):  # noqa: F811
    spec = spec_in(repo)
    assert status(spec, ["local"]) == {
        ("local", "base"): (False, "build"),
        ("local", "image"): (False, "build (base missing)"),
    }
    cache = cache_dir_in(repo / "dist") / base_cache_name(fingerprints(spec).base)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"tarball")
    assert status(spec, ["local"])[("local", "base")] == (True, "reuse (cached)")
    assert status(spec, ["local"])[("local", "image")] == (False, "build")


def test_table_and_json_show_the_new_columns(repo, cloud):  # noqa: F811
    spec = spec_in(repo)
    seed(cloud, spec, ["base"])
    gcp = [get("gcp")]
    rows = planning.add_status(planning.plan_rows([spec], gcp), [spec], gcp, offline=False)
    table = planning.format_table(rows, planning.STATUS_COLUMNS).splitlines()
    assert table[0].split() == [
        "IMAGE",
        "PROVIDER",
        "LAYER",
        "FINGERPRINT",
        "IMAGE_NAME",
        "EXISTS",
        "ACTION",
    ]
    assert table[1].split()[-2:] == ["yes", "reuse"]
    assert table[2].split()[-2:] == ["no", "build"]
    data = json.loads(planning.format_json(rows))
    assert [(r["exists"], r["action"]) for r in data] == [(True, "reuse"), (False, "build")]
    offline = planning.add_status(planning.plan_rows([spec], gcp), [spec], gcp, offline=True)
    assert planning.format_table(offline, planning.STATUS_COLUMNS).splitlines()[1].split()[-3:] == [
        "?",
        "unknown",
        "(--offline)",
    ]
