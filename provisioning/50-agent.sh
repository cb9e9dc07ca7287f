#!/usr/bin/env bash
# The Everest agent: the staged archive (sha256-checked) unpacked into
# EB_AGENT_DIR, tornado in the agent's own venv, the rendered config template
# (token left as the placeholder AGENTTOKEN) and a systemd unit that fills the
# token in at boot from the metadata server, the environment or the embedded file.
set -euo pipefail
me=50-agent.sh
die() { echo "$me: $*" >&2; exit 1; }
trap 'echo "$me: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

EB_AGENT_ARCHIVE=${EB_AGENT_ARCHIVE:-}
if [[ -z $EB_AGENT_ARCHIVE ]]; then
  echo "$me: EB_AGENT_ARCHIVE is empty: skipping the Everest agent (this image will not run the agent)"
  exit 0
fi
: "${EB_STAGING:?$me: EB_STAGING is not set}"
: "${EB_USER:?$me: EB_USER is not set}"
: "${EB_AGENT_DIR:?$me: EB_AGENT_DIR is not set}"
: "${EB_AGENT_SHA256:?$me: EB_AGENT_SHA256 is not set}"
: "${EB_AGENT_TOKEN_MODE:?$me: EB_AGENT_TOKEN_MODE is not set}"
EB_AGENT_TOKEN_METADATA_KEY=${EB_AGENT_TOKEN_METADATA_KEY:-}
EB_AGENT_TOKEN_ENV=${EB_AGENT_TOKEN_ENV:-}
EB_EMBED_SECRETS=${EB_EMBED_SECRETS:-}
tornado_pin=tornado==6.4.2 # the last tornado for Python 3.8, which the agent targets
token_secret=${EB_AGENT_TOKEN_SECRET:-agent_token} # [agent] token_secret
agent_python=${EB_AGENT_PYTHON:-python3}                # [agent] python

[[ $EB_AGENT_DIR == /?* && $EB_AGENT_DIR != *..* ]] || die "EB_AGENT_DIR='$EB_AGENT_DIR' must be an absolute path"
[[ $EB_AGENT_SHA256 =~ ^[0-9a-f]{64}$ ]] || die "EB_AGENT_SHA256 must be 64 lowercase hex digits ([agent] sha256)"
id -u "$EB_USER" >/dev/null 2>&1 || die "user $EB_USER does not exist; 10-base.sh creates it"
[[ -f $EB_AGENT_ARCHIVE ]] || die "agent archive $EB_AGENT_ARCHIVE is not staged"
template=$EB_STAGING/agent.conf
[[ -f $template ]] || die "rendered agent config $template is not staged"

# Where the unit takes the token from at boot; never a value at build time.
token_args=()
case $EB_AGENT_TOKEN_MODE in
  metadata)
    [[ $EB_AGENT_TOKEN_METADATA_KEY =~ ^[A-Za-z0-9_-]+$ ]] \
      || die "EB_AGENT_TOKEN_METADATA_KEY='$EB_AGENT_TOKEN_METADATA_KEY' is not a metadata key (letters, digits, - and _)"
    token_args=(--metadata-key "$EB_AGENT_TOKEN_METADATA_KEY") ;;
  env)
    [[ $EB_AGENT_TOKEN_ENV =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] \
      || die "EB_AGENT_TOKEN_ENV='$EB_AGENT_TOKEN_ENV' is not an environment variable name"
    token_args=(--env "$EB_AGENT_TOKEN_ENV") ;;
  embed)
    token_file=
    read -r -a embeds <<<"$EB_EMBED_SECRETS"
    for entry in "${embeds[@]}"; do
      [[ ${entry%%:*} == "$token_secret" ]] && token_file=${entry#*:}
    done
    [[ $token_file == /?* ]] \
      || die "EB_AGENT_TOKEN_MODE=embed but EB_EMBED_SECRETS has no $token_secret:/abs/path entry"
    token_args=(--file "$token_file") ;;
  *) die "EB_AGENT_TOKEN_MODE='$EB_AGENT_TOKEN_MODE' is not one of embed, env, metadata ([secrets.$token_secret] mode)" ;;
esac

got=$(sha256sum "$EB_AGENT_ARCHIVE" | cut -d' ' -f1)
[[ $got == "$EB_AGENT_SHA256" ]] \
  || die "agent archive $(basename "$EB_AGENT_ARCHIVE") has sha256 $got, the spec pins $EB_AGENT_SHA256; check the archive, then update [agent] sha256"

# The template must keep the placeholder and allow our bootstrap command.
python3 - "$template" <<'PY' || die "rendered agent config $template is not usable (see above); fix the spec's [agent] config_template"
import json, re, sys
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
try:
    conf = json.loads(text)
except ValueError as e:
    sys.exit(f"{path}: not JSON: {e}")
if "AGENTTOKEN" not in text:
    sys.exit(f"{path}: the token placeholder AGENTTOKEN is missing (the token is filled in at boot)")
if (conf.get("taskProtocol") or {}).get("enabled") is not True:
    sys.exit(f"{path}: taskProtocol.enabled must be true")
allowed = (conf.get("security") or {}).get("allowedCommands") or []
if not any(re.fullmatch(rx, "everest-bootstrap --model x --version y") for rx in allowed):
    sys.exit(f"{path}: no security.allowedCommands regex matches 'everest-bootstrap ...' (use \"everest-bootstrap .*\")")
PY

# Unpack only when the archive changed; the agent's venv survives a re-unpack.
stamp=$EB_AGENT_DIR/.everbake-archive-sha256
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$EB_AGENT_SHA256" ]]; then
  echo "$me: unpacking the agent into $EB_AGENT_DIR"
  install -d -m 0755 "$(dirname "$EB_AGENT_DIR")"
  new=$EB_AGENT_DIR.new
  rm -rf "$new"
  mkdir -m 0755 "$new"
  tar -xzf "$EB_AGENT_ARCHIVE" -C "$new" --no-same-owner --no-same-permissions \
    || die "cannot unpack $EB_AGENT_ARCHIVE (a .tar.gz is expected)"
  # GitLab archives hold one top directory (agent-<ref>/): lift its content.
  mapfile -t top < <(find "$new" -mindepth 1 -maxdepth 1)
  if ((${#top[@]} == 1)) && [[ -d ${top[0]} ]]; then
    mv "${top[0]}" "$new.top" && rmdir "$new" && mv "$new.top" "$new"
  fi
  [[ -d $new/everest_agent && -f $new/bin/start.sh ]] \
    || die "$(basename "$EB_AGENT_ARCHIVE") does not look like the Everest agent (no everest_agent/ or bin/start.sh)"
  [[ -f $new/conf/agent.conf.default ]] || die "the agent archive has no conf/agent.conf.default"
  chmod 0755 "$new/bin/start.sh"
  if [[ -d $EB_AGENT_DIR/venv ]]; then mv "$EB_AGENT_DIR/venv" "$new/venv"; fi
  rm -rf "$EB_AGENT_DIR.old"
  if [[ -e $EB_AGENT_DIR ]]; then mv "$EB_AGENT_DIR" "$EB_AGENT_DIR.old"; fi
  mv "$new" "$EB_AGENT_DIR"
  rm -rf "$EB_AGENT_DIR.old"
  echo "$EB_AGENT_SHA256" >"$stamp"
fi

# The agent's interpreter must be one the agent supports (the host checked what it
# could tell before baking; a path's version is known only here).
command -v "$agent_python" >/dev/null \
  || die "the agent's interpreter $agent_python is not in the image; fix [agent] python or add it to [system] apt_packages"
py_version=$("$agent_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
  || die "$agent_python does not run"
supported=$EB_STAGING/agent-pythons
if [[ -f $supported ]]; then
  read -r -a ok <<<"$(cat "$supported")"
  [[ " ${ok[*]} " == *" $py_version "* ]] \
    || die "the agent's Python is $py_version ($agent_python) but the agent supports ${ok[*]:-none}; use a base with a supported Python, or set [agent] python / python_requires in the image spec"
fi

venv=$EB_AGENT_DIR/venv
if [[ -x $venv/bin/python ]] && [[ $("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') != "$py_version" ]]; then
  rm -rf "$venv" # made with another interpreter: remake it
fi
[[ -x $venv/bin/python ]] || "$agent_python" -m venv "$venv" || die "$agent_python -m venv $venv failed"
if ! "$venv/bin/python" -c 'import tornado' 2>/dev/null; then
  "$venv/bin/pip" install --no-cache-dir --disable-pip-version-check --no-input -q "$tornado_pin" \
    || die "pip install $tornado_pin into $venv failed (see pip's message above)"
  echo "$me: installed $tornado_pin for the agent"
fi

# The agent runs as EB_USER from its directory and writes its filled config
# there; the venv and the code stay root's.
conf_dir=$EB_AGENT_DIR/conf
cmp -s "$template" "$conf_dir/agent.conf.template" || install -m 0644 "$template" "$conf_dir/agent.conf.template"
rm -f "$conf_dir/agent.conf" # filled at boot only; never part of the image
chown "$EB_USER:" "$conf_dir"
chmod 0750 "$conf_dir"

# Writes stdin to $1 (mode $2) only when the content differs, so a second run
# touches nothing, not even the directory's mtime.
put() {
  local content
  content=$(cat)
  if [[ -f $1 && "$(cat "$1")" == "$content" ]]; then return 0; fi
  printf '%s\n' "$content" >"$1.tmp"
  chmod "$2" "$1.tmp"
  mv "$1.tmp" "$1"
}

# The boot-time filler: stdlib Python, prints no token.
filler=/usr/local/lib/everbake/agent-fill-token
install -d -m 0755 "$(dirname "$filler")"
put "$filler" 0755 <<'PY'
#!/usr/bin/python3
"""Fill the Everest agent token into its config at boot (ExecStartPre)."""
import argparse, json, os, sys, time, urllib.request

# By IP: Yandex documents only 169.254.169.254 (GCE serves it too), and the name
# needs DNS, which may not be up yet at boot.
METADATA = "http://169.254.169.254/computeMetadata/v1/instance/attributes/"


def from_metadata(key):
    base = os.environ.get("EVERBAKE_METADATA_URL", METADATA)
    req = urllib.request.Request(base + key, headers={"Metadata-Flavor": "Google"})
    for attempt in range(10):  # the network may come up a little after us
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.read().decode("utf-8").strip()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                sys.exit(f"agent-fill-token: metadata key {key!r} is not set on this VM")
            err = e
        except OSError as e:
            err = e
        time.sleep(min(2 ** attempt, 10))
    sys.exit(f"agent-fill-token: metadata server unreachable: {err}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", required=True)
    ap.add_argument("--out", required=True)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--metadata-key")
    src.add_argument("--env")
    src.add_argument("--file")
    a = ap.parse_args()
    if a.metadata_key:
        token = from_metadata(a.metadata_key)
    elif a.env:
        token = os.environ.get(a.env, "").strip()
        if not token:
            sys.exit(f"agent-fill-token: {a.env} is not set (put it in /etc/everest/agent.env)")
    else:
        try:
            token = open(a.file, encoding="utf-8").read().strip()
        except OSError as e:
            sys.exit(f"agent-fill-token: cannot read the embedded token: {e}")
    if not token:
        sys.exit("agent-fill-token: the agent token is empty")
    text = open(a.template, encoding="utf-8").read()
    filled = text.replace("AGENTTOKEN", json.dumps(token)[1:-1])
    tmp = a.out + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(filled)
    os.chmod(tmp, 0o600)
    os.replace(tmp, a.out)
    print("agent-fill-token: agent config written")


main()
PY

unit=/etc/systemd/system/everest-agent.service
install -d -m 0755 /etc/systemd/system/multi-user.target.wants /etc/everest
put "$unit" 0644 <<EOF_UNIT
# Written by everbake (provisioning/50-agent.sh).
[Unit]
Description=Everest agent
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$EB_USER
Group=$EB_USER
WorkingDirectory=$EB_AGENT_DIR
# Token sources: the metadata server, this file or the manager's environment, or the embedded file.
EnvironmentFile=-/etc/everest/agent.env
PassEnvironment=${EB_AGENT_TOKEN_ENV:-EVEREST_AGENT_TOKEN}
Environment=PATH=$venv/bin:/usr/local/bin:/usr/bin:/bin
ExecStartPre=$filler --template $conf_dir/agent.conf.template --out $conf_dir/agent.conf ${token_args[*]}
ExecStart=$EB_AGENT_DIR/bin/start.sh
Restart=on-failure
RestartSec=10
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF_UNIT
wanted=/etc/systemd/system/multi-user.target.wants/everest-agent.service
[[ "$(readlink "$wanted" || true)" == "$unit" ]] || ln -sfn "$unit" "$wanted"

echo "$me: agent in $EB_AGENT_DIR, unit everest-agent.service enabled (token from $EB_AGENT_TOKEN_MODE)"
