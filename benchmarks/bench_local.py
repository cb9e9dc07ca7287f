"""Local provider timings, as ratios against baselines measured in the same run.

    python benchmarks/bench_local.py [--image optimization] [--keep]

Works on a scratch copy of the repository (so a "runtime-only change" can be made
without touching the checkout) with empty base-layer caches, as root:

  raw tools          the same content made by hand: mmdebstrap
                     --include=python3-venv,<apt solvers>,ca-certificates, a venv and one
                     pip install of the same Python packages in the chroot, tar | zstd -3
  cold bake          empty base cache, no package cache: mmdebstrap + base scripts +
                     image layer + export; its ratio to raw tools (target <= 1.0)
  up-to-date check   same fingerprint again: record + tarball lookup only
  image-layer rebake one comment appended to the runtime: base comes from the cache
                     (target < 0.25 x cold)
  image size         the .tar.zst (target <= 108 MB), and the cached base layer
  package cache      an opt-in package cache (apt archives + pip's cache, outside the
                     image): a cold bake that fills it, then a cold bake of another spec
                     (the image with another time zone: its own base, the same packages)
                     that finds them there; its ratio to raw tools (target <= 0.6)

Figures go to stdout; the builds' own output goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
_SKIP_ANYWHERE = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_TOP = {"build", "dist", "runs"}  # outputs; everbake/bake is code and stays


def _skip(directory: str, names: list[str]) -> set[str]:
    top = Path(directory) == REPO
    return {n for n in names if n in _SKIP_ANYWHERE or (top and n in _SKIP_TOP)}


def _timed(func, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    result = func(*args, **kwargs)
    return time.monotonic() - start, result


def _raw_tools(spec: Any, wheel: Path, work: Path) -> tuple[float, int]:
    """The image's content made with the raw tools: (seconds, tarball bytes)."""
    from everbake import provision_env
    from everbake.localbuild.chroot import chroot, remove_tree

    root, out = work / "raw-root", work / "raw.tar.zst"
    apt = [pin.split("=")[0] for pin in provision_env.apt_solver_pins(spec)]
    pip = [
        *spec.python.packages,
        *(f"{s.package}=={s.version}" for s in spec.solvers if s.install == "pip"),
    ]
    venv = spec.python.venv
    start = time.monotonic()
    include = ",".join(["python3-venv", *apt, "ca-certificates"])
    argv = ["mmdebstrap", "--mode=root", "--variant=minbase", f"--include={include}"]
    subprocess.run([*argv, spec.base.local.suite, str(root), spec.base.local.mirror], check=True)
    shutil.copy(wheel, root / "tmp" / wheel.name)
    # The host's CA bundle holds any TLS-intercepting proxy's certificate (as the
    # bake's ca_certificates = "host" does).
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "tmp" / "ca.crt")
    with chroot(root) as ch:
        for command in (
            ["python3", "-m", "venv", venv],
            [
                f"{venv}/bin/pip",
                "install",
                "--no-cache-dir",
                "-q",
                "--cert",
                "/tmp/ca.crt",
                *pip,
                f"/tmp/{wheel.name}",
            ],
        ):
            subprocess.run(ch.argv(command), env=ch.env(), check=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE)
    subprocess.run(["zstd", "-3", "-q", "-o", str(out)], stdin=tar.stdout, check=True)
    assert tar.wait() == 0
    seconds = time.monotonic() - start
    size = out.stat().st_size
    remove_tree(root)
    return seconds, size


def _other_spec(images: Path, name: str) -> str:
    """Another spec from the same packages: ``name`` with another time zone (so its
    base layer is its own, and no base cache serves it)."""
    text = (images / f"{name}.toml").read_text()
    other = f"{name}-benchother"
    text = text.replace(f'name = "{name}"', f'name = "{other}"', 1)
    text = text.replace('family = "everbake-', 'family = "everbake-bo-', 1)
    (images / f"{other}.toml").write_text(text + '\n[system]\ntimezone = "Europe/Berlin"\n')
    return other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="optimization", help="spec name in images/")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_local: run as root (mmdebstrap, chroot and mounts need it)", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="everbake-bench-"))
    copy = scratch / "repo"
    shutil.copytree(REPO, copy, ignore=_skip, symlinks=True)
    os.environ.pop("EVERBAKE_LOCAL_CACHE", None)  # each bake below names its own
    sys.path.insert(0, str(copy))
    from everbake.bake import build_image
    from everbake.runtime_wheel import build_runtime_wheel
    from everbake.settings import Settings
    from everbake.spec import load_spec

    images = copy / "images"
    plain = Settings(images_dir=images, local_cache=scratch / "cache")
    packages = scratch / "packages"
    try:
        spec = load_spec(args.image, images)
        other = _other_spec(images, args.image)
        wheel = build_runtime_wheel(copy / spec.runtime.source, scratch / "wheel")
        raw, raw_size = _raw_tools(spec, wheel, scratch)
        cold, first = _timed(build_image, args.image, force=True, settings=plain)
        check, again = _timed(build_image, args.image, settings=plain)
        assert again.up_to_date, "second build was not up to date"
        with open(copy / "runtime" / "everest_runtime" / "__init__.py", "a") as init:
            init.write("# bench_local: a runtime-only change\n")
        rebake, second = _timed(build_image, args.image, settings=plain)
        assert not second.up_to_date and second.image != first.image
        assert second.record["fingerprints"]["base"] == first.record["fingerprints"]["base"]
        size = second.record["artifact"]["size_bytes"]
        base = Path(second.record["base"]["cache"]).stat().st_size
        # The package cache: filled by one cold bake, used by the next spec's.
        fill_settings = Settings(
            images_dir=images, local_cache=scratch / "cache-fill", package_cache=packages
        )
        fill, filled = _timed(build_image, args.image, force=True, settings=fill_settings)
        other_settings = Settings(
            images_dir=images, local_cache=scratch / "cache-other", package_cache=packages
        )
        warm, baked = _timed(build_image, other, settings=other_settings)
        assert baked.record["fingerprints"]["base"] != filled.record["fingerprints"]["base"]
        kept = sum(f.stat().st_size for f in packages.rglob("*") if f.is_file())
        warm_size = baked.record["artifact"]["size_bytes"]
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"raw tools            {raw:8.1f} s   ({raw_size / 1e6:.1f} MB)")
    print(f"cold bake            {cold:8.1f} s   {cold / raw:.3f} x raw tools   (target <= 1.0)")
    print(f"image-layer rebake   {rebake:8.1f} s   {rebake / cold:.3f} x cold   (target < 0.25)")
    print(f"up-to-date check     {check:8.2f} s   {check / cold:.4f} x cold")
    mb = 1e6
    print(
        f"image size           {size / mb:8.1f} MB  (target <= 108; cached base {base / mb:.1f} MB)"
    )
    print(
        f"package cache fill   {fill:8.1f} s   {fill / raw:.3f} x raw   ({kept / mb:.1f} MB kept)"
    )
    print(
        f"second cold bake     {warm:8.1f} s   {warm / raw:.3f} x raw tools   (target <= 0.6; "
        f"another spec, {warm_size / 1e6:.1f} MB)"
    )
    met = rebake / cold < 0.25 and cold / raw <= 1.0 and size <= 108e6 and warm / raw <= 0.6
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
