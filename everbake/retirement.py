"""Retiring old images of a family: a pure plan, then ``apply`` through a store.

GCP: images beyond the newest N are deprecated (the newest live one named as
replacement) and deleted once they have been deprecated for ``delete_after_days``.
Yandex and local images have no deprecation: images beyond the newest N are
deleted.
Never touched: the newest N, images of other families, and any image a
published resource config names (dist/resources/*.json). Build records are not
publications: every image everbake builds has one, so counting them would
protect every image and retire nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from everbake.errors import EverbakeError
from everbake.files import read_json_object
from everbake.stores import CloudImage, ImageStore, newest_first, parse_time

Kind = Literal["keep", "deprecate", "delete"]


@dataclass(frozen=True)
class Policy:
    """How a provider retires images (`Provider.retirement`)."""

    deprecate_first: bool  # GCP: deprecate, delete later; Yandex: delete at once
    delete_after_days: float = 30.0


@dataclass(frozen=True)
class Action:
    kind: Kind
    image: CloudImage
    reason: str
    replacement: CloudImage | None = None

    def describe(self) -> str:
        return f"{self.kind:<9} {self.image.name}  ({self.reason})"


def check_keep(keep: int) -> None:
    if keep < 1:
        raise EverbakeError(
            f"--keep {keep}: keep at least 1 image (the family's newest is what new VMs get)"
        )


def plan(
    images: Iterable[CloudImage],
    *,
    family: str,
    keep: int,
    protected: Collection[str],
    now: datetime,
    policy: Policy,
) -> list[Action]:
    """One action per image of ``family``, newest first; ``keep`` actions change nothing.

    ``protected`` holds image names and ids named by published records; a
    mapping gives the reason each one is kept.
    """
    check_keep(keep)
    ours = newest_first([image for image in images if image.family == family])
    newest = ours[:keep]
    live = [image for image in newest if image.deprecated is None]
    replacement = live[0] if live else None
    actions = [Action("keep", image, f"one of the newest {keep}") for image in newest]
    for image in ours[keep:]:
        if image.name in protected or image.id in protected:
            why = protected.get(image.name) if isinstance(protected, Mapping) else None
            actions.append(Action("keep", image, why or "named by a published record"))
        elif not policy.deprecate_first:
            actions.append(Action("delete", image, f"older than the newest {keep}"))
        elif image.deprecated is None:
            actions.append(Action("deprecate", image, f"older than the newest {keep}", replacement))
        else:
            actions.append(_deprecated_action(image, now, policy.delete_after_days))
    return actions


def _deprecated_action(image: CloudImage, now: datetime, days: float) -> Action:
    if image.deprecated_at is None:
        # Deprecated by someone else at an unknown time: never guess it is old.
        return Action("keep", image, f"{image.deprecated} since an unknown time")
    try:
        since = parse_time(image.deprecated_at)
    except ValueError:
        return Action("keep", image, f"unreadable deprecation time {image.deprecated_at!r}")
    age = now - since
    if age >= timedelta(days=days):
        return Action("delete", image, f"{image.deprecated} for {age.days} days (>= {days:g})")
    return Action("keep", image, f"{image.deprecated} for {age.days} days; deleted after {days:g}")


def apply(store: ImageStore, actions: Iterable[Action], say: Callable[[str], None] = print) -> int:
    """Carry out the deprecations and deletions in order; return how many were done.

    Each action stands alone, so after a failure a second run picks up the rest.
    """
    done = 0
    for action in actions:
        if action.kind == "deprecate":
            say(f"deprecating {action.image.name}")
            store.deprecate(action.image, action.replacement)
        elif action.kind == "delete":
            say(f"deleting {action.image.name}")
            store.delete(action.image)
        else:
            continue
        done += 1
    return done


def published_names(dist: Path, provider: str) -> dict[Path, set[str]]:
    """Image names and ids per published resource config; unreadable ones are skipped.

    Reads dist/resources/*.json and dist/resources/<provider>/*.json (what
    publish-resource writes): ``image.name``/``image.id`` of configs for
    ``provider`` (or naming no provider).
    """
    found: dict[Path, set[str]] = {}
    folder = dist / "resources"
    for path in sorted([*folder.glob("*.json"), *(folder / provider).glob("*.json")]):
        record = read_json_object(path)
        if record.get("provider", provider) != provider:
            continue
        image = record.get("image")
        if isinstance(image, dict):
            names = set(_strings(image.get("name"), image.get("id")))
            if names:
                found[path] = names
    return found


def protected_images(dist: Path, provider: str) -> set[str]:
    """Every image name and id a published resource config names."""
    return set().union(*published_names(dist, provider).values())


def _strings(*values: object) -> list[str]:
    return [value for value in values if isinstance(value, str) and value]
