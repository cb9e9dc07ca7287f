"""Build attempts and preemption classification, one case per entry in cases/*.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everbake.cloudbuild.attempts import plan_attempts
from everbake.errors import EverbakeError
from everbake.providers import get

CASES = Path(__file__).parent / "cases"


def load(name):
    cases = json.loads((CASES / name).read_text())
    return [pytest.param(case, id=case["name"]) for case in cases]


@pytest.mark.parametrize("case", load("attempts.json"))
def test_attempt_order(case):
    attempts = plan_attempts(case["provider"], case["zones"], case["preemptible"])
    assert [[a.zone, a.preemptible] for a in attempts] == case["expect"]
    assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
    for attempt in attempts:
        assert attempt.zone in attempt.sentence and "\n" not in attempt.sentence
    if len(attempts) > 1:
        assert "non-preemptible" in attempts[-1].sentence


@pytest.mark.parametrize("case", load("preemption.json"))
def test_preemption_classifier(case):
    reason = get(case["provider"]).lost_vm(case["output"])
    assert (reason is not None) is case["preempted"]
    if "reason" in case:
        assert reason == case["reason"]


def test_no_zones_is_a_spec_error():
    with pytest.raises(EverbakeError, match=r"build\.gcp\.zones is empty"):
        plan_attempts("gcp", [], True)


def test_unknown_provider():
    with pytest.raises(EverbakeError, match="unknown provider; choose one of: local, gcp, yandex"):
        get("aws")
