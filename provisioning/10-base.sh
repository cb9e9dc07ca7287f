#!/usr/bin/env bash
# Base system: apt defaults, the build's extra CA certificates, time zone, the
# agent/task user and extra apt packages. Idempotent: a second run installs and
# changes nothing.
set -euo pipefail
me=10-base.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
: "${EB_TIMEZONE:?$me: EB_TIMEZONE is not set}"
: "${EB_USER:?$me: EB_USER is not set}"
EB_APT_PACKAGES=${EB_APT_PACKAGES:-}
export DEBIAN_FRONTEND=noninteractive
# Wait for a lock held by apt-daily or cloud-init instead of failing at once
# (cloud build VMs; cloud/first-boot.sh waits before the first script).
apt_lock=(-o DPkg::Lock::Timeout=600)

[[ $EB_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
  || die "EB_USER='$EB_USER' is not a valid user name ([system] user in the image spec)"

# No recommends, for this build and for whoever installs packages later.
norec=/etc/apt/apt.conf.d/90everbake-no-recommends
if [[ ! -f $norec ]]; then
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$norec"
fi
# Mirrors and proxies fail now and then; retry during the build only
# (90-hygiene.sh removes this file).
retries=/etc/apt/apt.conf.d/80everbake-build-retries
[[ -f $retries ]] || printf 'Acquire::Retries "5";\n' >"$retries"

apt_updated=0
apt_install() {
  # Installs only what is missing, so a second run touches no network.
  local missing=() pkg
  for pkg in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "${pkg%%=*}" 2>/dev/null) == 'install ok installed' ]] \
      || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if ((!apt_updated)); then
    apt-get "${apt_lock[@]}" update -q || die "apt-get update failed (check the mirror and the network)"
    apt_updated=1
  fi
  echo "$me: installing ${missing[*]}"
  apt-get "${apt_lock[@]}" install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

apt_install ca-certificates tzdata

# Extra CA certificates trusted during the build (TLS-intercepting proxies).
# 90-hygiene.sh removes them again unless the spec keeps them.
ca_dir=/usr/local/share/ca-certificates/everbake-build
shopt -s nullglob
certs=("$EB_STAGING"/ca/*.crt)
shopt -u nullglob
if ((${#certs[@]})); then
  changed=0
  install -d -m 0755 "$ca_dir"
  for cert in "${certs[@]}"; do
    grep -q -- '-----BEGIN CERTIFICATE-----' "$cert" || die "$cert is not a PEM certificate"
    dest=$ca_dir/$(basename "$cert")
    if ! cmp -s "$cert" "$dest"; then
      install -m 0644 "$cert" "$dest"
      changed=1
    fi
  done
  if ((changed)) || [[ -z $(find /etc/ssl/certs -lname "$ca_dir/*" -print -quit) ]]; then
    update-ca-certificates >/dev/null || die "update-ca-certificates failed"
  fi
  # pip bundles its own CA list (certifi); point it at the system bundle that
  # now holds the build certificates. The marker lets hygiene remove only ours.
  pipconf=/etc/pip.conf
  want=$'# everbake-build: trust the system CA bundle\n[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n'
  if [[ -e $pipconf ]] && ! grep -q '^# everbake-build' "$pipconf"; then
    die "$pipconf exists and was not written by everbake; remove it or merge 'cert = /etc/ssl/certs/ca-certificates.crt' by hand"
  fi
  [[ "$(cat "$pipconf" 2>/dev/null)"$'\n' == "$want" ]] || printf '%s' "$want" >"$pipconf"
  echo "$me: trusting ${#certs[@]} extra CA certificate(s) for the build"
fi

# Time zone.
zone=/usr/share/zoneinfo/$EB_TIMEZONE
[[ $EB_TIMEZONE != *..* && -f $zone ]] \
  || die "EB_TIMEZONE='$EB_TIMEZONE' is not a known time zone ([system] timezone, e.g. UTC or Europe/Berlin)"
[[ "$(readlink /etc/localtime || true)" == "$zone" ]] || ln -sfn "$zone" /etc/localtime
[[ "$(cat /etc/timezone 2>/dev/null || true)" == "$EB_TIMEZONE" ]] || echo "$EB_TIMEZONE" >/etc/timezone

# The user that runs the agent and the tasks.
if ! id -u "$EB_USER" >/dev/null 2>&1; then
  useradd --create-home --user-group --shell /bin/bash "$EB_USER"
  echo "$me: created user $EB_USER"
fi

# Extra apt packages from the spec ([system] apt_packages).
read -r -a extra <<<"$EB_APT_PACKAGES"
((${#extra[@]} == 0)) || apt_install "${extra[@]}"

echo "$me: done"
