"""provenance.json: what produced a task's result, written by every task the runner
prepares, before the model starts (so a failed task has one) and again at the end.

It says which image ran the task (name, both fingerprints, spec, provider, agent
content: /etc/everest/image.json, written at build time), which packages were
installed in it (/etc/everest/packages.json, read from the image at build time,
not from the spec), which runtime, which model (ref, commit, date, source URL
without its user-info, never a token), the sha256 of the parameters file and of
the data archive, and the task's start, end and host kind. Standard library only
and cheap: two small JSON reads, two file digests, one write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from . import __version__, outputs, redact

FILE = "provenance.json"
FORMAT = 1
IMAGE_DIR_ENV = "EVEREST_IMAGE_DIR"  # where image.json and packages.json are (tests)
IMAGE_DIR = "/etc/everest"
HOST_KIND_ENV = "EVEREST_HOST_KIND"  # set by everbake's run-local: "local"
_DMI = "/sys/class/dmi/id"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def image_dir() -> Path:
    return Path(os.environ.get(IMAGE_DIR_ENV) or IMAGE_DIR)


def sha256_of(path: Path | None) -> str:
    if path is None:
        return ""
    digest = hashlib.sha256()
    try:
        with open(str(path), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def host_kind() -> str:
    """local (everbake's run-local says so), gce or yandex (the DMI vendor strings
    both clouds document for their VMs), else unknown."""
    given = os.environ.get(HOST_KIND_ENV, "")
    if given:
        return given
    found = []
    for name in ("product_name", "sys_vendor"):
        try:
            with open(os.path.join(_DMI, name)) as f:
                found.append(f.read().strip())
        except OSError:
            pass
    text = " ".join(found)
    if "Google" in text:
        return "gce"
    if "Yandex" in text:
        return "yandex"
    return "unknown"


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _model(version: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    source = str(version.get("source", ""))
    # A URL may carry a token as its user-info: never written.
    words = [redact.url_credentials(w)[0] if "://" in w else w for w in source.split(" ")]
    return {
        "ref": redact.text(str(version.get("ref", "")), secrets),
        "sha": str(version.get("sha", "")),
        "date": str(version.get("date", "")),
        "title": redact.text(str(version.get("title", "")), secrets),
        "source": redact.text(" ".join(words), secrets),
    }


def _solvers(image: dict[str, Any], packages: dict[str, Any]) -> dict[str, Any]:
    """Each solver the image declares with the version actually installed: its pip
    distribution or Debian package as packages.json lists it."""
    python = packages.get("python") or {}
    debian = packages.get("debian") or {}
    out = {}
    for name, solver in sorted((image.get("solvers") or {}).items()):
        package = str(solver.get("package") or name)
        if solver.get("install") == "pip":
            installed = python.get(re.sub(r"[-_.]+", "-", package).lower())
        elif solver.get("install") == "apt":
            installed = debian.get(package)
        else:
            installed = solver.get("version")
        out[name] = {"package": package, "install": solver.get("install"), "version": installed}
    return out


class Provenance:
    """The record of one task, built once when the task is prepared."""

    def __init__(
        self,
        version: dict[str, Any],
        params_file: Path,
        data_file: Path | None,
        secrets: list[str],
        started: float | None = None,
    ) -> None:
        where = image_dir()
        self.image = _read_json(where / "image.json")
        packages = _read_json(where / "packages.json")
        fingerprints = self.image.get("fingerprints") or {}
        self.doc: dict[str, Any] = {
            "format": FORMAT,
            "image": {
                "name": self.image.get("image"),
                "spec": self.image.get("spec"),
                "family": self.image.get("family"),
                "provider": self.image.get("provider"),
                "fingerprints": {
                    "base": fingerprints.get("base"),
                    "image": fingerprints.get("image"),
                },
            },
            "runtime": {"version": __version__},
            "agent": {"content": self.image.get("agent_content")},
            "solvers": _solvers(self.image, packages),
            "packages": {
                "debian": packages.get("debian") or {},
                "python": packages.get("python") or {},
            },
            "model": _model(version, secrets),
            "inputs": {
                "parameters": {"file": params_file.name, "sha256": sha256_of(params_file)},
                "data": {
                    "file": data_file.name if data_file else None,
                    "sha256": sha256_of(data_file) or None,
                },
            },
            "task": {
                "started": _iso(time.time() if started is None else started),
                "ended": None,
                "exit_code": None,
                "host": host_kind(),
            },
        }

    def image_line(self) -> str:
        """version.txt's image line ("" outside an everbake image)."""
        name = self.image.get("image")
        if not name:
            return ""
        fp = str((self.image.get("fingerprints") or {}).get("image", ""))[:12]
        return f"image: {name} (fingerprint {fp})\n" if fp else f"image: {name}\n"

    def write(self, task_dir: Path, exit_code: int | None = None) -> None:
        if exit_code is not None:
            self.doc["task"]["ended"] = _iso(time.time())
            self.doc["task"]["exit_code"] = exit_code
        outputs.write_text(task_dir / FILE, json.dumps(self.doc, indent=2, sort_keys=True) + "\n")
