"""The everest-runtime wheel a build stages: `pip wheel` of the runtime's source
(a subprocess of this interpreter, never PATH's python3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from everbake.errors import BuildError


def build_runtime_wheel(runtime_dir: Path, dest: Path) -> Path:
    """`pip wheel --no-deps` of the everest-runtime distribution into ``dest``."""
    if not (runtime_dir / "pyproject.toml").is_file():
        raise BuildError(
            f"runtime source {runtime_dir} has no pyproject.toml (spec: runtime.source)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("everest_runtime-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="everbake-wheel-") as work:
        # Build from a copy: setuptools drops build/ and *.egg-info next to the source.
        src = Path(work) / "src"
        shutil.copytree(
            runtime_dir, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        argv += ["--quiet", "-w", str(dest), str(src)]
        done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(f"    {line}" for line in done.stderr.strip().splitlines()[-15:])
        raise BuildError(f"building the runtime wheel from {runtime_dir} failed:\n{tail}")
    wheels = sorted(dest.glob("everest_runtime-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one everest_runtime wheel in {dest}, found {len(wheels)}")
    return wheels[0]
