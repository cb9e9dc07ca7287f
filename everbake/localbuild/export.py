"""Root filesystem <-> tarball, written atomically.

The file name says how it is compressed (build.local.compression): <name>.tar.zst
(zstd), .tar.gz (gzip) or .tar (none); unpacking reads it the same way.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from everbake.errors import BuildError
from everbake.localbuild.chroot import mounts_below
from everbake.proc import require_tool, stream

# Not part of an image: kernel filesystems (empty once unmounted) and our backups.
_EXCLUDES = ("./proc/*", "./sys/*", "./dev/pts/*", "./etc/resolv.conf.everbake-orig")


# build.local.compression -> (file suffix, tar's -I program at a level, its decompressor).
FORMATS = {
    "zstd": (".tar.zst", "zstd -T0 -{level} -q", "zstd -T0 -d -q"),
    "gzip": (".tar.gz", "gzip -{level}", "gzip -d"),
    "none": (".tar", "", ""),
}
SUFFIXES = tuple(suffix for suffix, _, _ in FORMATS.values())


def suffix(compression: str) -> str:
    return FORMATS[compression][0]


def split_suffix(name: str) -> tuple[str, str]:
    """('img', '.tar.zst') for 'img.tar.zst'; (name, '') when it is no tarball of ours."""
    for known in SUFFIXES:
        if name.endswith(known):
            return name.removesuffix(known), known
    return name, ""


def _programs(tarball: Path) -> tuple[str, str]:
    """tar's -I programs (compress with {level}, decompress) for the tarball's suffix."""
    found = split_suffix(tarball.name)[1]
    for known, compress, decompress in FORMATS.values():
        if known == found:
            if compress:
                program = compress.split()[0]
                require_tool(program, f"apt-get install {program}")
            return compress, decompress
    raise BuildError(
        f"{tarball.name}: not an image tarball; its name must end in {', '.join(SUFFIXES)}"
    )


def _compressed(argv: list[str], program: str) -> list[str]:
    return [*argv, "-I", program] if program else argv


def pack(root: Path, tarball: Path, *, level: int = 3, log_path: Path | None = None) -> int:
    """Write ``root`` as ``tarball``, compressed as its suffix says at ``level``; returns
    its size in bytes.

    Written to ``<tarball>.<pid>.partial`` and renamed: readers never see half a file.
    """
    compress = _programs(tarball)[0].format(level=level)
    busy = mounts_below(root)
    if busy:
        raise BuildError(f"cannot export {root}: still mounted: {', '.join(busy)}")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    # Per-process temp name: two builds sharing a base cache never write one file.
    tmp = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
    argv = _compressed(["tar", "--numeric-owner", "--xattrs", "--acls"], compress)
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
    decompress = _programs(tarball)[1]
    if not tarball.is_file():
        raise BuildError(f"image tarball {tarball} does not exist")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise BuildError(f"cannot unpack {tarball.name} into {root}: it is not empty")
    # No --xattrs/--acls here: restoring them costs ~4x the whole extraction (sys
    # time per file), and Debian's minbase plus our pip/apt layers set none.
    # (An image that needs file capabilities must re-apply them in a script.)
    argv = _compressed(["tar", "--numeric-owner"], decompress)
    argv += ["-C", str(root), "-xpf", str(tarball)]
    stream(argv, prefix="tar", log_path=log_path, what=f"unpacking {tarball.name}", echo=False)
