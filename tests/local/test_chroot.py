"""chroot(): mounts really happen, commands see only the explicit environment,
and everything is undone on success, on an exception and on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from everbake.errors import BuildError
from everbake.localbuild.chroot import chroot, mounts_under, remove_tree


def _run(ch, command, extra=None) -> str:
    done = subprocess.run(
        ch.argv(command), env=ch.env(extra), capture_output=True, text=True, check=True
    )
    return done.stdout


def test_mounts_exist_inside_and_are_gone_after(tiny_root: Path) -> None:
    with chroot(tiny_root) as ch:
        inside = mounts_under(tiny_root)
        assert {str(tiny_root / p) for p in ("proc", "sys", "dev", "dev/pts")} <= set(inside)
        # /proc really is a proc filesystem as seen from inside.
        assert "proc" in _run(ch, ["/bin/cat", "/proc/self/mounts"])
        # The host's resolver configuration is in place for the duration.
        assert _run(ch, ["/bin/cat", "/etc/resolv.conf"]) == Path("/etc/resolv.conf").read_text()
        assert (tiny_root / "usr/sbin/policy-rc.d").exists()
    assert mounts_under(tiny_root) == []
    assert (tiny_root / "etc/resolv.conf").read_text().startswith("nameserver 192.0.2.1")
    assert not (tiny_root / "usr/sbin/policy-rc.d").exists()
    assert not list((tiny_root / "etc").glob("*.everbake-orig"))


def test_undone_on_exception(tiny_root: Path) -> None:
    with pytest.raises(RuntimeError), chroot(tiny_root):
        assert mounts_under(tiny_root)
        raise RuntimeError("a provisioning step failed")
    assert mounts_under(tiny_root) == []
    assert (tiny_root / "etc/resolv.conf").read_text().startswith("nameserver 192.0.2.1")


def test_undone_on_ctrl_c_with_a_process_still_running_inside(tiny_root: Path) -> None:
    # SIGINT to ourselves while a command inside keeps /proc open in its cwd.
    with pytest.raises(KeyboardInterrupt), chroot(tiny_root) as ch:
        sleeper = subprocess.Popen(
            ch.argv(["/bin/sh", "-c", "cd /proc && sleep 300"]), env=ch.env()
        )
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        time.sleep(5)
    assert mounts_under(tiny_root) == []
    # The leftover was killed rather than left holding the root.
    assert sleeper.wait(timeout=5) != 0


def test_environment_is_only_what_we_pass(tiny_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/host/only/path.pem")
    with chroot(tiny_root) as ch:
        env = _run(ch, ["/usr/bin/env"], {"EB_USER": "everest"})
    names = {line.split("=", 1)[0] for line in env.splitlines()}
    assert "REQUESTS_CA_BUNDLE" not in names
    assert {"PATH", "EB_USER", "DEBIAN_FRONTEND"} <= names
    assert "EB_USER=everest" in env.splitlines()


def test_a_root_without_a_resolv_conf_gets_none_back(tiny_root: Path) -> None:
    (tiny_root / "etc/resolv.conf").unlink()
    with chroot(tiny_root):
        assert (tiny_root / "etc/resolv.conf").exists()
    assert not (tiny_root / "etc/resolv.conf").exists()


def test_refuses_a_root_that_is_already_mounted(tiny_root: Path) -> None:
    with (
        chroot(tiny_root),
        pytest.raises(BuildError, match="already has mounts"),
        chroot(tiny_root),
    ):
        pass
    assert mounts_under(tiny_root) == []


def test_not_a_root_filesystem(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a root filesystem"), chroot(tmp_path):
        pass


def test_remove_tree_refuses_while_mounted(tiny_root: Path) -> None:
    with chroot(tiny_root):
        with pytest.raises(BuildError, match="still mounted"):
            remove_tree(tiny_root)
        assert (tiny_root / "bin").exists()
    remove_tree(tiny_root)
    assert not tiny_root.exists()
