"""StatusClient against a fault-injecting fake agent on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import re
import select
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO), str(REPO / "runtime")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from everest_runtime import agentproto  # noqa: E402
from everest_runtime.status import StatusClient  # noqa: E402

from tests.fakes.agent import FaultyAgent, free_port  # noqa: E402


def send_all(client: StatusClient, messages: list[str]) -> None:
    # How long send() takes is measured by benchmarks/bench_status.py; the tests
    # prove "never blocks" without a clock: sends return with the frames still
    # queued (pending) or dropped, which a blocking client could not do.
    for message in messages:
        client.send(message)


def quiet_client(port: int, task_id: str = "task-1", **kwargs) -> StatusClient:
    return StatusClient("127.0.0.1", port, task_id, log=lambda line: None, **kwargs)


def test_frame_length_counts_utf8_bytes_not_characters():
    text = "Статус: ✓ готово 🚀"
    with FaultyAgent() as agent:
        client = quiet_client(agent.port)
        client.send(text)
        assert client.close(5)
        assert agent.wait_for(lambda: agent.texts == [text])
        conn = agent.connections[0]
        body = bytes(conn.raw[len(conn.handshake) :])
    encoded = text.encode("utf-8")
    assert len(encoded) != len(text)
    assert body == struct.pack(">I", len(encoded)) + encoded
    assert agent.bad == []


def test_handshake_is_length_type_zero_then_task_id():
    with FaultyAgent(expect_task_id="job-7/task-42") as agent:
        client = quiet_client(agent.port, "job-7/task-42")
        assert agent.wait_for(lambda: agent.connections and agent.connections[0].handshake)
        client.close(5)
    assert agent.connections[0].handshake == b"\x00\x00\x00\x0e\x00job-7/task-42"
    assert agent.bad == []


def test_send_never_blocks_and_keeps_newest_when_agent_is_down():
    client = quiet_client(free_port(), queue_size=100)
    messages = [f"step {i}" for i in range(5000)]
    send_all(client, messages)
    assert client.dropped == 4900
    start = time.monotonic()
    assert client.close(0.3) is False
    assert time.monotonic() - start < 2.0


def test_send_never_blocks_when_agent_reads_slowly():
    agent = FaultyAgent(read_delay=0.5, read_chunk=512, rcvbuf=4096).start()
    try:
        client = quiet_client(agent.port, queue_size=10_000)
        payload = "x" * 2000
        send_all(client, [f"{i} {payload}" for i in range(3000)])
        # Every send returned while the agent was too slow to take it all.
        assert client.pending > 0
        assert client.flush(0.2) is False
    finally:
        agent.stop()
        client.close(0.5)


def test_slow_reader_still_gets_every_frame_in_order():
    with FaultyAgent(read_delay=0.002, read_chunk=1024, rcvbuf=4096) as agent:
        client = quiet_client(agent.port)
        messages = [f"progress {i} ünïcødé" for i in range(400)]
        send_all(client, messages)
        assert client.close(20)
        assert agent.wait_for(lambda: len(agent.texts) == 400)
    assert agent.statuses == messages
    assert agent.bad == []


def test_reset_mid_frame_then_reconnect_with_whole_frames_only():
    pattern = re.compile(r"^msg \d+ é{50}$")
    agent = FaultyAgent(reset_after_bytes=1500, validate=lambda t: bool(pattern.match(t)))
    with agent:
        client = quiet_client(agent.port)
        first = [f"msg {i} " + "é" * 50 for i in range(40)]  # ~4.6 KB: crosses the reset
        send_all(client, first)
        assert agent.wait_for(lambda: len(agent.connections) >= 2)
        assert agent.connections[0].cut_inside_frame
        later = [f"msg {i} " + "é" * 50 for i in range(100, 140)]
        send_all(client, later)
        # Frames written before the reset may be lost with it: close() says so.
        assert client.close(10) is False
        assert agent.wait_for(lambda: set(later) <= set(agent.texts))
    assert client.delivered + client.unconfirmed + client.dropped == 80
    assert client.delivered >= len(later) and client.unconfirmed > 0
    assert len(set(agent.texts)) >= client.delivered
    assert agent.bad == []
    assert all(c.handshake for c in agent.connections)
    assert agent.statuses[-1] == later[-1]
    assert client.connects >= 2


def test_agent_restart_on_same_port_delivers_what_was_queued():
    agent = FaultyAgent(validate=lambda t: t.startswith("s")).start()
    client = quiet_client(agent.port)
    try:
        client.send("s-before")
        assert client.flush(5)
        assert agent.wait_for(lambda: agent.texts == ["s-before"])
        agent.stop()
        deadline = time.monotonic() + 5
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not client.connected
        during = [f"s-down-{i}" for i in range(5)]
        send_all(client, during)
        assert client.pending == len(during)  # queued while the agent was down
        agent.start()  # same port as before
        assert client.flush(10)
        assert agent.wait_for(lambda: agent.statuses[-5:] == during)
        assert agent.bad == []
        assert len(agent.connections) >= 2
    finally:
        client.close(2)
        agent.stop()


def test_drop_oldest_keeps_the_newest_and_counts_drops():
    port = free_port()
    client = quiet_client(port, queue_size=10)
    messages = [f"m{i}" for i in range(100)]
    send_all(client, messages)
    assert client.dropped == 90
    with FaultyAgent(port=port) as agent:
        assert client.flush(10)
        assert agent.wait_for(lambda: len(agent.texts) == 10)
        client.close(2)
    assert agent.statuses == messages[-10:]


def test_close_delivers_everything_and_ends_the_session_cleanly():
    with FaultyAgent() as agent:
        client = quiet_client(agent.port)
        messages = [f"line {i}" for i in range(1000)]
        send_all(client, messages)
        assert client.close(10)
        assert agent.wait_for(lambda: len(agent.texts) == 1000)
        assert agent.wait_for(lambda: not agent._open)  # client shut down, agent saw EOF
    assert agent.statuses == messages
    assert agent.bad == []
    assert client.sent == 1000


def test_get_var_with_pushes_interleaved_and_unprompted():
    pushes = [("other", "1"), ("best", "stale"), ("bound", "3.5")]
    agent = FaultyAgent(variables={"best": "42"}, push_before_reply=pushes)
    with agent:
        client = quiet_client(agent.port)
        seen: list[tuple[str, str | None]] = []
        arrived = threading.Event()

        def record(name: str, value: str | None) -> None:
            seen.append((name, value))
            if name == "incumbent":
                arrived.set()

        client.on_var(record)
        assert client.get_var("best", timeout=5) in ("42", "stale")
        assert client.get_var("missing", timeout=5) is None
        agent.wait_for(lambda: len(agent.texts) >= 2)
        agent.push("incumbent", "7.5 with spaces")
        assert arrived.wait(5)
        client.close(2)
    assert ("other", "1") in seen and ("best", "42") in seen
    assert client.variables["incumbent"] == "7.5 with spaces"
    assert client.variables["bound"] == "3.5"
    assert client.variables["missing"] is None


def test_get_var_times_out_when_the_agent_never_answers():
    with FaultyAgent(answer_var_get=False) as agent:
        client = quiet_client(agent.port)
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="'x'"):
            client.get_var("x", timeout=0.3)
        assert time.monotonic() - start < 3
        client.close(2)


def test_set_var_reaches_the_agent():
    with FaultyAgent() as agent:
        client = quiet_client(agent.port)
        client.set_var("cut", "x >= 1 and y")
        assert client.close(5)
        assert agent.wait_for(lambda: agent.variables.get("cut") == "x >= 1 and y")
    assert client.variables["cut"] == "x >= 1 and y"


def test_a_failing_callback_is_logged_and_the_client_carries_on():
    lines: list[str] = []
    with FaultyAgent(variables={"a": "1"}) as agent:
        client = StatusClient("127.0.0.1", agent.port, "t", log=lines.append)

        def broken(name: str, value: str | None) -> None:
            raise RuntimeError("model bug")

        client.on_var(broken)
        assert client.get_var("a", 5) == "1"
        client.send("still alive")
        assert client.close(5)
        assert agent.wait_for(lambda: agent.statuses == ["still alive"])
    assert any("callback failed: model bug" in line for line in lines)


def test_agent_killed_mid_burst_is_never_reported_as_delivered():
    # The agent dies (reset) while a burst is being written, and comes back on the
    # same port: the client reconnects and ends that session cleanly, but what
    # went down with the first connection is not delivered.
    total = 20_000
    messages = [f"burst {i:05d} " + "x" * 100 for i in range(total)]
    agent = FaultyAgent(read_delay=0.002, read_chunk=4096).start()
    try:
        client = quiet_client(agent.port, queue_size=total)
        send_all(client, messages)
        assert agent.wait_for(lambda: len(agent.texts) >= 200)
        agent.restart()
        agent.read_delay = 0.0
        result = client.close(30)
        received = set(agent.texts)
    finally:
        agent.stop()
    missing = total - len(received & set(messages))
    assert client.delivered + client.unconfirmed + client.dropped == total
    assert missing > 0, "the fake did not lose anything: the test proves nothing"
    assert result is False
    assert client.unconfirmed + client.dropped >= missing
    assert client.delivered <= len(received)
    assert agent.bad == []


def test_close_counts_everything_delivered_on_a_clean_session():
    with FaultyAgent() as agent:
        client = quiet_client(agent.port)
        send_all(client, [f"m{i}" for i in range(500)])
        assert client.close(10) is True
    assert (client.delivered, client.unconfirmed, client.dropped) == (500, 0, 0)


def test_a_batch_is_never_written_after_the_agent_has_closed_its_side():
    # The agent reads the first frame, then ends its side (FIN) and reads no more.
    # The next status is sent only once that FIN is certainly waiting on the
    # client's socket, while the client's reader thread is held inside a
    # shared-variable callback and so cannot notice it: only the sender's own
    # look for the FIN keeps the frame from going into a connection nobody reads.
    rdhup = getattr(select, "POLLRDHUP", None)
    if rdhup is None:
        pytest.skip("needs POLLRDHUP (Linux) to see the FIN arrive without reading it")
    listener = socket.create_server(("127.0.0.1", 0))
    held, release = threading.Event(), threading.Event()

    def hold_reader(name: str, value: str | None) -> None:
        held.set()
        release.wait(10)

    client = quiet_client(listener.getsockname()[1])
    try:
        client.on_var(hold_reader)
        conn, _ = listener.accept()
        listener.close()  # one connection only: a reconnect is refused
        conn.settimeout(10)
        client.send("first")
        expected = agentproto.handshake("task-1") + agentproto.text_frame("first")
        received = b""
        while len(received) < len(expected):
            received += conn.recv(len(expected) - len(received))
        assert received == expected
        conn.sendall(agentproto.text_frame(agentproto.var_value("phase", "two")))
        assert held.wait(10), "the client never ran its callback"
        conn.shutdown(socket.SHUT_WR)  # FIN; the receive side stays open, unread
        sock = client._sock  # the client's end, to see the FIN arrive without reading
        assert sock is not None
        poller = select.poll()
        poller.register(sock, rdhup)
        assert poller.poll(10_000), "the FIN never reached the client's socket"

        client.send("second")
        deadline = time.monotonic() + 10
        while client.connected and client.sent < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polls a condition; the ordering came from the events above
        release.set()
        result = client.close(1.0)
        rest = b""
        while True:
            data = conn.recv(65536)
            if not data:
                break
            rest += data
        conn.close()
    finally:
        release.set()
        listener.close()
        client.close(0.5)
    assert agentproto.text_frame("second") not in rest, "written after the agent's FIN"
    assert result is False
    assert client.delivered == 0
    assert client.sent == 1
    assert (client.unconfirmed, client.dropped) == (1, 1)  # "first" maybe lost; "second" put back
