#!/usr/bin/env bash
# Cloud build VMs only, first step of each layer: wait until first boot is over.
# When SSH comes up on a fresh GCE/Yandex Debian VM, cloud-init and apt-daily may
# still hold the apt and dpkg locks (GoogleCloudPlatform/compute-image-packages#815,
# hashicorp/packer#2639), and apt would fail at once. Waits, bounded by
# EB_FIRST_BOOT_TIMEOUT seconds and saying what it waits for: cloud-init first
# (`cloud-init status --wait`, where installed), then the locks. Changes nothing
# but stopping the apt timers until the next boot.
set -euo pipefail
me=first-boot.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

EB_FIRST_BOOT_TIMEOUT=${EB_FIRST_BOOT_TIMEOUT:-600}
[[ $EB_FIRST_BOOT_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "EB_FIRST_BOOT_TIMEOUT='$EB_FIRST_BOOT_TIMEOUT' must be a number of seconds"
started=$SECONDS
every=15 # seconds between progress lines
elapsed() { echo $((SECONDS - started)); }

# No new apt-daily run in the middle of the build: the timers stay enabled and
# start again at the next boot (stopping is not disabling).
if [[ -d /run/systemd/system ]]; then
  systemctl stop apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
fi

if command -v cloud-init >/dev/null; then
  echo "$me: waiting for cloud-init to finish (at most ${EB_FIRST_BOOT_TIMEOUT}s)"
  cloud-init status --wait >/dev/null 2>&1 &
  waiter=$!
  next=$every
  while kill -0 "$waiter" 2>/dev/null; do
    if (($(elapsed) >= EB_FIRST_BOOT_TIMEOUT)); then
      kill "$waiter" 2>/dev/null || true
      die "cloud-init still running after ${EB_FIRST_BOOT_TIMEOUT}s ($(cloud-init status 2>/dev/null | tr '\n' ' ')); see /var/log/cloud-init.log on the VM"
    fi
    if (($(elapsed) >= next)); then
      echo "$me: cloud-init still running ($(elapsed)s)"
      next=$(($(elapsed) + every))
    fi
    sleep 1
  done
  rc=0
  wait "$waiter" || rc=$?
  # 1: cloud-init reported errors, 2: recoverable errors (cloud-init >= 23.4).
  # Either way it is done and we are logged in; the build can go on.
  ((rc == 0)) || echo "$me: cloud-init finished with status $rc (errors logged in /var/log/cloud-init.log); going on"
  echo "$me: cloud-init done ($(elapsed)s)"
else
  echo "$me: no cloud-init on this image"
fi

# apt and dpkg take fcntl locks on these files; flock(1) would not see them, so
# Python's lockf (fcntl) probes them. Without python3, apt's own
# DPkg::Lock::Timeout in the scripts is the only wait.
locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
held_locks() {
  python3 - "${locks[@]}" <<'PY'
import fcntl, os, sys
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        continue  # missing: nobody holds it
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(path)
    finally:
        os.close(fd)
PY
}
if command -v python3 >/dev/null; then
  next=0
  while held=$(held_locks) && [[ -n $held ]]; do
    holders=$(pgrep -a -x 'apt|apt-get|apt.systemd.dai|dpkg|unattended-upgr' 2>/dev/null | tr '\n' ';' || true)
    if (($(elapsed) >= EB_FIRST_BOOT_TIMEOUT)); then
      die "apt/dpkg locks still held after ${EB_FIRST_BOOT_TIMEOUT}s: $(echo "$held" | tr '\n' ' ')(running: ${holders:-unknown})"
    fi
    if (($(elapsed) >= next)); then
      echo "$me: waiting for the apt/dpkg locks: $(echo "$held" | tr '\n' ' ')(running: ${holders:-unknown}; $(elapsed)s)"
      next=$(($(elapsed) + every))
    fi
    sleep 2
  done
  echo "$me: apt and dpkg are free ($(elapsed)s)"
else
  echo "$me: no python3 to probe the apt locks; apt waits for them itself (DPkg::Lock::Timeout)"
fi
