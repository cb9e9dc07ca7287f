"""build_image's local flow around real packer: a failing step names the script and
leaves no record, no image and no mounts; the up-to-date check trusts only a
record whose tarball is really there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from everbake import naming
from everbake.agent_fetch import resolve_agent
from everbake.bake import build_image, build_spec
from everbake.errors import BuildError, EverbakeError
from everbake.fingerprint import fingerprints
from everbake.localbuild import export
from everbake.localbuild.chroot import mounts_under
from everbake.localbuild.step_plan import base_cache_name, image_tarball
from everbake.providers import get
from everbake.records import local_up_to_date, record_path
from everbake.settings import Settings
from everbake.spec import REPO_ROOT, load_spec
from tests.spec_text import without_agent_table


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(EverbakeError, match=r"did you mean 'local'.*local, gcp, yandex"):
        build_image("optimization", get("locall"))


def test_up_to_date_needs_the_same_fingerprint_and_the_tarball(tmp_path: Path) -> None:
    tarball = tmp_path / "img.tar.zst"
    tarball.write_bytes(b"x" * 10)
    record = {"fingerprints": {"image": "f1"}, "artifact": {"path": str(tarball), "size_bytes": 10}}
    assert local_up_to_date(record, "f1") == tarball
    assert local_up_to_date(record, "f2") is None
    assert local_up_to_date(None, "f1") is None
    tarball.write_bytes(b"x" * 9)  # truncated: not a finished image
    assert local_up_to_date(record, "f1") is None
    tarball.write_bytes(b"x" * 10)
    # Another compression names another tarball: the image is exported again.
    assert local_up_to_date(record, "f1", tarball) == tarball
    assert local_up_to_date(record, "f1", tmp_path / "img.tar.gz") is None
    tarball.unlink()
    assert local_up_to_date(record, "f1") is None


@pytest.mark.skipif(not Path("/usr/bin/packer").exists(), reason="packer is not installed")
def test_a_failing_script_names_itself_and_leaves_nothing(tiny_root: Path, tmp_path: Path) -> None:
    # A spec of our own (its own build dir), whose base layer is already "cached":
    # a tiny root without bash, so the first image-layer script fails at once.
    text = (REPO_ROOT / "images" / "optimization.toml").read_text()
    spec_file = tmp_path / "flowfail.toml"
    spec_file.write_text(text.replace('name = "optimization"', 'name = "flowfail"', 1))
    spec = load_spec(spec_file, REPO_ROOT / "images")
    fps = fingerprints(spec)
    cache = tmp_path / "cache"
    export.pack(tiny_root, cache / base_cache_name(fps.base), level=1)
    image = naming.image_name(spec, fps)

    with pytest.raises(BuildError) as failure:
        build_spec(
            spec,
            get("local"),
            settings=Settings(local_cache=cache),
            environ={"PATH": "/usr/bin:/bin"},
        )
    message = str(failure.value)
    assert "packer build failed" in message
    assert "provisioning/50-agent.sh" in message  # the step and script, from the log tail
    assert not record_path(REPO_ROOT / "dist", "local", image).exists()
    assert not image_tarball(REPO_ROOT / "dist", image).exists()
    assert not list(image_tarball(REPO_ROOT / "dist", image).parent.glob(f"{image}*"))
    work = REPO_ROOT / "build" / "local" / "flowfail" / "work"
    assert not work.exists()
    assert mounts_under(REPO_ROOT / "build" / "local" / "flowfail") == []
    plan = json.loads((REPO_ROOT / "build/local/flowfail/local-plan.json").read_text())
    assert plan["base_cache"] == str(cache / base_cache_name(fps.base))


def test_a_build_that_waited_for_another_takes_the_image_it_made(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import fcntl
    import threading

    text = without_agent_table((REPO_ROOT / "images" / "optimization.toml").read_text())
    spec_file = tmp_path / "flowwait.toml"
    text = text.replace('name = "optimization"', 'name = "flowwait"', 1)
    # An optional agent nobody serves (port 9): the build bakes none, and the image
    # fingerprint says so.
    text += '\n[agent]\nsource = "http://127.0.0.1:9/agent-{ref}.tar.gz"\nrequired = false\n'
    spec_file.write_text(text.replace("everbake-optimization", "everbake-flowwait"))
    spec = load_spec(spec_file, REPO_ROOT / "images")
    fps = fingerprints(spec, "none")
    rec = record_path(REPO_ROOT / "dist", "local", naming.image_name(spec, fps))
    lock_path = REPO_ROOT / "build" / "local" / ".flowwait.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    outcome = []
    try:
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # "another build" holds the lock
            worker = threading.Thread(
                target=lambda: outcome.append(
                    build_spec(
                        spec, get("local"), settings=Settings(local_cache=tmp_path / "cache")
                    )
                )
            )
            worker.start()
            said = ""
            while "waiting for another build" not in said:
                worker.join(0.05)
                said += capfd.readouterr().err
            # ... and finishes the very image before it lets go.
            tarball = tmp_path / "img.tar.zst"
            tarball.write_bytes(b"x" * 10)
            artifact = {"path": str(tarball), "size_bytes": 10}
            rec.parent.mkdir(parents=True, exist_ok=True)
            rec.write_text(json.dumps({"fingerprints": {"image": fps.image}, "artifact": artifact}))
        worker.join(60)
        assert outcome and outcome[0].up_to_date
        assert not (REPO_ROOT / "build" / "local" / "flowwait").exists()  # nothing rendered
    finally:
        rec.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)


def test_the_plan_writes_the_image_as_the_spec_compresses_it(tmp_path: Path) -> None:
    from everbake.bake import local_steps as local

    text = (REPO_ROOT / "images" / "optimization.toml").read_text()
    spec_file = tmp_path / "flowgzip.toml"
    text = text.replace('name = "optimization"', 'name = "flowgzip"', 1)
    spec_file.write_text(text + '\n[build.local]\ncompression = "gzip"\ncompression_level = 9\n')
    spec = load_spec(spec_file, REPO_ROOT / "images")
    fps = fingerprints(spec)
    plan, _staged = local.prepare(
        spec,
        fps,
        tmp_path / "build",
        dist=REPO_ROOT / "dist",
        cache_dir=tmp_path / "cache",
        agent=resolve_agent(spec, tmp_path / "agent.tar.gz"),
    )
    image = naming.image_name(spec, fps)
    assert plan.output == str(REPO_ROOT / "dist" / "local" / f"{image}.tar.gz")
    assert plan.compression_level == 9
    assert json.loads((tmp_path / "build" / "local-plan.json").read_text())["output"] == plan.output
