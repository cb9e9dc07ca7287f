"""Lost-VM signals and the attempt walk, one case per entry in cases/*.json.

cases/preemption.json holds console lines as Packer prints them (each case
names its source); cases/attempts.json walks the zones with given losses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everbake.attempts import Loss, first_attempt, next_attempt
from everbake.errors import EverbakeError
from everbake.providers import get

CASES = Path(__file__).parent / "cases"


def load(name):
    cases = json.loads((CASES / name).read_text())
    return [pytest.param(case, id=case["name"]) for case in cases]


def walk(zones, preemptible, losses):
    """Every attempt made when each one loses its VM as ``losses`` says."""
    attempt = first_attempt("gcp", zones, preemptible)
    made, history = [], []
    for kind in losses:
        if attempt is None:
            break
        made.append(attempt)
        history.append((attempt, Loss(kind, "lost", "line")))
        attempt = next_attempt(zones, preemptible, history)
    assert attempt is None, f"test case: more attempts than losses ({attempt})"
    return made


@pytest.mark.parametrize("case", load("attempts.json"))
def test_attempt_walk(case):
    attempts = walk(case["zones"], case["preemptible"], case["losses"])
    assert [[a.zone, a.preemptible] for a in attempts] == case["expect"]
    assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
    for attempt in attempts:
        assert attempt.zone in attempt.sentence and "\n" not in attempt.sentence
    preemptible_zones = [a.zone for a in attempts if a.preemptible]
    standard_zones = [a.zone for a in attempts if not a.preemptible]
    # Never the same zone twice in a round.
    assert len(set(preemptible_zones)) == len(preemptible_zones)
    assert len(set(standard_zones)) == len(standard_zones)
    if case["preemptible"] and standard_zones:
        assert "non-preemptible" in next(a for a in attempts if not a.preemptible).sentence


@pytest.mark.parametrize("case", load("preemption.json"))
def test_lost_vm_signals(case):
    loss = get(case["provider"]).lost_vm(case["output"])
    assert (loss.kind if loss else None) == case["kind"]
    if loss:
        assert loss.line in [line.strip() for line in case["output"]]


def test_no_zones_is_a_spec_error():
    with pytest.raises(EverbakeError, match=r"build\.gcp\.zones is empty"):
        first_attempt("gcp", [], True)


def test_unknown_provider():
    with pytest.raises(EverbakeError, match="unknown provider; choose one of: local, gcp, yandex"):
        get("aws")
