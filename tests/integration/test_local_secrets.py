"""A real `packer build` of the rendered local template: the three steps run in order,
embed-mode secrets reach them as EB_SECRET_* without ever being in a process's
arguments, in files we write, or in packer's output; the manifest is read back.

The step program is a stand-in for `python -m everbake.localbuild` (the template's
`python` variable points at it); packer, the null source and shell-local are real.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from everbake import packer, packer_dir, render
from everbake.localbuild.step_plan import PLAN_FILE
from everbake.providers import get
from everbake.spec import load_spec

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SECRET = "s3cr3t-Licence-Value-4711"
TOKEN = "agent-TOKEN-value-0815"

STEP = r"""import hashlib, json, os, sys
# argv: -m everbake.localbuild <step> --plan <file>
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        for name in ("EB_SECRET_LICENCE", "EB_SECRET_AGENT_TOKEN"):
            value = os.environ.get(name, "")
            if value and value.encode() in cmdline:
                found.append(pid)
record = {
    "argv": sys.argv[1:],
    "licence_sha": hashlib.sha256(os.environ.get("EB_SECRET_LICENCE", "").encode()).hexdigest(),
    "token_sha": hashlib.sha256(os.environ.get("EB_SECRET_AGENT_TOKEN", "").encode()).hexdigest(),
    "in_cmdline": found,
}
with open(os.environ["STEP_LOG"], "a") as f:
    f.write(json.dumps(record) + "\n")
"""


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.timeout(120)
def test_local_build_steps_get_secrets_safely(tmp_path, capfd):
    version = packer.detect_version()
    spec = load_spec(GOLDEN / "embed-secret" / "spec.toml")
    (rendered,) = packer_dir.write_layers(
        spec, get("local"), tmp_path / "build", version, dist_root=tmp_path / "dist"
    )
    step = tmp_path / "step.py"
    step.write_text(f"#!{sys.executable}\n{STEP}")  # this interpreter, not PATH's python3
    step.chmod(0o755)
    var_file = rendered.directory / render.VAR_FILE
    values = json.loads(var_file.read_text())
    values["python"] = str(step)  # the stand-in instead of the interpreter
    var_file.write_text(json.dumps(values, indent=2))

    log = tmp_path / "steps.jsonl"
    env = {
        **os.environ,
        "STEP_LOG": str(log),
        "PKR_VAR_secret_licence": SECRET,
        "PKR_VAR_secret_agent_token": TOKEN,
        "CHECKPOINT_DISABLE": "1",
    }
    packer.build(rendered.directory, env, prefix="local")

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["argv"][2] for r in records] == ["base", "image", "export"]
    plan = str(rendered.directory.resolve() / PLAN_FILE)
    assert all(
        r["argv"] == ["-m", "everbake.localbuild", r["argv"][2], "--plan", plan] for r in records
    )
    assert all(r["licence_sha"] == sha(SECRET) and r["token_sha"] == sha(TOKEN) for r in records)
    assert all(r["in_cmdline"] == [] for r in records), records

    manifest = packer.read_manifest(Path(values["manifest_path"]))
    assert manifest["custom_data"]["fingerprint"] == values["fingerprint"]
    assert manifest["builder_type"] == "null"

    out = capfd.readouterr()
    for value in (SECRET, TOKEN):
        assert value not in out.out + out.err
        for path in tmp_path.rglob("*"):
            if path.is_file() and path != log:
                assert value.encode() not in path.read_bytes(), path
