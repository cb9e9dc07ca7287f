"""The provisioning scripts of a layer and the EB_* environment they run with.

The contract is docs/internals.md ("Provisioning scripts"). Secret values never
appear here: embed-mode secrets are named with their target path only, and the
values reach $EB_STAGING/secrets/<name> by another route.
"""

from __future__ import annotations

import re
from pathlib import Path

from everbake.spec import ImageSpec

LAYERS = ("base", "image")
DEFAULT_STAGING = "/var/tmp/everbake-staging"
# provisioning/NN-name.sh: NN below 50 belongs to the base layer, the rest to the image.
_SCRIPT_RE = re.compile(r"^(\d\d)-[a-z0-9-]+\.sh$")
IMAGE_LAYER_FROM = 50
# Run first in each layer on a cloud build VM only: waits out first boot.
FIRST_BOOT = "provisioning/cloud/first-boot.sh"
DEFAULT_SECRET_DIR = "/etc/everest/secrets"
# EB_BUILD_USER's value when only the VM knows who logged in (GCE OS Login): the
# hygiene step takes the user sudo was run by (SUDO_USER).
SESSION_USER = "@login"


def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; use one of {LAYERS}")


def scripts(repo_root: Path, layer: str) -> list[Path]:
    """provisioning/NN-*.sh of ``layer``, in the order they run."""
    check_layer(layer)
    found = []
    for path in sorted((repo_root / "provisioning").glob("*.sh")):
        match = _SCRIPT_RE.match(path.name)
        if not match:
            continue
        is_image = int(match.group(1)) >= IMAGE_LAYER_FROM
        if is_image == (layer == "image"):
            found.append(path)
    return found


def cloud_scripts(repo_root: Path, layer: str) -> list[Path]:
    """What a cloud build VM runs for ``layer``: the first-boot wait, then the layer's scripts."""
    return [repo_root / FIRST_BOOT, *scripts(repo_root, layer)]


def solver_scripts(spec: ImageSpec) -> dict[str, str]:
    """Solver name -> script path relative to the repository (install = "script")."""
    return {s.name: s.script for s in spec.solvers if s.install == "script"}


def secret_path(spec: ImageSpec, name: str) -> str:
    return spec.secrets[name].path or f"{DEFAULT_SECRET_DIR}/{name}"


def provisioning_env(
    spec: ImageSpec, layer: str, staging: str = DEFAULT_STAGING, build_user: str = ""
) -> dict[str, str]:
    """EB_* variables for the scripts of ``layer`` (all strings, lists space-separated).

    EB_AGENT_ARCHIVE names the staged archive; a build that skips the agent sets it
    to "" itself. ``build_user``: the user Packer logs in as on a cloud build VM,
    which hygiene removes (the local chroot has none).
    """
    check_layer(layer)
    env = {"EB_STAGING": staging, "EB_USER": spec.system.user, "EB_VENV": spec.python.venv}
    if layer == "base":
        env.update(
            EB_TIMEZONE=spec.system.timezone,
            EB_APT_PACKAGES=" ".join(spec.system.apt_packages),
            EB_PYTHON_VERSION=spec.python.version,
            EB_PYTHON_PACKAGES=" ".join(spec.python.packages),
            EB_PIP_SOLVERS=_solvers(spec, "pip", "=="),
            EB_APT_SOLVERS=" ".join(apt_solver_pins(spec)),
            EB_SCRIPT_SOLVERS=" ".join(
                f"{s.name}={s.sha256}={s.version}" for s in spec.solvers if s.install == "script"
            ),
        )
        return dict(sorted(env.items()))
    token = spec.secrets.get(spec.agent.token_secret)
    if build_user:
        env["EB_BUILD_USER"] = build_user
    env.update(
        EB_KEEP_CA_CERTS="1" if spec.system.keep_ca_certificates else "0",
        EB_VERIFY_SOLVERS=" ".join(s.name for s in spec.solvers),
        EB_AGENT_ARCHIVE=f"{staging}/agent.tar.gz",
        EB_AGENT_SHA256=spec.agent.sha256,
        EB_AGENT_DIR=spec.agent.install_dir,
        EB_AGENT_PYTHON=spec.agent.python or "python3",
        EB_AGENT_TOKEN_SECRET=spec.agent.token_secret,
        EB_AGENT_TOKEN_MODE=token.mode if token else "",
        EB_AGENT_TOKEN_METADATA_KEY=token.metadata_key if token else "",
        EB_AGENT_TOKEN_ENV=token.env if token else "",
        EB_EMBED_SECRETS=" ".join(
            f"{name}:{secret_path(spec, name)}" for name in embed_secrets(spec)
        ),
    )
    return dict(sorted(env.items()))


def embed_secrets(spec: ImageSpec) -> list[str]:
    return sorted(name for name, s in spec.secrets.items() if s.mode == "embed")


def apt_solver_pins(spec: ImageSpec) -> list[str]:
    """The apt solvers as apt pins, package=version."""
    return _solvers(spec, "apt", "=").split()


def _solvers(spec: ImageSpec, method: str, sep: str) -> str:
    return " ".join(f"{s.package}{sep}{s.version}" for s in spec.solvers if s.install == method)


def secret_env_name(name: str) -> str:
    """The variable carrying an embed-mode secret's value to the step that writes it
    (the local image step, or the cloud build's secrets provisioner)."""
    return "EB_SECRET_" + name.upper().replace("-", "_")
