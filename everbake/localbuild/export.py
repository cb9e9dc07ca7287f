"""Root filesystem <-> compressed tarball (zstd through tar), written atomically."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from everbake.errors import BuildError
from everbake.localbuild.chroot import mounts_below
from everbake.proc import require_tool, stream

# Not part of an image: kernel filesystems (empty once unmounted) and our backups.
_EXCLUDES = ("./proc/*", "./sys/*", "./dev/pts/*", "./etc/resolv.conf.everbake-orig")


def compressor(level: int) -> str:
    return f"zstd -T0 -{level} -q"


def pack(root: Path, tarball: Path, *, level: int = 3, log_path: Path | None = None) -> int:
    """Write ``root`` as ``tarball`` (.tar.zst); returns its size in bytes.

    Written to ``<tarball>.<pid>.partial`` and renamed: readers never see half a file.
    """
    require_tool("zstd", "apt-get install zstd")
    busy = mounts_below(root)
    if busy:
        raise BuildError(f"cannot export {root}: still mounted: {', '.join(busy)}")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    # Per-process temp name: two builds sharing a base cache never write one file.
    tmp = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
    argv = ["tar", "--numeric-owner", "--xattrs", "--acls", "-I", compressor(level)]
    argv += [f"--exclude={pattern}" for pattern in _EXCLUDES]
    argv += ["-C", str(root), "-cf", str(tmp), "."]
    try:
        stream(argv, prefix="tar", log_path=log_path, what=f"packing {root} into {tarball.name}")
        os.replace(tmp, tarball)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return tarball.stat().st_size


def unpack(tarball: Path, root: Path, *, log_path: Path | None = None) -> None:
    """Extract ``tarball`` into ``root`` (created; must be empty or missing)."""
    require_tool("zstd", "apt-get install zstd")
    if not tarball.is_file():
        raise BuildError(f"image tarball {tarball} does not exist")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise BuildError(f"cannot unpack {tarball.name} into {root}: it is not empty")
    # No --xattrs/--acls here: restoring them costs ~4x the whole extraction (sys
    # time per file), and Debian's minbase plus our pip/apt layers set none.
    # (An image that needs file capabilities must re-apply them in a script.)
    argv = ["tar", "--numeric-owner", "-I", "zstd -T0 -d -q"]
    argv += ["-C", str(root), "-xpf", str(tarball)]
    stream(argv, prefix="tar", log_path=log_path, what=f"unpacking {tarball.name}", echo=False)
