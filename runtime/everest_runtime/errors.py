"""One exception tree for the runtime. A RuntimeFailure is something the user
can fix: the CLI prints str() as one line (traceback only with EVEREST_DEBUG=1)."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """A problem with the task's inputs, the model or its settings."""

    exit_code = 2


class ConfigError(RuntimeFailure):
    """A bad flag, environment variable, everest.toml or params.json."""


class ArchiveError(RuntimeFailure):
    """An archive is damaged, too large or tries to write outside its target."""


class Stopped(ArchiveError):
    """Unpacking was stopped by a signal (preemption or cancel)."""


class DamagedArchive(ArchiveError):
    """Truncated or corrupt data: worth fetching again when it came from the network."""


class FetchError(RuntimeFailure):
    """The model's source could not be fetched (GitLab, metadata server, cache)."""

    exit_code = 3


class RetryableFetchError(FetchError):
    """A failure worth retrying: 429, 5xx, reset connection, truncated body."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after
