"""invoke entry point: the collection lives in everbake/tasks.py (run `invoke --list`)."""

from everbake.tasks import ns

__all__ = ["ns"]
