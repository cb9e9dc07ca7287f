#!/usr/bin/env bash
# Last step: nothing host-, build- or boot-specific stays in the image. Removes
# SSH host keys and login keys, the machine id, shell histories, apt and pip caches,
# cloud-init state, log contents, the staging directory and (unless kept) the
# build's CA certificates; then checks that all of it is gone.
set -euo pipefail
me=90-hygiene.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
EB_KEEP_CA_CERTS=${EB_KEEP_CA_CERTS:-0}
[[ $EB_KEEP_CA_CERTS == 0 || $EB_KEEP_CA_CERTS == 1 ]] || die "EB_KEEP_CA_CERTS must be 0 or 1"
case $EB_STAGING in
  / | /etc | /usr | /var | /var/tmp | /tmp | /home | /root | /opt | *..* | [!/]*)
    die "EB_STAGING='$EB_STAGING' is not a staging directory this step may delete" ;;
esac
ca_dir=/usr/local/share/ca-certificates/everbake-build
pipconf=/etc/pip.conf
shopt -s nullglob dotglob

rm -f /etc/ssh/ssh_host_*
if [[ -e /etc/machine-id ]]; then : >/etc/machine-id; fi # empty: systemd makes a new one at first boot
rm -f /var/lib/dbus/machine-id
homes=(/root /home/*)
# Per home: shell and tool histories, pip's cache, and login keys (e.g. Packer's
# temporary login on a cloud VM).
home_leftovers=(.bash_history .python_history .lesshst .viminfo .wget-hsts .cache/pip .ssh/authorized_keys)
for h in "${homes[@]}"; do
  for f in "${home_leftovers[@]}"; do rm -rf "${h:?}/$f"; done
done
apt-get clean
find /var/lib/apt/lists -type f ! -name lock -delete
rm -rf /var/lib/cloud/*
rm -rf /var/log/journal/* # journald would find truncated journals corrupt
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -size +0 -exec truncate -s 0 {} +
rm -rf "$EB_STAGING"
rm -f /etc/apt/apt.conf.d/80everbake-build-retries
if ((EB_KEEP_CA_CERTS)); then
  out=$(update-ca-certificates 2>&1) || die "update-ca-certificates failed: $out"
else
  if [[ -d $ca_dir ]]; then
    rm -rf "$ca_dir"
    out=$(update-ca-certificates --fresh 2>&1) || die "update-ca-certificates --fresh failed: $out"
  fi
  if [[ -f $pipconf ]] && grep -q '^# everbake-build' "$pipconf"; then rm -f "$pipconf"; fi
fi

# The check: name everything that survived.
left=()
for f in /etc/ssh/ssh_host_* /var/lib/dbus/machine-id /var/lib/cloud/* /var/cache/apt/archives/*.deb \
  /var/cache/apt/*.bin "$EB_STAGING" /etc/apt/apt.conf.d/80everbake-build-retries; do
  [[ -e $f ]] && left+=("$f")
done
[[ -s /etc/machine-id ]] && left+=(/etc/machine-id)
for h in "${homes[@]}"; do
  for f in "${home_leftovers[@]}"; do
    [[ -e $h/$f ]] && left+=("$h/$f")
  done
done
while IFS= read -r f; do left+=("$f"); done < <(find /var/lib/apt/lists -type f ! -name lock)
while IFS= read -r f; do left+=("$f (not empty)"); done < <(find /var/log -type f -size +0)
if ((!EB_KEEP_CA_CERTS)); then
  [[ -e $ca_dir ]] && left+=("$ca_dir")
  while IFS= read -r f; do left+=("$f (build CA link)"); done < <(find /etc/ssl/certs -lname "*everbake-build*")
  [[ -f $pipconf ]] && grep -q '^# everbake-build' "$pipconf" && left+=("$pipconf")
fi
if ((${#left[@]})); then
  printf '%s: hygiene check failed, still present: %s\n' "$me" "${left[*]}" >&2
  exit 1
fi
echo "$me: clean (host keys, machine-id, histories, apt/pip caches, cloud-init, logs, staging$( ((EB_KEEP_CA_CERTS)) || echo ', build CAs'))"
