"""The two stream algorithms against simple references, over random splits of
the same bytes: redaction (redact.Stream) and status-line detection (pump)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
if str(RUNTIME) not in sys.path:
    sys.path.insert(0, str(RUNTIME))

from everest_runtime import pump, redact  # noqa: E402

SECRETS = ["tok-ABCDEFGH", "tok-ABCDEFGH-longer", "zzzz", "-----BEGIN-----\nline-one-secret\nln2"]


def pieces(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 65536])
        out.append(data[pos : pos + step])
        pos += step
    return out


def sample_text(rng: random.Random) -> bytes:
    words = ["tok-ABCDEFGH", "tok-ABCDEFGH-longer", "zzz", "zzzz", "line-one-secret", "ln2",
             "tok-ABC", "x", " ", "\n", "\r\n", "##status ", "##stat", "ü"]  # fmt: skip
    return "".join(rng.choice(words) for _ in range(400)).encode()


@pytest.mark.parametrize("seed", range(40))
def test_stream_redaction_matches_whole_text_redaction(seed):
    rng = random.Random(seed)
    needles = redact.needles(SECRETS)
    assert "ln2" not in needles and "line-one-secret" in needles  # short lines are not needles
    data = sample_text(rng)
    expected = redact.text(data.decode(), needles).encode()
    stream = redact.Stream(needles)
    got = b"".join(stream.feed(p) for p in pieces(data, rng)) + stream.close()
    assert got == expected


def test_stream_passes_whole_lines_at_once():
    stream = redact.Stream(redact.needles(["secret-value-1"]))
    assert stream.feed(b"a line\nsecret-val") == b"a line\n"
    assert stream.feed(b"ue-1 rest\n") == b"<redacted> rest\n"


def reference_statuses(data: bytes, prefix: bytes) -> list[str]:
    lines = data.split(b"\n")
    return [
        line.rstrip(b"\r")[len(prefix) :][: pump.MAX_STATUS_LINE].decode("utf-8", "replace")
        for line in lines
        if line.startswith(prefix)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_status_lines_are_found_whatever_the_reads(seed):
    rng = random.Random(seed)
    data = sample_text(rng)
    found: list[str] = []
    p = pump.Pump(-1, None, None, "stdout.log", "##status ", found.append, [], 0)
    for piece in pieces(data, rng):
        p._lines(piece)
    if p._open:
        p._close_line()
    expected = [
        s[: pump.MAX_STATUS_LINE - len("##status ")] for s in reference_statuses(data, b"##status ")
    ]
    assert len(found) == len(expected)
    assert [s[: len(e)] for s, e in zip(found, expected, strict=True)] == expected


@pytest.mark.parametrize(
    "data, statuses",
    [
        (b"##status a\n\n##status b\n", ["a", "b"]),
        (b"x\n##status a\r\n##stat\n##status ", ["a", ""]),
        (b"no\nstatus ##status here\n##status last", ["last"]),
    ],
)
def test_status_lines_edge_cases(data, statuses):
    found: list[str] = []
    p = pump.Pump(-1, None, None, "stdout.log", "##status ", found.append, [], 0)
    p._lines(data)
    if p._open:
        p._close_line()
    assert found == statuses
