#!/usr/bin/env bash
# Embed-mode secrets as 0600 files owned by the agent user (values only from
# staged files), and the image description /etc/everest/image.json.
# env and metadata secrets write nothing here.
set -euo pipefail
me=70-secrets.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

: "${EB_STAGING:?$me: EB_STAGING is not set}"
: "${EB_USER:?$me: EB_USER is not set}"
EB_EMBED_SECRETS=${EB_EMBED_SECRETS:-}
id -u "$EB_USER" >/dev/null 2>&1 || die "user $EB_USER does not exist; 10-base.sh creates it"

read -r -a entries <<<"$EB_EMBED_SECRETS"
for entry in "${entries[@]}"; do
  name=${entry%%:*}
  dest=${entry#*:}
  [[ $entry == *:* && $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "EB_EMBED_SECRETS entry '$entry' is not name:/abs/path"
  [[ $dest == /?* && $dest != */ && $dest != *..* ]] || die "secret $name: path '$dest' must be an absolute file path ([secrets.$name] path)"
  src=$EB_STAGING/secrets/$name
  [[ -f $src ]] || die "secret $name is not staged ($src is missing)"
  [[ -s $src ]] || die "secret $name is empty"
  dir=$(dirname "$dest")
  [[ -d $dir ]] || install -d -m 0755 "$dir"
  # install copies the file: the value never passes through a command line.
  if ! cmp -s "$src" "$dest" || [[ "$(stat -c '%a %U' "$dest")" != "600 $EB_USER" ]]; then
    install -m 0600 -o "$EB_USER" -g "$EB_USER" "$src" "$dest"
  fi
  echo "$me: embedded secret $name at $dest (0600, $EB_USER)"
done
((${#entries[@]})) || echo "$me: no embedded secrets"

src=$EB_STAGING/image.json
[[ -f $src ]] || die "$src is not staged"
python3 -m json.tool "$src" >/dev/null || die "$src is not valid JSON"
install -d -m 0755 /etc/everest
cmp -s "$src" /etc/everest/image.json || install -m 0644 "$src" /etc/everest/image.json

echo "$me: done"
