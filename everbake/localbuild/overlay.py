"""A read-only extracted base beside its tarball, and per-build overlays on top of it.

Unpacking the ~12k-file base tarball is most of an image-layer rebake (file
creation is slow); an overlay mount of an already extracted copy is instant.

    <cache>/base-<fp>.tar.zst   the cache of record (plan and status look at it)
    <cache>/base-<fp>.rootfs/   the same tree extracted; the overlay's lower dir,
                                shared by every build of that base, never written
    <work>/upper, <work>/ovl    this build's changes and overlayfs' scratch dir
    <work>/rootfs               the merged view the image layer runs in

The extracted dir appears only by renaming a finished tree into place, so it
is complete or absent. The overlay outlives the step that mounts it (Packer
runs each step as its own process); export, or the build flow's cleanup
through `release()`, unmounts it. EVERBAKE_LOCAL_OVERLAY=0 turns overlays off.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from pathlib import Path

from everbake.localbuild import export
from everbake.localbuild.chroot import mount_table, mounts_under, remove_tree, umount
from everbake.ui import say

OVERLAY_ENV = "EVERBAKE_LOCAL_OVERLAY"
_UPPER = "upper"
_SCRATCH = "ovl"


def base_dir(tarball: Path) -> Path:
    """<cache>/base-<fp>.rootfs for <cache>/base-<fp>.tar.zst."""
    return tarball.with_name(tarball.name.removesuffix(".tar.zst") + ".rootfs")


def usable_base_dir(tarball: Path) -> Path | None:
    """The extracted base, when its tarball is there too and it looks like a root."""
    lower = base_dir(tarball)
    if not tarball.is_file() or not lower.is_dir():
        return None
    if not (lower / "usr/bin").is_dir() and not (lower / "bin").is_dir():
        return None
    return lower


def enabled() -> bool:
    return os.environ.get(OVERLAY_ENV, "1") != "0"


def _overlay_options(lower: Path, work_dir: Path) -> str:
    upper, scratch = work_dir / _UPPER, work_dir / _SCRATCH
    return f"lowerdir={lower},upperdir={upper},workdir={scratch}"


def mount(lower: Path, work_dir: Path, target: Path) -> str | None:
    """Mount lower + <work>/upper at ``target``; None on success, else why not."""
    for path in (work_dir / _UPPER, work_dir / _SCRATCH, target):
        path.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "overlay", "overlay"]
    argv += ["-o", _overlay_options(lower.resolve(), work_dir.resolve()), str(target)]
    done = subprocess.run(argv, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def supported(work_dir: Path) -> str | None:
    """Try a throwaway overlay in ``work_dir``; None when it works, else why not."""
    if not enabled():
        return f"{OVERLAY_ENV}=0"
    probe = work_dir / ".overlay-probe"
    remove_tree(probe)
    (probe / "lower").mkdir(parents=True)
    try:
        why = mount(probe / "lower", probe, probe / "merged")
        if why is None:
            umount(probe / "merged")
        return why
    finally:
        remove_tree(probe)


def _ours(work_dir: Path) -> str | None:
    """The mount point of this work dir's overlay (told apart by its upperdir)."""
    upper = f"upperdir={(work_dir / _UPPER).resolve()},"
    for target, fstype, options in mount_table():
        if fstype == "overlay" and upper in options + ",":
            return target
    return None


def in_use_as_lower(lower: Path) -> bool:
    needle = f"lowerdir={lower.resolve()}"
    return any(needle in options for _, _, options in mount_table())


def release(work_dir: Path, settle: float = 10.0) -> None:
    """Unmount this work dir's overlay and remove the work dir.

    Other mounts under it (a chroot's /proc) belong to a step process: after
    Ctrl-C, which reaches the whole process group, that step may still be
    leaving its chroot, so wait up to ``settle`` seconds for it to undo them.
    Mounts still there after that are not ours to undo blindly: they are named
    with the fix, and the work dir stays.
    """
    if not work_dir.exists():
        return
    ours = _ours(work_dir)
    deadline = time.monotonic() + settle
    while True:
        others = [m for m in mounts_under(work_dir) if m != ours]
        if not others or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if others:
        say(
            f"warning: {work_dir} kept: still mounted: {', '.join(others)} "
            f"(unmount them with: umount -R {work_dir}/rootfs, then delete {work_dir})"
        )
        return
    if ours:
        umount(Path(ours))
    remove_tree(work_dir)


def _sweep_partials(lower: Path) -> None:
    """Remove <lower>.partial-<pid> dirs whose process is gone (a killed base step)."""
    for stale in lower.parent.glob(f"{lower.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(stale)


def drop_unusable(tarball: Path) -> bool:
    """Remove an extracted base that must not be used (its tarball is missing, or it
    is not a root), unless an overlay still has it as its lower dir.
    True when nothing unusable is left in the way."""
    lower = base_dir(tarball)
    if not lower.exists() or usable_base_dir(tarball):
        return True
    if in_use_as_lower(lower):
        return False
    aside = lower.with_name(f"{lower.name}.stale-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(lower, aside)
    remove_tree(aside)
    return True


def _place(tree: Path, lower: Path) -> Path:
    """Rename ``tree`` to ``lower`` atomically; when another build got there first
    (same base fingerprint, same content), theirs is used and ``tree`` dropped."""
    try:
        os.rename(tree, lower)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        remove_tree(tree)
    return lower


def _partial(lower: Path) -> Path:
    _sweep_partials(lower)
    partial = lower.with_name(f"{lower.name}.partial-{os.getpid()}")
    remove_tree(partial)
    return partial


def extract_base_dir(tarball: Path, *, log_path: Path | None = None) -> Path | None:
    """The extracted base for ``tarball``, unpacked once when there is none yet.
    None when an unusable one is in the way (still some overlay's lower dir)."""
    found = usable_base_dir(tarball)
    if found:
        return found
    if not drop_unusable(tarball):
        return None
    return _unpack_into(tarball, base_dir(tarball), log_path)


def keep_base_dir(rootfs: Path, tarball: Path, *, log_path: Path | None = None) -> Path | None:
    """Move a freshly provisioned ``rootfs``, already packed as ``tarball`` and
    unmounted, into the cache as the extracted base (unpacking the tarball instead
    when the cache is on another filesystem). Call `drop_unusable` before packing."""
    lower = base_dir(tarball)
    partial = _partial(lower)
    try:
        os.rename(rootfs, partial)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        return extract_base_dir(tarball, log_path=log_path)
    try:
        return _place(partial, lower)
    finally:
        remove_tree(partial)


def extracted_image(tarball: Path) -> Path:
    """A read-only extracted copy of an image tarball, for per-run overlays.

    Keyed by the tarball's size and mtime, since a --force rebuild writes new
    content under the same name; older copies of the image not in use are removed.
    """
    st = tarball.stat()
    stem = export.split_suffix(tarball.name)[0]
    lower = tarball.with_name(f"{stem}.{st.st_size}-{st.st_mtime_ns}.rootfs")
    for old in tarball.parent.glob(f"{stem}.*.rootfs"):
        if old != lower and not in_use_as_lower(old):
            remove_tree(old)
    if lower.is_dir():
        return lower
    return _unpack_into(tarball, lower, None)


def _unpack_into(tarball: Path, lower: Path, log_path: Path | None) -> Path:
    """Unpack ``tarball`` beside ``lower`` and rename it into place: complete or absent."""
    partial = _partial(lower)
    try:
        export.unpack(tarball, partial, log_path=log_path)
        return _place(partial, lower)
    finally:
        remove_tree(partial)
