"""The base layer as a read-only extracted dir under a per-build overlay: the image
layer's deletes and edits land in the build's upper dir only, the image is the
merged view, and no mount outlives a build, whether it succeeds or fails."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest

from everbake.errors import BuildError
from everbake.localbuild import export, overlay, steps
from everbake.localbuild.chroot import mounts_under, umount
from everbake.localbuild.step_plan import Plan, base_cache_name, make_plan
from tests.local.conftest import make_tiny_root

EDIT = """set -e
rm /bin/ls
echo edited > /etc/hostname
echo new > /etc/added
rm -r "$EB_STAGING"
"""


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    """A plan whose base layer is cached as a tarball of a tiny root with bash."""
    if os.geteuid() != 0:
        pytest.skip("overlay and chroot tests need root")
    root = make_tiny_root(tmp_path / "base-src", extra=("/bin/bash", "/bin/rm"))
    (root / "etc/hostname").write_text("base\n")
    return _plan(tmp_path, root, EDIT)


def _plan(tmp_path: Path, base_root: Path, script: str) -> Plan:
    staging = tmp_path / "staging"
    (staging / "scripts").mkdir(parents=True, exist_ok=True)
    (staging / "scripts" / "50-edit.sh").write_text(script)
    fps = {"base": "b" * 64, "image": "i" * 64}
    cache = tmp_path / "cache"
    export.pack(base_root, cache / base_cache_name(fps["base"]), level=1)
    return make_plan(
        image="tiny-img",
        base_name="tiny-base",
        fingerprints=fps,
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        build_dir=tmp_path / "build",
        cache_dir=cache,
        output=tmp_path / "dist" / "tiny-img.tar.zst",
        staging_host=staging,
        scripts={"base": [Path("10-base.sh")], "image": [Path("50-edit.sh")]},
        env={"base": {}, "image": {}},
    )


def _snapshot(tree: Path) -> dict[str, tuple[int, int, str]]:
    """(mode, mtime, content hash) of every path under ``tree``."""
    seen = {}
    for dirpath, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            seen[str(path.relative_to(tree))] = (st.st_mode, st.st_mtime_ns, digest)
    return seen


def _overlay_at(target: Path) -> bool:
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return any(
            line.split()[1] == str(target) and line.split()[2] == "overlay" for line in mounts
        )


def test_rebake_runs_in_an_overlay_and_never_touches_the_base(plan: Plan, tmp_path: Path) -> None:
    work = Path(plan.work_dir)
    steps.base(plan)
    lower = overlay.base_dir(Path(plan.base_cache))
    assert overlay.usable_base_dir(Path(plan.base_cache)) == lower
    assert _overlay_at(plan.rootfs)
    before = _snapshot(lower)

    steps.image(plan, {})
    # The edits are in the merged view and in the build's upper dir, not in the base.
    assert not (plan.rootfs / "bin/ls").exists()
    assert (plan.rootfs / "etc/hostname").read_text() == "edited\n"
    assert _snapshot(lower) == before
    assert (lower / "bin/ls").exists()

    steps.export_image(plan)
    assert mounts_under(tmp_path) == []
    assert not work.exists()
    assert _snapshot(lower) == before
    image = tmp_path / "image"
    export.unpack(Path(plan.output), image)
    assert (image / "etc/hostname").read_text() == "edited\n"
    assert (image / "etc/added").read_text() == "new\n"
    assert not (image / "bin/ls").exists()
    assert (image / "bin/cat").exists()
    assert not (image / "var/tmp/everbake-staging").exists()


def test_a_failing_image_layer_then_cleanup_leaves_no_mount(plan: Plan, tmp_path: Path) -> None:
    (Path(plan.staging_host) / "scripts" / "50-edit.sh").write_text("rm /bin/cat\nexit 3\n")
    steps.base(plan)
    lower = overlay.base_dir(Path(plan.base_cache))
    before = _snapshot(lower)
    with pytest.raises(BuildError, match=r"50-edit\.sh"):
        steps.image(plan, {})
    # The chroot's mounts are gone already; the overlay is left for the cleanup.
    assert mounts_under(tmp_path) == [str(plan.rootfs)]
    overlay.release(Path(plan.work_dir))
    assert mounts_under(tmp_path) == []
    assert not Path(plan.work_dir).exists()
    assert _snapshot(lower) == before


def test_an_exception_in_the_chroot_then_cleanup(plan: Plan, tmp_path: Path) -> None:
    from everbake.localbuild.chroot import chroot

    steps.base(plan)
    with pytest.raises(RuntimeError), chroot(plan.rootfs):
        assert len(mounts_under(plan.rootfs)) == 5  # the overlay and proc, sys, dev, dev/pts
        raise RuntimeError("a step failed")
    overlay.release(Path(plan.work_dir))
    assert mounts_under(tmp_path) == []
    assert not Path(plan.work_dir).exists()


def test_a_leftover_overlay_is_released_by_the_next_base_step(plan: Plan, tmp_path: Path) -> None:
    steps.base(plan)
    (plan.rootfs / "etc/leftover").write_text("from a killed build\n")
    steps.base(plan)  # as after a build whose process was killed before export
    assert mounts_under(tmp_path) == [str(plan.rootfs)]
    assert not (plan.rootfs / "etc/leftover").exists()
    overlay.release(Path(plan.work_dir))
    assert mounts_under(tmp_path) == []


def test_release_unmounts_only_its_own_overlay(plan: Plan, tmp_path: Path, capsys) -> None:
    steps.base(plan)
    foreign = plan.rootfs / "mnt"
    foreign.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(foreign)], check=True)
    try:
        overlay.release(Path(plan.work_dir), settle=0.5)
        assert "still mounted" in capsys.readouterr().err
        assert mounts_under(tmp_path) == [str(plan.rootfs), str(foreign)]
    finally:
        umount(foreign)
    overlay.release(Path(plan.work_dir))
    assert mounts_under(tmp_path) == []
    assert not Path(plan.work_dir).exists()


def test_without_overlays_the_base_is_unpacked(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(overlay.OVERLAY_ENV, "0")
    steps.base(plan)
    assert "no overlay (EVERBAKE_LOCAL_OVERLAY=0); unpacking" in capsys.readouterr().err
    assert mounts_under(tmp_path) == []
    assert not overlay.base_dir(Path(plan.base_cache)).exists()
    steps.image(plan, {})
    steps.export_image(plan)
    assert Path(plan.output).is_file() and not Path(plan.work_dir).exists()


def test_a_base_dir_without_its_tarball_or_a_root_is_not_used(plan: Plan) -> None:
    tarball = Path(plan.base_cache)
    lower = overlay.extract_base_dir(tarball)
    assert lower == overlay.base_dir(tarball) and (lower / "bin/cat").exists()
    moved = tarball.with_name("elsewhere")
    tarball.rename(moved)
    assert overlay.usable_base_dir(tarball) is None
    assert overlay.drop_unusable(tarball) and not lower.exists()
    moved.rename(tarball)
    # A dir that is not a root filesystem (no bin) is replaced from the tarball.
    (lower / "etc").mkdir(parents=True)
    assert overlay.usable_base_dir(tarball) is None
    assert overlay.extract_base_dir(tarball) == lower
    assert (lower / "bin/cat").exists()
    assert not list(lower.parent.glob("*.partial-*")) + list(lower.parent.glob("*.stale-*"))


def test_keep_base_dir_renames_or_unpacks_across_filesystems(plan: Plan, tmp_path: Path) -> None:
    fresh = make_tiny_root(tmp_path / "fresh")
    inode = (fresh / "bin/cat").stat().st_ino
    tarball = Path(plan.base_cache)
    lower = overlay.keep_base_dir(fresh, tarball)
    assert lower == overlay.base_dir(tarball) and (lower / "bin/cat").stat().st_ino == inode
    assert not fresh.exists()

    other_fs = tmp_path / "tmpfs-cache"
    other_fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other_fs)], check=True)
    try:
        fresh = make_tiny_root(tmp_path / "fresh2")
        far = other_fs / tarball.name
        far.write_bytes(tarball.read_bytes())
        lower = overlay.keep_base_dir(fresh, far)
        assert lower == overlay.base_dir(far) and (lower / "bin/cat").exists()
        assert fresh.exists()  # not moved across filesystems; the build's work dir keeps it
        assert not list(other_fs.glob("*.partial-*"))
    finally:
        umount(other_fs)


def test_release_waits_for_a_step_that_is_still_leaving_its_chroot(
    plan: Plan, tmp_path: Path
) -> None:
    # After Ctrl-C the interrupted step undoes its chroot mounts while the build
    # flow is already cleaning up: release must not give up on the work dir.
    steps.base(plan)
    proc = plan.rootfs / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(proc)], check=True)
    leaving = threading.Timer(1.0, umount, args=(proc,))
    leaving.start()
    try:
        overlay.release(Path(plan.work_dir))
    finally:
        leaving.join()
    assert mounts_under(tmp_path) == []
    assert not Path(plan.work_dir).exists()


def test_an_image_is_extracted_once_and_a_rebuilt_image_replaces_its_copy(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay tests need root")
    root = make_tiny_root(tmp_path / "img-src")
    (root / "etc/hostname").write_text("first\n")
    tarball = tmp_path / "dist" / "img-abc.tar.zst"
    export.pack(root, tarball, level=1)
    first = overlay.extracted_image(tarball)
    assert (first / "etc/hostname").read_text() == "first\n"
    assert overlay.extracted_image(tarball) == first  # reused, not unpacked again

    # A run's overlay writes only to its own upper dir.
    before = _snapshot(first)
    work, merged = tmp_path / "run" / ".overlay", tmp_path / "run" / "root"
    assert overlay.mount(first, work, merged) is None
    (merged / "etc/hostname").write_text("changed by a task\n")
    (merged / "bin/cat").unlink()
    overlay.release(work)
    assert _snapshot(first) == before

    # `build-image --force` writes new content under the same tarball name.
    (root / "etc/hostname").write_text("second\n")
    os.utime(root / "etc/hostname")
    export.pack(root, tarball, level=1)
    second = overlay.extracted_image(tarball)
    assert second != first and (second / "etc/hostname").read_text() == "second\n"
    assert not first.exists()  # the stale copy is gone
    assert mounts_under(tmp_path) == []
