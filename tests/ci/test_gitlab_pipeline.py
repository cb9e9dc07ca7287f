"""The GitLab pipeline (.gitlab-ci.yml), for real: gitlab-ci-local (pinned in
package.json, installed by scripts/setup --tests) runs it with the shell executor in a
throwaway git repository made from this tree, with a bare local remote as
origin (its HEAD gives CI_DEFAULT_BRANCH), for the local provider.

The first pipeline bakes every image; a commit bumping one solver version
bakes both layers of that image and nothing else; a commit touching only a
comment, a zone and the README bakes nothing, and every build job says "up to
date". A pipeline for gcp without credentials fails each build job at
`invoke check --provider gcp`, which prints the fix.

gitlab-ci-local 4.60.0 runs the keywords the pipeline uses (workflow rules,
rules, needs, artifacts, `trigger: include: artifact`) except one: it does not
honour `trigger: strategy: depend` (a trigger job always passes), so a failed
child job is read from its summary, not from the exit status.

The `tests` job (`.ci/run` without the slow tier; .ci/run runs this file) is
left out with the pipeline's own switch EVERBAKE_CI_TESTS=false; every other
job of a push to the default branch runs.

Speed: the jobs run `scripts/setup` like real CI, with the repository's `.venv`
linked in (the copy has the same pyproject files, so set-up finds it current and
installs nothing); the base-layer cache (EVERBAKE_LOCAL_CACHE) lives beside the
repository for the three pipelines that bake. The publish stage has no job for the local
provider: an Everest resource starts cloud VMs (everbake.ci.PUBLISHED).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GITLAB_CI_LOCAL = REPO / "node_modules" / ".bin" / "gitlab-ci-local"
# The jobs of a push to the default branch, but `tests` (see the docstring). Naming
# them on gitlab-ci-local's command line would not do: it hands the names on to the
# child pipeline, which has no such jobs ("validate,plan,build could not be found").
JOBS = ("validate", "plan", "build")
IMAGES = ("optimization", "scip")
# What could hand the jobs a cloud login (the cloud providers' Place.variables and
# credentials_hint, everbake/providers/).
CLOUD_ENV = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "CLOUDSDK_CORE_PROJECT",
    "YC_TOKEN",
    "YC_SERVICE_ACCOUNT_KEY_FILE",
    "YC_FOLDER_ID",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _not_ready() -> str | None:
    if os.geteuid() != 0:
        return "local image builds need root (mmdebstrap, chroot, mounts)"
    if not GITLAB_CI_LOCAL.exists():
        return "no node_modules/.bin/gitlab-ci-local: run scripts/setup --tests (needs Node.js)"
    if shutil.which("rsync") is None:
        return "gitlab-ci-local needs rsync: run scripts/setup"
    stamp = REPO / ".venv" / ".everbake-setup"
    wanted = _sha256_of(REPO / "pyproject.toml", REPO / "runtime" / "pyproject.toml")
    if not stamp.exists() or stamp.read_text().strip() != wanted:
        # The jobs share this .venv: a stale one would make their set-up reinstall it.
        return ".venv is older than pyproject.toml: run scripts/setup"
    return None


def _sha256_of(*paths: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()


def _safe_job_name(name: str) -> str:
    """gitlab-ci-local's log file name for a job (Utils.safeDockerString in its source:
    each run of characters outside [A-Za-z0-9_-] becomes its base64url, unpadded)."""
    return re.sub(
        r"[^\w-]+",
        lambda m: base64.urlsafe_b64encode(m.group().encode()).decode().rstrip("="),
        name,
    )


@dataclass
class Run:
    returncode: int
    output: str
    logs: dict[str, str]  # build job name -> its log
    plan: list[dict]


class PipelineRepo:
    """A copy of this tree as a git repository with a bare remote, and the pipeline runner."""

    def __init__(self, root: Path):
        self.root = root
        self.work = root / "work"
        self.cache = root / "base-cache"
        self.home = root / "home"
        self.runs = 0

    def create(self) -> None:
        self.work.mkdir(parents=True)
        self.cache.mkdir()
        self.home.mkdir()
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        for name in filter(None, (entry.decode() for entry in listed)):
            source = REPO / name
            if source.is_file():  # a deleted but not yet committed file is listed too
                (self.work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.work / name)
        (self.work / ".venv").symlink_to(REPO / ".venv")
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "everbake as of the test run")
        remote = self.root / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        self.git("remote", "add", "origin", str(remote))
        # Only its URL is read, for CI_PROJECT_PATH; nothing is fetched from it.
        self.git("remote", "add", "gcl-origin", "https://gitlab.invalid/everest/everbake.git")
        self.git("push", "-q", "origin", "main")
        self.git("remote", "set-head", "origin", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args],
            cwd=self.work,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    def commit(self, message: str, edits: dict[str, tuple[str, str]]) -> None:
        """Replace ``old`` by ``new`` once in each file, commit and push."""
        for name, (old, new) in edits.items():
            path = self.work / name
            text = path.read_text()
            assert old in text, f"{name}: {old!r} not found"
            path.write_text(text.replace(old, new, 1))
        self.git("commit", "-q", "-a", "-m", message)
        self.git("push", "-q", "origin", "main")

    def run_pipeline(self, providers: str = "local") -> Run:
        self.runs += 1
        env = {
            **os.environ,
            # No ~/.gitlab-ci-local/variables.yml and no cloud login of the user's.
            "HOME": str(self.home),
            "EVERBAKE_LOCAL_CACHE": str(self.cache),
            "FORCE_COLOR": "0",
        }
        for name in (*CLOUD_ENV, "VIRTUAL_ENV"):
            env.pop(name, None)
        argv = [str(GITLAB_CI_LOCAL), "--variable", f"EVERBAKE_PROVIDERS={providers}"]
        argv += ["--variable", "EVERBAKE_CI_TESTS=false"]
        log = self.root / f"pipeline-{self.runs}.log"
        with log.open("w") as out:
            print(f"pipeline {self.runs}: {' '.join(argv)} (log: {log})", file=sys.stderr)
            done = subprocess.run(
                argv, cwd=self.work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=2000
            )
        state = self.work / ".gitlab-ci-local"
        logs = {}
        for image in IMAGES:
            for provider in providers.split(","):
                name = f"build {image} {provider}"
                path = state / "output" / f"{_safe_job_name(name)}.log"
                logs[name] = path.read_text() if path.exists() else ""
        plan_file = state / "artifacts" / "plan" / "plan.json"
        plan = json.loads(plan_file.read_text()) if plan_file.exists() else []
        return Run(done.returncode, log.read_text(), logs, plan)

    def baked(self) -> dict[str, float]:
        """Every image tarball, build record and base cache tarball, with its mtime."""
        dist = self.work / "dist"
        found = [
            *(dist / "local").glob("*.tar.zst"),
            *(dist / "builds").rglob("*.json"),
            *self.cache.glob("*.tar.zst"),
        ]
        return {str(path.relative_to(self.root)): path.stat().st_mtime for path in found}


def _tail(run: Run) -> str:
    return "\n".join(run.output.splitlines()[-60:])


def _passed(run: Run, job: str, status: str = "PASS") -> bool:
    """gitlab-ci-local's summary has " PASS  <job>"; a child pipeline's job reads
    " PASS  [<trigger job>] -> <job>" (a failed one " FAIL  <job>")."""
    line = rf"^\s*{status}\s+(\[[^]]+\] -> )?{re.escape(job)}\s*$"
    return re.search(line, run.output, re.MULTILINE) is not None


def _actions(run: Run, image: str) -> set[str]:
    return {row["action"] for row in run.plan if row["image"] == image}


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineRepo]:
    reason = _not_ready()
    if reason:
        pytest.skip(reason)
    repo = PipelineRepo(tmp_path_factory.mktemp("gitlab-ci"))
    repo.create()
    first = repo.run_pipeline()
    assert first.returncode == 0, _tail(first)
    # Nothing was baked before: every build job baked its image (no "up to date").
    for name, log in first.logs.items():
        assert "up to date:" not in log and "==> " in log, f"{name}:\n{log[-3000:]}"
    yield repo
    # The jobs shared the repository's .venv: it must still be the repository's.
    probe = "import everbake; print(everbake.__file__)"
    where = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", probe],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(REPO)), where


def test_a_solver_bump_rebakes_both_layers_of_that_image_only(
    pipeline_repo: PipelineRepo,
) -> None:
    before = pipeline_repo.baked()
    pipeline_repo.commit(
        "optimization: HiGHS 1.8.0",
        {"images/optimization.toml": ('version = "1.8.1"', 'version = "1.8.0"')},
    )
    run = pipeline_repo.run_pipeline()
    assert run.returncode == 0, _tail(run)
    assert not _passed(run, "tests")
    for job in (*JOBS, "build optimization local", "build scip local"):
        assert _passed(run, job), f"{job} did not pass:\n{_tail(run)}"
    # The plan saw it: both layers of optimization to build, scip current.
    assert _actions(run, "optimization") == {"build", "build (base missing)"}, run.plan
    assert _actions(run, "scip") == {"up to date", "none (image up to date)"}, run.plan
    assert "build    optimization on local" in run.output
    assert "current  scip on local" in run.output
    # The optimization job baked; the scip job only looked.
    bumped = run.logs["build optimization local"]
    assert "up to date:" not in bumped and "<== " in bumped, bumped[-3000:]
    assert "up to date: everbake-scip-" in run.logs["build scip local"]
    new = sorted(set(pipeline_repo.baked()) - set(before))
    # A new base cache (the bump is a base input) and a new image with its record.
    assert any(re.search(r"base-cache/base-[0-9a-f]+\.tar\.zst$", n) for n in new), new
    for made in (r"dist/local/[a-z-]+-[0-9a-f]+\.tar\.zst$", r"dist/builds/local/.*\.json$"):
        assert any(re.search(made, n) and "optimization" in n for n in new), (made, new)
    assert not any("scip" in name for name in new), new
    # No publish job for the local provider.
    assert "publish " not in run.output


def test_comment_zone_and_readme_edits_bake_nothing(pipeline_repo: PipelineRepo) -> None:
    before = pipeline_repo.baked()
    pipeline_repo.commit(
        "a comment, a build zone and the README",
        {
            "images/scip.toml": ("# SCIP and GLPK", "# SCIP and GLPK (a comment edit)"),
            "images/defaults.toml": ('zones = ["europe-west1-b"', 'zones = ["europe-west1-d"'),
            "README.md": ("# everbake\n", "# everbake\n\nA README edit.\n"),
        },
    )
    run = pipeline_repo.run_pipeline()
    assert run.returncode == 0, _tail(run)
    for job in (*JOBS, *run.logs):
        assert _passed(run, job), f"{job} did not pass:\n{_tail(run)}"
    for image in IMAGES:
        assert "up to date" in _actions(run, image), run.plan
        assert f"current  {image} on local" in run.output
    for name, log in run.logs.items():
        assert re.search(r"up to date: everbake-[a-z]+-[0-9a-f]{12} ", log), f"{name}:\n{log}"
    assert pipeline_repo.baked() == before


def test_a_missing_cloud_credential_fails_its_build_job_with_the_fix(
    tmp_path: Path,
) -> None:
    """No bake: a fresh copy and gcp only, with no cloud login anywhere in reach."""
    reason = _not_ready()
    if reason:
        pytest.skip(reason)
    repo = PipelineRepo(tmp_path)
    repo.create()
    run = repo.run_pipeline(providers="gcp")
    # gitlab-ci-local does not carry a child's failure up (`trigger: strategy: depend`
    # is not honoured: the trigger job always passes, and so does its exit status);
    # on GitLab the `build` job and the pipeline fail. So the child's jobs are read.
    assert _passed(run, "validate") and _passed(run, "plan"), _tail(run)
    # The plan could not look gcp up and says why (no guess of "missing").
    assert {row["action"].split(":")[0] for row in run.plan} == {"unknown (no credentials"}
    for image in IMAGES:
        log = run.logs[f"build {image} gcp"]
        assert _passed(run, f"build {image} gcp", "FAIL"), _tail(run)
        # `invoke check --provider gcp` failed the job, printing what to set.
        assert "MISSING gcp: credentials" in log and "fix: " in log, log[-2000:]
        assert "check(s) failed" in log
        assert "build-image" not in log.split("check --provider gcp", 1)[1]
        # Its publish job never ran.
        assert not _passed(run, f"publish {image} gcp")
    assert repo.baked() == {}
