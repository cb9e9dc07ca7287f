"""The packer executable: version, init, validate, fmt, build, manifest.

Secrets reach packer only as PKR_VAR_* variables in its environment (declared
sensitive in the templates); nothing secret is ever put on its command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake.errors import BuildError, CredentialsError, RenderError, ToolError
from everbake.proc import Result, require_tool, stream
from everbake.spec import ImageSpec

INSTALL_FIX = "apt-get install -y packer  (or https://developer.hashicorp.com/packer/install)"
PLUGINS_FROM = (1, 7, 0)  # the first Packer with `packer init` and required_plugins
# The value `packer validate` gets for variables known only at build time
# (project/folder, secret values), so validation needs no credentials.
VALIDATE_PLACEHOLDER = "everbake-validate-only"


@dataclass(frozen=True)
class Plugin:
    """A Packer plugin a source needs with current Packer (`packer init`).

    Its version constraint is a fingerprint input: a new plugin may bake differently.
    """

    name: str  # the plugin's (and its builder's) name
    source: str
    version: str


# The pins of every plugin a provider's source needs (versions.pkr.hcl); the
# builders Packer has built in (null) need none.
PLUGINS = (
    Plugin("googlecompute", "github.com/hashicorp/googlecompute", "~> 1.2"),
    Plugin("yandex", "github.com/hashicorp/yandex", "~> 1.1"),
)


def plugin(name: str) -> Plugin:
    """The pin of the plugin ``name`` (a builder type)."""
    return next(p for p in PLUGINS if p.name == name)


def packer_path() -> str:
    return require_tool("packer", INSTALL_FIX)


def detect_version() -> tuple[int, int, int]:
    """Version of the packer on PATH, e.g. (1, 6, 6)."""
    out = _run([packer_path(), "version"], what="packer version").stdout
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise ToolError(f"cannot tell packer's version from {out.strip()!r}; {INSTALL_FIX}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def detect_version_or_none() -> tuple[int, int, int] | None:
    try:
        return detect_version()
    except ToolError:
        return None


def supports_plugins(version: tuple[int, int, int]) -> bool:
    return version >= PLUGINS_FROM


def init(directory: Path, env: Mapping[str, str] | None = None) -> None:
    """`packer init` when the directory asks for plugins (Packer >= 1.7 only)."""
    if (directory / "versions.pkr.hcl").is_file():
        stream([packer_path(), "init", "."], prefix="packer init", cwd=directory, env=env)


def validate(
    directory: Path, syntax_only: bool = False, env: Mapping[str, str] | None = None
) -> None:
    """`packer validate [-syntax-only] .`; RenderError with packer's message on failure."""
    argv = [packer_path(), "validate"] + (["-syntax-only"] if syntax_only else []) + ["."]
    result = _run(argv, cwd=directory, env=env, what="packer validate")
    if result.returncode != 0:
        message = " ".join((result.stdout + result.stderr).split())
        raise RenderError(f"{directory}: packer validate failed: {message}")


def fmt_check(directory: Path) -> None:
    """`packer fmt -check .`: rendered files must already be formatted."""
    result = _run([packer_path(), "fmt", "-check", "."], cwd=directory, what="packer fmt")
    if result.returncode != 0:
        files = " ".join(result.stdout.split()) or result.stderr.strip()
        raise RenderError(f"{directory}: not formatted as `packer fmt` wants: {files}")


def build(
    directory: Path,
    env: Mapping[str, str],
    *,
    prefix: str,
    log_path: Path | None = None,
    force: bool = False,
    on_error: str = "cleanup",
) -> Result:
    """`packer build` streaming its output as '<prefix> | ...'.

    ``env`` is the complete environment (PKR_VAR_* secrets included); ``force``
    passes -force, which makes googlecompute DELETE an existing image of the same
    name: callers must say so before using it.
    """
    argv = [packer_path(), "build", f"-on-error={on_error}", "-color=false"]
    if force:
        argv.append("-force")
    argv.append(".")
    return stream(
        argv, prefix=prefix, env=env, cwd=directory, log_path=log_path, what="packer build"
    )


def secret_env(spec: ImageSpec, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """PKR_VAR_secret_<name> for each embed-mode secret, from the variable its ``env`` names.

    Merge the result into packer's environment only (never argv, never a file).
    """
    environ = os.environ if environ is None else environ
    out, missing = {}, []
    for name, secret in sorted(spec.secrets.items()):
        if secret.mode != "embed":
            continue
        value = environ.get(secret.env, "")
        if value:
            out[f"PKR_VAR_secret_{name}"] = value
        else:
            missing.append(
                f"secret '{name}' (mode embed): set {secret.env} in the environment to its value"
            )
    if missing:
        raise CredentialsError("\n".join(missing))
    return out


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest entry of the last run (its packer_run_uuid is last_run_uuid)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{path}: packer wrote no manifest; see the build output above") from None
    except ValueError as exc:
        raise BuildError(f"{path}: manifest is not JSON ({exc})") from None
    last = data.get("last_run_uuid")
    for entry in data.get("builds", []):
        if entry.get("packer_run_uuid") == last:
            return dict(entry)
    raise BuildError(f"{path}: no build entry for the last run ({last}); the build did not finish")


class _Output:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _run(
    argv: list[str],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> _Output:
    """Run a short packer command and capture its output (no secrets in argv)."""
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("CHECKPOINT_DISABLE", "1")  # no version check over the network
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False
        )
    except FileNotFoundError:
        raise ToolError(f"cannot run '{argv[0]}' for {what}; {INSTALL_FIX}") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what} did not finish in 300 s") from None
    return _Output(done.returncode, done.stdout, done.stderr)
