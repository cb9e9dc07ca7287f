"""pin-agent against a loopback HTTP server: the archive's sha256 printed and written
into the spec file with its comments and layout kept; the file untouched on errors."""

from __future__ import annotations

import difflib
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from everbake.errors import EverbakeError
from everbake.pinagent import pin_agent, set_agent_keys
from everbake.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = {"v1.2": b"agent archive v1.2\n", "master": b"agent archive, master today\n"}


class _Archives(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        ref = self.path.removeprefix("/agent/-/archive/").split("/")[0]
        body = ARCHIVES.get(ref)
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def forge() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), type("H", (_Archives,), {"seen": seen})
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


SPEC = """\
# An image for the pin-agent test.
name = "pintest"
family = "everbake-pintest"   # keep this comment

[agent]
# where the agent comes from
source = "{url}/agent/-/archive/{{ref}}/agent-{{ref}}.tar.gz"
ref = "master"      # a branch: moves
required = true

[python]
packages = ["pulp==2.9.0"]
"""


def write_spec(tmp_path: Path, url: str, text: str = SPEC) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    (images / "defaults.toml").write_text((REPO / "images/defaults.toml").read_text())
    path = images / "pintest.toml"
    path.write_text(text.format(url=url))
    return path


def test_pins_ref_and_sha256_keeping_comments_and_layout(tmp_path, forge):
    url, seen = forge
    path = write_spec(tmp_path, url)
    before = path.read_text()
    pinned = pin_agent(path, ref="v1.2")
    want = hashlib.sha256(ARCHIVES["v1.2"]).hexdigest()
    assert pinned.sha256 == want and pinned.ref == "v1.2"
    assert seen == ["/agent/-/archive/v1.2/agent-v1.2.tar.gz"]
    after = path.read_text()
    old_lines, new_lines = before.splitlines(), after.splitlines()
    edits = [
        (op, old_lines[i1:i2], new_lines[j1:j2])
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines).get_opcodes()
        if op != "equal"
    ]
    assert edits == [
        (
            "replace",
            ['ref = "master"      # a branch: moves'],
            ['ref = "v1.2"      # a branch: moves'],
        ),
        ("insert", [], [f'sha256 = "{want}"']),
    ]
    assert new_lines[new_lines.index(f'sha256 = "{want}"') - 1] == "required = true"
    assert "# where the agent comes from" in after and "# keep this comment" in after
    spec = load_spec(path)
    assert (spec.agent.ref, spec.agent.sha256) == ("v1.2", want)
    assert not list(path.parent.glob(".*.tmp"))


def test_without_ref_pins_the_specs_ref_and_a_new_table_when_missing(tmp_path, forge):
    url, _ = forge
    text = SPEC.replace("[agent]\n", "[agent_x]\n").split("[agent_x]")[0]
    text += '[agent]\nsource = "{url}/agent/-/archive/{{ref}}/agent-{{ref}}.tar.gz"\n'
    path = write_spec(tmp_path, url, text)
    pinned = pin_agent(path)
    assert pinned.ref == "master"
    assert load_spec(path).agent.sha256 == hashlib.sha256(ARCHIVES["master"]).hexdigest()
    # An image file with no [agent] table at all gets one at its end.
    edited = set_agent_keys('name = "x"\n', {"ref": "v1", "sha256": "ab" * 32})
    assert edited == f'name = "x"\n\n[agent]\nref = "v1"\nsha256 = "{"ab" * 32}"\n'


def test_an_unreachable_ref_is_one_line_and_leaves_the_file(tmp_path, forge):
    url, _ = forge
    path = write_spec(tmp_path, url)
    before = path.read_text()
    with pytest.raises(EverbakeError) as caught:
        pin_agent(path, ref="no-such-ref")
    assert "no-such-ref" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_text() == before


def test_the_task_prints_the_sha256(tmp_path, forge):
    url, _ = forge
    path = write_spec(tmp_path, url)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("EVERBAKE_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "pin-agent", "--image", str(path), "--ref", "v1.2"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    want = hashlib.sha256(ARCHIVES["v1.2"]).hexdigest()
    assert done.stdout.splitlines()[0].split() == [
        want,
        f"{url}/agent/-/archive/v1.2/agent-v1.2.tar.gz",
    ]
    assert f'sha256 = "{want}"' in path.read_text()
