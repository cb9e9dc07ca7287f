"""invoke tasks for Everest: everest-login, publish-resource, export-app.

Config (``ns.configure`` via ``register``; invoke.yaml or INVOKE_EVEREST_* override):
``everest.url`` (EVEREST_URL wins), ``everest.resource_endpoint`` (a path on the
server; empty: print the web-UI fields instead), ``everest.username``,
``everest.gitlab_project`` and ``everest.gitlab_url`` (bootstrap.sh's defaults).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from invoke import Collection, Context

from everbake.errors import EverbakeError
from everbake.providers import CLOUDS, DEFAULT
from everbake.taskutil import settings_of, task
from everbake.ui import say

DEFAULTS: dict[str, Any] = {
    "everest": {
        "url": "",
        "resource_endpoint": "",
        "username": "",
        "gitlab_project": "",
        "gitlab_url": "https://gitlab.com",
    }
}


def _everest(c: Context) -> Any:
    return c.config.everest


def _url(c: Context) -> str:
    from everbake.everest.client import resolve_url

    return resolve_url(_everest(c).url)


@task(
    help={
        "username": "Everest user name (default: everest.username, else asked)",
        "label": "a label for the token, shown in Everest's token list (default: everbake)",
        "lifetime": "token lifetime in seconds (default: Everest's, one week)",
    }
)
def everest_login(c, username=None, label="everbake", lifetime=None):
    """Ask for the Everest password and store an access token (0600) for later tasks."""
    from everbake.everest.client import URL_FIX
    from everbake.everest.token import login, token_path

    url = _url(c)
    if not url:
        raise EverbakeError(f"no Everest URL: {URL_FIX}")
    user = username or _everest(c).username or input("Everest user name: ").strip()
    password = getpass.getpass(f"Everest password for {user} at {url}: ")
    path = login(
        url,
        user,
        password,
        label=label,
        lifetime=int(lifetime) if lifetime else None,
        path=token_path(),
    )
    say(f"token stored in {path} (mode 0600); EVEREST_TOKEN, when set, takes precedence")


@task(
    help={
        "image": "spec name (its newest build for --provider) or a built image name",
        "provider": "gcp or yandex",
        "dry_run": "show the diff against what is published; change nothing",
        "output": "write the published record here instead of <dist>/resources/<provider>/",
    }
)
def publish_resource(c, image=None, provider=None, dry_run=False, output=None):
    """Check the Everest resource config against its image, then publish it."""
    from everbake.everest.publish import Target
    from everbake.everest.publish import publish_resource as publish

    if provider not in CLOUDS:
        raise EverbakeError(f"--provider {provider or '(missing)'}: give {' or '.join(CLOUDS)}")
    settings = settings_of(c)
    target = Target(_url(c), _everest(c).resource_endpoint)
    done = publish(
        image or settings.image,
        provider,
        target=target,
        dry_run=dry_run,
        output=Path(output) if output else None,
        settings=settings,
    )
    print("\n".join(done.diff) if done.diff else "no changes")
    if done.web_ui:
        print("\n".join(done.web_ui))
    name = done.config["name"]
    if target.sends:
        say(f"resource {name}: {done.action} at {target.url}{target.endpoint}")
    for path in done.removed:
        say(f"superseded record removed: {path}")
    say(f"published record: {done.path}" if done.path else "dry run: nothing written or sent")


@task(
    help={
        "image": "spec name (its newest build for --provider) or a built image name",
        "provider": "whose build record to use: local (default), gcp or yandex",
        "output": "directory to write (default: <dist>/apps/<image name>/)",
        "project": "the model's GitLab project (id or group/name); default everest.gitlab_project",
        "update": "also update this application on Everest (id or owner/alias), showing the diff",
        "dry_run": "show what would change; write and send nothing",
    }
)
def export_app(
    c, image=None, provider=DEFAULT, output=None, project=None, update=None, dry_run=False
):
    """Write the Everest application (application.json, bootstrap.sh, the zip) for an image."""
    from everbake.everest.app import export_app as export

    settings = settings_of(c)
    done = export(
        image or settings.image,
        provider=provider,
        output=Path(output) if output else None,
        project=project or _everest(c).gitlab_project,
        gitlab_url=_everest(c).gitlab_url,
        settings=settings,
        update=update or "",
        url=_url(c),
        dry_run=dry_run,
    )
    say(f"agent config: {done.agent_config}; the command is allowed")
    if update:
        print("\n".join(done.diff) if done.diff else "no changes")
        say(f"application {update}: {done.action}")
    for name in done.files:
        print(done.directory / name)
    if dry_run:
        say("dry run: nothing written or sent")
    else:
        archive = next(done.directory / n for n in done.files if n.endswith(".zip"))
        say(
            f"import {archive} in the Everest web UI; then check that bootstrap.sh is among "
            "the application's files (README 'From image to Everest')"
        )


def register(ns: Collection) -> None:
    """Add the Everest tasks and their config defaults to the top collection."""
    for each in (everest_login, publish_resource, export_app):
        ns.add_task(each)
    ns.configure(DEFAULTS)
