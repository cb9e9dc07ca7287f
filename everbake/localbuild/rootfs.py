"""A fresh Debian root filesystem from mmdebstrap, created atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from everbake.localbuild.chroot import remove_tree
from everbake.proc import require_tool, stream

# Packages every image needs; 10-base.sh and 20-python.sh install them too (they
# find them installed when mmdebstrap did).
BASE_INCLUDE = ("ca-certificates", "python3", "python3-venv", "tzdata")


def base_packages(apt_solvers: Sequence[str], apt_packages: Sequence[str]) -> list[str]:
    """Everything the base layer installs with apt, for mmdebstrap's one apt run: a cold
    bake then needs no second apt-get update/install in the chroot (30-solvers.sh,
    10-base.sh find their pins installed)."""
    return list(dict.fromkeys([*BASE_INCLUDE, *apt_solvers, *apt_packages]))


# dpkg's setting for the bootstrap only (see mmdebstrap_argv).
UNSAFE_IO = "/etc/dpkg/dpkg.cfg.d/99everbake-bootstrap-unsafe-io"


def mmdebstrap_argv(
    target: Path,
    *,
    suite: str,
    mirror: str,
    include: Sequence[str] = BASE_INCLUDE,
    apt_cache: Path | None = None,
) -> list[str]:
    """``apt_cache``: a host directory of .deb files kept between bakes. apt takes a
    package from it only when its hash matches the mirror's index, so it saves the
    download and never changes what is installed; the result's own archive is
    emptied by mmdebstrap's cleanup as without it."""
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        "--include=" + ",".join(include),
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=Acquire::Retries "5"',  # a flaky mirror should not fail the bake
    ]
    # No --dpkgopt path filters: they made the bootstrap about 11 s slower than
    # removing the documentation afterwards (90-hygiene.sh, which then sets them).
    # dpkg without an fsync per file while the bootstrap installs (the usual setting
    # for building images); the rootfs is packed afterwards, so a crash
    # mid-way only means a rebuild. Set by a hook, not --dpkgopt, so that it is
    # gone again before the base scripts run and never reaches an image.
    argv += [
        f'--setup-hook=mkdir -p "$1"/etc/dpkg/dpkg.cfg.d && echo force-unsafe-io > "$1"{UNSAFE_IO}',
        f'--customize-hook=rm -f "$1"{UNSAFE_IO}',
    ]
    if apt_cache is not None:
        # mmdebstrap's own recipe (man mmdebstrap, "sync-in and sync-out special
        # hooks"): keep the essential packages it downloads, copy the cache in
        # before apt runs and back out before its cleanup.
        cache = str(apt_cache)
        argv += [
            "--skip=essential/unlink",
            '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
            f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
            f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        ]
    return [*argv, suite, str(target), mirror]


def create_rootfs(
    target: Path,
    *,
    suite: str,
    mirror: str,
    include: Sequence[str] = BASE_INCLUDE,
    log_path: Path | None = None,
    apt_cache: Path | None = None,
) -> None:
    """Bootstrap ``suite`` from ``mirror`` into ``target`` (which must not exist).

    mmdebstrap writes into a sibling temp dir that is renamed on success, so a
    failed or interrupted bootstrap never leaves a half-made ``target``.
    """
    require_tool("mmdebstrap", "apt-get install mmdebstrap")
    tmp = target.with_name(target.name + ".partial")
    remove_tree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if apt_cache is not None:
        apt_cache.mkdir(parents=True, exist_ok=True)
    try:
        stream(
            mmdebstrap_argv(tmp, suite=suite, mirror=mirror, include=include, apt_cache=apt_cache),
            prefix="mmdebstrap",
            log_path=log_path,
            what=f"mmdebstrap {suite} from {mirror}",
        )
        os.replace(tmp, target)
    finally:
        remove_tree(tmp)
