"""Status client throughput and send() stalls, against a plain blocking client.

The agent is a separate process on 127.0.0.1 that reads and discards frames
(so its threads do not share our GIL). Run: python benchmarks/bench_status.py
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from everest_runtime import agentproto
from everest_runtime.status import StatusClient

SINK = """
import socket, sys, threading
mode = sys.argv[1]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
def serve(c):
    if mode == "stalled":
        threading.Event().wait()
    while c.recv(1 << 20):
        pass
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def start_sink(mode: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", SINK, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def blocking_client(port: int, messages: list[str], timeout: float) -> tuple[float, float, int]:
    """Baseline (rate counts calls): connect once (again per call when down), sendall."""
    sock = None
    longest, failed = 0.0, 0
    start = time.perf_counter()
    for message in messages:
        t0 = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout)
                sock.sendall(agentproto.handshake("bench"))
            sock.sendall(struct.pack(">I", len(message.encode())) + message.encode())
        except OSError:
            failed += 1
            if sock is not None:
                sock.close()
            sock = None
        longest = max(longest, time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    if sock is not None:
        sock.close()
    return len(messages) / elapsed, longest, failed


def queued_client(
    port: int, messages: list[str], flush: float, queue_size: int = 1000
) -> tuple[float, float, int]:
    """Ours; the rate counts calls until flush() returns (all written when agent is up)."""
    client = StatusClient("127.0.0.1", port, "bench", queue_size=queue_size, log=lambda line: None)
    longest = 0.0
    start = time.perf_counter()
    for message in messages:
        t0 = time.perf_counter()
        client.send(message)
        longest = max(longest, time.perf_counter() - t0)
    client.flush(flush)
    elapsed = time.perf_counter() - start
    client.close(0.5)
    return len(messages) / elapsed, longest, client.dropped


def row(case: str, base: tuple[float, float, int], ours: tuple[float, float, int]) -> None:
    rate_ratio = ours[0] / base[0] if base[0] else float("inf")
    stall_ratio = ours[1] / base[1] if base[1] else float("inf")
    print(
        f"{case:<22} {base[0]:>12,.0f} {ours[0]:>12,.0f} {rate_ratio:>7.2f}x"
        f" {base[1] * 1e3:>10.3f} {ours[1] * 1e3:>10.3f} {stall_ratio:>7.3f}x"
        f"   baseline failures {base[2]}, ours dropped {ours[2]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50_000, help="messages per case")
    args = parser.parse_args()
    messages = [f"iteration {i}: objective 1234.5678, gap 0.{i % 97:02d}% ✓" for i in range(args.n)]
    print(f"{args.n} messages of ~{len(messages[0].encode())} B; rates in messages/s, stalls in ms")
    print(
        f"{'case':<22} {'blocking/s':>12} {'ours/s':>12} {'ratio':>8}"
        f" {'block max':>10} {'ours max':>10} {'ratio':>8}"
    )
    sink, port = start_sink("read")
    try:
        base = blocking_client(port, messages, 5)
        row("agent up", base, queued_client(port, messages, 60, queue_size=len(messages)))
    finally:
        sink.kill()
    down = free_port()
    short = messages[:5000]
    row("agent down (refused)", blocking_client(down, short, 1), queued_client(down, short, 0))
    sink, port = start_sink("stalled")
    try:
        # The baseline blocks until its socket timeout once buffers fill: 1 s here.
        big = [m + " " + "x" * 4000 for m in short]
        row("agent stalled", blocking_client(port, big, 1), queued_client(port, big, 0))
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
