"""invoke task: pin-agent (thin: flags -> everbake.pinagent -> one line per result)."""

from __future__ import annotations

from everbake.taskutil import settings_of, task


@task(
    help={
        "image": "image spec name in images/ or a path to a .toml (default: the configured "
        "image); its own file gets the pin",
        "ref": "agent ref (tag, branch or commit) to download and pin (default: the spec's ref)",
    }
)
def pin_agent(c, image=None, ref=None):
    """Download the Everest agent archive, print its sha256, write ref and sha256 into the spec."""
    from everbake.pinagent import pin_agent as pin  # loads on use: --list stays fast

    settings = settings_of(c)
    pinned = pin(image or settings.image, settings.images_dir, ref)
    print(f"{pinned.sha256}  {pinned.source}")
    print(f'pinned in {pinned.spec_file}: [agent] ref = "{pinned.ref}", sha256 = "{pinned.sha256}"')
