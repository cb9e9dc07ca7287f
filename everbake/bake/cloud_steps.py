"""The clouds' bake steps: look up first, build only what is missing, record.

1. The image layer's fingerprint is looked up in the provider's store: found and
   no --force means "up to date" and nothing is written. Any lookup error other
   than "not found" stops here (a failed lookup is never taken for "missing").
2. The base layer (family <family>-base) is built only when its fingerprint is
   missing; the image layer starts from it by name.
3. Each layer: stage, render (with what staging found), validate, `packer
   build` streamed with the provider as prefix; a lost build VM moves on to the
   next attempt (everbake.attempts), any other failure stops with the
   log tail.
4. The manifest entry of the last run names the artifact, the store must then
   find it, and the build record is written last (everbake.bake.skeleton).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from everbake import (
    image_inputs,
    image_packages,
    naming,
    packer,
    packer_dir,
    provision_env,
    render,
    staging,
)
from everbake.agent_fetch import ResolvedAgent
from everbake.attempts import SUSPECT, Attempt, Loss, first_attempt, judge, next_attempt
from everbake.bake.build_agent import agent_fingerprints, drop_fetched
from everbake.bake.skeleton import BuildOutcome, run
from everbake.errors import BuildError, EverbakeError
from everbake.fingerprint import fingerprints
from everbake.pinagent import require_pinned_agents
from everbake.providers import BuildSettings, CloudProvider
from everbake.records import read_record, record_path
from everbake.retirement import published_names
from everbake.runtime_wheel import build_runtime_wheel
from everbake.settings import Settings
from everbake.spec import ImageSpec
from everbake.stores import CloudImage, ImageStore
from everbake.ui import phase, say
from everbake.watcher import Account, Watcher

REPLACE_FLAG = "--replace-published"


def build_cloud(
    spec: ImageSpec,
    provider: CloudProvider,
    force: bool = False,
    *,
    replace_published: bool = False,
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> BuildOutcome:
    """Make sure the image of ``spec`` exists on ``provider``; build what is missing."""
    environ = os.environ if env is None else env
    steps = CloudSteps(provider, spec, settings or Settings(), environ, force, replace_published)
    return run(steps, force)


class CloudSteps:
    def __init__(
        self,
        provider: CloudProvider,
        spec: ImageSpec,
        settings: Settings,
        environ: Mapping[str, str],
        force: bool,
        replace_published: bool,
    ) -> None:
        require_pinned_agents([spec], [provider])  # before any lookup or VM
        self.provider, self.spec, self.environ = provider, spec, environ
        self.replace_published = replace_published
        self.family = naming.family(spec)
        self.build_root = settings.build_root(spec)
        self.dist = settings.dist_root(spec)
        self.lock_dir = self.build_root / provider.name / spec.name
        self.agent: ResolvedAgent | None = None
        self._use(fingerprints(spec))
        self.location = provider.location_of(spec, environ)
        self.store: ImageStore | None = None
        self.packer_env: dict[str, str] = {}
        self.packer_version: tuple[int, int, int] = (0, 0, 0)
        self.attempts_made: dict[str, list[dict[str, Any]]] = {}
        self.vms: Any = None  # the cloud's build VMs (everbake.stores.*_vms), opened once
        self.vms_problem = ""

    def _use(self, fps: Any) -> None:
        self.fps = fps
        self.name = naming.image_name(self.spec, fps)
        self.record_path = record_path(self.dist, self.provider.name, self.name)

    def _resolve_agent(self) -> bool:
        """Fetch the pinned agent now: an unreachable one that is not required is
        skipped, and an image without it has its own fingerprint. Whether it changed."""
        self.agent, fps = agent_fingerprints(self.spec, self.lock_dir)
        if fps == self.fps:
            return False
        self._use(fps)
        return True

    # -- the skeleton's steps ----------------------------------------------

    def look_up(self, again: bool) -> CloudImage | None:
        found = self._find(again)
        if found is None and self.agent is None and self._resolve_agent():
            found = self._find(again)
        return found

    def _find(self, again: bool) -> CloudImage | None:
        where = f"{self.name} again" if again else f"{self.name} in {self.location}"
        with phase(f"{self.provider.name}: look up {where}"):
            if self.store is None:
                self.store = self.provider.open_store(self.location, self.environ)
            return self.store.find_by_fingerprint(self.fps.image, self.family)

    def up_to_date(self, image: CloudImage) -> BuildOutcome:
        say(
            f"up to date: {image.name} ({self.provider.name}, {self.location}); --force rebuilds it"
        )
        record = read_record(self.record_path) or _summary(image)
        return BuildOutcome(image.name, self.provider.name, True, self.record_path, record)

    def prepare(self, found: CloudImage | None) -> None:
        if found is not None:
            self._confirm_replace(found)
        # Missing embed-mode secrets fail now, before any VM is started.
        secrets = packer.secret_env(self.spec, self.environ)
        self.packer_env = {**self.environ, "CHECKPOINT_DISABLE": "1", **secrets}
        self.packer_version = packer.detect_version()

    def bake(self, existing: CloudImage | None) -> dict[str, Any]:
        if self.agent is None:  # --force over an image found by its pin
            self._resolve_agent()
        return self._bake(existing)

    def release(self) -> None:
        drop_fetched(self.agent)

    def _bake(self, existing: CloudImage | None) -> dict[str, Any]:
        spec, fps, provider = self.spec, self.fps, self.provider
        base, base_built = self._ensure_base()
        # The image layer downloads the image's package list here: never an old one.
        packages = provider.layer_dir(self.build_root, spec, "image") / image_packages.FILE
        packages.unlink(missing_ok=True)
        build = functools.partial(self._build_layer, "image")
        replaced = None
        if existing is not None:
            image, entry, attempt, replaced = provider.replace(
                self._store(), existing, self.name, self.family, build
            )
        else:
            image, entry, attempt = build()
        return {
            "image": image.name,
            "image_name": image.name,
            "image_id": image.id,
            "family": self.family,
            "provider": provider.name,
            provider.place.key: self.location,
            "spec": spec.name,
            "spec_canonical": spec.to_canonical(),
            "fingerprints": fps.as_dict(),
            "agent_content": self.agent.content if self.agent else None,
            "inputs": image_inputs.summary(spec, self.agent.content if self.agent else None),
            "packages": image_packages.load(packages),
            "zone": attempt.zone,
            "preemptible": attempt.preemptible,
            "attempts": self.attempts_made.get("image", []),
            "base": {
                "image_name": base.name,
                "image_id": base.id,
                "family": base.family,
                "fingerprint": fps.base,
                "built": base_built,
                "attempts": self.attempts_made.get("base", []),
            },
            "replaced": _summary(replaced) if replaced is not None else None,
            "created": image.created,
            "packer_version": ".".join(map(str, self.packer_version)),
            "manifest": entry,
        }

    def outcome(self, record: dict[str, Any]) -> BuildOutcome:
        name = record["image_name"]
        say(f"built {name} ({self.provider.name}, {self.location}, id {record['image_id']})")
        say(f"record: {self.record_path}")
        return BuildOutcome(name, self.provider.name, False, self.record_path, record)

    # -- layers --------------------------------------------------------------

    def _store(self) -> ImageStore:
        assert self.store is not None, "look_up opens the store"
        return self.store

    def _ensure_base(self) -> tuple[CloudImage, bool]:
        """The base image: found by fingerprint, else built now."""
        spec, fps = self.spec, self.fps
        base_family = naming.family(spec, "base")
        base_name = naming.image_name(spec, fps, "base")
        with phase(f"{self.provider.name}: look up the base layer {base_name}"):
            found = self._store().find_by_fingerprint(fps.base, base_family)
        if found is not None:
            say(f"base layer: reusing {found.name} (same OS, Python and solvers)")
            return found, False
        say(f"base layer: no image with fingerprint {fps.base[:12]}: building it first")
        image, _entry, _attempt = self._build_layer("base")
        return image, True

    def _build_layer(
        self, layer: str, image_name: str | None = None
    ) -> tuple[CloudImage, dict[str, Any], Attempt]:
        """Stage, render, validate and build one layer, moving on after a lost VM."""
        spec, provider = self.spec, self.provider
        build = provider.build_table(spec)
        name = naming.image_name(spec, self.fps, layer)
        attempt: Attempt | None = first_attempt(provider.name, build.zones, build.preemptible)
        history: list[tuple[Attempt, Loss]] = []
        made = self.attempts_made.setdefault(layer, [])
        directory = provider.layer_dir(self.build_root, spec, layer)
        agent_env = None
        subnets = self._subnets(build.zones)  # before any VM starts
        with phase(f"stage files for the {layer} layer"):
            if layer == "base":
                staging.stage_base_layer(spec, directory / "staging")
            else:
                assert self.agent is not None  # bake() resolves it
                wheel = build_runtime_wheel(
                    spec.repo_path(spec.runtime.source), directory / "wheel"
                )
                staged = staging.stage(
                    spec,
                    directory / "staging",
                    image=self.name,
                    fingerprints=self.fps.as_dict(),
                    scripts=provision_env.scripts(spec.repo_root, "image"),
                    agent=self.agent,
                    wheel=wheel,
                    provider=self.provider.name,
                )
                agent_env = staging.agent_env(staged.agent_sha256)
        while attempt is not None:
            say(
                f"{provider.name}: {layer} layer {name}, attempt {attempt.number}: "
                f"{attempt.sentence}"
            )
            instance = instance_name(layer)
            settings = BuildSettings(
                attempt.zone,
                attempt.preemptible,
                self.location,
                image_name,
                instance_name=instance,
                agent_env=agent_env,
                subnet=provider.subnet_for(spec, attempt.zone, subnets) or None,
            )
            rendered = self._render(layer, settings)
            with phase(f"validate {rendered.directory}"):
                depth = packer_dir.validate_rendered(rendered, self.packer_version)
            say(f"validated ({depth})")
            log_path = rendered.directory / f"packer-build-{attempt.number}.log"
            log_path.unlink(missing_ok=True)
            since = time.time()
            watch = self._watcher(attempt.zone, instance)
            try:
                with (
                    phase(f"packer build ({provider.name} {layer}: {name} in {attempt.zone})"),
                    watch,
                ):
                    packer.build(
                        rendered.directory,
                        self.packer_env,
                        prefix=provider.name,
                        log_path=log_path,
                        on_error="abort" if provider.keep_vm_on_error else "cleanup",
                    )
            except BuildError as exc:
                seen = watch.account
                loss = self._lost(attempt, instance, _read_lines(log_path), seen)
                if provider.keep_vm_on_error:
                    self._remove_kept_vm(attempt.zone, instance, rendered.directory)
                made.append(_attempt_data(attempt, loss.kind if loss else "failed", seen))
                failed = (
                    f"{provider.name}: the {layer} layer of {spec.name} failed in {attempt.zone}"
                )
                tail = (
                    f"{provider.packer_hint(self.packer_version)}"
                    f"{self._left_behind(attempt.zone, instance)}"
                    f"{_serial_tail(provider.serial_log(rendered.directory))}\n{exc}"
                )
                if loss is None:
                    raise BuildError(
                        f"{failed} (the build VM was not lost, so not retried; full log: "
                        f"{log_path}){tail}"
                    ) from None
                if loss.kind == SUSPECT:
                    raise BuildError(
                        f"{failed}: the build VM {loss.reason}, but {self.location} does not "
                        f"show {instance} taken by the cloud{_seen(seen)}, so not retried "
                        f"(full log: {log_path}){tail}"
                    ) from None
                say(
                    f"{provider.name}: the build VM in {attempt.zone} {loss.reason} "
                    f"(log: {log_path})"
                )
                history.append((attempt, loss))
                attempt = next_attempt(build.zones, build.preemptible, history)
                continue
            made.append(_attempt_data(attempt, "built", watch.account))
            image, entry = self._confirm(layer, since)
            return image, entry, attempt
        raise BuildError(
            f"{provider.name}: the {layer} layer of {spec.name} lost its build VM on every "
            f"attempt ({len(history)}: zones {', '.join(build.zones)}, then a standard VM); "
            f"retry later or list more zones in build.{provider.name}.zones"
        )

    def _lost(
        self, attempt: Attempt, instance: str, lines: list[str], seen: Account
    ) -> Loss | None:
        """How the failed attempt lost its VM (None: it did not). The cloud decides:
        what the watcher saw, else one more question (GCE: the zone's preemption
        operations), whatever the console said."""
        provider = self.provider
        taken = seen.taken(provider.lost_statuses)
        if taken is None:
            with phase(f"{provider.name}: ask whether {instance} in {attempt.zone} was taken"):
                try:
                    confirmed = provider.confirm_lost(self._store(), attempt.zone, instance)
                except EverbakeError as exc:
                    say(f"{provider.name}: could not ask ({exc}); judging from what was seen")
                    confirmed = False
            taken = f"{instance}: the cloud confirms it took the VM" if confirmed else None
        return judge(provider.lost_vm(lines), taken)

    def _vms(self) -> tuple[Any, str]:
        """The cloud's build-VM adapter (opened once), or None and why not."""
        if self.vms is None and not self.vms_problem:
            try:
                self.vms = self.provider.open_build_vms(self.location, self.environ)
            except EverbakeError as exc:
                self.vms_problem = str(exc).splitlines()[0]
        return self.vms, self.vms_problem

    def _watcher(self, zone: str, instance: str) -> Watcher:
        vms, problem = self._vms()
        observe = functools.partial(vms.observe, zone, instance) if vms is not None else None
        every = self.provider.watch_every(self.environ)
        return Watcher(observe, instance, zone, every, why_not=problem)

    def _subnets(self, zones: Sequence[str]) -> Mapping[str, str]:
        """Subnets found in the cloud for specs that name none (Yandex: the folder's
        default network); a zone without one stops the build before any VM starts."""
        provider, spec = self.provider, self.spec
        if not provider.subnets_to_look_up(spec):
            return {}
        vms, problem = self._vms()
        where = f"{provider.name}: find the subnets of {self.location}'s default network"
        with phase(where):
            try:
                if vms is None:
                    raise BuildError(problem)
                found = dict(vms.default_subnets())
            except EverbakeError as exc:
                found, problem = {}, str(exc).splitlines()[0]
        missing = [z for z in zones if z not in found]
        if missing:
            why = f" ({problem})" if problem else ""
            raise BuildError(
                f"{provider.name}: no subnet for zone {', '.join(missing)} in {self.location}"
                f"{why}: {provider.subnet_fix(spec, zones)}"
            )
        say(
            f"{provider.name}: subnets of the default network: "
            + ", ".join(f"{z} {found[z]}" for z in zones)
        )
        return found

    def _remove_kept_vm(self, zone: str, instance: str, layer_dir: Path) -> None:
        """Packer ran with -on-error=abort (the builder's cleanup would delete the VM
        before the cloud could be asked): keep its serial console, then remove it."""
        vms, _problem = self._vms()
        if vms is None:
            return
        name = self.provider.name
        with phase(f"{name}: remove the build VM {instance} (kept by -on-error=abort)"):
            try:
                serial = self.provider.serial_log(layer_dir)
                if serial is not None:
                    serial.write_text(vms.serial_output(zone, instance), encoding="utf-8")
                vms.remove_build_vm(zone, instance)
            except (EverbakeError, OSError) as exc:
                say(f"{name}: could not remove {instance}: {str(exc).splitlines()[0]}")

    def _left_behind(self, zone: str, instance: str) -> str:
        """'; left behind: ...' when the failed attempt's VM or disk is still there."""
        vms, _problem = self._vms()
        if vms is None:
            return ""
        try:
            left = vms.left_behind(zone, instance)
        except EverbakeError as exc:
            return f"; could not check what {instance} left behind ({str(exc).splitlines()[0]})"
        if not left:
            return ""
        return (
            f"; left behind: {', '.join(left)} (`invoke clean-builds --provider "
            f"{self.provider.name}` removes it after an hour)"
        )

    def _render(self, layer: str, settings: BuildSettings) -> render.Rendered:
        """Render this layer only: the other one keeps the settings it was built with."""
        provider = self.provider
        with phase(f"render build/{provider.name}/{self.spec.name}/{layer}"):
            (rendered,) = packer_dir.write_layers(
                self.spec,
                provider,
                self.build_root,
                self.packer_version,
                settings,
                self.dist,
                self.fps,
                layers=(layer,),
                environ=self.environ,
            )
        return rendered

    def _confirm(self, layer: str, since: float) -> tuple[CloudImage, dict[str, Any]]:
        """The manifest entry of this run, and the image as the store now reports it."""
        spec, provider = self.spec, self.provider
        path = provider.manifest_path(self.dist, spec, layer)
        entry = packer.read_manifest(path)
        fingerprint = self.fps.of(layer)
        if entry.get("custom_data", {}).get("fingerprint") != fingerprint or (
            entry.get("build_time", since) < int(since) - 1
        ):
            raise BuildError(
                f"{path}: the last run's entry is not this {layer} build (fingerprint "
                f"{fingerprint[:12]}); see the packer output above"
            )
        artifact = str(entry.get("artifact_id", ""))
        with phase(f"{provider.name}: confirm {artifact}"):
            found = self._store().find_by_fingerprint(fingerprint, naming.family(spec, layer))
        if found is None or provider.artifact_id(found) != artifact:
            raise BuildError(
                f"{provider.name}: packer reported image {artifact}, but {self.location} has "
                f"{'no' if found is None else 'another'} image with fingerprint "
                f"{fingerprint[:12]}{'' if found is None else f' ({found.name}, {found.id})'}; "
                "check the build output above and the console, then rebuild"
            )
        return found, entry

    def _confirm_replace(self, existing: CloudImage) -> None:
        """--force over an existing image: say what goes, refuse if a record publishes it."""
        provider = self.provider.name
        named_by = records_naming(self.dist, provider, existing)
        what = f"{provider} image {existing.name} (id {existing.id}, created {existing.created})"
        if named_by and not self.replace_published:
            where = ", ".join(str(p) for p in named_by)
            raise BuildError(
                f"--force would delete and replace {what}, which {where} names: add "
                f"{REPLACE_FLAG} to confirm, or drop --force (the image is up to date)"
            )
        say(f"--force: {what} will be DELETED and replaced by this build")


def instance_name(layer: str) -> str:
    """A fresh build VM name per attempt (GCE and Yandex name rules, < 64 characters),
    so that a lost VM can be looked up by name."""
    return f"everbake-{layer}-{uuid.uuid4().hex[:16]}"


def records_naming(dist: Path, provider: str, image: CloudImage) -> list[Path]:
    """Published resource configs that name ``image`` (by name or id)."""
    wanted = {image.name, image.id} - {""}
    return [path for path, names in published_names(dist, provider).items() if names & wanted]


def _summary(image: CloudImage) -> dict[str, Any]:
    return {
        "image_name": image.name,
        "image_id": image.id,
        "family": image.family,
        "created": image.created,
    }


def _attempt_data(attempt: Attempt, outcome: str, seen: Account) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "zone": attempt.zone,
        "preemptible": attempt.preemptible,
        "outcome": outcome,
        "watch": seen.as_dict(),
    }


def _seen(seen: Account) -> str:
    """What the watcher saw, for a message: ' (seen: RUNNING 01:02:03 UTC, GONE ...)'."""
    shown = ", ".join(f"{s.status} {s.when()}" for s in seen.sightings)
    failed = f"{len(seen.failures)} failed looks" if seen.failures else ""
    parts = [p for p in (shown, failed) if p]
    return f" (watched: {'; '.join(parts)})" if parts else ""


def _serial_tail(path: Path | None, lines: int = 15) -> str:
    """The last lines of the build VM's serial console log, when the builder wrote one."""
    if path is None or not path.is_file():
        return ""
    text = _read_lines(path)[-lines:]
    shown = "\n".join(f"    {line}" for line in text)
    return f"\nserial console of the build VM ({path}), last {len(text)} lines:\n{shown}"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
