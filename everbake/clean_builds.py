"""clean-builds: find and delete what failed builds left on a cloud (build VMs and
their disks, labelled or named by their attempt id) once it is older than an hour,
so that a leftover of a build still running is never touched."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta

from everbake import ui
from everbake.errors import EverbakeError
from everbake.providers import CloudProvider, Provider
from everbake.spec import ImageSpec
from everbake.stores.build_vms import Leftover

MIN_AGE = timedelta(hours=1)  # builds run well under that between two looks at their VM


def clean_builds(
    provider: Provider,
    specs: Sequence[ImageSpec],
    dry_run: bool,
    environ: Mapping[str, str] | None = None,
    older_than: timedelta = MIN_AGE,
) -> list[Leftover]:
    """List (and unless ``dry_run`` delete) the leftovers in the zones of ``specs``."""
    if not isinstance(provider, CloudProvider):
        raise EverbakeError(
            f"--provider {provider.name}: clean-builds cleans cloud build VMs; choose gcp or yandex"
        )
    environ = os.environ if environ is None else environ
    places: dict[str, set[str]] = {}
    for spec in specs:
        location = provider.location_of(spec, environ)
        places.setdefault(location, set()).update(provider.build_table(spec).zones)
    if not places:  # no spec: the environment's project/folder, every zone
        places[provider.location_of_env_or_fail(environ)] = set()
    found: list[Leftover] = []
    for location, zones in sorted(places.items()):
        vms = provider.open_build_vms(location, environ)
        hours = older_than.total_seconds() / 3600
        with ui.phase(
            f"{provider.name}: look for build leftovers older than {hours:g} h in {location}"
        ):
            left = vms.leftovers(sorted(zones), older_than)
        for item in left:
            verb = "would delete" if dry_run else "delete"
            print(f"{verb} {item.describe()}, attempt {item.attempt}")
            if not dry_run:
                with ui.phase(f"{provider.name}: deleting {item.kind} {item.name}"):
                    vms.delete_leftover(item)
        found.extend(left)
    if not found:
        ui.say(f"{provider.name}: no build leftovers older than an hour")
    elif dry_run:
        ui.say(f"dry run: {len(found)} leftover(s) listed above, nothing deleted")
    else:
        ui.say(f"{provider.name}: deleted {len(found)} leftover(s)")
    return found
