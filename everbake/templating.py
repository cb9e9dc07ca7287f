"""The one Jinja environment everbake renders with: strict (StrictUndefined), no
autoescaping, and errors that name the template and line.

Packer templates use [[ ]] / [% %] delimiters because Packer's own Go templates
use {{ }}. The agent config template is the user's file (agent.config_template)
and keeps Jinja's standard delimiters, documented in it: it is rendered by an
overlay of the same environment that only swaps the delimiters back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from everbake.errors import RenderError


def hcl_string(value: Any) -> str:
    """A JSON/HCL literal with Packer interpolation (${ and %{) escaped."""
    text = json.dumps(value)
    return text.replace("${", "$${").replace("%{", "%%{")


@functools.lru_cache(maxsize=8)
def environment(templates: Path) -> jinja2.Environment:
    """The environment over ``templates`` (one per templates folder, made once)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["hcl"] = hcl_string
    return env


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render templates/<name>; a syntax error or undefined name is one RenderError line."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"templates/{name}:{exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"templates/{name}: {exc.message} (context: {sorted(context)})") from None


def render_standard(path: Path, context: Mapping[str, Any]) -> str:
    """Render a user's template file with Jinja's standard delimiters (strict)."""
    env = environment(path.parent).overlay(
        loader=jinja2.FileSystemLoader(str(path.parent)),
        block_start_string="{%",
        block_end_string="%}",
        variable_start_string="{{",
        variable_end_string="}}",
        comment_start_string="{#",
        comment_end_string="#}",
        trim_blocks=False,
        lstrip_blocks=False,
    )
    try:
        return env.get_template(path.name).render(**context)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise RenderError(f"{where}: {exc}") from None
