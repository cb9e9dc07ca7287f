"""What only a cloud build VM runs, in a fresh Debian 12 chroot: the first-boot
wait for the apt/dpkg locks, and hygiene removing the user Packer logged in as."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .chroot_kit import CHROOT, REPO, STAGING, ok, run, stage_scripts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot, mount)"),
]


def stage_first_boot(root: Path) -> None:
    st = stage_scripts(root)
    shutil.copy(REPO / "provisioning/cloud/first-boot.sh", st / "scripts/first-boot.sh")


@contextmanager
def lock_held(path: Path, seconds: float) -> Iterator[None]:
    """Hold the fcntl write lock apt and dpkg take on ``path`` for ``seconds``
    (in another process: fcntl locks never conflict within one)."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_first_boot_waits_for_a_held_dpkg_lock_then_goes_on(root: Path):
    stage_first_boot(root)
    lock = root / "var/lib/dpkg/lock-frontend"
    started = time.monotonic()
    with lock_held(lock, 5):
        done = run(root, "first-boot.sh", {"EB_FIRST_BOOT_TIMEOUT": "120"})
    out = ok(done)
    assert "first-boot.sh: no cloud-init on this image" in out
    assert "first-boot.sh: waiting for the apt/dpkg locks: /var/lib/dpkg/lock-frontend" in out
    assert "first-boot.sh: apt and dpkg are free" in out
    assert time.monotonic() - started >= 4  # it did wait for the holder
    # Nothing held: straight through.
    assert "waiting for" not in ok(run(root, "first-boot.sh", {}))


def test_first_boot_gives_up_after_its_timeout_naming_the_lock(root: Path):
    stage_first_boot(root)
    with lock_held(root / "var/lib/apt/lists/lock", 60):
        done = run(root, "first-boot.sh", {"EB_FIRST_BOOT_TIMEOUT": "3"})
    assert done.returncode != 0
    assert "first-boot.sh: apt/dpkg locks still held after 3s: /var/lib/apt/lists/lock" in (
        done.stderr
    )


def chroot(root: Path, *argv: str) -> None:
    subprocess.run([CHROOT, str(root), *argv], check=True, capture_output=True)


def test_hygiene_removes_the_build_user_only_when_told(root: Path):
    stage_scripts(root)
    # What cloud-init (Yandex) or the GCE guest agent leave for Packer's login.
    chroot(root, "useradd", "--create-home", "--user-group", "--shell", "/bin/bash", "packer")
    sudoers = root / "etc/sudoers.d"
    sudoers.mkdir(exist_ok=True)
    (sudoers / "90-cloud-init-users").write_text(
        "# Created by cloud-init v. 22.4.2\n\n# User rules for packer\n"
        "packer ALL=(ALL) NOPASSWD:ALL\n"
    )
    (sudoers / "50-ops").write_text("packer ALL=(ALL) ALL\nops ALL=(ALL) ALL\n")
    google = root / "var/lib/google"
    google.mkdir(parents=True)
    (google / "google_users").write_text("packer\nalice\n")
    env = {"EB_STAGING": STAGING, "EB_USER": "everest", "EB_KEEP_CA_CERTS": "0"}

    refused = run(root, "90-hygiene.sh", {**env, "EB_BUILD_USER": "root"})
    assert refused.returncode != 0 and "refusing to remove it" in refused.stderr
    # Locally (no EB_BUILD_USER) the account stays.
    ok(run(root, "90-hygiene.sh", env))
    assert (root / "home/packer").is_dir()

    stage_scripts(root)
    out = ok(run(root, "90-hygiene.sh", {**env, "EB_BUILD_USER": "packer"}))
    assert "90-hygiene.sh: removed the build user packer" in out
    assert "build user packer)" in out  # named in the check's line
    passwd = (root / "etc/passwd").read_text()
    assert not any(line.startswith("packer:") for line in passwd.splitlines())
    assert not (root / "home/packer").exists()
    assert not (sudoers / "90-cloud-init-users").exists()
    assert (sudoers / "50-ops").read_text() == "ops ALL=(ALL) ALL\n"
    assert (google / "google_users").read_text() == "alice\n"
    # Idempotent: a second run has nothing left to remove and still checks.
    stage_scripts(root)
    out = ok(run(root, "90-hygiene.sh", {**env, "EB_BUILD_USER": "packer"}))
    assert "90-hygiene.sh: the build user packer is already gone" in out


def test_hygiene_removes_the_os_login_user_sudo_names(root: Path):
    # OS Login: the plugin logs in as the account's OS Login user (not ssh_username);
    # it is not in /etc/passwd, so its home and OS Login sudoers file are what stays.
    user = "sa_112233445566778899"
    home = root / "home" / user
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/authorized_keys").write_text("ssh-ed25519 AAAA packer\n")
    sudoers = root / "var/google-sudoers.d"
    sudoers.mkdir(parents=True)
    (sudoers / user).write_text(f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n")
    (sudoers / "alice").write_text("alice ALL=(ALL:ALL) NOPASSWD: ALL\n")
    env = {"EB_STAGING": STAGING, "EB_USER": "everest", "EB_BUILD_USER": "@login"}
    stage_scripts(root)
    refused = run(root, "90-hygiene.sh", env)  # not through sudo: nobody to name
    assert refused.returncode != 0 and "SUDO_USER is not set" in refused.stderr
    stage_scripts(root)
    out = ok(run(root, "90-hygiene.sh", {**env, "SUDO_USER": user}))
    assert f"removed the OS Login user {user}'s home and sudoers entry" in out
    assert not home.exists() and not (sudoers / user).exists()
    assert (sudoers / "alice").exists()
