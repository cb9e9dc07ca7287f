"""Staging: runtime wheel, agent archive (path, URL on loopback, unreachable, sha256),
CA certificates, embed secrets written 0600 from the step's environment."""

from __future__ import annotations

import hashlib
import http.server
import socket
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from everbake import staging
from everbake.agent_fetch import AgentSource, fetch_agent
from everbake.errors import BuildError, SpecError
from everbake.localbuild.steps import write_embed_secrets
from everbake.runtime_wheel import build_runtime_wheel
from everbake.spec import REPO_ROOT

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _agent_tree(tmp_path: Path) -> Path:
    src = tmp_path / "agent-src"
    (src / "everest_agent").mkdir(parents=True)
    (src / "everest_agent" / "start.py").write_text("print('agent')\n")
    (src / "bin").mkdir()
    (src / "bin" / "start.sh").write_text("#!/bin/sh\n")
    return src


def test_agent_from_a_directory_is_packed_reproducibly(tmp_path: Path) -> None:
    src = _agent_tree(tmp_path)
    first = fetch_agent(AgentSource(str(src), "master", None, True), tmp_path / "a.tgz", REPO_ROOT)
    second = fetch_agent(AgentSource(str(src), "master", None, True), tmp_path / "b.tgz", REPO_ROOT)
    assert first and second and first[1] == second[1]
    with tarfile.open(first[0]) as tar:
        assert "agent-src/everest_agent/start.py" in tar.getnames()


def test_agent_sha256_mismatch_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "agent.tar.gz"
    archive.write_bytes(b"not the pinned archive")
    dest = tmp_path / "out" / "agent.tar.gz"
    dest.parent.mkdir()
    with pytest.raises(BuildError, match=r"agent\.sha256"):
        fetch_agent(AgentSource(str(archive), "m", "0" * 64, False), dest, REPO_ROOT)
    assert list(dest.parent.iterdir()) == []


class _Archive(http.server.BaseHTTPRequestHandler):
    body = b"agent archive bytes"

    def do_GET(self) -> None:
        assert self.path == "/agent-v1.tar.gz"
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_agent_from_a_url_with_ref_and_pinned_sha(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/agent-{{ref}}.tar.gz"
        pin = hashlib.sha256(_Archive.body).hexdigest()
        got = fetch_agent(AgentSource(url, "v1", pin, True), tmp_path / "agent.tar.gz", REPO_ROOT)
    finally:
        server.shutdown()
    assert got == (tmp_path / "agent.tar.gz", pin)
    assert got[0].read_bytes() == _Archive.body


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_agent_is_skipped_plainly_when_not_required(tmp_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/agent.tar.gz"
    assert fetch_agent(AgentSource(url, "m", None, False), tmp_path / "a.tgz", REPO_ROOT) is None
    assert "WITHOUT the Everest agent" in capsys.readouterr().err
    assert not (tmp_path / "a.tgz").exists()


def test_unreachable_agent_is_an_error_when_required(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/agent.tar.gz"
    with pytest.raises(BuildError, match=r"agent\.required = false"):
        fetch_agent(AgentSource(url, "m", None, True), tmp_path / "a.tgz", REPO_ROOT)


def test_ca_certificates_from_a_list_and_bad_entries(tmp_path: Path) -> None:
    good = tmp_path / "proxy.crt"
    good.write_text(PEM)
    files = staging.ca_certificate_files([str(good)], REPO_ROOT)
    assert staging.stage_ca_certificates(files, tmp_path / "st") == ["00-proxy.crt"]
    assert (tmp_path / "st/ca/00-proxy.crt").read_text() == PEM
    with pytest.raises(SpecError, match=r"system\.ca_certificates"):
        staging.ca_certificate_files([str(tmp_path / "missing.crt")], REPO_ROOT)
    with pytest.raises(SpecError, match='"host"'):
        staging.ca_certificate_files("hots", REPO_ROOT)
    not_pem = tmp_path / "x.crt"
    not_pem.write_text("hello")
    with pytest.raises(BuildError, match="not a PEM"):
        staging.stage_ca_certificates([not_pem], tmp_path / "st2")


def test_host_ca_certificates_are_the_hosts_extra_ones() -> None:
    expected = sorted(staging.HOST_CA_DIR.rglob("*.crt")) if staging.HOST_CA_DIR.is_dir() else []
    assert staging.ca_certificate_files("host", REPO_ROOT) == expected
    # "none" is a valid spec value (spec.py accepts it): no certificates at all.
    assert staging.ca_certificate_files("none", REPO_ROOT) == []


def test_embed_secrets_are_written_0600_from_the_environment(tmp_path: Path) -> None:
    secret = "s3cr3t-value-for-test"
    written = write_embed_secrets(tmp_path, ["agent_token"], {"EB_SECRET_AGENT_TOKEN": secret})
    path = tmp_path / "secrets" / "agent_token"
    assert written == ["agent_token"]
    assert path.read_text() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700


def test_embed_secret_missing_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="EB_SECRET_AGENT_TOKEN is unset"):
        write_embed_secrets(tmp_path, ["agent_token"], {})


def test_runtime_wheel_is_built_from_runtime(tmp_path: Path) -> None:
    before = sorted((REPO_ROOT / "runtime").iterdir())
    wheel = build_runtime_wheel(REPO_ROOT / "runtime", tmp_path)
    assert wheel.name.startswith("everest_runtime-") and wheel.suffix == ".whl"
    # Built from a copy: nothing (build/, *.egg-info) appears in the source tree.
    assert sorted((REPO_ROOT / "runtime").iterdir()) == before
