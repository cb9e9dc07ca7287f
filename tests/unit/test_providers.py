"""The provider registry is the one home of provider knowledge: names are compared
only in providers/ and stores/, a missing SDK is one line naming the extra, and
ruff reads every module of the package (no directory it skips as build output)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from everbake.errors import ToolError
from everbake.providers import NAMES, PROVIDERS, get
from everbake.providers.cloud import Sdk
from everbake.providers.gcp import Gcp

PACKAGE = Path(__file__).resolve().parents[2] / "everbake"
# Provider names as string literals outside providers/, stores/ and the spec schema.
LITERAL = re.compile(r"""["'](""" + "|".join(NAMES) + r""")["']""")
# Each one explained where it stands: folder names of the local provider's
# package, the yandex Packer plugin's name, and the model version run-local
# --app passes by default (a label, no provider).
EXPLAINED = {
    ("everest/runapp.py", 'DEFAULT_VALUES = {"version": "local"}'),
    ("localbuild/step_plan.py", 'return dist / "cache" / "local"'),
    ("localbuild/step_plan.py", 'return dist / "local"'),
    # The Packer plugin (and builder) of that name: its pin lives with packer.py.
    ("packer.py", 'Plugin("yandex", "github.com/hashicorp/yandex", "~> 1.1"),'),
}


def test_provider_names_are_compared_only_where_providers_live() -> None:
    seen, unexplained = set(), []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("providers/", "stores/", "spec/")) or rel == "tasks_build.py":
            continue  # tasks_build: help texts only
        for line in path.read_text().splitlines():
            if not LITERAL.search(line):
                continue
            known = {(f, text) for f, text in EXPLAINED if f == rel and text in line}
            seen |= known
            if not known:
                unexplained.append(f"{rel}: {line.strip()}")
    assert unexplained == []
    assert seen == EXPLAINED


def test_a_missing_sdk_is_one_line_naming_the_extra() -> None:
    class Unavailable(Gcp):
        sdk = Sdk("everbake_no_such_sdk", "pip install 'everbake[gcp]'  (google-cloud-compute)")

    with pytest.raises(ToolError) as failure:
        Unavailable().open_store("a-project", {})
    message = str(failure.value)
    assert "\n" not in message and "pip install 'everbake[gcp]'" in message


def test_registry_names_each_class_once() -> None:
    assert NAMES == ("local", "gcp", "yandex")
    assert all(get(name).name == name and type(get(name)) is PROVIDERS[name] for name in NAMES)


def test_ruff_reads_every_module_of_the_package() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", str(PACKAGE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shown = {Path(line.strip()).resolve() for line in listed.splitlines() if line.strip()}
    assert set(PACKAGE.rglob("*.py")) <= shown
