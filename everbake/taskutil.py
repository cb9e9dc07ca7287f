"""The one place where our errors become a one-line exit for invoke tasks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import invoke

from everbake.errors import EverbakeError, debug_enabled
from everbake.providers import DEFAULT, NAMES, Provider, get
from everbake.settings import DEFAULT_IMAGE, Settings

# The one set of task defaults (everbake/tasks.py: ns.configure); invoke.yaml or
# INVOKE_EVERBAKE_* variables override them. Relative dirs are the current dir's.
DEFAULTS: dict[str, Any] = {
    "everbake": {
        "image": DEFAULT_IMAGE,  # the default image of single-image tasks
        "provider": DEFAULT,  # the default provider of build-image
        "providers": list(NAMES),  # what validate/plan/check cover by default
        "build_dir": "build",
        "dist_dir": "dist",
        "runs_dir": "runs",
        "images_dir": "",  # empty: the images/ folder next to the everbake package
        "package_cache": "",  # empty: no apt/pip downloads kept between local bakes
    }
}


def settings_of(c: invoke.Context) -> Settings:
    """The settings of a task's context (a collection without our defaults gets them)."""
    config = dict(DEFAULTS["everbake"])
    config.update(c.config.get("everbake") or {})
    return Settings.from_config(config)


def providers_of(settings: Settings, provider: str | None) -> list[Provider]:
    """The providers --provider names (comma-separated), else the configured ones: the
    one place a provider's name becomes its object (an unknown name lists the choices)."""
    return [get(name) for name in split_list(provider) or list(settings.providers)]


def build_providers_of(settings: Settings, provider: str | None) -> list[Provider]:
    """The providers of build-image: --provider, else the configured default one."""
    return [get(name) for name in split_list(provider) or [settings.provider or DEFAULT]]


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an EverbakeError into invoke.Exit: each line 'error: ...', status 1.

    With EVERBAKE_DEBUG=1 the exception propagates and invoke shows the traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EverbakeError as exc:
            if debug_enabled():
                raise
            lines = str(exc).splitlines() or [type(exc).__name__]
            raise invoke.Exit(
                "\n".join(f"error: {line}" for line in lines), exc.exit_code
            ) from None
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            raise invoke.Exit("interrupted", 130) from None

    return wrapper


def task(*args: Any, **kwargs: Any) -> Any:
    """invoke.task with our error handling; use exactly like @invoke.task(...)."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return invoke.task(user_errors(args[0]))

    def decorate(func: Callable[..., Any]) -> Any:
        return invoke.task(*args, **kwargs)(user_errors(func))

    return decorate


def split_list(value: str | None) -> list[str]:
    """A comma-separated flag value as a list of names (blanks dropped)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
