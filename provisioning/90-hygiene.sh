#!/usr/bin/env bash
# Last step: nothing host-, build- or boot-specific stays in the image. Removes
# SSH host keys and login keys, the machine id, shell histories, apt and pip caches,
# cloud-init state, log contents, the staging directory, documentation, (unless kept) the
# build's CA certificates and, on a cloud build VM, the user Packer logged in as
# (EB_BUILD_USER: its account, home and sudoers entries); then checks that all
# of it is gone.
set -euo pipefail
me=90-hygiene.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
EB_KEEP_CA_CERTS=${EB_KEEP_CA_CERTS:-0}
EB_BUILD_USER=${EB_BUILD_USER:-} # empty in the local chroot, where nobody logs in
EB_USER=${EB_USER:-}
[[ $EB_KEEP_CA_CERTS == 0 || $EB_KEEP_CA_CERTS == 1 ]] || die "EB_KEEP_CA_CERTS must be 0 or 1"
case $EB_STAGING in
  / | /etc | /usr | /var | /var/tmp | /tmp | /home | /root | /opt | *..* | [!/]*)
    die "EB_STAGING='$EB_STAGING' is not a staging directory this step may delete" ;;
esac
if [[ -n $EB_BUILD_USER ]]; then
  [[ $EB_BUILD_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "EB_BUILD_USER='$EB_BUILD_USER' is not a user name"
  [[ $EB_BUILD_USER != root && $EB_BUILD_USER != "$EB_USER" ]] \
    || die "EB_BUILD_USER=$EB_BUILD_USER is not the build's login user; refusing to remove it"
fi
ca_dir=/usr/local/share/ca-certificates/everbake-build
pipconf=/etc/pip.conf
shopt -s nullglob dotglob

# sudoers.d files naming the user (cloud-init's 90-cloud-init-users); a file
# left with nothing but comments goes too.
sudoers_naming() {
  local files=(/etc/sudoers.d/*)
  ((${#files[@]} == 0)) || grep -l -E "^${1}[[:space:]]" "${files[@]}" || true
}
remove_build_user() {
  local user=$1 uid home out file
  if uid=$(id -u "$user" 2>/dev/null); then
    ((uid >= 1000)) || die "EB_BUILD_USER=$user is a system account (uid $uid); refusing to remove it"
    home=$(getent passwd "$user" | cut -d: -f6)
    # --force: the SSH session running this script belongs to the user; it ends
    # with the build, and nothing after this step logs in again.
    out=$(userdel --force --remove "$user" 2>&1) || die "userdel $user failed: $out"
    [[ $home != /home/?* || ! -e $home ]] || rm -rf "$home"
  fi
  while IFS= read -r file; do
    [[ -n $file ]] || continue
    sed -i -E "/^${user}[[:space:]]/d" "$file"
    grep -q -v -E '^[[:space:]]*(#|$)' "$file" || rm -f "$file"
  done < <(sudoers_naming "$user")
  # The GCE guest agent's list of the accounts it made.
  if [[ -f /var/lib/google/google_users ]]; then sed -i "/^$user\$/d" /var/lib/google/google_users; fi
  echo "$me: removed the build user $user (account, home, sudoers entries)"
}
if [[ -n $EB_BUILD_USER ]]; then
  if id -u "$EB_BUILD_USER" >/dev/null 2>&1 || [[ -n $(sudoers_naming "$EB_BUILD_USER") ]]; then
    remove_build_user "$EB_BUILD_USER"
  else
    echo "$me: the build user $EB_BUILD_USER is already gone"
  fi
fi

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
apt-get -o DPkg::Lock::Timeout=600 clean
find /var/lib/apt/lists -type f ! -name lock -delete
rm -rf /var/lib/cloud/*
rm -rf /var/log/journal/* # journald would find truncated journals corrupt
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete
find /var/log -type f -size +0 -exec truncate -s 0 {} +
rm -rf "$EB_STAGING"
rm -f /etc/apt/apt.conf.d/80everbake-build-retries
# No documentation, man pages or translations (copyright files and locale.alias
# stay): dead weight in an image. Removed here rather than kept out by dpkg's path
# filters during the bootstrap, which cost far more; the filters are then set so
# that later installs in the image stay slim.
nodoc_rules='path-exclude=/usr/share/man/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias'
printf '%s\n' "$nodoc_rules" >/etc/dpkg/dpkg.cfg.d/90everbake-nodoc
if [[ -d /usr/share/doc ]]; then
  find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
  find /usr/share/doc -mindepth 1 -type d -empty -delete
fi
for dir in /usr/share/man /usr/share/info; do
  if [[ -d $dir ]]; then find "$dir" -mindepth 1 -delete; fi
done
if [[ -d /usr/share/locale ]]; then
  find /usr/share/locale -mindepth 1 ! -path /usr/share/locale/locale.alias -delete
fi
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
if [[ -n $EB_BUILD_USER ]]; then
  id -u "$EB_BUILD_USER" >/dev/null 2>&1 && left+=("user $EB_BUILD_USER")
  [[ -e /home/$EB_BUILD_USER ]] && left+=("/home/$EB_BUILD_USER")
  while IFS= read -r f; do [[ -z $f ]] || left+=("$f (sudoers entry for $EB_BUILD_USER)"); done < <(sudoers_naming "$EB_BUILD_USER")
fi
for h in "${homes[@]}"; do
  for f in "${home_leftovers[@]}"; do
    [[ -e $h/$f ]] && left+=("$h/$f")
  done
done
while IFS= read -r f; do left+=("$f"); done < <(find /var/lib/apt/lists -type f ! -name lock)
while IFS= read -r f; do left+=("$f (not empty)"); done < <(find /var/log -type f -size +0)
# Documentation (all but copyright files).
while IFS= read -r f; do left+=("$f (documentation)"); done < <(
  find /usr/share/doc /usr/share/man /usr/share/info -mindepth 1 ! -type d ! -name copyright 2>/dev/null
)
if ((!EB_KEEP_CA_CERTS)); then
  [[ -e $ca_dir ]] && left+=("$ca_dir")
  while IFS= read -r f; do left+=("$f (build CA link)"); done < <(find /etc/ssl/certs -lname "*everbake-build*")
  [[ -f $pipconf ]] && grep -q '^# everbake-build' "$pipconf" && left+=("$pipconf")
fi
if ((${#left[@]})); then
  printf '%s: hygiene check failed, still present: %s\n' "$me" "${left[*]}" >&2
  exit 1
fi
echo "$me: clean (host keys, machine-id, histories, apt/pip caches, cloud-init, logs, staging, docs$( ((EB_KEEP_CA_CERTS)) || echo ', build CAs')$([[ -z $EB_BUILD_USER ]] || echo ", build user $EB_BUILD_USER"))"
