"""Local provider timings, as ratios against a cold bake measured in the same run.

    python benchmarks/bench_local.py [--image optimization] [--keep]

Works on a scratch copy of the repository (so a "runtime-only change" can be made
without touching the checkout) with an empty base-layer cache, as root:

  cold bake          empty cache: mmdebstrap + base scripts + image layer + export
  up-to-date check   same fingerprint again: record + tarball lookup only
  image-layer rebake one comment appended to the runtime: base comes from the cache
  image size         the .tar.zst (and the cached base layer)

Figures go to stdout; the builds' own output goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

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
    os.environ["EVERBAKE_LOCAL_CACHE"] = str(scratch / "cache")
    sys.path.insert(0, str(copy))
    from everbake.bake import build_image

    images = copy / "images"
    try:
        cold, first = _timed(build_image, args.image, images_dir=images, force=True)
        check, again = _timed(build_image, args.image, images_dir=images)
        assert again.up_to_date, "second build was not up to date"
        with open(copy / "runtime" / "everest_runtime" / "__init__.py", "a") as init:
            init.write("# bench_local: a runtime-only change\n")
        rebake, second = _timed(build_image, args.image, images_dir=images)
        assert not second.up_to_date and second.image != first.image
        assert second.record["fingerprints"]["base"] == first.record["fingerprints"]["base"]
        size = second.record["artifact"]["size_bytes"]
        base = Path(second.record["base"]["cache"]).stat().st_size
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"cold bake            {cold:8.1f} s   1.000 x cold")
    print(f"image-layer rebake   {rebake:8.1f} s   {rebake / cold:.3f} x cold   (target < 0.25)")
    print(f"up-to-date check     {check:8.2f} s   {check / cold:.4f} x cold")
    print(f"image size           {size / 1e6:8.1f} MB  (zstd; cached base {base / 1e6:.1f} MB)")
    return 0 if rebake / cold < 0.25 else 1


if __name__ == "__main__":
    sys.exit(main())
