"""everest-status and the module-level helpers, run as subprocesses of the
runtime's interpreter (and of Python 3.8 when it is installed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fakes.agent import FaultyAgent, free_port  # noqa: E402

PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python")
INTERPRETERS = [sys.executable] + ([str(PY38)] if PY38.exists() else [])
CLI = "import sys; from everest_runtime.cli import status_main; sys.exit(status_main())"


def run(python: str, code: str, *args: str, agent_port: int | None, stdin: str = ""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVEREST_")}
    env["PYTHONPATH"] = str(REPO / "runtime")
    if agent_port is not None:
        env.update(
            EVEREST_AGENT_ADDRESS="127.0.0.1",
            EVEREST_AGENT_PORT=str(agent_port),
            EVEREST_AGENT_TASK_ID="task-9",
        )
    return subprocess.run(
        [python, "-c", code, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(params=INTERPRETERS, ids=lambda p: Path(p).name)
def python(request) -> str:
    return request.param


def test_cli_delivers_a_non_ascii_status(python):
    with FaultyAgent(expect_task_id="task-9") as agent:
        done = run(python, CLI, "шаг", "3/10", "✓", agent_port=agent.port)
        assert done.returncode == 0, done.stderr
        assert agent.wait_for(lambda: agent.statuses == ["шаг 3/10 ✓"])
    assert agent.bad == []
    assert done.stderr == ""


def test_cli_exits_zero_with_a_warning_when_the_agent_is_down(python):
    port = free_port()
    start = time.monotonic()
    done = run(python, CLI, "still running", agent_port=port)
    assert done.returncode == 0
    assert time.monotonic() - start < 10
    assert f"warning: status not delivered to the agent at 127.0.0.1:{port}" in done.stderr
    assert "still running" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_warns_when_the_agent_resets_before_confirming(python):
    # The agent reads the first bytes, then resets: the status may be lost, and
    # the session never ended with the agent's clean close.
    with FaultyAgent(reset_after_bytes=4) as agent:
        done = run(python, CLI, "maybe lost", agent_port=agent.port)
    assert done.returncode == 0
    assert "warning: status not delivered to the agent at 127.0.0.1:" in done.stderr
    assert "maybe lost" in done.stderr


def test_cli_without_an_agent_prints_the_status_to_stderr(python):
    done = run(python, CLI, "hello", agent_port=None)
    assert done.returncode == 0
    assert done.stderr == "status: hello\n"


def test_cli_reads_stdin_lines_with_dash(python):
    with FaultyAgent() as agent:
        done = run(python, CLI, "-", agent_port=agent.port, stdin="one\n\ntwo\nthree\n")
        assert done.returncode == 0, done.stderr
        assert agent.wait_for(lambda: agent.statuses == ["one", "two", "three"])


def test_cli_help_and_version(python):
    helped = run(python, CLI, "--help", agent_port=None)
    assert helped.returncode == 0 and "everest-status" in helped.stdout
    version = run(python, CLI, "--version", agent_port=None)
    assert version.returncode == 0
    assert version.stdout.strip() == "everest-status 0.1.0"
    bad = run(python, CLI, agent_port=None)
    assert bad.returncode == 2 and "message" in bad.stderr


def test_module_send_is_delivered_at_exit_without_an_explicit_flush(python):
    code = "from everest_runtime import status\nfor i in range(50): status.send('tick %d' % i)\n"
    with FaultyAgent() as agent:
        done = run(python, code, agent_port=agent.port)
        assert done.returncode == 0, done.stderr
        assert agent.wait_for(lambda: len(agent.statuses) == 50)
    assert agent.statuses[-1] == "tick 49"


def test_a_silent_agent_keeps_its_one_connection(python):
    # The reader's recv times out whenever the agent says nothing for write_timeout;
    # that is no reason to drop the session (Python 3.8 raises socket.timeout there,
    # which is not TimeoutError before 3.10).
    code = (
        "import sys, time\n"
        "from everest_runtime.status import StatusClient\n"
        "c = StatusClient('127.0.0.1', int(sys.argv[1]), 'task-9', write_timeout=0.1)\n"
        "c.send('one'); c.flush(5); time.sleep(1.0); c.send('two'); c.flush(5)\n"
        "print(c.connects); c.close(5)\n"
    )
    with FaultyAgent(expect_task_id="task-9") as agent:
        done = run(python, code, str(agent.port), agent_port=None)
        assert done.returncode == 0, done.stderr
        assert agent.wait_for(lambda: agent.statuses == ["one", "two"])
    assert done.stdout.strip() == "1", done.stderr
    assert len(agent.connections) == 1
    assert agent.bad == []


def test_module_send_with_a_bad_port_goes_to_stderr(python):
    code = "from everest_runtime import status; status.send('hi'); print(status.flush(1))"
    env_port = "not-a-port"
    done = subprocess.run(
        [python, "-c", code],
        env={
            "PYTHONPATH": str(REPO / "runtime"),
            "EVEREST_AGENT_PORT": env_port,
            "EVEREST_AGENT_TASK_ID": "t",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == "True"
    assert "EVEREST_AGENT_PORT='not-a-port' is not a TCP port number" in done.stderr
    assert "status: hi" in done.stderr
