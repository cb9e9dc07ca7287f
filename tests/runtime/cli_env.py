"""What the runtime's command-line tests share: the interpreter the CLIs run under
and a clean environment for them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# RUNTIME_TEST_PYTHON=python3.8 proves 3.8 support.
PYTHON = os.environ.get("RUNTIME_TEST_PYTHON", sys.executable)
RUNTIME = REPO / "runtime"
EXAMPLE = RUNTIME / "examples" / "transport"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without EVEREST_*/EVERBAKE_* settings, the runtime importable,
    and no preemption watch (no metadata server off loopback; it has its own test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVEREST_", "EVERBAKE_"))}
    env["PYTHONPATH"] = str(RUNTIME)
    env["EVEREST_PREEMPTION_WATCH"] = "0"
    env.update(extra)
    return env
