"""Local provider, host side: stage the files and write the plan the steps read."""

from __future__ import annotations

from pathlib import Path

from everbake import naming, provision_env
from everbake.fingerprint import Fingerprints
from everbake.localbuild import staging
from everbake.localbuild.plan import (
    LAYERS,
    PLAN_FILE,
    STAGING_IN_IMAGE,
    Plan,
    default_cache_dir,
    image_tarball,
    make_plan,
)
from everbake.spec import ImageSpec


def prepare(
    spec: ImageSpec,
    fps: Fingerprints,
    build_dir: Path,
    *,
    cache_dir: Path | None = None,
) -> tuple[Plan, staging.Staged]:
    """Stage everything into build_dir/staging and write build_dir/local-plan.json."""
    repo_root = spec.repo_root
    image = naming.image_name(spec, fps)
    scripts = {layer: provision_env.scripts(repo_root, layer) for layer in LAYERS}
    staged = staging.stage(
        spec,
        build_dir / "staging",
        image=image,
        fingerprints=fps.as_dict(),
        scripts=[*scripts["base"], *scripts["image"]],
    )
    env = {layer: provision_env.provisioning_env(spec, layer, STAGING_IN_IMAGE) for layer in LAYERS}
    env["image"].update(staging.agent_env(staged.agent_sha256))
    plan = make_plan(
        image=image,
        base_name=naming.image_name(spec, fps, "base"),
        fingerprints=fps.as_dict(),
        suite=spec.base.local.suite,
        mirror=spec.base.local.mirror,
        build_dir=build_dir,
        cache_dir=cache_dir or default_cache_dir(repo_root),
        output=image_tarball(repo_root, image, spec.build.local.compression),
        staging_host=build_dir / "staging",
        scripts=scripts,
        env=env,
        embed_secrets=provision_env.embed_secrets(spec),
        compression_level=spec.build.local.level,
    )
    plan.write(build_dir / PLAN_FILE)
    return plan, staged
