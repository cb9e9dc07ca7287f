"""The three build steps Packer's shell-local provisioners run, in order.

base:   mount an overlay on the cached, extracted base layer (or unpack its
        tarball when overlays are unavailable), or mmdebstrap a fresh root
        filesystem, run the base scripts (10/20/30) in it and save it as the cache.
image:  stage the image-layer files and embed secrets, run 50..90.
export: pack the root filesystem as dist/local/<image>.tar.zst (.tar.gz, .tar:
        build.local.compression), unmount the overlay and drop the work dir.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from everbake import image_packages
from everbake.errors import BuildError
from everbake.localbuild import export, overlay, rootfs
from everbake.localbuild.chroot import chroot, remove_tree
from everbake.localbuild.step_plan import Plan
from everbake.proc import stream
from everbake.provision_env import secret_env_name
from everbake.ui import phase, say


def _copy_staging(plan: Plan) -> None:
    """Copy the host's staged files into the root filesystem (replacing any old copy)."""
    target = plan.staging_in_root
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(plan.staging_host, target, symlinks=False)
    target.chmod(0o700)


# Where the base layer's scripts see the host's pip cache (a bind mount, gone after).
PIP_CACHE_IN_ROOT = "/var/cache/everbake-pip"


def _run_layer(plan: Plan, layer: str) -> None:
    spec = plan.layers[layer]
    env = dict(spec.env)
    binds: list[tuple[Path, str]] = []
    if layer == "base" and plan.pip_cache is not None:
        plan.pip_cache.mkdir(parents=True, exist_ok=True)
        binds.append((plan.pip_cache, PIP_CACHE_IN_ROOT))
        env["EB_PIP_CACHE"] = PIP_CACHE_IN_ROOT
    with chroot(plan.rootfs, binds=binds) as ch:
        for script in spec.scripts:
            inside = f"{plan.staging}/scripts/{script}"
            if not (plan.rootfs / inside.lstrip("/")).is_file():
                raise BuildError(f"{layer} layer: script {script} was not staged")
            with phase(f"{layer} layer: {script}"):
                stream(
                    ch.argv(["/bin/bash", inside]),
                    env=ch.env(env),
                    prefix=script.removesuffix(".sh"),
                    log_path=_log(plan),
                    what=f"{layer} layer, script provisioning/{script}",
                    echo=False,
                )


def base(plan: Plan) -> None:
    root = plan.rootfs
    cache = Path(plan.base_cache)
    work = Path(plan.work_dir)
    # A killed earlier build may have left its overlay mounted: ours to undo.
    overlay.release(work)
    remove_tree(work)
    no_overlay = overlay.supported(work)
    if cache.is_file():
        lower = None if no_overlay else _extracted(plan, cache)
        _overlay_or_unpack(plan, lower, no_overlay or "an unusable base dir is in use")
        return
    keep = overlay.drop_unusable(cache)
    with phase(f"base layer {plan.base_name}: mmdebstrap {plan.suite}"):
        rootfs.create_rootfs(
            root,
            suite=plan.suite,
            mirror=plan.mirror,
            include=plan.include or rootfs.BASE_INCLUDE,
            log_path=_log(plan),
            apt_cache=plan.apt_cache,
        )
    _copy_staging(plan)
    _run_layer(plan, "base")
    # The cache holds no staging: the image layer stages afresh on every build.
    shutil.rmtree(plan.staging_in_root)
    with phase(f"base layer: saving cache {cache.name}"):
        size = export.pack(root, cache, level=1, log_path=_log(plan))
    say(f"base layer cached: {cache} ({size / 1e6:.0f} MB)")
    if no_overlay is None and keep:
        # The image layer then runs in an overlay, exactly as on a rebake.
        lower = overlay.keep_base_dir(root, cache, log_path=_log(plan))
        _overlay_or_unpack(plan, lower, "an unusable base dir is in use")


def _extracted(plan: Plan, cache: Path) -> Path | None:
    found = overlay.usable_base_dir(cache)
    if found:
        return found
    with phase(f"base layer {plan.base_name}: extracting {cache.name} once for overlays"):
        return overlay.extract_base_dir(cache, log_path=_log(plan))


def _overlay_or_unpack(plan: Plan, lower: Path | None, why_not: str) -> None:
    """Mount the cached base under an overlay at the rootfs, else unpack a copy there."""
    cache = Path(plan.base_cache)
    if lower is not None:
        failed = overlay.mount(lower, Path(plan.work_dir), plan.rootfs)
        if failed is None:
            say(f"base layer {plan.base_name}: overlay on {lower}")
            return
        why_not = failed
    say(f"base layer: no overlay ({why_not}); unpacking {cache.name} instead")
    remove_tree(Path(plan.work_dir))
    with phase(f"base layer {plan.base_name}: cached, unpacking {cache}"):
        export.unpack(cache, plan.rootfs)


def write_embed_secrets(
    staging_in_root: Path, names: Iterable[str], environ: Mapping[str, str]
) -> list[str]:
    """Write each embed secret's value from ``environ`` into secrets/<name>, mode 0600."""
    target = staging_in_root / "secrets"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)
    written = []
    for name in names:
        var = secret_env_name(name)
        value = environ.get(var)
        if not value:
            raise BuildError(
                f"secret '{name}' has mode embed but its value did not reach the build step "
                f"({var} is unset); set the variable named by secrets.{name}.env and rebuild"
            )
        path = target / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value)
        path.chmod(0o600)
        written.append(name)
    return written


def image(plan: Plan, environ: Mapping[str, str]) -> None:
    if not plan.rootfs.is_dir():
        raise BuildError(f"{plan.rootfs} does not exist: the base step did not run or failed")
    _copy_staging(plan)
    if plan.embed_secrets:
        names = write_embed_secrets(plan.staging_in_root, plan.embed_secrets, environ)
        say(f"embed secrets staged (0600): {', '.join(names)}")
    _run_layer(plan, "image")
    _keep_package_list(plan)
    leftover = plan.staging_in_root
    if leftover.exists():
        # 90-hygiene.sh removes staging; never ship it (it may hold secrets) if it did not.
        shutil.rmtree(leftover)
        say(f"warning: {plan.staging} was still in the image after the last script; removed it")


def package_list_path(plan: Plan) -> Path:
    """Where the image step leaves a copy of the image's package list, beside the
    work dir, for the build record."""
    return Path(plan.work_dir).parent / image_packages.FILE


def _keep_package_list(plan: Plan) -> None:
    source = plan.rootfs / image_packages.IN_IMAGE.lstrip("/")
    target = package_list_path(plan)
    target.unlink(missing_ok=True)
    if source.is_file():
        shutil.copyfile(source, target)
    else:
        say(f"warning: the image has no {image_packages.IN_IMAGE}; the record lists no packages")


def export_image(plan: Plan) -> None:
    output = Path(plan.output)
    with phase(f"export: {output.name}"):
        size = export.pack(plan.rootfs, output, level=plan.compression_level, log_path=_log(plan))
    say(f"image written: {output} ({size / 1e6:.0f} MB)")
    overlay.release(Path(plan.work_dir))
    if Path(plan.work_dir).exists():
        raise BuildError(f"{plan.work_dir} could not be removed (see the warning above)")


def _log(plan: Plan) -> Path | None:
    return Path(plan.log) if plan.log else None
