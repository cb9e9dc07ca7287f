"""End to end, for real: bake the default image locally (packer, mmdebstrap, chroot),
run examples/transport/job in it, check outputs, hygiene and secrets; a second
build is "up to date"; a test spec installs the agent from a local tarball laid
out like the real agent's source and embeds a secret."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import tarfile
import zipfile
from pathlib import Path

import pytest

from everbake.bake import build_image
from everbake.fingerprint import fingerprints
from everbake.localbuild.chroot import mounts_under
from everbake.localbuild.step_plan import base_cache_name
from everbake.runlocal import run_local
from everbake.spec import REPO_ROOT, load_spec
from tests.spec_text import without_agent_table

pytestmark = pytest.mark.slow

# Unique values: finding one anywhere in an image is a leak.
AGENT_TOKEN = "e2e-agent-token-7f3c9b1d2a"
GITLAB_TOKEN = "e2e-gitlab-token-5e8a0c4f61"
EMBED_TOKEN = "e2e-embedded-token-93b2d7e0c5"

_HYGIENE = [
    (re.compile(r"^etc/ssh/ssh_host_"), "SSH host key"),
    (re.compile(r"^var/cache/apt/archives/.*\.deb$"), "apt archive"),
    (re.compile(r"^var/lib/apt/lists/[^/]*_(Packages|InRelease|Release)"), "apt list"),
    (re.compile(r"^(root|home/[^/]+)/\.cache/pip/."), "pip cache"),
    (re.compile(r"^(root|home/[^/]+)/\.(bash_history|python_history)$"), "shell history"),
    (re.compile(r"^var/tmp/everbake-staging/"), "build staging"),
    (re.compile(r"^usr/local/share/ca-certificates/everbake-build/."), "build CA"),
    (re.compile(r"^var/lib/cloud/instances?/"), "cloud-init state"),
]


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name


@pytest.fixture(scope="module")
def default_image(base_cache: Path, monkeypatch_module) -> dict:
    monkeypatch_module.setenv("EVEREST_AGENT_TOKEN", AGENT_TOKEN)
    monkeypatch_module.setenv("EVEREST_GITLAB_TOKEN", GITLAB_TOKEN)
    outcome = build_image("optimization", force=True)
    return outcome.record


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_default_image_runs_the_transport_job(
    default_image: dict, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    tarball = Path(default_image["artifact"]["path"])
    before = hashlib.sha256(tarball.read_bytes()).hexdigest()
    statuses: list[str] = []
    # By image name: the tree may change under a long session; CI's does not.
    outcome = run_local(
        default_image["image"],
        REPO_ROOT / "examples/transport/job",
        runs_dir=tmp_path,
        on_status=statuses.append,
    )
    assert outcome.exit_code == 0 and not outcome.cancelled
    run = outcome.run_dir
    expected = json.loads((REPO_ROOT / "examples/transport/job/expected.json").read_text())
    with zipfile.ZipFile(run / "results.zip") as results:
        names = results.namelist()
        summary_name = next(n for n in names if n.endswith("summary.json"))
        summary = json.loads(results.read(summary_name))
    objective = summary["objective"]
    assert abs(objective - expected["objective"]) <= expected["tolerance"] * max(1, abs(objective))
    # Live status went through the agent protocol, and the last one is an output.
    assert statuses and any("optimal" in s for s in statuses)
    assert "153.675" in (run / "status.txt").read_text()
    assert (run / "version.txt").read_text().strip()
    stats = json.loads((run / "stats.json").read_text())
    assert stats["wall_seconds"] > 0 and stats["cpu_seconds"] >= 0 and stats["peak_rss_bytes"] > 0
    # The chart is there, and run-local says where.
    assert (run / "stats.svg").read_text().startswith("<svg ")
    assert f"CPU and memory over time: {run / 'stats.svg'}" in capfd.readouterr().err
    # The image itself is untouched and the scratch copy is gone, mounts released.
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == before
    assert not (run / "root").exists()
    assert mounts_under(tmp_path) == []


def test_default_image_is_clean_and_holds_no_secret(default_image: dict, walk_tarball) -> None:
    tarball = Path(default_image["artifact"]["path"])
    problems = []
    saw_runtime = False
    for member, data in walk_tarball(tarball):
        name = _norm(member.name)
        for pattern, what in _HYGIENE:
            if pattern.search(name):
                problems.append(f"{what}: {name}")
        if name == "etc/machine-id" and data.strip():
            problems.append("machine-id is set")
        for value in (AGENT_TOKEN, GITLAB_TOKEN):
            if value.encode() in data:
                problems.append(f"secret value in {name}")
        if "everest_runtime" in name:
            saw_runtime = True
    assert saw_runtime, "the runtime is not in the image"
    assert problems == []
    # Nor in what the build wrote beside the image.
    build_dir = REPO_ROOT / "build" / "local" / "optimization"
    written = [
        *build_dir.rglob("*"),
        *(REPO_ROOT / "dist" / "builds" / "local").glob("*.json"),
    ]
    for path in written:
        if path.is_file():
            text = path.read_bytes()
            assert AGENT_TOKEN.encode() not in text and GITLAB_TOKEN.encode() not in text, path


def test_second_build_is_up_to_date(default_image: dict, capsys) -> None:
    outcome = build_image("optimization")
    assert outcome.up_to_date
    assert "up to date" in capsys.readouterr().err
    assert outcome.record["artifact"] == default_image["artifact"]


def _pack_agent(tmp_path: Path) -> tuple[Path, str]:
    """tests/fixtures/agent-src as agent-test/... (one top folder, like GitLab archives)."""
    src = REPO_ROOT / "tests" / "fixtures" / "agent-src"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(src.rglob("*")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=f"agent-test/{path.relative_to(src)}", recursive=False)
    archive = tmp_path / "agent-test.tar.gz"
    archive.write_bytes(buffer.getvalue())
    return archive, hashlib.sha256(buffer.getvalue()).hexdigest()


def test_agent_from_a_local_tarball_and_an_embedded_secret(
    base_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walk_tarball
) -> None:
    archive, sha = _pack_agent(tmp_path)
    spec_text = without_agent_table((REPO_ROOT / "images" / "optimization.toml").read_text())
    spec_text = spec_text.replace('name = "optimization"', 'name = "e2e-agent"', 1)
    spec_text = spec_text.replace('family = "everbake-optimization"', 'family = "everbake-e2e"', 1)
    spec_text += f"""
[agent]
source = "{archive}"
sha256 = "{sha}"
required = true

[secrets.agent_token]
mode = "embed"
env = "EB_E2E_AGENT_TOKEN"

[build.local]
compression = "gzip"
"""
    spec_path = tmp_path / "e2e-agent.toml"
    spec_path.write_text(spec_text)
    monkeypatch.setenv("EB_E2E_AGENT_TOKEN", EMBED_TOKEN)
    caches_before = set(base_cache.glob("base-*.tar.zst"))
    outcome = build_image(str(spec_path), images_dir=REPO_ROOT / "images")
    record = outcome.record
    tarball = Path(record["artifact"]["path"])
    assert tarball.name.endswith(".tar.gz")  # the spec's build.local.compression
    found_in = []
    names = set()
    passwd = b""
    for member, data in walk_tarball(tarball):
        name = _norm(member.name)
        names.add(name)
        if name == "etc/passwd":
            passwd = data
        if EMBED_TOKEN.encode() in data:
            found_in.append((name, member.mode & 0o777, member.uid))
    assert len(found_in) == 1, found_in
    path, mode, uid = found_in[0]
    assert mode == 0o600
    user = next(line for line in passwd.decode().splitlines() if line.startswith("everest:"))
    assert uid == int(user.split(":")[2])
    # The agent went in from the tarball, with its config and unit.
    assert any(
        n.startswith("opt/everest/agent/") and n.endswith("everest_agent/start.py") for n in names
    )
    assert "etc/systemd/system/everest-agent.service" in names
    # Same base inputs as the default image: its base cache is the one used, and no
    # other appeared (other tests of the session may have cached other bases).
    default_base = base_cache_name(fingerprints(load_spec("optimization")).base)
    assert Path(record["base"]["cache"]).name == default_base
    assert set(base_cache.glob("base-*.tar.zst")) - caches_before <= {base_cache / default_base}
    for path in (REPO_ROOT / "build" / "local" / "e2e-agent").rglob("*"):
        if path.is_file():
            assert EMBED_TOKEN.encode() not in path.read_bytes(), path
    assert EMBED_TOKEN not in json.dumps(record)


SLOW_MODEL = """
import os, pathlib, signal, sys, time

def stop(signum, frame):
    pathlib.Path("out").mkdir(exist_ok=True)
    pathlib.Path("out/partial.json").write_text('{"stopped_by": %d}' % signum)
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
print("##status working", flush=True)
time.sleep(300)
"""


def test_ctrl_c_cancels_cleanly_and_keeps_partial_outputs(
    default_image: dict, tmp_path: Path
) -> None:
    model = tmp_path / "slow-model"
    model.mkdir()
    (model / "slow.py").write_text(SLOW_MODEL)
    (model / "everest.toml").write_text(
        '[model]\nname = "slow"\ncommand = ["python", "slow.py"]\nparameters = "none"\n'
        'results = ["out/*.json"]\n'
    )
    job = tmp_path / "job"
    job.mkdir()
    (job / "params.json").write_text("{}")

    def interrupt_once_working(text: str) -> None:
        # What a user's Ctrl-C does: SIGINT to this process while the task runs.
        if "working" in text:
            os.kill(os.getpid(), signal.SIGINT)

    runs = tmp_path / "runs"
    outcome = run_local(
        default_image["image"], job, model=model, runs_dir=runs, on_status=interrupt_once_working
    )
    assert outcome.cancelled
    with zipfile.ZipFile(outcome.run_dir / "results.zip") as results:
        partial = next(n for n in results.namelist() if n.endswith("partial.json"))
        assert json.loads(results.read(partial))["stopped_by"] == signal.SIGTERM
    # The runner's last word: it was stopped by SIGTERM and still collected results.
    assert "SIGTERM" in (outcome.run_dir / "status.txt").read_text()
    assert mounts_under(runs) == []
    assert not (outcome.run_dir / "root").exists()


def test_invoke_config_alone_picks_the_spec_to_bake_run_and_plan(
    default_image: dict, base_cache: Path, tmp_path: Path
) -> None:
    """INVOKE_EVERBAKE_IMAGES_DIR + INVOKE_EVERBAKE_IMAGE (and the dirs) reach build-image,
    run-local and plan: the spec in that dir is baked, run and planned, no flags."""
    from tests.integration.test_tasks import configured_images, run

    env = configured_images(tmp_path, "e2ecfg")  # EVERBAKE_LOCAL_CACHE: the session's

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return run(*args, env=env, timeout=900)

    built = invoke("build-image")
    assert built.returncode == 0, built.stderr[-3000:]
    tarballs = list((tmp_path / "dist" / "local").glob("everbake-e2ecfg-*.tar.zst"))
    assert len(tarballs) == 1
    assert list((tmp_path / "dist" / "builds" / "local").glob("everbake-e2ecfg-*.json"))
    assert (tmp_path / "build" / "local" / "e2ecfg" / "build.pkr.hcl").is_file()
    assert not (REPO_ROOT / "build" / "local" / "e2ecfg").exists()

    planned = invoke("plan", "--format", "json", "--provider", "local")
    assert planned.returncode == 0, planned.stderr
    rows = json.loads(planned.stdout)
    assert [(r["image"], r["layer"], r["exists"]) for r in rows] == [
        ("e2ecfg", "base", True),
        ("e2ecfg", "image", True),
    ]

    ran = invoke("run-local", "--job", "examples/transport/job")
    assert ran.returncode == 0, ran.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "results.zip").is_file()
    assert mounts_under(tmp_path) == []
