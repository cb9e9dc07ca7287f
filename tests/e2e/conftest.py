"""Shared by the end-to-end cases: one base-layer cache for the whole session, and
readers that walk an image tarball (zstd) member by member."""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def base_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """EVERBAKE_LOCAL_CACHE for the session: the first build bakes the base, later ones reuse it."""
    if os.geteuid() != 0:
        pytest.skip("local image builds need root (mmdebstrap, chroot, mounts)")
    cache = tmp_path_factory.mktemp("base-cache")
    old = os.environ.get("EVERBAKE_LOCAL_CACHE")
    os.environ["EVERBAKE_LOCAL_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("EVERBAKE_LOCAL_CACHE", None)
    else:
        os.environ["EVERBAKE_LOCAL_CACHE"] = old


@pytest.fixture(scope="session")
def walk_tarball():  # type: ignore[no-untyped-def]
    return _walk_tarball


def _walk_tarball(tarball: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """(member, content) for every member of a .tar.zst or .tar.gz; b"" for non-files."""
    decompress = ["gzip", "-dc"] if tarball.name.endswith(".tar.gz") else ["zstd", "-dcq"]
    proc = subprocess.Popen([*decompress, str(tarball)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                data = b""
                if member.isfile():
                    handle = tar.extractfile(member)
                    data = handle.read() if handle else b""
                yield member, data
    finally:
        proc.stdout.close()
        proc.wait()
