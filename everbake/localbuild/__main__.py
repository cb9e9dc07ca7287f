"""`python -m everbake.localbuild base|image|export --plan PATH`: one build step.

Packer's shell-local provisioners call this. Errors are one line on stderr
(traceback only with EVERBAKE_DEBUG=1); SIGTERM and SIGINT unwind normally,
so the chroot's mounts are released whatever stops the build.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from everbake.errors import EverbakeError, debug_enabled
from everbake.localbuild import steps
from everbake.localbuild.step_plan import load_plan


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m everbake.localbuild")
    parser.add_argument("step", choices=("base", "image", "export"))
    parser.add_argument(
        "--plan", required=True, type=Path, help="build/local/<image>/local-plan.json"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        plan = load_plan(args.plan)
        if args.step == "base":
            steps.base(plan)
        elif args.step == "image":
            steps.image(plan, os.environ)
        else:
            steps.export_image(plan)
    except EverbakeError as exc:
        if debug_enabled():
            raise
        for line in str(exc).splitlines():
            print(f"error: {args.step} step: {line}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"error: {args.step} step interrupted; mounts released", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
