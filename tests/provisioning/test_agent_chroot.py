"""50-agent.sh + 70-secrets.sh + 90-hygiene.sh in a fresh Debian 12 chroot, for
each agent token mode, with the test agent source packed like GitLab's archive.

Checks: the agent, its venv (tornado), config template and enabled unit are
installed; a second run changes nothing; no token is in the image for env and
metadata modes, and for embed only in its 0600 file; hygiene's own check
passes; the unit's ExecStartPre then fills the token at "boot" from a loopback
metadata server, the environment or the embedded file, and the agent accepts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import secrets
import shlex
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from .chroot_kit import (
    CHROOT,
    HOST_CAS,
    REPO,
    STAGING,
    files_containing,
    ok,
    proc_mounted,
    run,
    snapshot,
    stage_scripts,
    staging,
    user_ids,
)

AGENT_SRC = REPO / "tests/fixtures/agent-src"
AGENT_DIR = "/opt/everest/agent"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount)"),
]


def agent_archive(dest: Path) -> str:
    """tests/fixtures/agent-src as agent-test/..., like GitLab's archives; its sha256."""
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(AGENT_SRC, arcname="agent-test")
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def stage(root: Path, token: str, licence: str) -> str:
    """Scripts, CAs, agent archive, config template, image.json and (in every mode:
    a stale file must not leak) the token file. Returns the archive's sha256."""
    st = stage_scripts(root)
    sha = agent_archive(st / "agent.tar.gz")
    (st / "agent.conf").write_text(
        '{"token": "AGENTTOKEN", "taskProtocol": {"enabled": true},\n'
        ' "security": {"allowedCommands": ["everest-bootstrap .*"]}}\n'
    )
    (st / "image.json").write_text('{"image": "test", "secrets": {"agent_token": {}}}\n')
    (st / "secrets").mkdir(mode=0o700, exist_ok=True)
    for name, value in (("agent_token", token), ("licence", licence)):
        path = st / "secrets" / name
        path.write_text(value)
        path.chmod(0o600)
    return sha


class Metadata(http.server.BaseHTTPRequestHandler):
    """GCE-style metadata server: answers only with the Metadata-Flavor header."""

    values: ClassVar[dict[str, str]] = {}

    def do_GET(self):
        prefix = "/computeMetadata/v1/instance/attributes/"
        key = self.path.removeprefix(prefix)
        if self.headers.get("Metadata-Flavor") != "Google":
            self.send_error(403)
        elif not self.path.startswith(prefix) or key not in self.values:
            self.send_error(404)
        else:
            body = self.values[key].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def metadata_server(values: dict[str, str]) -> Iterator[str]:
    handler = type("Handler", (Metadata,), {"values": values})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/computeMetadata/v1/instance/attributes/"
    finally:
        server.shutdown()
        server.server_close()


def boot_fill(root: Path, unit: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    """The unit's ExecStartPre, then start.sh --check, as the unit's user."""
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    env = {"LANG": "C.UTF-8", "PATH": lines["Environment"].removeprefix("PATH="), **extra_env}
    user = lines["User"]
    pre = shlex.split(lines["ExecStartPre"])
    start = [lines["ExecStart"], "--check"]
    with proc_mounted(root):
        for argv in (pre, start):
            done = subprocess.run(
                [CHROOT, f"--userspec={user}:{user}", str(root), *argv],
                env=env,
                cwd="/",
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode:
                return done
    return done


@pytest.mark.parametrize("mode", ["metadata", "env", "embed"])
def test_agent_secrets_and_hygiene(root: Path, tmp_path: Path, mode: str):
    token = "eb-test-token-" + secrets.token_hex(16)
    licence = "eb-test-licence-" + secrets.token_hex(16)
    sha = stage(root, token, licence)
    env = {
        "EB_STAGING": STAGING,
        "EB_USER": "everest",
        "EB_TIMEZONE": "UTC",
        "EB_AGENT_ARCHIVE": f"{STAGING}/agent.tar.gz",
        "EB_AGENT_SHA256": sha,
        "EB_AGENT_DIR": AGENT_DIR,
        "EB_AGENT_TOKEN_MODE": mode,
        "EB_AGENT_TOKEN_METADATA_KEY": "everest-agent-token",
        "EB_AGENT_TOKEN_ENV": "EVEREST_AGENT_TOKEN",
        "EB_EMBED_SECRETS": (
            "agent_token:/etc/everest/secrets/agent_token licence:/etc/everest/licences/s.lic"
            if mode == "embed"
            else ""
        ),
        "EB_KEEP_CA_CERTS": "0",
    }
    ok(run(root, "10-base.sh", env))
    retries = root / "etc/apt/apt.conf.d/80everbake-build-retries"
    assert 'Acquire::Retries "5";' in retries.read_text()

    # A wrong pin stops the agent step before anything is installed.
    bad = run(root, "50-agent.sh", {**env, "EB_AGENT_SHA256": "0" * 64})
    assert bad.returncode != 0
    assert "50-agent.sh: agent archive agent.tar.gz has sha256" in bad.stderr
    assert not (root / AGENT_DIR.lstrip("/")).exists()

    assert "unit everest-agent.service enabled" in ok(run(root, "50-agent.sh", env))
    ok(run(root, "70-secrets.sh", env))
    before = snapshot(root)
    ok(run(root, "50-agent.sh", env))
    ok(run(root, "70-secrets.sh", env))
    assert snapshot(root) == before, "a second run of 50/70 changed the tree"

    agent = root / AGENT_DIR.lstrip("/")
    unit_path = root / "etc/systemd/system/everest-agent.service"
    unit = unit_path.read_text()
    assert "TimeoutStopSec=30" in unit and "User=everest" in unit
    wants = root / "etc/systemd/system/multi-user.target.wants/everest-agent.service"
    assert os.readlink(wants) == "/etc/systemd/system/everest-agent.service"
    assert (agent / "everest_agent/start.py").is_file() and (agent / "bin/start.sh").is_file()
    assert "AGENTTOKEN" in (agent / "conf/agent.conf.template").read_text()
    assert not (agent / "conf/agent.conf").exists()
    assert list((agent / "venv/lib").glob("python3*/site-packages/tornado/__init__.py"))

    out = ok(run(root, "90-hygiene.sh", env))
    assert "90-hygiene.sh: clean" in out
    stage_scripts(root)  # hygiene removed them with the staging dir
    assert "90-hygiene.sh: clean" in ok(run(root, "90-hygiene.sh", env))
    (root / "etc/resolv.conf").unlink()

    assert not staging(root).exists()
    assert not (root / "usr/local/share/ca-certificates/everbake-build").exists()
    assert not (root / "etc/pip.conf").exists()
    assert not retries.exists()  # build-only apt setting
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert not [
        p for p in (root / "var/lib/apt/lists").iterdir() if p.is_file() and p.name != "lock"
    ]
    bundle = (root / "etc/ssl/certs/ca-certificates.crt").read_text()
    for cert in HOST_CAS:
        body = "".join(cert.read_text().split("-----")[2].split())
        assert body[:200] not in "".join(bundle.split()), f"{cert.name} still trusted"

    hits = files_containing(root, token.encode())
    licence_hits = files_containing(root, licence.encode())
    if mode == "embed":
        assert hits == ["/etc/everest/secrets/agent_token"]
        assert licence_hits == ["/etc/everest/licences/s.lic"]
        uid, gid = user_ids(root, "everest")
        for rel in ("etc/everest/secrets/agent_token", "etc/everest/licences/s.lic"):
            st = (root / rel).stat()
            assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, uid, gid)
    else:
        assert hits + licence_hits == [], f"a {mode}-mode secret was left in {hits + licence_hits}"

    # "Boot": the unit fills the token in and the agent accepts the config.
    with metadata_server({"everest-agent-token": token}) as url:
        extra = {"EVERBAKE_METADATA_URL": url} if mode == "metadata" else {}
        if mode == "env":
            extra = {"EVEREST_AGENT_TOKEN": token}
        done = boot_fill(root, unit, extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test agent: tornado 6.4.2" in done.stdout
    filled = agent / "conf/agent.conf"
    uid, gid = user_ids(root, "everest")
    st = filled.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, uid)
    assert token in filled.read_text() and "AGENTTOKEN" not in filled.read_text()
