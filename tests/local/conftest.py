"""A real, tiny root filesystem (dash, cat, sleep, env and their libraries) for chroot tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

_TOOLS = ("/bin/sh", "/bin/dash", "/bin/cat", "/bin/sleep", "/usr/bin/env", "/bin/ls")


def _libraries(binary: str) -> set[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = set()
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                libs.add(part)
    return libs


def make_tiny_root(root: Path, extra: tuple[str, ...] = ()) -> Path:
    for rel in ("bin", "usr/bin", "usr/sbin", "etc", "tmp", "lib64", "lib/x86_64-linux-gnu"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    files: set[str] = set()
    for tool in (*_TOOLS, *extra):
        real = os.path.realpath(tool)
        files.add(real)
        files |= _libraries(real)
    for path in files:
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    for tool in (*_TOOLS, *extra):
        dest = root / tool.lstrip("/")
        if not dest.exists():
            shutil.copy2(os.path.realpath(tool), dest)
    (root / "etc/resolv.conf").write_text("nameserver 192.0.2.1  # the image's own\n")
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("chroot and mount tests need root")
    return make_tiny_root(tmp_path / "root")
