"""A chroot with /proc, /sys, /dev, /dev/pts and the host's resolv.conf, always undone.

`chroot(root)` is a context manager: everything it mounts or replaces is put
back when the block ends, whether normally, by an exception or by Ctrl-C.
Commands run through `Chroot.argv()` with an explicit, clean environment
passed as the child's whole environment (the `env -i` effect) so that host
settings such as REQUESTS_CA_BUNDLE, which name host paths, never leak in and
no value ever appears in a process's arguments.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from everbake.errors import BuildError
from everbake.ui import say

CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (target inside the root, mount arguments); mounted in order, undone in reverse.
_MOUNTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("proc", ("-t", "proc", "proc")),
    ("sys", ("-t", "sysfs", "-o", "ro", "sysfs")),
    ("dev", ("--bind", "/dev")),
    ("dev/pts", ("--bind", "/dev/pts")),
)

# Keeps apt from starting services (daemons would hold the mounts busy).
_POLICY_RC_D = "#!/bin/sh\n# everbake: no services start inside the build chroot\nexit 101\n"


@dataclass(frozen=True)
class Chroot:
    root: Path

    def argv(self, command: Sequence[str]) -> list[str]:
        return ["chroot", str(self.root), *command]

    @staticmethod
    def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a command in the chroot: nothing from the host."""
        env = {"PATH": CHROOT_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
        env["DEBIAN_FRONTEND"] = "noninteractive"
        if extra:
            env.update(extra)
        return env


def mount_table() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, options) of every mount in /proc/mounts."""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        rows = [line.split()[1:4] for line in mounts]
    return [(target.replace("\\040", " "), fstype, options) for target, fstype, options in rows]


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``."""
    prefix = str(root.resolve())
    return [t for t, _, _ in mount_table() if t == prefix or t.startswith(prefix + "/")]


def mounts_below(root: Path) -> list[str]:
    """Mount points strictly below ``root`` (``root`` itself may be an overlay mount)."""
    top = str(root.resolve())
    return [m for m in mounts_under(root) if m != top]


def kill_leftovers(root: Path) -> int:
    """SIGKILL processes whose root directory is ``root`` (they would keep mounts busy)."""
    target = str(root.resolve())
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == target:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def umount(target: Path) -> None:
    for attempt in range(3):
        done = subprocess.run(["umount", str(target)], capture_output=True, text=True)
        if done.returncode == 0:
            return
        if attempt < 2:
            time.sleep(0.5)
    # Busy after retries: detach lazily so the host is clean now and the
    # kernel finishes once the last user exits.
    subprocess.run(["umount", "--lazy", str(target)], capture_output=True, check=False)
    say(f"warning: {target} was busy; detached it lazily")


def _mount(root: Path, rel: str, args: Sequence[str]) -> Path:
    target = root / rel
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"cannot mount {rel} in {root}: {done.stderr.strip()} (run as root)")
    return target


@contextlib.contextmanager
def _replaced_file(path: Path, content: bytes | None, mode: int = 0o644) -> Iterator[None]:
    """Put ``content`` (None: nothing) at ``path``; restore what was there before,
    whether a file, a symlink or nothing."""
    backup = path.with_name(path.name + ".everbake-orig")
    had = path.is_symlink() or path.exists()
    if had:
        os.replace(path, backup)
    try:
        if content is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if had:
            os.replace(backup, path)


@contextlib.contextmanager
def chroot(
    root: Path,
    *,
    resolv_conf: Path = Path("/etc/resolv.conf"),
    binds: Sequence[tuple[Path, str]] = (),
) -> Iterator[Chroot]:
    """Mount what a chroot needs under ``root``; undo all of it on the way out.
    ``binds``: (host directory, directory inside the root) bind mounts besides them;
    their mount points are removed again, so nothing of them stays in the root."""
    root = root.resolve()
    if not (root / "bin").exists() and not (root / "usr/bin").exists():
        raise BuildError(f"{root} is not a root filesystem (no /bin or /usr/bin)")
    already = mounts_below(root)
    if already:
        raise BuildError(
            f"{root} already has mounts ({', '.join(already)}); "
            f"another build may be running, or unmount them with: umount -R {root}/proc ..."
        )
    with contextlib.ExitStack() as stack:
        for rel, args in _MOUNTS:
            target = _mount(root, rel, args)
            stack.callback(umount, target)
        for host, inside in binds:
            rel = inside.strip("/")
            existed = (root / rel).exists()
            if not existed:
                # Removed last (callbacks run in reverse), once the bind is undone.
                stack.callback(_remove_mount_point, root / rel)
            target = _mount(root, rel, ("--bind", str(host)))
            stack.callback(umount, target)
        # Registered after the mounts, so it runs before they are undone.
        stack.callback(kill_leftovers, root)
        resolv = resolv_conf.read_bytes() if resolv_conf.exists() else b""
        stack.enter_context(_replaced_file(root / "etc/resolv.conf", resolv))
        stack.enter_context(
            _replaced_file(root / "usr/sbin/policy-rc.d", _POLICY_RC_D.encode(), 0o755)
        )
        yield Chroot(root)


def _remove_mount_point(path: Path) -> None:
    """Remove the (empty) directory made for a bind mount."""
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_tree(path: Path) -> None:
    """rm -rf a root filesystem, refusing while anything is still mounted in it."""
    if not path.exists():
        return
    left = mounts_under(path)
    if left:
        raise BuildError(f"refusing to delete {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, onerror=_gone_is_fine)


def _gone_is_fine(
    func: object, path: str, exc_info: tuple[type[BaseException], BaseException, object]
) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
