"""The agent stand-in that run-local uses, driven by the real runtime status client."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime.agentproto import handshake, text_frame  # noqa: E402
from everest_runtime.status import StatusClient  # noqa: E402

from everbake.agent_standin import AgentStandin  # noqa: E402


def client(standin: AgentStandin, task_id: str) -> StatusClient:
    return StatusClient(standin.host, standin.port, task_id, log=lambda line: None)


def test_prints_statuses_live_and_keeps_the_last():
    printed: list[str] = []
    with AgentStandin(on_status=printed.append) as standin:
        task = client(standin, "t1")
        task.send("loading data")
        task.send("solving: gap 3.2% ✓")
        assert task.close(5)
        assert standin.wait_for(lambda s: len(s.messages) == 2)
    assert printed == ["[task t1] loading data", "[task t1] solving: gap 3.2% ✓"]
    assert standin.last_status == "solving: gap 3.2% ✓"
    assert standin.statuses == {"t1": "solving: gap 3.2% ✓"}
    assert standin.errors == []


def test_var_set_is_broadcast_to_other_tasks_and_answers_var_get():
    with AgentStandin(on_status=lambda line: None) as standin:
        a, b = client(standin, "a"), client(standin, "b")
        pushed = threading.Event()
        b.on_var(lambda name, value: pushed.set() if name == "best" else None)
        assert standin.wait_for(
            lambda s: sorted(t for t in s._connections.values() if t) == ["a", "b"]
        )
        a.set_var("best", "17.25")
        assert pushed.wait(5)
        assert b.variables["best"] == "17.25"
        assert a.get_var("best", 5) == "17.25"
        assert b.get_var("unset", 5) is None
        standin.push("stop", "now")
        assert a.get_var("stop", 5) == "now"
        a.close(2)
        b.close(2)
    assert standin.variables == {"best": "17.25", "stop": "now"}
    assert next(m.text for m in standin.messages if m.task_id == "a") == "VAR_SET_MD best 17.25"


def test_bad_handshake_is_recorded_and_the_connection_closed():
    logged: list[str] = []
    with AgentStandin(on_status=lambda line: None, log=logged.append) as standin:
        with socket.create_connection(standin.address) as raw:
            raw.sendall(struct.pack(">I", 3) + b"\x05ab" + text_frame("x"))
            assert raw.recv(10) == b""  # the stand-in closed it
        assert standin.wait_for(lambda s: bool(s.errors))
    assert "handshake type byte is 5" in standin.errors[0]
    assert logged and logged[0].startswith("agent stand-in: ")
    assert standin.messages == []


def test_restart_on_the_same_port_and_env_for_tasks():
    standin = AgentStandin(on_status=lambda line: None).start()
    port = standin.port
    assert standin.env("t7") == {
        "EVEREST_AGENT_ADDRESS": "127.0.0.1",
        "EVEREST_AGENT_PORT": str(port),
        "EVEREST_AGENT_TASK_ID": "t7",
    }
    standin.stop()
    standin.start()
    try:
        assert standin.port == port
        task = client(standin, "t7")
        task.send("after restart")
        assert task.close(5)
        assert standin.wait_for(lambda s: s.last_status == "after restart")
    finally:
        standin.stop()


def char_counted(text: str) -> bytes:
    """A frame as the seed talk's client writes it: the length in characters."""
    return struct.pack(">I", len(text)) + text.encode("utf-8")


def session(standin: AgentStandin, data: bytes) -> None:
    """One connection sending ``data`` after the handshake, in one write (so the
    stand-in gets it in one read), then ending the session."""
    with socket.create_connection(standin.address) as raw:
        raw.sendall(handshake("seed") + data)
        raw.shutdown(socket.SHUT_WR)
        while raw.recv(65536):
            pass


def test_length_in_characters_is_explained_and_valid_frames_are_kept():
    printed: list[str] = []
    logged: list[str] = []
    with AgentStandin(on_status=printed.append, log=logged.append) as standin:
        session(standin, text_frame("старт") + char_counted("Итерация 5: obj=1.0"))
        assert standin.wait_for(lambda s: bool(s.errors))
    # The frame before the bad one, read in the same recv(), is a status.
    assert printed == ["[task seed] старт"]
    assert standin.last_status == "старт"
    assert len(standin.errors) == 1
    error = standin.errors[0]
    assert "length prefix counts characters, not UTF-8 bytes" in error
    assert '"Итерация 5: obj=1.0" is 19 characters but 27 bytes' in error
    assert "exceeds" not in error  # the consequence is not the news
    assert logged == [f"agent stand-in: {error}"]


def test_a_frame_cut_inside_a_character_is_an_error_never_a_status():
    printed: list[str] = []
    with AgentStandin(on_status=printed.append) as standin:
        session(standin, text_frame("working") + char_counted("done ✓"))
        assert standin.wait_for(lambda s: bool(s.errors))
    assert printed == ["[task seed] working"]
    assert standin.last_status == "working"  # never "done \ufffd"
    assert "counts characters, not UTF-8 bytes" in standin.errors[0]


def test_invalid_utf8_in_a_well_framed_message_is_an_error():
    printed: list[str] = []
    with AgentStandin(on_status=printed.append) as standin:
        session(standin, struct.pack(">I", 4) + b"ok\xff!" + text_frame("after"))
        assert standin.wait_for(lambda s: s.last_status == "after" and bool(s.errors))
    assert printed == ["[task seed] after"]
    assert "not valid UTF-8" in standin.errors[0]
