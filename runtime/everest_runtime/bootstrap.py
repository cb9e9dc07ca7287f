"""everest-bootstrap: get the model's source at a version (GitLab or a local path),
cached by resolved commit, then run the task.

Cache layout (one filesystem, so every rename is atomic):
  <cache>/<key>/          a complete tree; it exists only once fully extracted, with
                          .everest-manifest.json (checked on every use) and
                          .everest-source.json (the commit's metadata)
  <cache>/.<key>.lock     flock held while one task fills <key>; others wait
  <cache>/.<key>.*.part   temporaries; removed on failure, ignored otherwise
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import versioninfo
from .errors import ConfigError, DamagedArchive, FetchError, RuntimeFailure
from .limits import DEFAULT_LIMITS, Limits
from .redact import GITLAB_TOKEN_ENV, url_credentials
from .stderrlog import prefixed

FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
DEFAULT_CACHE = "/var/cache/everest/models"
DEFAULT_TOKEN_ENV = GITLAB_TOKEN_ENV


class Settings(NamedTuple):
    gitlab_url: str = "https://gitlab.com"
    project: str = ""
    ref: str = ""
    source: str = "archive"  # or "artifact"
    artifact_job: str = ""
    artifact_path: str = ""
    token_env: str = DEFAULT_TOKEN_ENV
    token_file: str = ""
    token_metadata_key: str = ""
    metadata_url: str = ""  # "": metadata.DEFAULT_URL for the token; the watch only on GCE
    cache_dir: str = DEFAULT_CACHE
    local: str = ""
    retries: int = 6
    retry_delay: float = 1.0
    limits: Limits = DEFAULT_LIMITS
    verify_cache: bool = False  # check cached files' sha256, not only their sizes


class Fetched(NamedTuple):
    path: Path  # the model's source tree
    version: dict  # versioninfo for this run's ref


_log = prefixed("everest-bootstrap")


def local_token(s: Settings) -> str | None:
    """The token from a file, else the environment variable, else the GitLab
    URL's user-info; None if none holds one."""
    if s.token_file:
        try:
            token = Path(s.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {s.token_file}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"--token-file {s.token_file} is empty")
        return token
    return os.environ.get(s.token_env, "").strip() or url_credentials(s.gitlab_url)[1] or None


class TokenLookup:
    """The token when GitLab is about to be called: from a file or the environment,
    else the metadata server, asked at most once and only then. A warm cache or
    --local needs no token, so no task start waits on the metadata server."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.local = local_token(s)  # read up front: a bad --token-file is a config error
        self.in_url = url_credentials(s.gitlab_url)[1]
        self.fetched: str | None = None

    def __call__(self) -> str | None:
        s = self.settings
        if self.local or not s.token_metadata_key:
            return self.local
        if self.fetched is None:
            from . import metadata

            self.fetched = metadata.attribute(s.token_metadata_key, s.metadata_url) or None
        return self.fetched

    def seen(self) -> list[str]:
        """Every token value this task holds, for redaction."""
        return [t for t in (self.local, self.in_url, self.fetched) if t]


def fetch(s: Settings, token: Callable[[], str | None]) -> Fetched:
    """The directory holding the model's source (from the cache when there) and
    its version as this run names it; ``token`` is called only when GitLab is."""
    if s.local:
        path = _local(s)
        return Fetched(path, versioninfo.read(path))
    if not s.project:
        raise ConfigError("no project: set --project or EVEREST_GITLAB_PROJECT (id or path)")
    if not s.ref:
        raise ConfigError("no version: set --ref or EVEREST_MODEL_REF (commit SHA, tag or branch)")
    if s.source not in ("archive", "artifact"):
        raise ConfigError(f"--source {s.source!r}: use archive or artifact")
    if s.source == "artifact" and not (s.artifact_job and s.artifact_path):
        raise ConfigError("--source artifact needs --artifact-job and --artifact-path")
    cache = _cache_dir(s.cache_dir)
    suffix = ""
    if s.source == "artifact":
        import hashlib

        digest = hashlib.sha256(f"{s.artifact_job}\0{s.artifact_path}".encode()).hexdigest()
        suffix = "-artifact-" + digest[:12]
    warm = cache / (s.ref + suffix)
    if FULL_SHA.match(s.ref) and warm.is_dir() and _intact(warm, s.verify_cache):
        # Warm cache, no network at all; the version is named by this run's ref.
        return Fetched(warm, dict(versioninfo.read(warm), ref=s.ref))

    from .gitlab import GitLab

    client = GitLab(s.gitlab_url, s.project, token(), s.retries, s.retry_delay)
    commit = client.commit(s.ref)
    sha = str(commit["id"])
    if not FULL_SHA.match(sha):
        raise FetchError(f"GitLab returned an unexpected commit id {sha!r} for {s.ref!r}")
    info = versioninfo.from_commit(
        s.ref, commit, f"gitlab {client.host} {s.project}"
    )  # no user-info
    if s.source == "archive":
        url = client.archive_url(sha)

        def download(dest: Path) -> None:
            client.archive(sha, dest)

    else:
        url = client.artifact_url(s.ref, s.artifact_job, s.artifact_path)

        def download(dest: Path) -> None:
            client.artifact(s.ref, s.artifact_job, s.artifact_path, dest)

    label = f"the source of commit {sha} from {url}"
    path = cached(cache, sha + suffix, download, info, s.limits, 2, label, s.verify_cache)
    return Fetched(path, info)


def _cache_dir(path: str) -> Path:
    cache = Path(path)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cache directory {cache}: {exc.strerror}; set --cache-dir or EVEREST_CACHE_DIR"
        ) from None
    return cache


def _intact(tree: Path, full: bool) -> bool:
    """Whether a cached tree is as it was cached; a damaged one is put aside (under
    the entry's lock) so that it is fetched again, never run."""
    from . import manifest

    if manifest.problem(tree, full) is None:
        return True
    import fcntl

    with open(tree.parent / f".{tree.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tree.is_dir():
            problem = manifest.problem(tree, full)
            if problem is None:
                return True  # another task has just fetched it again
            _log(f"cached {tree.name[:12]} is damaged ({problem}); fetching it again")
            _remove_tree(tree)
    return False


def _remove_tree(tree: Path) -> None:
    """Rename first (one step, so nobody starts from a half-removed tree), then delete."""
    import shutil

    aside = tree.with_name(f".{tree.name}.damaged.{os.getpid()}.part")
    os.rename(tree, aside)
    shutil.rmtree(aside, ignore_errors=True)


def cached(
    cache: Path,
    key: str,
    download: Callable[[Path], None],
    info: dict,
    limits: Limits,
    retries: int = 0,
    label: str = "",
    verify: bool = False,
) -> Path:
    """Fill cache/key once: download into a temp file, extract into a temp dir,
    write its manifest, rename into place. Concurrent callers wait on a lock and
    then reuse it. ``label`` names the download in messages."""
    import fcntl
    import shutil
    import tempfile

    from . import manifest, unarchive

    final = cache / key
    if final.is_dir() and _intact(final, verify):
        return final
    with open(cache / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir() and manifest.problem(final, verify) is None:
            return final  # another task filled it while we waited
        staging = cache / f".{key}.staging.part"
        # Leftovers of a task killed mid-fetch (downloads, the staging tree, and
        # unarchive's own temporary dir beside it); nobody else writes them while
        # we hold the lock.
        shutil.rmtree(staging, ignore_errors=True)
        for stale in cache.glob(f".{key}.*.download.part"):
            stale.unlink()
        for stale in cache.glob(f".{staging.name}.*.part"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in cache.glob(f".{key}.damaged.*.part"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.is_dir():
            _remove_tree(final)  # damaged, and no other task has fixed it meanwhile
        digests: dict[str, tuple[int, str]] = {}  # hashed while extracting: no second read
        for attempt in range(retries + 1):
            fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=".download.part", dir=cache)
            os.close(fd)
            archive = Path(name)
            try:
                _log(f"fetching {info.get('ref', key)} ({key[:12]})")
                download(archive)
                unarchive.extract(
                    archive, staging, limits, strip_single_root=True, label=label, digests=digests
                )
                break
            except DamagedArchive as exc:
                if attempt >= retries:
                    raise FetchError(f"downloaded source is unusable: {exc}") from None
                _log(f"{exc}; downloading again")
            finally:
                archive.unlink()
        try:
            manifest.write(staging, digests)
            versioninfo.write(staging, info)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    _log(f"cached {info.get('ref', key)} at {final}")
    return final


def _local(s: Settings) -> Path:
    path = Path(s.local).resolve()
    if path.is_dir():
        return path  # used in place: edits show up on the next run
    if not path.is_file():
        raise ConfigError(f"--local {s.local}: no such file or directory")
    import shutil

    from .manifest import sha256_file

    key = "local-" + sha256_file(str(path))[:32]

    def copy(dest: Path) -> None:
        shutil.copyfile(path, dest)

    info = versioninfo.local(path)
    return cached(_cache_dir(s.cache_dir), key, copy, info, s.limits, 0, str(path), s.verify_cache)


def run(s: Settings, runner_options: dict) -> tuple[int, Path]:
    """Fetch, then run the task in this process; returns (exit status, model dir).
    The token is removed from the environment first: the model never sees it."""
    token = TokenLookup(s)
    from . import procmem

    procmem.hide(token.seen())  # e.g. --gitlab-url https://oauth2:TOKEN@... in ps
    try:
        model_dir, version = fetch(s, token)
    except RuntimeFailure as exc:
        from . import runner

        # The job's last status says why (status.txt and the agent), as for any failure.
        runner.report_failure(Path(runner_options.get("task_dir", ".")), exc, token.seen())
        raise
    secrets = token.seen()
    os.environ.pop(s.token_env, None)
    from . import runner

    # A metadata URL set on purpose also serves the preemption watch; with none
    # the runner asks only on GCE.
    opts = runner.Options(
        model_dir=model_dir,
        version=version,
        extra_secrets=secrets,
        metadata_url=s.metadata_url,
        **runner_options,
    )
    return runner.run(opts), model_dir
