"""packer.py pieces that need no packer run: secrets for the environment, manifests."""

from __future__ import annotations

import json

import pytest

from everbake import packer
from everbake.errors import BuildError, CredentialsError
from everbake.spec import load_spec


def test_secret_env_maps_embed_secrets_only(write_spec, minimal_spec):
    spec = load_spec(
        write_spec(minimal_spec + "[secrets.licence]\nmode = 'embed'\nenv = 'LIC_VALUE'\n")
    )
    env = packer.secret_env(spec, {"LIC_VALUE": "v1", "EVEREST_AGENT_TOKEN": "other"})
    assert env == {"PKR_VAR_secret_licence": "v1"}  # metadata/env modes are not passed


def test_missing_secret_value_is_one_line_naming_the_variable(write_spec, minimal_spec):
    spec = load_spec(
        write_spec(minimal_spec + "[secrets.licence]\nmode = 'embed'\nenv = 'LIC_VALUE'\n")
    )
    with pytest.raises(CredentialsError, match=r"secret 'licence' .*set LIC_VALUE"):
        packer.secret_env(spec, {})


def test_read_manifest_picks_the_last_run(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps(
            {
                "builds": [
                    {"packer_run_uuid": "a", "artifact_id": "old"},
                    {"packer_run_uuid": "b", "artifact_id": "new"},
                ],
                "last_run_uuid": "b",
            }
        )
    )
    assert packer.read_manifest(path)["artifact_id"] == "new"
    path.write_text(json.dumps({"builds": [], "last_run_uuid": "c"}))
    with pytest.raises(BuildError, match="no build entry for the last run"):
        packer.read_manifest(path)
    with pytest.raises(BuildError, match="wrote no manifest"):
        packer.read_manifest(tmp_path / "absent.json")
