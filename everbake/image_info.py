"""image.json: what an image is, written into it by staging (70-secrets.sh puts it in
place): its name and fingerprints, the agent it holds, how each secret reaches it
(names only). What of it is not derived from the fingerprints is itself a
fingerprint input (`fingerprint_view`), so a new field renames the image."""

from __future__ import annotations

from collections.abc import Mapping

from everbake.spec import ImageSpec

IMAGE_INFO = "image.json"


def image_info(
    spec: ImageSpec,
    image: str,
    fingerprints: Mapping[str, str],
    agent_content: str,
    provider: str = "",
) -> dict[str, object]:
    """image.json: what the image is, where it was built, the agent it holds (its
    archive's sha256 or "none"), its solvers (how each is installed, so a task's
    provenance.json finds the installed version in packages.json) and how each
    secret reaches it (names only)."""
    return {
        "image": image,
        "spec": spec.name,
        "family": spec.family,
        "provider": provider,
        "fingerprints": dict(fingerprints),
        "agent_content": agent_content,
        "solvers": {
            s.name: {"install": s.install, "package": s.package or s.name, "version": s.version}
            for s in spec.solvers
        },
        "secrets": {
            name: {"mode": s.mode, "env": s.env, "metadata_key": s.metadata_key, "path": s.path}
            for name, s in sorted(spec.secrets.items())
        },
    }


def fingerprint_view(spec: ImageSpec, agent_content: str) -> dict[str, object]:
    """image.json without what the fingerprints decide (the name and the fingerprints)
    and without the provider: the same layers baked on two providers keep one
    fingerprint, as every other input is the same."""
    return image_info(spec, "", {}, agent_content)
