"""diff-images' pure parts: two image descriptions -> the difference (stable JSON and
table rows), an image found by name, fingerprint, record path or spec, the CI plan's
changes, and the replay's comparison of two output directories."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from everbake import build_plan, image_packages
from everbake.errors import EverbakeError
from everbake.image_inputs import summary, would_be_record
from everbake.image_lookup import find_image
from everbake.providers import get
from everbake.records import record_path, write_record
from everbake.replay import ReplayError, compare, read_job, stage_inputs
from everbake.settings import Settings
from everbake.spec import load_spec


def record(image: str, fp: str, highspy: str, runtime: str, **debian: str) -> dict[str, Any]:
    return {
        "image": image,
        "provider": "local",
        "spec": "optimization",
        "fingerprints": {"base": "b" * 64, "image": fp},
        "agent_content": "none",
        "inputs": {
            "solvers": {"highs": highspy, "cbc": "2.10.8+ds1-1"},
            "python_packages": {"pulp": "2.9.0"},
            "scripts": {"provisioning/10-base.sh": "1" * 64},
            "runtime": runtime * 64,
            "runtime_version": "0.1.0",
            "base_os": {"local": {"suite": "bookworm"}},
        },
        "packages": {
            "debian": {"libc6": "2.36-9", **debian},
            "python": {"highspy": highspy, "everest-runtime": "0.1.0"},
        },
    }


A = record("opt-aaaa", "a" * 64, "1.8.1", "1", tzdata="2024a-0")
B = record("opt-bbbb", "c" * 64, "1.9.0", "2", curl="7.88.1-10")


def test_the_difference_names_both_versions_and_is_stable() -> None:
    found = image_packages.diff(image_packages.describe(A), image_packages.describe(B))
    assert found["solvers"] == {
        "added": {},
        "removed": {},
        "changed": {"highs": ["1.8.1", "1.9.0"]},
    }
    assert found["packages"]["python"]["changed"] == {"highspy": ["1.8.1", "1.9.0"]}
    assert found["packages"]["debian"]["added"] == {"curl": "7.88.1-10"}
    assert found["packages"]["debian"]["removed"] == {"tzdata": "2024a-0"}
    assert found["runtime"] == ["1" * 64, "2" * 64] and found["runtime_version"] is None
    assert found["agent"] is None and not found["same_image"]
    assert image_packages.differs(found)
    rows = image_packages.lines(found)
    assert any(r.split() == ["solver", "highs", "1.8.1", "→", "1.9.0"] for r in rows), rows
    assert any("debian package" in r and "curl" in r and "- → 7.88.1-10" in r for r in rows)
    assert any(r.startswith("runtime") and "111111111111 → 222222222222" in r for r in rows)
    # The same inputs give byte-identical JSON (no set order, no time in it).
    again = image_packages.diff(image_packages.describe(A), image_packages.describe(B))
    assert json.dumps(found, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_an_image_against_itself_and_an_unknown_side() -> None:
    same = image_packages.diff(image_packages.describe(A), image_packages.describe(A))
    assert same["same_image"] and not image_packages.differs(same)
    assert image_packages.lines(same) == []
    unknown = {**image_packages.describe(B), "scripts": None, "packages": None}
    found = image_packages.diff(image_packages.describe(A), unknown)
    assert found["scripts"] is None and found["packages"] == {}  # left out, not "all removed"
    assert found["packages_known"] == {"a": True, "b": False}


def test_an_image_is_found_by_name_fingerprint_record_or_spec(tmp_path: Path) -> None:
    settings = Settings(dist_dir=tmp_path)
    write_record(record_path(tmp_path, "local", "opt-aaaa"), A)
    write_record(record_path(tmp_path, "gcp", "opt-bbbb"), {**B, "provider": "gcp"})
    assert find_image("opt-aaaa", settings)["image"] == "opt-aaaa"
    assert find_image("c" * 12, settings)["provider"] == "gcp"
    path = record_path(tmp_path, "local", "opt-aaaa")
    assert find_image(str(path), settings)["image"] == "opt-aaaa"
    spec = find_image("optimization", settings)  # what the spec makes now
    assert spec["spec"] == "optimization" and spec["packages"] is None
    write_record(record_path(tmp_path, "yandex", "opt-aaaa"), {**A, "provider": "yandex"})
    with pytest.raises(EverbakeError, match=r"several providers.*--provider"):
        find_image("opt-aaaa", settings)
    assert find_image("opt-aaaa", settings, "yandex")["provider"] == "yandex"
    with pytest.raises(EverbakeError, match=r"no build record .* and it is no spec name"):
        find_image("nothing-like-it", settings)


def test_the_summary_names_each_input_of_a_spec() -> None:
    spec = load_spec("optimization")
    found = summary(spec)
    assert found["solvers"]["highs"] == "1.8.1"
    assert "provisioning/85-packages.sh" in found["scripts"]
    assert found["runtime_version"] == "0.1.0" and len(found["runtime"]) == 64
    would = would_be_record(spec, "local")
    assert would["packages"] is None and would["image"].startswith(spec.family)


def test_the_plan_shows_what_each_rebuild_changes(tmp_path: Path) -> None:
    spec = load_spec("optimization")
    settings = Settings(dist_dir=tmp_path)
    old = {**A, "spec": spec.name, "created": "2026-01-01T00:00:00Z"}
    write_record(record_path(tmp_path, "local", "opt-aaaa"), old)
    rows = build_plan.plan_rows([spec], [get("local")])
    for row in rows:
        row["action"] = "build"
    build_plan.add_changes(rows, [spec], settings)
    image_row = next(r for r in rows if r["layer"] == "image")
    assert image_row["since"] == "opt-aaaa"
    changes = image_row["changes"]
    assert any(c.startswith("script") and "provisioning/85-packages.sh" in c for c in changes)
    assert any(c.startswith("runtime ") and "111111111111 → " in c for c in changes)
    assert not any("highs" in c for c in changes)  # the same solver version
    text = build_plan.format_changes(rows)
    assert text.startswith(f"optimization (local): opt-aaaa → {image_row['image_name']}")
    assert "base" not in {r["layer"] for r in rows if "changes" in r}


def write_outputs(where: Path, status: str, summary_json: str, exit_code: int) -> None:
    where.mkdir(parents=True)
    (where / "status.txt").write_text(status + "\n")
    (where / "provenance.json").write_text(json.dumps({"task": {"exit_code": exit_code}}))
    with zipfile.ZipFile(where / "results.zip", "w") as zf:
        zf.writestr("out/summary.json", summary_json)
        zf.writestr("out/metrics.json", json.dumps({"objective": 153.675, "gap": 0}))


def test_compare_says_same_or_each_difference(tmp_path: Path) -> None:
    write_outputs(tmp_path / "job", "optimal: cost 153.675", '{"solver": "HiGHS 1.8.1"}', 0)
    write_outputs(tmp_path / "same", "optimal: cost 153.675", '{"solver": "HiGHS 1.8.1"}', 0)
    write_outputs(tmp_path / "other", "infeasible", '{"solver": "HiGHS 1.9.0"}', 1)
    assert compare(tmp_path / "job", tmp_path / "same") == []
    write_outputs(tmp_path / "slow", "failed: exit 2 after 0.3 s", "{}", 2)
    write_outputs(tmp_path / "fast", "failed: exit 2 after 0.1 s", "{}", 2)
    assert compare(tmp_path / "slow", tmp_path / "fast") == []  # times are not compared
    found = compare(tmp_path / "job", tmp_path / "other")
    assert found[0] == "last status: 'optimal: cost 153.675' -> 'infeasible'"
    assert "exit status: 0 -> 1" in found
    assert any(line.startswith("result out/summary.json: differs") for line in found)


def test_a_job_dir_without_provenance_or_record_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such job directory; fetch the job first"):
        read_job(tmp_path / "missing")
    (tmp_path / "j").mkdir()
    with pytest.raises(ReplayError, match=r"provenance.json: missing"):
        read_job(tmp_path / "j")
    (tmp_path / "j" / "provenance.json").write_text("{}")
    with pytest.raises(ReplayError, match=r"submission.json: missing"):
        read_job(tmp_path / "j")


class Files:
    def __init__(self, content: dict[str, bytes]) -> None:
        self.content = content

    def download(self, uri: str, dest: Path) -> int:
        dest.write_bytes(self.content[uri])
        return len(self.content[uri])


def test_inputs_are_the_jobs_own_checked_by_digest(tmp_path: Path) -> None:
    params, data = b'{"freight": 90}', b"data bytes"
    provenance = {
        "inputs": {
            "parameters": {"file": "params.json", "sha256": hashlib.sha256(params).hexdigest()},
            "data": {"file": "data.archive", "sha256": hashlib.sha256(data).hexdigest()},
        }
    }
    sent = {"inputs": {"parameters": "/api/files/p", "data": "/api/files/d", "version": "main"}}
    files = Files({"/api/files/p": params, "/api/files/d": data})
    job = stage_inputs(tmp_path, tmp_path / "in", provenance, sent, files, debug=True)
    assert (job / "params.json").read_bytes() == params
    values = json.loads((job / "inputs.json").read_text())
    assert values == {"parameters": "params.json", "data": "data.archive", "version": "main",
                      "debug": True}  # fmt: skip
    files.content["/api/files/d"] = b"changed since"
    with pytest.raises(ReplayError, match="is not what its task read"):
        stage_inputs(tmp_path, tmp_path / "in2", provenance, sent, files, debug=False)
    with pytest.raises(ReplayError, match="set EVEREST_URL and log in"):
        stage_inputs(tmp_path, tmp_path / "in3", provenance, sent, None, debug=False)
