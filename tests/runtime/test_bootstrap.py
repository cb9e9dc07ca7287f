"""everest-bootstrap as a real subprocess against a GitLab fake and a metadata
fake on 127.0.0.1: fetching, caching by commit, retries, clear failures."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.gitlab import GitLabFake, tar_gz
from tests.fakes.metadata import MetadataFake
from tests.runtime.cli_env import EXAMPLE, PYTHON, clean_env

TOKEN = "glpat-Zq8kT3stT0ken-9f2a"
SHA = hashlib.sha1(b"v1").hexdigest()
SHA2 = hashlib.sha1(b"v2").hexdigest()
MODEL_FILES = {p.name: p.read_bytes() for p in EXAMPLE.iterdir() if p.is_file()}


def bootstrap(gitlab: GitLabFake, tmp_path: Path, *args: str, token=TOKEN, env=None):
    task = tmp_path / "task"
    task.mkdir(exist_ok=True)
    if not (task / "params.json").exists():
        (task / "params.json").write_text('{"iterations": 1}')
    extra = {"EVEREST_GITLAB_TOKEN": token} if token else {}
    extra.update(env or {})
    base = [
        "--gitlab-url",
        gitlab.url,
        "--project",
        "group/model",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--retry-delay",
        "0.05",
    ]
    return subprocess.run(
        [PYTHON, "-m", "everest_runtime", "bootstrap", *base, *args],
        cwd=task,
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def gitlab():
    with GitLabFake(token=TOKEN) as fake:
        project = fake.project(42, "group/model")
        project.add_commit(SHA, MODEL_FILES, refs=["v1.0", "main"], title="Transport v1")
        yield fake


def cache_entries(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock"))


def test_fetch_by_tag_runs_the_task_and_caches_by_commit(gitlab, tmp_path):
    result = bootstrap(gitlab, tmp_path, "--ref", "v1.0")
    assert result.returncode == 0, result.stderr
    task = tmp_path / "task"
    version = (task / "version.txt").read_text()
    assert f"version: v1.0 ({SHA[:8]})" in version and "title: Transport v1" in version
    assert "date: 2026-11-20" in version
    assert (task / "status.txt").read_text().strip() == "done: cost 135"
    assert cache_entries(tmp_path) == [SHA]
    assert gitlab.count("archive") == 1

    again = bootstrap(gitlab, tmp_path, "--ref", "main")  # same commit, other ref
    assert again.returncode == 0, again.stderr
    assert gitlab.count("archive") == 1 and gitlab.count("commit") == 2

    before = len(gitlab.requests)
    warm = bootstrap(gitlab, tmp_path, "--ref", SHA)  # full SHA in cache: no network
    assert warm.returncode == 0, warm.stderr
    assert len(gitlab.requests) == before


def test_project_by_numeric_id_and_fetch_only(gitlab, tmp_path):
    result = bootstrap(gitlab, tmp_path, "--project", "42", "--ref", "v1.0", "--fetch-only")
    assert result.returncode == 0, result.stderr
    model_dir = Path(result.stdout.strip())
    assert model_dir == tmp_path / "cache" / SHA
    assert (model_dir / "everest.toml").exists()
    assert json.loads((model_dir / ".everest-source.json").read_text())["sha"] == SHA
    assert not (tmp_path / "task" / "results.zip").exists()


def test_429_retry_after_is_honoured(gitlab, tmp_path):
    gitlab.faults["archive"].append(("status", 429, 1))
    started = time.monotonic()
    result = bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--fetch-only")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.0
    assert "HTTP 429; retrying in 1.0 s" in result.stderr
    assert gitlab.count("archive") == 2


@pytest.mark.parametrize(
    "kind, fault, said",
    [
        ("commit", ("status", 502), "HTTP 502"),
        ("archive", ("status", 503), "HTTP 503"),
        ("archive", ("truncate",), "body truncated"),
        ("archive", ("reset",), "retrying"),
    ],
)
def test_transient_failures_are_retried(gitlab, tmp_path, kind, fault, said):
    gitlab.faults[kind].extend([fault, fault])
    result = bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--fetch-only")
    assert result.returncode == 0, result.stderr
    assert said in result.stderr
    assert gitlab.count(kind) == 3
    assert cache_entries(tmp_path) == [SHA]


def test_giving_up_leaves_no_cache_entry(gitlab, tmp_path):
    gitlab.faults["archive"].extend([("status", 500)] * 5)
    result = bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--retries", "2")
    assert result.returncode == 3
    assert "gave up after 3 attempts" in result.stderr
    assert cache_entries(tmp_path) == []


def test_damaged_archive_is_fetched_again_then_refused(tmp_path):
    with GitLabFake(token=TOKEN) as fake:
        fake.project().add_commit(SHA, {}, refs=["v1.0"], archive=b"\x1f\x8b" + b"garbage" * 100)
        result = bootstrap(fake, tmp_path, "--ref", "v1.0")
        assert result.returncode == 3
        assert f"downloaded source is unusable: the source of commit {SHA}" in result.stderr
        assert fake.count("archive") == 3  # first try + 2 re-downloads
    assert cache_entries(tmp_path) == []


MISSING_FIX = "(set EVEREST_GITLAB_TOKEN, --token-file or --token-metadata-key)"
REFUSED_FIX = "check that it is valid, not expired, and has read_api/read_repository access"
NOT_FOUND_FIX = "(check --project and --ref)"


# Each refusal says what happened and how to fix it, on one line.
@pytest.mark.parametrize(
    "token, project, ref, message, fix",
    [
        (None, "group/model", "v1.0", "HTTP 401, token missing", MISSING_FIX),
        ("wrong-token-value", "group/model", "v1.0", "HTTP 401, token refused", REFUSED_FIX),
        ("no-access-token", "group/model", "v1.0", "HTTP 403, token refused", REFUSED_FIX),
        (
            TOKEN,
            "group/other",
            "v1.0",
            "HTTP 404, project 'group/other' or version 'v1.0' not",
            NOT_FOUND_FIX,
        ),
        (
            TOKEN,
            "group/model",
            "v9.9",
            "HTTP 404, project 'group/model' or version 'v9.9' not",
            NOT_FOUND_FIX,
        ),
    ],
)
def test_auth_and_not_found_fail_at_once(gitlab, tmp_path, token, project, ref, message, fix):
    gitlab.forbidden.add("no-access-token")
    result = bootstrap(gitlab, tmp_path, "--project", project, "--ref", ref, token=token)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and fix in lines[0], result.stderr
    assert f"project {project!r}" in lines[0]
    assert "Traceback" not in result.stderr
    assert len(gitlab.requests) == 1  # no retries
    for value in (TOKEN, "wrong-token-value", "no-access-token"):
        assert value not in result.stderr + result.stdout


def test_artifact_source(gitlab, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in MODEL_FILES.items():
            zf.writestr(name, data)
    gitlab.projects[0].artifacts[("v1.0", "package", "dist/model.zip")] = buf.getvalue()
    args = ["--ref", "v1.0", "--source", "artifact", "--artifact-job", "package"]
    result = bootstrap(gitlab, tmp_path, *args, "--artifact-path", "dist/model.zip")
    assert result.returncode == 0, result.stderr
    assert gitlab.count("artifact") == 1 and gitlab.count("archive") == 0
    (entry,) = cache_entries(tmp_path)
    assert entry.startswith(SHA + "-artifact-")
    missing = bootstrap(gitlab, tmp_path, *args, "--artifact-path", "dist/nope.zip")
    assert missing.returncode == 3 and "artifact 'dist/nope.zip' of job 'package'" in missing.stderr
    assert bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--source", "artifact").returncode == 2


def test_token_from_file_and_from_metadata(gitlab, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    result = bootstrap(
        gitlab,
        tmp_path,
        "--ref",
        "v1.0",
        "--fetch-only",
        "--token-file",
        str(token_file),
        token=None,
    )
    assert result.returncode == 0, result.stderr
    with MetadataFake({"gitlab-token": TOKEN}) as meta:
        env = {
            "EVEREST_GITLAB_TOKEN_METADATA_KEY": "gitlab-token",
            "EVEREST_METADATA_URL": meta.url,
            "EVEREST_MODEL_REF": SHA2,
        }
        gitlab.projects[0].add_commit(SHA2, MODEL_FILES, refs=["v2.0"])
        result = bootstrap(gitlab, tmp_path, "--fetch-only", token=None, env=env)
        assert result.returncode == 0, result.stderr
        assert meta.requests == [("/computeMetadata/v1/instance/attributes/gitlab-token", "Google")]
        # A warm cache by full SHA needs no token: the metadata server is not asked.
        warm = bootstrap(gitlab, tmp_path, "--fetch-only", token=None, env=env)
        assert warm.returncode == 0, warm.stderr
        assert len(meta.requests) == 1
        env["EVEREST_GITLAB_TOKEN_METADATA_KEY"] = "absent-key"
        missing = bootstrap(gitlab, tmp_path, "--fetch-only", "--ref", "v1.0", token=None, env=env)
        assert missing.returncode == 3
        assert "metadata key 'absent-key' is not set on this VM" in missing.stderr


def test_concurrent_tasks_download_once(gitlab, tmp_path):
    gitlab.delay = 0.5
    (tmp_path / "task").mkdir()

    def one(i: int):
        sub = tmp_path / f"t{i}"
        sub.mkdir()
        return bootstrap(gitlab, sub, "--ref", "v1.0", "--fetch-only", "--cache-dir",
                         str(tmp_path / "cache"))  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert {r.stdout.strip() for r in results} == {str(tmp_path / "cache" / SHA)}
    assert gitlab.count("archive") == 1
    assert cache_entries(tmp_path) == [SHA]


def test_local_directory_and_local_archive(tmp_path):
    with GitLabFake() as unused:
        result = bootstrap(unused, tmp_path, "--local", str(EXAMPLE), token=None)
        assert result.returncode == 0, result.stderr
        assert f"source: local {EXAMPLE}" in (tmp_path / "task" / "version.txt").read_text()
        archive = tmp_path / "model.tar.gz"
        archive.write_bytes(tar_gz(MODEL_FILES, "transport"))
        result = bootstrap(unused, tmp_path, "--local", str(archive), token=None)
        assert result.returncode == 0, result.stderr
        assert [e for e in cache_entries(tmp_path) if e.startswith("local-")]
        assert unused.requests == []
        missing = bootstrap(unused, tmp_path, "--local", str(tmp_path / "nope"), token=None)
        assert missing.returncode == 2 and "--local" in missing.stderr


def test_missing_settings_say_which(gitlab, tmp_path):
    result = bootstrap(gitlab, tmp_path, "--project", "", token=None)
    assert result.returncode == 2 and "set --project or EVEREST_GITLAB_PROJECT" in result.stderr
    result = bootstrap(gitlab, tmp_path)
    assert result.returncode == 2 and "set --ref or EVEREST_MODEL_REF" in result.stderr
    unwritable = bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--cache-dir", "/proc/nope")
    assert unwritable.returncode == 2 and "cache directory /proc/nope" in unwritable.stderr


def test_leftovers_of_a_killed_fetch_are_cleaned_and_never_used(gitlab, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f".{SHA}.abc123.download.part").write_bytes(b"half an archive")
    staging = cache / f".{SHA}.staging.part"
    staging.mkdir()
    (staging / "everest.toml").write_text("[model]\ncommand = ['false']\n")
    extracting = cache / f"..{SHA}.staging.part.k1ll3d.part"  # unarchive's own temporary
    (extracting / "model-x").mkdir(parents=True)
    result = bootstrap(gitlab, tmp_path, "--ref", "v1.0")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in cache.iterdir()) == [f".{SHA}.lock", SHA]
    assert gitlab.count("archive") == 1


def test_malicious_source_archive_is_refused_and_not_cached(tmp_path):
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as tf:
        for name, data in (("model-x/everest.toml", b"[model]\n"), ("model-x/../../evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with GitLabFake(token=TOKEN) as fake:
        fake.project().add_commit(SHA, {}, refs=["v1.0"], archive=evil.getvalue())
        result = bootstrap(fake, tmp_path, "--ref", "v1.0")
    assert result.returncode == 2
    assert "contains '..'; refused" in result.stderr
    assert cache_entries(tmp_path) == []
    assert not list(tmp_path.rglob("evil"))


def cut_between_members(files: dict[str, bytes], root: str) -> bytes:
    """GitLab-style .tar.gz cut where it decompresses to whole members only (a
    full flush after each member, as a streaming server may do), served with a
    Content-Length that matches: nothing at the HTTP level is wrong."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw.seek(0)
    with tarfile.open(fileobj=raw) as tf:
        first = tf.getmembers()[0]
    keep = first.offset_data + ((first.size + 511) // 512) * 512
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(raw.getvalue()[:keep]) + packer.flush(zlib.Z_FULL_FLUSH)


def test_archive_cut_between_members_is_never_cached(tmp_path):
    with GitLabFake(token=TOKEN) as fake:
        archive = cut_between_members(MODEL_FILES, f"model-{SHA}")
        fake.project().add_commit(SHA, {}, refs=["v1.0"], archive=archive)
        result = bootstrap(fake, tmp_path, "--ref", "v1.0")
        assert fake.count("archive") == 3  # first try + 2 re-downloads
    assert result.returncode == 3, result.stderr
    assert cache_entries(tmp_path) == []
    # The message names the commit and where it came from, not a deleted temp file.
    assert f"source of commit {SHA} from {fake.url}/api/v4/projects/group%2Fmodel" in result.stderr
    assert ".download.part" not in result.stderr
    assert "end-of-archive" in result.stderr or "ends before" in result.stderr


def test_damaged_cache_entry_is_fetched_again_never_run(gitlab, tmp_path):
    assert bootstrap(gitlab, tmp_path, "--ref", "v1.0").returncode == 0
    entry = tmp_path / "cache" / SHA
    (entry / "everest.toml").unlink()
    (entry / "run-task.sh").write_text("echo stale > results/x\n")  # what must never run
    result = bootstrap(gitlab, tmp_path, "--ref", SHA)  # warm path: no network before
    assert result.returncode == 0, result.stderr
    assert "damaged (everest.toml missing); fetching it again" in result.stderr
    assert gitlab.count("archive") == 2
    assert (entry / "everest.toml").is_file() and not (entry / "run-task.sh").exists()
    assert (tmp_path / "task" / "status.txt").read_text().strip() == "done: cost 135"

    model = entry / "transport.py"
    model.write_text(model.read_text() + "# edited\n")  # another size: the quick check sees it
    assert bootstrap(gitlab, tmp_path, "--ref", "v1.0").returncode == 0
    assert gitlab.count("archive") == 3

    same_size = model.read_bytes().replace(b"cost", b"COST")
    model.write_bytes(same_size)  # same size: only --verify-cache reads the contents
    assert bootstrap(gitlab, tmp_path, "--ref", "v1.0").returncode == 0
    assert gitlab.count("archive") == 3
    checked = bootstrap(gitlab, tmp_path, "--ref", "v1.0", "--verify-cache")
    assert checked.returncode == 0, checked.stderr
    assert "damaged (transport.py changed)" in checked.stderr
    assert gitlab.count("archive") == 4
    assert b"COST" not in model.read_bytes()
    assert cache_entries(tmp_path) == [SHA]


VERSION_MODEL = {
    "everest.toml": '[model]\ncommand = ["python", "m.py"]\nresults = []\n',
    "m.py": "import os\nprint(os.environ['EVEREST_MODEL_VERSION'], file=open('version', 'w'))\n",
}


@pytest.mark.parametrize("ref", [SHA[:8], SHA])
def test_version_names_this_runs_ref_not_the_one_that_cached_it(tmp_path, ref):
    with GitLabFake(token=TOKEN) as fake:
        fake.project().add_commit(SHA, VERSION_MODEL, refs=["main"])
        assert bootstrap(fake, tmp_path, "--ref", "main").returncode == 0
        result = bootstrap(fake, tmp_path, "--ref", ref)
    assert result.returncode == 0, result.stderr
    task = tmp_path / "task"
    wanted = SHA[:8] if ref == SHA else f"{ref} ({SHA[:8]})"
    assert (task / "version.txt").read_text().splitlines()[0] == f"version: {wanted}"
    assert "main" not in (task / "version.txt").read_text()
    assert (task / "work" / "version").read_text() == wanted + "\n"


def test_fetch_failure_is_the_tasks_last_status(gitlab, tmp_path):
    result = bootstrap(gitlab, tmp_path, "--ref", "v9.9")
    assert result.returncode == 3
    status = (tmp_path / "task" / "status.txt").read_text().strip()
    assert status.startswith("error: ") and "HTTP 404" in status
    assert TOKEN not in status
