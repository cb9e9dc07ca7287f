"""Provisioning scripts per layer and their EB_* environment (docs/internals.md)."""

from __future__ import annotations

from everbake import provision_env
from everbake.spec import load_spec


def test_scripts_split_by_layer(repo):
    base = [p.name for p in provision_env.scripts(repo, "base")]
    image = [p.name for p in provision_env.scripts(repo, "image")]
    assert base == sorted(base) and image == sorted(image)
    assert all(int(n[:2]) < 50 for n in base) and all(int(n[:2]) >= 50 for n in image)
    assert "10-base.sh" in base


def test_base_env(repo):
    env = provision_env.provisioning_env(load_spec("optimization"), "base")
    assert env["EB_STAGING"] == "/var/tmp/everbake-staging"
    assert env["EB_PIP_SOLVERS"] == "highspy==1.8.1"
    assert env["EB_APT_SOLVERS"] == "coinor-cbc=2.10.8+ds1-1"
    assert env["EB_PYTHON_PACKAGES"] == "pulp==2.9.0"
    assert env["EB_SCRIPT_SOLVERS"] == ""
    assert all(isinstance(v, str) for v in env.values())


def test_image_env_and_script_solvers(repo):
    spec = load_spec("scip")
    base = provision_env.provisioning_env(spec, "base", staging="/s")
    glpk = next(s for s in spec.solvers if s.name == "glpk")
    assert base["EB_SCRIPT_SOLVERS"] == f"glpk={glpk.sha256}={glpk.version}"
    image = provision_env.provisioning_env(spec, "image", staging="/s")
    assert image["EB_AGENT_ARCHIVE"] == "/s/agent.tar.gz"
    assert image["EB_VERIFY_SOLVERS"] == "scip glpk"
    assert image["EB_AGENT_TOKEN_MODE"] == "metadata"
    assert image["EB_AGENT_TOKEN_METADATA_KEY"] == "everest-agent-token"


def test_embed_secrets_named_never_valued(write_spec, minimal_spec, monkeypatch):
    monkeypatch.setenv("LICENCE_VALUE", "s3cr3t-licence")
    spec = load_spec(
        write_spec(
            minimal_spec
            + "[secrets.licence]\nmode = 'embed'\nenv = 'LICENCE_VALUE'\npath = '/etc/lic'\n"
        )
    )
    env = provision_env.provisioning_env(spec, "image")
    assert env["EB_EMBED_SECRETS"] == "licence:/etc/lic"
    assert "s3cr3t-licence" not in repr(env)
