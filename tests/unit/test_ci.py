"""everbake.ci: the plan -> GitLab child pipelines and GitHub matrices (data only)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from everbake import ci
from everbake.errors import EverbakeError

REPO = Path(__file__).resolve().parents[2]


def _rows(image: str, provider: str, base: str, top: str) -> list[dict[str, str]]:
    common = {"image": image, "provider": provider, "fingerprint": "f" * 64}
    return [
        {**common, "layer": "base", "action": base, "image_name": f"x-{image}-base"},
        {**common, "layer": "image", "action": top, "image_name": f"x-{image}"},
    ]


PLAN = [
    *_rows("optimization", "gcp", "build", "build (base missing)"),
    *_rows("optimization", "local", "reuse (cached)", "build"),
    *_rows("scip", "gcp", "none (image up to date)", "up to date"),
    *_rows("scip", "yandex", "unknown (no credentials: set YC_TOKEN)", "unknown (...)"),
]


def _gitlab_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "gitlab-ci.json").read_text(encoding="utf-8"))


def test_one_build_job_per_image_and_provider_in_plan_order() -> None:
    pipeline = ci.build_pipeline(ci.targets(PLAN))
    builds = [name for name, job in pipeline.items() if name.startswith("build ")]
    assert builds == [
        "build optimization gcp",
        "build optimization local",
        "build scip gcp",
        "build scip yandex",
    ]
    job = pipeline["build scip yandex"]
    assert job["script"][1:] == [
        "scripts/setup",
        ".venv/bin/invoke check --provider yandex",
        ".venv/bin/invoke build-image --image scip --provider yandex",
    ]
    assert job["script"][0].startswith("echo 'plan: scip on yandex: base: unknown")


def test_publish_only_cloud_images_the_plan_builds_after_their_build() -> None:
    pipeline = ci.build_pipeline(ci.targets(PLAN))
    publish = {name: job for name, job in pipeline.items() if name.startswith("publish ")}
    # local never (no Everest resource); scip on gcp is up to date; unknown counts as a build.
    assert sorted(publish) == ["publish optimization gcp", "publish scip yandex"]
    job = publish["publish optimization gcp"]
    assert job["needs"] == [{"job": "build optimization gcp", "artifacts": True}]
    assert job["script"][-1] == (
        ".venv/bin/invoke publish-resource --image optimization --provider gcp"
    )


@pytest.mark.parametrize("which", ["build", "gc"])
def test_child_pipelines_match_gitlab_schema(which: str) -> None:
    found = ci.targets(PLAN)
    pipeline = ci.build_pipeline(found) if which == "build" else ci.gc_pipeline(found, "$KEEP")
    jsonschema.validate(pipeline, _gitlab_schema())
    stages = set(pipeline["stages"])
    assert all(job["stage"] in stages for name, job in pipeline.items() if name != "stages")


def test_gc_jobs_keep_the_variable_and_cover_cloud_base_families() -> None:
    pipeline = ci.gc_pipeline(ci.targets(PLAN), "$EVERBAKE_GC_KEEP")
    gcp = pipeline["gc optimization gcp"]["script"]
    assert gcp[-2:] == [
        ".venv/bin/invoke gc-images --image optimization --provider gcp --keep $EVERBAKE_GC_KEEP",
        ".venv/bin/invoke gc-images --image optimization --provider gcp --layer base "
        "--keep $EVERBAKE_GC_KEEP",
    ]
    local = pipeline["gc optimization local"]["script"]
    assert not any("--layer base" in line for line in local)
    assert "--layer base" in pipeline["gc local base caches"]["script"][-1]


def test_github_matrices() -> None:
    matrix = ci.github_matrix(ci.targets(PLAN))
    assert len(matrix["build"]["include"]) == 4
    assert matrix["publish"]["include"] == [
        {"image": "optimization", "provider": "gcp"},
        {"image": "scip", "provider": "yandex"},
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not a plan"),
        ('{"image": "x"}', "not a list of plan rows"),
        ('[{"image": "x", "provider": "local", "layer": "base"}]', "row 1 has no action"),
        ("[]", "no rows"),
    ],
)
def test_bad_plan_files_name_the_flag_and_the_fix(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_text(content)
    with pytest.raises(EverbakeError) as caught:
        ci.write_pipelines(plan, tmp_path / "out.yml")
    message = str(caught.value)
    assert message.startswith(f"--plan {plan}: ") and expected in message
    assert "invoke plan --format json >" in message and "\n" not in message
    assert not (tmp_path / "out.yml").exists()


def test_keep_must_be_a_number_or_a_variable(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    with pytest.raises(EverbakeError, match=r"^--keep 3; rm -rf /: "):
        ci.write_pipelines(plan, tmp_path / "b.yml", tmp_path / "g.yml", keep="3; rm -rf /")


def test_task_writes_the_files_and_prints_what_builds(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    argv = [sys.executable, "-m", "invoke", "-r", str(REPO), "ci-pipeline", "--plan", str(plan)]
    argv += ["--output", "b.yml", "--gc-output", "g.yml", "--matrix-output", "m.json"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "build    optimization on gcp: base: build, image: build (base missing)",
        "build    optimization on local: base: reuse (cached), image: build",
        "current  scip on gcp: base: none (image up to date), image: up to date",
        "build    scip on yandex: base: unknown (no credentials: set YC_TOKEN), "
        "image: unknown (...)",
    ]
    # GitLab reads the JSON as YAML: the files parse as the data the library made.
    assert json.loads((tmp_path / "b.yml").read_text()) == ci.build_pipeline(ci.targets(PLAN))
    assert json.loads((tmp_path / "m.json").read_text()) == ci.github_matrix(ci.targets(PLAN))
    assert "gc" in json.loads((tmp_path / "g.yml").read_text())["stages"]


def test_task_error_is_one_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "invoke", "-r", str(REPO), "ci-pipeline", "--plan", "nope.json"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --plan nope.json: no such file; write it with: "
        "invoke plan --format json > nope.json"
    ]


def test_the_task_prints_what_each_rebuild_changes(tmp_path: Path) -> None:
    rows = [dict(row) for row in PLAN]
    rows[3].update(since="x-optimization-old", changes=["solver  highs  1.8.1 → 1.9.0"])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(rows))
    argv = [sys.executable, "-m", "invoke", "-r", str(REPO), "ci-pipeline", "--plan", str(plan)]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-3:] == [
        "changes of the images to build:",
        "optimization (local): x-optimization-old → x-optimization",
        "  solver  highs  1.8.1 → 1.9.0",
    ]
