"""The `everbake` console script: the invoke collection of everbake/tasks.py as a program.

It works outside the repository: images/ and templates/ are found next to the
package (an editable install), or through INVOKE_EVERBAKE_IMAGES_DIR.
"""

from __future__ import annotations

import os
import sys

from invoke import Program

from everbake import __version__
from everbake.tasks import ns

program = Program(namespace=ns, version=__version__, name="everbake", binary="everbake")


def main() -> None:
    try:
        program.run()
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other CLIs do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
