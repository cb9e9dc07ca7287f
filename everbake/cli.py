"""The `everbake` console script: the invoke collection of everbake/tasks.py as a program.

It works outside the repository: images/ and templates/ are found next to the
package (an editable install), or through INVOKE_EVERBAKE_IMAGES_DIR.
"""

from __future__ import annotations

from invoke import Program

from everbake import __version__
from everbake.tasks import ns

program = Program(namespace=ns, version=__version__, name="everbake", binary="everbake")


def main() -> None:
    program.run()
