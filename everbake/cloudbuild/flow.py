"""build-image for gcp and yandex: look up first, build only what is missing, record.

1. The image layer's fingerprint is looked up in the provider's store: found and
   no --force means "up to date" and nothing is written. Any lookup error other
   than "not found" stops here (a failed lookup is never taken for "missing").
2. The base layer (family <family>-base) is built only when its fingerprint is
   missing; the image layer starts from it by name.
3. Each layer: render, stage, validate, `packer build` streamed with the
   provider as prefix; a preempted build VM moves on to the next attempt
   (everbake.cloudbuild.attempts), any other failure stops with the log tail.
4. The manifest entry of the last run names the artifact, the store must then
   find it, and the build record is written last.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from everbake import naming, packer, render
from everbake.build import BuildOutcome, build_lock
from everbake.build.record import read_record, record_path, write_record
from everbake.cloudbuild.attempts import (
    PREEMPTED,
    SUSPECT,
    Attempt,
    Loss,
    first_attempt,
    next_attempt,
    read_loss,
)
from everbake.cloudbuild.staging import apply_agent, stage_layer
from everbake.errors import BuildError, CloudError
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.gc import published_names
from everbake.location import PLACES, location_of
from everbake.pinagent import require_pinned_agents
from everbake.providers import BuildSettings
from everbake.spec import ImageSpec
from everbake.stores import BuildVmStore, CloudImage, ImageStore
from everbake.stores.factory import open_store
from everbake.ui import phase, say

REPLACE_FLAG = "--replace-published"
TEMPORARY_SUFFIX = "-new"  # fits: families leave room for "-base-" + 12 hex


@dataclass
class _Context:
    spec: ImageSpec
    provider: str
    fps: Fingerprints
    location: str
    store: ImageStore
    packer_env: dict[str, str]
    packer_version: tuple[int, int, int]
    attempts_made: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def build_cloud(
    spec: ImageSpec,
    provider: str,
    force: bool = False,
    *,
    replace_published: bool = False,
    env: Mapping[str, str] | None = None,
) -> BuildOutcome:
    """Make sure the image of ``spec`` exists on ``provider``; build what is missing."""
    require_pinned_agents([spec], [provider])  # before any lookup or VM
    env = os.environ if env is None else env
    started = time.monotonic()
    fps = fingerprints(spec)
    name = naming.image_name(spec, fps)
    family = naming.family(spec)
    location = location_of(spec, provider, env)
    rec_path = record_path(spec.repo_root, provider, name)
    with phase(f"{provider}: look up {name} in {location}"):
        store = open_store(provider, location, env)
        existing = store.find_by_fingerprint(fps.image, family)

    def up_to_date(image: CloudImage) -> BuildOutcome:
        say(f"up to date: {image.name} ({provider}, {location}); --force rebuilds it")
        record = read_record(rec_path) or _summary(image)
        return BuildOutcome(image.name, provider, True, rec_path, record)

    if existing is not None and not force:
        return up_to_date(existing)
    if existing is not None:
        _confirm_replace(spec, provider, existing, replace_published)
    # Missing embed-mode secrets fail now, before any VM is started.
    packer_env = {**env, "CHECKPOINT_DISABLE": "1", **packer.secret_env(spec, env)}
    ctx = _Context(spec, provider, fps, location, store, packer_env, packer.detect_version())
    with build_lock(spec.repo_root / "build" / provider / spec.name) as waited:
        if waited and not force:
            # The build we waited for may have made this very image.
            with phase(f"{provider}: look up {name} again"):
                existing = store.find_by_fingerprint(fps.image, family)
            if existing is not None:
                return up_to_date(existing)
        base, base_built = _ensure_base(ctx)
        if existing is not None and provider == "yandex":
            # Yandex names are unique per folder and Packer has no -force there:
            # build under a temporary name and swap only once the new image exists,
            # so a failed rebuild leaves the old image in place.
            temporary = name + TEMPORARY_SUFFIX
            if existing.name == temporary:
                existing = _finish_swap(store, family, existing, name)
            _drop_leftover(store, family, temporary)
            image, entry, attempt = _build_layer(ctx, "image", image_name=temporary)
            image = _swap_in(store, existing, image, name)
        else:
            image, entry, attempt = _build_layer(ctx, "image", packer_force=existing is not None)
    record = {
        "image": image.name,
        "image_name": image.name,
        "image_id": image.id,
        "family": family,
        "provider": provider,
        PLACES[provider].key: location,
        "spec": spec.name,
        "spec_canonical": spec.to_canonical(),
        "fingerprints": fps.as_dict(),
        "zone": attempt.zone,
        "preemptible": attempt.preemptible,
        "attempts": ctx.attempts_made.get("image", []),
        "base": {
            "image_name": base.name,
            "image_id": base.id,
            "family": base.family,
            "fingerprint": fps.base,
            "built": base_built,
            "attempts": ctx.attempts_made.get("base", []),
        },
        "replaced": _summary(existing) if existing is not None else None,
        "created": image.created,
        "duration_seconds": round(time.monotonic() - started, 1),
        "packer_version": ".".join(map(str, ctx.packer_version)),
        "manifest": entry,
    }
    write_record(rec_path, record)
    say(f"built {image.name} ({provider}, {location}, id {image.id})")
    say(f"record: {rec_path}")
    return BuildOutcome(image.name, provider, False, rec_path, record)


def _ensure_base(ctx: _Context) -> tuple[CloudImage, bool]:
    """The base image: found by fingerprint, else built now."""
    spec, fps = ctx.spec, ctx.fps
    base_family = naming.family(spec, "base")
    with phase(f"{ctx.provider}: look up the base layer {naming.image_name(spec, fps, 'base')}"):
        found = ctx.store.find_by_fingerprint(fps.base, base_family)
    if found is not None:
        say(f"base layer: reusing {found.name} (same OS, Python and solvers)")
        return found, False
    say(f"base layer: no image with fingerprint {fps.base[:12]}: building it first")
    image, _entry, _attempt = _build_layer(ctx, "base")
    return image, True


def _build_layer(
    ctx: _Context, layer: str, packer_force: bool = False, image_name: str | None = None
) -> tuple[CloudImage, dict[str, Any], Attempt]:
    """Render, stage, validate and build one layer, falling back after preemptions."""
    spec, provider = ctx.spec, ctx.provider
    build = spec.build.gcp if provider == "gcp" else spec.build.yandex
    name = naming.image_name(spec, ctx.fps, layer)
    attempt: Attempt | None = first_attempt(provider, build.zones, build.preemptible)
    history: list[tuple[Attempt, Loss]] = []
    made = ctx.attempts_made.setdefault(layer, [])
    root = spec.repo_root
    agent_sha: str | None = None
    staged = False
    while attempt is not None:
        say(f"{provider}: {layer} layer {name}, attempt {attempt.number}: {attempt.sentence}")
        instance = instance_name(layer)
        settings = BuildSettings(
            attempt.zone, attempt.preemptible, ctx.location, image_name, instance
        )
        rendered = _render(ctx, layer, settings, root)
        if not staged:
            with phase(f"stage files for the {layer} layer"):
                agent_sha = stage_layer(spec, ctx.fps, layer, rendered.directory / "staging")
            staged = True
        apply_agent(rendered, agent_sha)
        with phase(f"validate {rendered.directory}"):
            depth = render.validate_rendered(rendered, ctx.packer_version)
        say(f"validated ({depth})")
        log_path = rendered.directory / f"packer-build-{attempt.number}.log"
        log_path.unlink(missing_ok=True)
        if packer_force:
            say(
                f"packer build -force: Packer deletes the existing {name} when it creates "
                "the new one"
            )
        since = time.time()
        try:
            with phase(f"packer build ({provider} {layer}: {name} in {attempt.zone})"):
                packer.build(
                    rendered.directory,
                    ctx.packer_env,
                    prefix=provider,
                    log_path=log_path,
                    force=packer_force and provider == "gcp",
                )
        except BuildError as exc:
            failed = f"{provider}: the {layer} layer of {spec.name} failed in {attempt.zone}"
            tail = f"{_hint(provider, ctx.packer_version)}\n{exc}"
            loss = read_loss(provider, _read_lines(log_path))
            if loss is not None and loss.kind == SUSPECT:
                loss = _confirm_lost(ctx, attempt, instance, loss)
                if loss.kind == SUSPECT:
                    made.append(_attempt_data(attempt, "failed"))
                    raise BuildError(
                        f"{failed}: the build VM {loss.reason}, but {ctx.location} does not "
                        f"show {instance} taken by the cloud, so not retried (full log: "
                        f"{log_path}){tail}"
                    ) from None
            made.append(_attempt_data(attempt, loss.kind if loss else "failed"))
            if loss is None:
                raise BuildError(
                    f"{failed} (the build VM was not lost, so not retried; full log: "
                    f"{log_path}){tail}"
                ) from None
            say(f"{provider}: the build VM in {attempt.zone} {loss.reason} (log: {log_path})")
            history.append((attempt, loss))
            attempt = next_attempt(build.zones, build.preemptible, history)
            continue
        made.append(_attempt_data(attempt, "built"))
        image, entry = _confirm(ctx, layer, since)
        return image, entry, attempt
    raise BuildError(
        f"{provider}: the {layer} layer of {spec.name} lost its build VM on every attempt "
        f"({len(history)}: zones {', '.join(build.zones)}, then a standard VM); "
        "retry later or list more zones in build." + provider + ".zones"
    )


def instance_name(layer: str) -> str:
    """A fresh build VM name per attempt (GCE and Yandex name rules, < 64 characters)."""
    return f"everbake-{layer}-{uuid.uuid4().hex[:16]}"


def _confirm_lost(ctx: _Context, attempt: Attempt, instance: str, loss: Loss) -> Loss:
    """Ask the cloud whether it took the suspect VM; a confirmed loss counts as preempted."""
    if not isinstance(ctx.store, BuildVmStore):
        return loss
    with phase(f"{ctx.provider}: ask whether {instance} in {attempt.zone} was taken"):
        taken = ctx.store.build_vm_lost(attempt.zone, instance)
    if not taken:
        return loss
    return Loss(PREEMPTED, f"{loss.reason}: the cloud confirms it took the VM", loss.line)


def _drop_leftover(store: ImageStore, family: str, temporary: str) -> None:
    """Delete a temporary image an interrupted replacement left behind (never published)."""
    for image in store.list_family(family):
        if image.name == temporary:
            with phase(f"yandex: deleting {image.name} ({image.id}), left by an earlier --force"):
                store.delete(image)


def _finish_swap(store: ImageStore, family: str, new: CloudImage, name: str) -> CloudImage:
    """An earlier replacement stopped after building ``new`` (the newest image of the
    fingerprint, still under its temporary name): finish it before building again."""
    olds = [i for i in store.list_family(family) if i.name == name]
    return _swap_in(store, olds[0] if olds else None, new, name)


def _swap_in(store: ImageStore, old: CloudImage | None, new: CloudImage, name: str) -> CloudImage:
    """Delete ``old``, then give ``new`` its name; say what is left when a step fails."""
    from everbake.stores.yandex import YandexImageStore

    assert isinstance(store, YandexImageStore)
    what = f"{old.name} ({old.id})" if old else "nothing"
    with phase(f"yandex: replacing {what} by {new.id}, named {name}"):
        try:
            if old is not None:
                store.delete(old)
            return store.rename(new, name)
        except CloudError as exc:
            raise CloudError(
                f"{exc}; the new image {new.id} exists as {new.name}: run build-image "
                "--provider yandex --force again to finish the swap"
            ) from None


def _render(ctx: _Context, layer: str, settings: BuildSettings, root: Path) -> render.Rendered:
    """Render this layer only: the other one keeps the settings it was built with."""
    with phase(f"render build/{ctx.provider}/{ctx.spec.name}/{layer}"):
        (rendered,) = render.render_layers(
            ctx.spec,
            ctx.provider,
            root / "build",
            ctx.packer_version,
            settings,
            root / "dist",
            ctx.fps,
            layers=(layer,),
        )
    return rendered


def _confirm(ctx: _Context, layer: str, since: float) -> tuple[CloudImage, dict[str, Any]]:
    """The manifest entry of this run, and the image as the store now reports it."""
    spec, provider = ctx.spec, ctx.provider
    path = render.manifest_path(spec.repo_root / "dist", provider, spec, layer)
    entry = packer.read_manifest(path)
    fingerprint = ctx.fps.of(layer)
    if entry.get("custom_data", {}).get("fingerprint") != fingerprint or (
        entry.get("build_time", since) < int(since) - 1
    ):
        raise BuildError(
            f"{path}: the last run's entry is not this {layer} build (fingerprint "
            f"{fingerprint[:12]}); see the packer output above"
        )
    artifact = str(entry.get("artifact_id", ""))
    with phase(f"{provider}: confirm {artifact}"):
        found = ctx.store.find_by_fingerprint(fingerprint, naming.family(spec, layer))
    expected = found.name if found and provider == "gcp" else found.id if found else None
    if found is None or expected != artifact:
        raise BuildError(
            f"{provider}: packer reported image {artifact}, but {ctx.location} has "
            f"{'no' if found is None else 'another'} image with fingerprint {fingerprint[:12]}"
            f"{'' if found is None else f' ({found.name}, {found.id})'}; check the build "
            "output above and the console, then rebuild"
        )
    return found, entry


def _confirm_replace(
    spec: ImageSpec, provider: str, existing: CloudImage, replace_published: bool
) -> None:
    """--force over an existing image: say what goes, refuse if a record publishes it."""
    named_by = records_naming(spec.repo_root / "dist", provider, existing)
    what = f"{provider} image {existing.name} (id {existing.id}, created {existing.created})"
    if named_by and not replace_published:
        where = ", ".join(str(p) for p in named_by)
        raise BuildError(
            f"--force would delete and replace {what}, which {where} names: add "
            f"{REPLACE_FLAG} to confirm, or drop --force (the image is up to date)"
        )
    say(f"--force: {what} will be DELETED and replaced by this build")


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


def _attempt_data(attempt: Attempt, outcome: str) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "zone": attempt.zone,
        "preemptible": attempt.preemptible,
        "outcome": outcome,
    }


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _hint(provider: str, version: tuple[int, int, int]) -> str:
    if provider == "yandex" and not packer.supports_plugins(version):
        shown = ".".join(map(str, version))
        return (
            f"; packer {shown} has no yandex builder: install Packer >= 1.7 "
            "(https://developer.hashicorp.com/packer/install)"
        )
    return ""
