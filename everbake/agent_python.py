"""Which Pythons the Everest agent supports, and whether the image's agent interpreter is one.

The range comes from the agent archive itself (python_requires in setup.py or
setup.cfg, requires-python in pyproject.toml, else its "Programming Language ::
Python :: X.Y" classifiers), read as text: the archive's code never runs here.
When the archive says nothing, the spec's `[agent] python_requires` applies.
"""

from __future__ import annotations

import configparser
import re
import tarfile
from pathlib import Path

import tomllib

from everbake.errors import BuildError
from everbake.spec import ImageSpec
from everbake.spec.python_range import (
    DEBIAN_RELEASES,
    Supported,
    check_specifier,
    parse_version,
)

_SETUP_PY_RE = re.compile(r"""python_requires\s*=\s*(['"])([^'"]+)\1""")
_CLASSIFIER_RE = re.compile(r"Programming Language :: Python :: (\d)\.(\d{1,2})\b")
_PATH_VERSION_RE = re.compile(r"python(\d)\.(\d{1,2})$")


def declared(archive: Path) -> Supported | None:
    """The range the archive's packaging metadata declares, read as text; None when none."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            files = {}
            for member in tar.getmembers():
                parts = member.name.strip("/").split("/")
                name = "/".join(parts[1:]) if len(parts) > 1 else parts[0]
                if member.isfile() and name in ("setup.py", "setup.cfg", "pyproject.toml"):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[name] = handle.read(1 << 20).decode("utf-8", "replace")
    except (tarfile.TarError, OSError) as exc:
        raise BuildError(f"cannot read the agent archive {archive.name} ({exc})") from None
    found = _requires(files)
    if found is not None:
        return found
    versions = {
        (int(a), int(b)) for text in files.values() for a, b in _CLASSIFIER_RE.findall(text)
    }
    if versions:
        listed = ", ".join(f"{a}.{b}" for a, b in sorted(versions))
        return Supported(listed, "the agent archive's classifiers", frozenset(versions))
    return None


def _requires(files: dict[str, str]) -> Supported | None:
    if "pyproject.toml" in files:
        try:
            project = tomllib.loads(files["pyproject.toml"]).get("project", {})
        except tomllib.TOMLDecodeError:
            project = {}
        if isinstance(project.get("requires-python"), str):
            return _from("pyproject.toml", project["requires-python"])
    if "setup.cfg" in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(files["setup.cfg"])
            value = parser.get("options", "python_requires", fallback=None)
        except configparser.Error:
            value = None
        if value:
            return _from("setup.cfg", value)
    match = _SETUP_PY_RE.search(files.get("setup.py", ""))
    return _from("setup.py", match.group(2)) if match else None


def _from(file: str, text: str) -> Supported:
    problem = check_specifier(text)
    if problem:
        raise BuildError(
            f"the agent archive's {file} declares Python '{text}', which everbake cannot read "
            f"({problem}); set [agent] python_requires in the image spec and report it"
        )
    return Supported(text.replace(" ", ""), f"the agent archive's {file}")


def supported(spec: ImageSpec, archive: Path | None) -> Supported:
    found = declared(archive) if archive is not None else None
    return found or Supported(spec.agent.python_requires, "[agent] python_requires")


def interpreter(spec: ImageSpec) -> tuple[str, tuple[int, int] | None]:
    """The agent's interpreter and its version when known before baking: the base's
    python3 ([python] version, checked against the base) or a path named pythonX.Y."""
    if not spec.agent.python:
        return "python3", parse_version(spec.python.version)
    match = _PATH_VERSION_RE.search(spec.agent.python)
    return spec.agent.python, ((int(match.group(1)), int(match.group(2))) if match else None)


def check(spec: ImageSpec, archive: Path | None) -> Supported:
    """Refuse, before baking, an agent interpreter the agent does not support."""
    wanted = supported(spec, archive)
    path, version = interpreter(spec)
    if version is None or wanted.allows(version):
        return wanted
    have = f"{version[0]}.{version[1]}"
    base = spec.base.local.suite
    fits = [
        f"{suite} (Python {py})"
        for suite, py in DEBIAN_RELEASES.values()
        if wanted.allows(parse_version(py))
    ]
    bases = (
        f"a base with a supported Python ({', '.join(fits)})"
        if fits
        else "a base whose Python it supports"
    )
    raise BuildError(
        f"image {spec.name}: the agent's Python is {have} ({path} on {base}) but the agent "
        f"supports {wanted.text} ({wanted.where}); use {bases}, set [agent] python to a "
        "supported interpreter the base provides, or set [agent] python_requires if the agent "
        "really runs there"
    )
