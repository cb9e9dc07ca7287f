"""Golden cases as data: tests/golden/<case>/spec.toml -> expected/<provider>-<layer>.json.

Each expected file is the parsed HCL (python-hcl2, normalised) of the rendered
directory plus the names of the variables set in inputs.auto.pkrvars.json.
One test per case and provider. After an intended template change, regenerate:
    EVERBAKE_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from everbake import packer_dir, render
from everbake.providers import get
from everbake.spec import load_spec

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "spec.toml").is_file())
PROVIDERS = ("local", "gcp", "yandex")
UPDATE = os.environ.get("EVERBAKE_UPDATE_GOLDEN") == "1"
# Current Packer: versions.pkr.hcl is part of the expectation.
PACKER_VERSION = (1, 11, 0)


def observed(rendered: render.Rendered) -> dict:
    values = json.loads((rendered.directory / render.VAR_FILE).read_text())
    return {
        "files": sorted(p.name for p in rendered.directory.iterdir() if p.is_file()),
        "hcl": packer_dir.parse_dir(rendered.directory),
        "var_file_keys": sorted(values),
        "sensitive": list(rendered.sensitive),
    }


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", CASES)
def test_golden(case, provider, tmp_path):
    spec = load_spec(GOLDEN / case / "spec.toml")
    layers = packer_dir.write_layers(
        spec, get(provider), tmp_path / "build", PACKER_VERSION, dist_root=tmp_path / "dist"
    )
    for rendered in layers:
        expected_path = GOLDEN / case / "expected" / f"{provider}-{rendered.layer}.json"
        got = observed(rendered)
        if UPDATE:
            expected_path.parent.mkdir(exist_ok=True)
            expected_path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        assert expected_path.is_file(), f"no golden file {expected_path}; see the module doc"
        assert got == json.loads(expected_path.read_text())


def test_every_case_has_expectations():
    for case in CASES:
        names = {p.name for p in (GOLDEN / case / "expected").glob("*.json")}
        assert {"local-image.json", "gcp-base.json", "gcp-image.json"} <= names, case
        assert {"yandex-base.json", "yandex-image.json"} <= names, case
