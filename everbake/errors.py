"""One exception tree. Everything a user can fix is an EverbakeError: the CLI
prints its message as one line (no traceback unless EVERBAKE_DEBUG=1)."""

from __future__ import annotations

import os


def debug_enabled() -> bool:
    """EVERBAKE_DEBUG=1: show tracebacks instead of one-line errors (tasks and build steps)."""
    return os.environ.get("EVERBAKE_DEBUG", "") not in ("", "0")


class EverbakeError(Exception):
    """A problem the user can fix; str() is the one-line message."""

    exit_code = 1


class SpecError(EverbakeError):
    """One or more problems in an image spec; each problem is one line."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ToolError(EverbakeError):
    """A required tool (packer, mmdebstrap...) is missing or unusable."""


class RenderError(EverbakeError):
    """A template failed to render or rendered into invalid Packer HCL."""


class BuildError(EverbakeError):
    """A build step failed; the message names the step and shows the log tail."""


class CloudError(EverbakeError):
    """A cloud API call failed in a way that is not 'not found'."""


class CredentialsError(EverbakeError):
    """Credentials for a provider are missing or refused."""
