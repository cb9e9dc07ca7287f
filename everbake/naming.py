"""Image names, families and labels derived from the fingerprints.

GCE and Yandex both accept names/families matching ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$
and label values of at most 63 characters of [a-z0-9_-]; spec validation keeps
the family short enough for the longest suffix.
"""

from __future__ import annotations

import tomllib

from everbake.fingerprint import Fingerprints
from everbake.labels import (
    BASE_LABEL,
    FINGERPRINT_LABEL,
    LAYER_LABEL,
    SPEC_LABEL,
    fingerprint_label_value,
    label_value,
)
from everbake.provision_env import check_layer, embed_secrets
from everbake.spec import ImageSpec

HEX_IN_NAME = 12


def family(spec: ImageSpec, layer: str = "image") -> str:
    check_layer(layer)
    return spec.family if layer == "image" else f"{spec.family}-base"


def image_name(spec: ImageSpec, fps: Fingerprints, layer: str = "image") -> str:
    return f"{family(spec, layer)}-{fps.of(layer)[:HEX_IN_NAME]}"


def runtime_version(spec: ImageSpec) -> str:
    pyproject = spec.repo_root / spec.runtime.source / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def labels(spec: ImageSpec, fps: Fingerprints, layer: str = "image") -> dict[str, str]:
    """Labels of the image of ``layer``; never a secret value (only whether any is embedded)."""
    out = {
        FINGERPRINT_LABEL: fingerprint_label_value(fps.of(layer)),
        LAYER_LABEL: layer,
        SPEC_LABEL: label_value(spec.name),
        BASE_LABEL: fingerprint_label_value(fps.base),
    }
    for solver in spec.solvers:
        out[label_value(f"solver-{solver.name}")] = label_value(solver.version)
    if layer == "image":
        out["everbake-runtime"] = label_value(runtime_version(spec))
        out["everbake-secrets"] = "embedded" if embed_secrets(spec) else "none"
    return dict(sorted(out.items()))


def description(spec: ImageSpec, fps: Fingerprints, layer: str = "image") -> str:
    what = spec.description or spec.name
    if layer == "base":
        what = f"base layer of {spec.name}: OS, Python and solvers"
    return f"{what} (everbake {layer} {fps.of(layer)[:HEX_IN_NAME]})"[:256]
