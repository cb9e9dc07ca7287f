"""The local provider's bake steps: the build record and its tarball say whether
the image is up to date; a bake is stage -> plan -> render -> packer validate ->
packer build (whose shell-local steps run everbake.localbuild) -> manifest."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from everbake import (
    image_inputs,
    image_packages,
    naming,
    packer,
    packer_dir,
    provision_env,
    staging,
)
from everbake.agent_fetch import ResolvedAgent
from everbake.bake.build_agent import agent_fingerprints, drop_fetched
from everbake.bake.skeleton import BuildOutcome
from everbake.errors import BuildError, EverbakeError
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.localbuild import overlay, rootfs
from everbake.localbuild.step_plan import (
    LAYERS,
    PLAN_FILE,
    STAGING_IN_IMAGE,
    Plan,
    image_tarball,
    make_plan,
)
from everbake.localbuild.steps import package_list_path
from everbake.providers import BuildSettings, Provider
from everbake.records import local_up_to_date, read_record, record_path
from everbake.runtime_wheel import build_runtime_wheel
from everbake.settings import Settings
from everbake.spec import ImageSpec
from everbake.ui import phase, say


class LocalSteps:
    def __init__(
        self,
        provider: Provider,
        spec: ImageSpec,
        settings: Settings,
        environ: Mapping[str, str],
        force: bool,
    ) -> None:
        self.provider, self.spec, self.settings, self.environ = provider, spec, settings, environ
        self.dist = settings.dist_root(spec)
        self.build_root = settings.build_root(spec)
        self.lock_dir = provider.layer_dir(self.build_root, spec, "image")
        self.cache_dir = settings.local_cache_dir(spec, environ)
        self.packer_env: dict[str, str] = {}
        self.agent: ResolvedAgent | None = None
        self._use(fingerprints(spec))

    def _use(self, fps: Fingerprints) -> None:
        self.fps = fps
        self.image = naming.image_name(self.spec, fps)
        self.record_path = record_path(self.dist, self.provider.name, self.image)

    def look_up(self, again: bool) -> tuple[Path, dict[str, Any]] | None:
        found = self._find()
        if found is None and self.agent is None and self._resolve_agent():
            found = self._find()
        return found

    def _resolve_agent(self) -> bool:
        """Fetch the agent: the image bakes its content, so that names the image.
        Whether the fingerprints changed (e.g. an unreachable agent is skipped)."""
        self.agent, fps = agent_fingerprints(self.spec, self.lock_dir)
        if fps == self.fps:
            return False
        self._use(fps)
        return True

    def _find(self) -> tuple[Path, dict[str, Any]] | None:
        existing = read_record(self.record_path)
        wanted = image_tarball(self.dist, self.image, self.spec.build.local.compression)
        tarball = local_up_to_date(existing, self.fps.image, wanted)
        return (tarball, existing) if tarball and existing else None

    def up_to_date(self, found: tuple[Path, dict[str, Any]]) -> BuildOutcome:
        tarball, existing = found
        say(f"up to date: {self.image} ({tarball}); --force rebuilds it")
        return BuildOutcome(self.image, self.provider.name, True, self.record_path, existing)

    def prepare(self, found: object) -> None:
        # Embed secret values go only into packer's environment (sensitive PKR_VAR_*).
        secrets = packer.secret_env(self.spec, self.environ)
        self.packer_env = {**self.environ, "CHECKPOINT_DISABLE": "1", **secrets}

    def bake(self, found: object) -> dict[str, Any]:
        """stage + plan -> render -> validate -> packer build -> manifest; the record's data."""
        if self.agent is None:  # --force over an image found by its pin
            self._resolve_agent()
        assert self.agent is not None  # _resolve_agent sets it
        spec, fps, build_dir = self.spec, self.fps, self.lock_dir
        output = image_tarball(self.dist, self.image, self.spec.build.local.compression)
        had_output = output.exists()
        try:
            with phase("stage files and write the local plan"):
                plan, _staged = prepare(
                    spec,
                    fps,
                    build_dir,
                    dist=self.dist,
                    cache_dir=self.cache_dir,
                    agent=self.agent,
                    package_cache=self.settings.package_cache,
                    provider=self.provider.name,
                )
            (build_dir / image_packages.FILE).unlink(missing_ok=True)  # never an old list
            with phase(f"render {build_dir}"):
                packer_dir.write_layers(
                    spec,
                    self.provider,
                    self.build_root,
                    packer.detect_version(),
                    BuildSettings(),
                    self.dist,
                    fps,
                    environ=self.environ,
                )
            with phase("packer validate"):
                packer.validate(build_dir, env=self.packer_env)
            with phase(f"packer build (local: {self.image})"):
                packer.build(build_dir, self.packer_env, prefix=self.provider.name)
            packages = image_packages.load(package_list_path(plan))
            manifest = self.provider.manifest_path(self.dist, spec, "image")
            entry = packer.read_manifest(manifest)
            if not output.is_file():
                raise BuildError(f"packer finished but {output} was not written (export step)")
        except BaseException:
            # No half-written image: drop a tarball this run created and the work dir.
            if not had_output:
                output.unlink(missing_ok=True)
            # Our overlay is unmounted; anything else still mounted there is named, and kept.
            with contextlib.suppress(EverbakeError):
                overlay.release(build_dir / "work")
            raise
        return {
            "image": self.image,
            "provider": self.provider.name,
            "spec": spec.name,
            "spec_canonical": spec.to_canonical(),
            "fingerprints": fps.as_dict(),
            "agent_content": self.agent.content if self.agent else None,
            "inputs": image_inputs.summary(spec, self.agent.content),
            "packages": packages,
            "base": {"name": plan.base_name, "cache": plan.base_cache},
            "artifact": {"path": str(output), "size_bytes": output.stat().st_size},
            "packer_version": ".".join(map(str, packer.detect_version())),
            "manifest": entry,
        }

    def outcome(self, record: dict[str, Any]) -> BuildOutcome:
        artifact = record["artifact"]
        say(f"built {self.image}: {artifact['path']} ({artifact['size_bytes'] / 1e6:.0f} MB)")
        say(f"record: {self.record_path}")
        return BuildOutcome(self.image, self.provider.name, False, self.record_path, record)

    def release(self) -> None:
        drop_fetched(self.agent)


def prepare(
    spec: ImageSpec,
    fps: Fingerprints,
    build_dir: Path,
    *,
    dist: Path,
    cache_dir: Path,
    agent: ResolvedAgent,
    package_cache: Path | None = None,
    provider: str = "",
) -> tuple[Plan, staging.Staged]:
    """Build the runtime wheel, stage everything into build_dir/staging and write
    build_dir/local-plan.json."""
    repo_root = spec.repo_root
    image = naming.image_name(spec, fps)
    scripts = {layer: provision_env.scripts(repo_root, layer) for layer in LAYERS}
    wheel = build_runtime_wheel(spec.repo_path(spec.runtime.source), build_dir / "wheel")
    staged = staging.stage(
        spec,
        build_dir / "staging",
        image=image,
        fingerprints=fps.as_dict(),
        scripts=[*scripts["base"], *scripts["image"]],
        agent=agent,
        wheel=wheel,
        provider=provider,
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
        cache_dir=cache_dir,
        output=image_tarball(dist, image, spec.build.local.compression),
        staging_host=build_dir / "staging",
        scripts=scripts,
        env=env,
        embed_secrets=provision_env.embed_secrets(spec),
        compression_level=spec.build.local.level,
        include=rootfs.base_packages(provision_env.apt_solver_pins(spec), spec.system.apt_packages),
        package_cache=package_cache,
    )
    plan.write(build_dir / PLAN_FILE)
    return plan, staged
