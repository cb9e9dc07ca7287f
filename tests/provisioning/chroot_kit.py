"""Small helpers for running provisioning scripts in a throwaway Debian chroot.

Only /proc is mounted (mmdebstrap creates the device nodes), and always
unmounted again; nothing here deletes a tree that still has a mount in it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGING = "/var/tmp/everbake-staging"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"  # callers may pass the image's PATH
HOST_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))


def staging(root: Path) -> Path:
    return root / STAGING.lstrip("/")


def stage_scripts(root: Path) -> Path:
    """provisioning/*.sh into staging/scripts, the host's extra CAs into staging/ca."""
    st = staging(root)
    (st / "scripts").mkdir(parents=True, exist_ok=True)
    for script in (REPO / "provisioning").glob("*.sh"):
        shutil.copy(script, st / "scripts" / script.name)
    (st / "ca").mkdir(exist_ok=True)
    for cert in HOST_CAS:
        shutil.copy(cert, st / "ca" / cert.name)
    return st


def is_mounted(path: Path) -> bool:
    with open("/proc/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """/proc for the chroot, always unmounted again (device nodes come from mmdebstrap)."""
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(root / "proc")], check=True)


def run(root: Path, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [CHROOT, str(root), "/usr/bin/env", "-i", f"PATH={PATH}", "HOME=/root"]
    argv += ["LANG=C.UTF-8", *(f"{k}={v}" for k, v in env.items())]
    argv += ["bash", f"{STAGING}/scripts/{script}"]
    with proc_mounted(root):
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (mode, size, mtime_ns) of the tree, staging and /proc left out."""
    out = {}
    skip = {root / "proc", root / STAGING.lstrip("/")}
    scratch = {str(root / "tmp"), str(root / "var/tmp")}  # mktemp/pip scratch dirs come and go
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, 0 if path in scratch else st.st_mtime_ns)
    return out


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != root / "proc"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        hits.append("/" + os.path.relpath(path, root))
    return hits


def user_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {user}")
