"""A fresh Debian 12 root filesystem per test, from one mmdebstrap run per session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .chroot_kit import is_mounted

# What the scripts expect from a bare base (10-base.sh and 20-python.sh add these
# on a cloud image; preinstalled here to keep the tests short).
INCLUDE = "ca-certificates,python3,python3-venv,tzdata"


@pytest.fixture(scope="session")
def base_tar(tmp_path_factory) -> Path:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("needs mmdebstrap (apt-get install mmdebstrap)")
    out = tmp_path_factory.mktemp("base") / "bookworm.tar"
    subprocess.run(
        ["mmdebstrap", "--quiet", "--variant=apt", f"--include={INCLUDE}", "bookworm", str(out)],
        check=True,
    )
    return out


@pytest.fixture()
def root(tmp_path: Path, base_tar: Path) -> Iterator[Path]:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    subprocess.run(["tar", "-xf", str(base_tar), "-C", str(rootfs)], check=True)
    shutil.copyfile("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    yield rootfs
    assert not is_mounted(rootfs / "proc"), "proc still mounted: not deleting the root"
    shutil.rmtree(rootfs)
