"""The model's own last status survives: the runner relays the model's agent
sessions (EVEREST_AGENT_PORT points at the runner), never replaces the model's
final message with its own summary (that goes to the log), and stays up
whatever the model does to the relay."""

from __future__ import annotations

import pytest

from tests.fakes.agent import FaultyAgent, free_port
from tests.runtime.cli_env import PYTHON, clean_env
from tests.runtime.tasks import make_model, make_task, run_task, status_text

CLI = f"import subprocess; subprocess.run([{PYTHON!r}, '-m', 'everest_runtime', 'status', %r])\n"
REPORTERS = {
    "cli": "print('working')\n" + CLI % "optimal: cost 17",
    "library": "from everest_runtime import status\nstatus.send('optimal: cost 17')\n",
    "prefix": "print('##status optimal: cost 17', flush=True)\n",
    "shell": None,  # a run-task.sh model calling everest-status
}


def shell_model(tmp_path):
    model = tmp_path / "shell"
    model.mkdir()
    (model / "run-task.sh").write_text(
        f'echo working\n"{PYTHON}" -m everest_runtime status "optimal: cost 17"\n'
    )
    return model


@pytest.mark.parametrize("how", sorted(REPORTERS))
def test_the_models_last_status_is_the_tasks_last_status(tmp_path, how):
    script = REPORTERS[how]
    model = shell_model(tmp_path) if script is None else make_model(tmp_path, script)
    task = make_task(tmp_path)
    with FaultyAgent(expect_task_id="t-5") as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-5")
        result = run_task(task, model, env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: "optimal: cost 17" in agent.statuses, 10)
    assert status_text(task) == "optimal: cost 17"
    assert agent.statuses[-1] == "optimal: cost 17"  # the runner sent nothing after it
    assert agent.bad == []
    assert b"done: exit 0 in" in result.stderr  # the runner's own summary: the log


def test_without_an_agent_the_models_status_still_is_the_last_word(tmp_path):
    model = make_model(tmp_path, REPORTERS["library"])
    task = make_task(tmp_path)
    result = run_task(task, model)
    assert result.returncode == 0, result.stderr.decode()
    assert status_text(task) == "optimal: cost 17"
    assert b"status: optimal: cost 17" in result.stderr


def test_a_model_that_says_nothing_gets_the_runners_summary(tmp_path):
    task = make_task(tmp_path)
    assert run_task(task, make_model(tmp_path, "pass\n")).returncode == 0
    assert status_text(task).startswith("done: exit 0 in ")


def test_a_failing_model_keeps_its_last_word_inside_the_failure(tmp_path):
    script = REPORTERS["library"] + "status.close()\nraise SystemExit(4)\n"
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script))
    assert result.returncode == 4
    status = status_text(task)
    assert status.startswith("failed: exit 4 after ")
    assert status.endswith("(last status: optimal: cost 17)")


def test_shared_variables_pass_the_relay_both_ways(tmp_path):
    script = (
        "from everest_runtime import status\n"
        "c = status.default_client()\n"
        "c.set_var('best', '12.5')\n"
        "print('got', c.get_var('seed', timeout=10), flush=True)\n"
        "status.send('done here')\n"
    )
    task = make_task(tmp_path)
    with FaultyAgent(variables={"seed": "s-99"}) as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-1")
        result = run_task(task, make_model(tmp_path, script), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: agent.variables.get("best") == "12.5", 10)
    assert b"got s-99" in result.stdout
    assert status_text(task) == "done here"


def test_a_flood_of_statuses_keeps_the_newest(tmp_path):
    script = (
        "from everest_runtime import status\n"
        "for i in range(20000):\n"
        "    status.send(f'step {i}')\n"
        "status.send('final: 7')\n"
    )
    task = make_task(tmp_path)
    with FaultyAgent() as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-1")
        result = run_task(task, make_model(tmp_path, script), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: "final: 7" in agent.statuses, 10)
    assert status_text(task) == "final: 7"
    assert agent.statuses[-1] == "final: 7"


# Connects to its agent port and sends junk, a bad handshake, a frame cut short
# and a frame claiming 4 GB, holds 200 idle sessions, then reports properly.
HOSTILE_RELAY = """
import os, socket, struct
from everest_runtime import status
port = int(os.environ["EVEREST_AGENT_PORT"])
def session(data):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    return s
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
session(b"GET / HTTP/1.0\\r\\n\\r\\n").close()
session(struct.pack(">I", 3) + b"\\x07ab").close()
session(struct.pack(">I", 3) + b"\\x00ab" + struct.pack(">I", 50) + b"cut").close()
session(struct.pack(">I", 3) + b"\\x00ab" + struct.pack(">I", 0xFFFFFFF0)).close()
for s in idle:
    s.close()
status.send("still fine")
"""


def test_the_relay_survives_whatever_the_model_sends_it(tmp_path):
    task = make_task(tmp_path)
    with FaultyAgent() as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-1")
        result = run_task(task, make_model(tmp_path, HOSTILE_RELAY), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: "still fine" in agent.statuses, 10)
    assert status_text(task) == "still fine"
    assert agent.bad == []  # nothing of the junk reached the agent
    assert b"Traceback" not in result.stderr


def test_the_agent_down_costs_the_model_nothing(tmp_path):
    script = CLI % "optimal: cost 17" + "print('after the status', flush=True)\n"
    task = make_task(tmp_path)
    env = clean_env(EVEREST_AGENT_PORT=str(free_port()), EVEREST_AGENT_TASK_ID="t-1")
    result = run_task(task, make_model(tmp_path, script), env=env)
    assert result.returncode == 0
    assert b"after the status" in result.stdout
    assert b"everest-status: warning" not in result.stderr  # the relay took it
    assert status_text(task) == "optimal: cost 17"


def test_without_an_agent_the_relay_answers_from_what_the_model_set(tmp_path):
    script = (
        "from everest_runtime import status\n"
        "c = status.default_client()\n"
        "c.set_var('best', '3.5')\n"
        "print('best', c.get_var('best', timeout=10), 'other', c.get_var('other', timeout=10))\n"
    )
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script))
    assert result.returncode == 0, result.stderr.decode()
    assert b"best 3.5 other None" in result.stdout


def test_shared_variable_values_are_redacted_on_the_way_up(tmp_path):
    script = (
        "import os, socket, struct\n"
        "port = int(os.environ['EVEREST_AGENT_PORT'])\n"
        "s = socket.create_connection(('127.0.0.1', port))\n"  # a client of its own
        "text = ('VAR_SET_MD leak ' + os.environ['DB_PASSWORD']).encode()\n"
        "s.sendall(struct.pack('>I', 2) + b'\\x00t' + struct.pack('>I', len(text)) + text)\n"
        "s.shutdown(socket.SHUT_WR)\n"
        "s.recv(1)\n"
    )
    task = make_task(tmp_path)
    with FaultyAgent() as agent:
        env = clean_env(
            EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t", DB_PASSWORD="pw-77665544"
        )
        result = run_task(task, make_model(tmp_path, script), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: "leak" in agent.variables, 10)
    assert agent.variables["leak"] == "<redacted>"
