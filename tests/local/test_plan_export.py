"""The local plan (pure data, no secret values) and the tarball round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everbake.agent_fetch import resolve_agent
from everbake.bake.local_steps import prepare
from everbake.errors import BuildError
from everbake.fingerprint import fingerprints, image_inputs
from everbake.localbuild import export
from everbake.localbuild.step_plan import PLAN_FILE, load_plan, make_plan
from everbake.spec import load_spec


def _plan_kwargs(tmp_path: Path) -> dict:
    staging = tmp_path / "staging"
    (staging / "scripts").mkdir(parents=True)
    (staging / "scripts" / "10-base.sh").write_text("true\n")
    return dict(
        image="fam-abc",
        base_name="fam-base-def",
        fingerprints={"base": "d" * 64, "image": "a" * 64},
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        build_dir=tmp_path / "build",
        cache_dir=tmp_path / "cache",
        output=tmp_path / "dist" / "fam-abc.tar.zst",
        staging_host=staging,
        scripts={"base": [Path("p/10-base.sh")], "image": [Path("p/60-runtime.sh")]},
        env={"base": {"EB_USER": "everest"}, "image": {}},
    )


def test_plan_round_trips_and_keys_the_cache_by_base_fingerprint(tmp_path: Path) -> None:
    plan = make_plan(**_plan_kwargs(tmp_path))
    path = tmp_path / PLAN_FILE
    plan.write(path)
    again = load_plan(path)
    assert again == plan
    assert again.base_cache == str((tmp_path / "cache" / f"base-{'d' * 64}.tar.zst").resolve())
    assert again.layers["base"].env["EB_STAGING"] == "/var/tmp/everbake-staging"
    assert again.staged == ["scripts/10-base.sh"]


def test_plan_refuses_secret_values(tmp_path: Path) -> None:
    kwargs = _plan_kwargs(tmp_path)
    kwargs["env"] = {"base": {}, "image": {"EB_SECRET_AGENT_TOKEN": "x"}}
    with pytest.raises(BuildError, match="secret values"):
        make_plan(**kwargs)


def test_broken_plan_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        load_plan(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(BuildError, match="not valid JSON"):
        load_plan(bad)
    bad.write_text(json.dumps({"version": 99}))
    with pytest.raises(BuildError, match="version 99"):
        load_plan(bad)


def test_prepare_from_the_default_spec_names_no_secret_value(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EVEREST_AGENT_TOKEN", "tok-should-never-be-written")
    spec = load_spec("optimization")
    fps = fingerprints(spec)
    plan, staged = prepare(
        spec,
        fps,
        tmp_path / "b",
        dist=tmp_path / "dist",
        cache_dir=tmp_path / "c",
        agent=resolve_agent(spec, tmp_path / "agent.tar.gz"),
    )
    text = (tmp_path / "b" / PLAN_FILE).read_text()
    assert "tok-should-never-be-written" not in text
    assert plan.layers["base"].scripts == ["10-base.sh", "20-python.sh", "30-solvers.sh"]
    assert plan.layers["image"].scripts[-1] == "90-hygiene.sh"
    assert {staged.wheel, "agent.conf", "image.json"} <= set(plan.staged)
    info = json.loads((tmp_path / "b" / "staging" / "image.json").read_text())
    assert info["fingerprints"]["image"] == fps.image
    # What image.json holds besides the name and fingerprints is a fingerprint input.
    inputs = image_inputs(spec, fps.base, info["agent_content"])
    assert {**info, "image": "", "fingerprints": {}, "provider": ""} == inputs["image_info"]
    # No agent reachable here (or pinned): the plan tells 50-agent.sh to skip.
    if staged.agent_sha256 is None:
        assert plan.layers["image"].env["EB_AGENT_ARCHIVE"] == ""


def test_pack_unpack_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("x\n")
    (root / "proc").mkdir()
    (root / "proc" / "junk").write_text("never exported")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)
    tarball = tmp_path / "out" / "img.tar.zst"
    size = export.pack(root, tarball, level=1)
    assert size == tarball.stat().st_size > 0
    assert not list(tarball.parent.glob("*.partial"))
    dest = tmp_path / "copy"
    export.unpack(tarball, dest)
    assert (dest / "etc" / "hostname").read_text() == "x\n"
    assert (dest / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert not (dest / "proc" / "junk").exists()
    with pytest.raises(BuildError, match="not empty"):
        export.unpack(tarball, dest)


def test_failed_pack_leaves_no_partial_file(tmp_path: Path) -> None:
    tarball = tmp_path / "out" / "img.tar.zst"
    with pytest.raises(BuildError):
        export.pack(tmp_path / "missing-root", tarball)
    assert not tarball.exists()
    assert not list(tarball.parent.glob("*"))


def test_a_package_cache_reaches_mmdebstrap_and_the_plan(tmp_path: Path) -> None:
    from everbake.localbuild import rootfs

    argv = rootfs.mmdebstrap_argv(
        tmp_path / "root", suite="bookworm", mirror="http://m", apt_cache=tmp_path / "c" / "apt"
    )
    assert "--skip=essential/unlink" in argv
    assert f"--setup-hook=sync-in {tmp_path}/c/apt /var/cache/apt/archives/" in argv
    assert f"--customize-hook=sync-out /var/cache/apt/archives {tmp_path}/c/apt" in argv
    assert argv[-3:] == ["bookworm", str(tmp_path / "root"), "http://m"]
    plain = rootfs.mmdebstrap_argv(tmp_path / "root", suite="bookworm", mirror="http://m")
    assert not any("sync" in arg or "--skip" in arg for arg in plain)

    spec = load_spec("optimization")
    plan, _staged = prepare(
        spec,
        fingerprints(spec),
        tmp_path / "b",
        dist=tmp_path / "dist",
        cache_dir=tmp_path / "c",
        agent=resolve_agent(spec, tmp_path / "agent.tar.gz"),
        package_cache=tmp_path / "pkgs",
    )
    again = load_plan(tmp_path / "b" / PLAN_FILE)
    assert again.apt_cache == tmp_path / "pkgs" / "apt"
    assert again.pip_cache == tmp_path / "pkgs" / "pip"
    # Without one, nothing is kept.
    bare = {**json.loads(plan.to_json()), "package_cache": ""}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    assert load_plan(tmp_path / "bare.json").apt_cache is None
