"""The Everest stand-in with jobs on loopback, a client for it, and the CLI as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from everbake.everest.app import application
from everbake.everest.client import EverestClient
from everbake.everest.jobsapi import JobsApi
from everbake.spec import load_spec
from tests.fakes.everest import EverestFake
from tests.fakes.everest_jobs import EverestJobs, FileHost

REPO = Path(__file__).resolve().parent.parent.parent
APP = "alice/transport"
CLI = "import sys; from everbake.cli import main; sys.argv[0] = 'everbake'; main()"


@dataclass
class Site:
    fake: EverestFake
    jobs: EverestJobs
    token: str
    app_id: str
    home: Path

    @property
    def env(self) -> dict[str, str]:
        """What a user's shell has: the URL, the token, fast polling for the fast clock."""
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(REPO),
            "HOME": str(self.home),
            "EVEREST_URL": self.fake.url,
            "EVEREST_TOKEN": self.token,
            "EVERBAKE_POLL_SECONDS": "0.02",
            "EVERBAKE_POLL_MAX_SECONDS": "0.1",
        }

    def api(self, backoff: float = 0.01) -> JobsApi:
        return JobsApi(EverestClient(self.fake.url, self.token, backoff=backoff))

    def everbake(
        self, *args: str, cwd: Path, more_env: dict[str, str] | None = None, **popen: object
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", CLI, *args],
            cwd=cwd,
            env={**self.env, **(more_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            **popen,  # type: ignore[call-overload]
        )

    def spawn(self, *args: str, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, *args],
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upload_uris: str = "path", **jobs_options
) -> Iterator[Site]:
    for name, value in (("EVERBAKE_POLL_SECONDS", "0.02"), ("EVERBAKE_POLL_MAX_SECONDS", "0.1")):
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    with EverestFake(upload_uris=upload_uris) as fake, FileHost() as files:
        jobs = EverestJobs(fake, file_host=files, **jobs_options)
        # The application export-app writes: the fake checks job inputs against it.
        app = application(load_spec("optimization"), {"image_name": "everbake-optimization"})
        app_id = fake.add_app(app, alias="transport")
        yield Site(fake, jobs, fake.issue_token(), app_id, home)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """Today's server as the official python-api sees it: 201 on submit, appId and
    appAlias, outputs as /api/files/ paths."""
    yield from _site(tmp_path, monkeypatch)


@pytest.fixture
def older_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An older server (pyomo-everest at aadf9c8, templet): 200 on submit, the job's
    app as `app`; uploads and outputs as full URLs of the server."""
    yield from _site(
        tmp_path,
        monkeypatch,
        upload_uris="url",
        submit_status=200,
        old_documents=True,
        output_uris="url",
    )


@pytest.fixture
def data_archive(tmp_path: Path) -> Path:
    path = tmp_path / "data.tar.gz"
    path.write_bytes(b"\x1f\x8b" + os.urandom(2000))
    return path
