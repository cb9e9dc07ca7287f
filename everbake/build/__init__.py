"""build_image: spec -> fingerprint -> (up to date? stop) -> render -> validate ->
stage + plan -> packer build -> manifest -> build record.

The local provider lives here; gcp and yandex are dispatched to the cloud build
flow (everbake.cloudbuild) by `build_image(provider=...)`.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from everbake import naming, packer
from everbake.build import local
from everbake.build.record import local_up_to_date, read_record, record_path, write_record
from everbake.errors import BuildError, EverbakeError
from everbake.fingerprint import Fingerprints, fingerprints
from everbake.localbuild import overlay
from everbake.localbuild.plan import image_tarball
from everbake.render import manifest_path
from everbake.spec import ImageSpec, load_spec
from everbake.ui import phase, say

PROVIDERS = ("local", "gcp", "yandex")


@dataclass(frozen=True)
class BuildOutcome:
    image: str
    provider: str
    up_to_date: bool
    record_path: Path
    record: dict[str, Any]


def check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        near = difflib.get_close_matches(provider, PROVIDERS, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise EverbakeError(
            f"--provider {provider}: unknown provider; {hint}choose one of: {', '.join(PROVIDERS)}"
        )


def build_image(
    spec_name_or_path: str | Path,
    provider: str = "local",
    force: bool = False,
    *,
    images_dir: Path | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
) -> BuildOutcome:
    """Build one image on one provider; ``replace_published`` only matters for clouds."""
    check_provider(provider)
    spec = load_spec(spec_name_or_path, images_dir)
    return build_spec(
        spec,
        provider,
        force,
        cache_dir=cache_dir,
        environ=environ,
        replace_published=replace_published,
    )


def build_spec(
    spec: ImageSpec,
    provider: str,
    force: bool = False,
    *,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    replace_published: bool = False,
) -> BuildOutcome:
    """`build_image` for a spec already loaded."""
    if provider == "local":
        return build_local(spec, force=force, cache_dir=cache_dir, environ=environ)
    # Imported here: the cloud flow imports this module.
    from everbake.cloudbuild import build_cloud

    result: BuildOutcome = build_cloud(
        spec, provider, force=force, replace_published=replace_published, env=environ
    )
    return result


def build_local(
    spec: ImageSpec,
    *,
    force: bool = False,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> BuildOutcome:
    environ = os.environ if environ is None else environ
    started = time.monotonic()
    fps = fingerprints(spec)
    image = naming.image_name(spec, fps)
    rec_path = record_path(spec.repo_root, "local", image)

    def current() -> BuildOutcome | None:
        existing = read_record(rec_path)
        tarball = local_up_to_date(existing, fps.image)
        if not (tarball and existing) or force:
            return None
        say(f"up to date: {image} ({tarball}); --force rebuilds it")
        return BuildOutcome(image, "local", True, rec_path, existing)

    done = current()
    if done:
        return done
    # Embed secret values go only into packer's environment (sensitive PKR_VAR_*).
    packer_env = {**environ, "CHECKPOINT_DISABLE": "1", **packer.secret_env(spec, environ)}
    build_dir = spec.repo_root / "build" / "local" / spec.name
    with build_lock(build_dir) as waited:
        # The build we waited for may have made this very image.
        done = current() if waited else None
        if done:
            return done
        record = _bake(spec, fps, build_dir, packer_env, cache_dir)
    record["duration_seconds"] = round(time.monotonic() - started, 1)
    write_record(rec_path, record)
    artifact = record["artifact"]
    say(f"built {image}: {artifact['path']} ({artifact['size_bytes'] / 1e6:.0f} MB)")
    say(f"record: {rec_path}")
    return BuildOutcome(image, "local", False, rec_path, record)


def _bake(
    spec: ImageSpec,
    fps: Fingerprints,
    build_dir: Path,
    packer_env: Mapping[str, str],
    cache_dir: Path | None,
) -> dict[str, Any]:
    """render -> validate -> stage + plan -> packer build -> manifest; the record's data."""
    from everbake import render

    repo_root = spec.repo_root
    image = naming.image_name(spec, fps)
    output = image_tarball(repo_root, image, spec.build.local.compression)
    had_output = output.exists()
    try:
        with phase(f"render build/local/{spec.name}"):
            render.render(spec, "local", repo_root / "build", dist_root=repo_root / "dist", fps=fps)
        with phase("packer validate"):
            packer.validate(build_dir, env=packer_env)
        with phase("stage files and write the local plan"):
            plan, _staged = local.prepare(spec, fps, build_dir, cache_dir=cache_dir)
        with phase(f"packer build (local: {image})"):
            packer.build(build_dir, packer_env, prefix="local")
        entry = packer.read_manifest(manifest_path(repo_root / "dist", "local", spec, "image"))
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
        "image": image,
        "provider": "local",
        "spec": spec.name,
        "spec_canonical": spec.to_canonical(),
        "fingerprints": fps.as_dict(),
        "base": {"name": plan.base_name, "cache": plan.base_cache},
        "artifact": {"path": str(output), "size_bytes": output.stat().st_size},
        "packer_version": ".".join(map(str, packer.detect_version())),
        "manifest": entry,
    }


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[bool]:
    """One build per build dir at a time; a second one waits and says so.
    Yields whether it waited: the caller should then look again at what exists."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            say(f"waiting for another build using {build_dir} to finish ...")
            waited = True
        if waited:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield waited
