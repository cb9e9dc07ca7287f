"""gc planning as data, protected records, and apply() through both fakes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from everbake import retirement as gc
from everbake.errors import EverbakeError
from everbake.providers import get
from everbake.stores import CloudImage
from tests.cloud.conftest import FOLDER, PROJECT

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def image(name, days_ago, family="fam", deprecated=None, deprecated_days_ago=None, id_=None):
    return CloudImage(
        name=name,
        id=id_ or f"id-{name}",
        family=family,
        labels={},
        created=(NOW - timedelta(days=days_ago)).isoformat(),
        deprecated=deprecated,
        deprecated_at=(
            None
            if deprecated_days_ago is None
            else (NOW - timedelta(days=deprecated_days_ago)).isoformat()
        ),
    )


def kinds(actions):
    return {action.image.name: action.kind for action in actions}


def test_gcp_keeps_newest_deprecates_then_deletes():
    images = [
        image("fam-1", 1),
        image("fam-2", 2),
        image("fam-3", 3),
        image("fam-4", 40, deprecated="DEPRECATED", deprecated_days_ago=31),
        image("fam-5", 50, deprecated="DEPRECATED", deprecated_days_ago=5),
        image("fam-6", 60, deprecated="OBSOLETE"),  # deprecated elsewhere, time unknown
        image("other-1", 90, family="other"),
    ]
    actions = gc.plan(
        images, family="fam", keep=2, protected=set(), now=NOW, policy=get("gcp").retirement()
    )
    assert kinds(actions) == {
        "fam-1": "keep",
        "fam-2": "keep",
        "fam-3": "deprecate",
        "fam-4": "delete",
        "fam-5": "keep",
        "fam-6": "keep",
    }
    deprecate = next(a for a in actions if a.kind == "deprecate")
    assert deprecate.replacement is not None and deprecate.replacement.name == "fam-1"


def test_yandex_deletes_beyond_keep_but_not_protected():
    images = [image(f"fam-{i}", i) for i in range(1, 6)]
    actions = gc.plan(
        images,
        family="fam",
        keep=2,
        protected={"fam-4", "id-fam-5"},
        now=NOW,
        policy=get("yandex").retirement(),
    )
    assert kinds(actions) == {
        "fam-1": "keep",
        "fam-2": "keep",
        "fam-3": "delete",
        "fam-4": "keep",
        "fam-5": "keep",
    }
    assert [a.reason for a in actions if a.image.name == "fam-4"] == ["named by a published record"]


def test_newest_is_never_touched_even_when_input_is_unordered():
    images = [image("fam-old", 10), image("fam-new", 1), image("fam-mid", 5)]
    actions = gc.plan(
        images, family="fam", keep=1, protected=(), now=NOW, policy=get("yandex").retirement()
    )
    assert kinds(actions) == {"fam-new": "keep", "fam-mid": "delete", "fam-old": "delete"}


def test_keep_zero_is_refused():
    with pytest.raises(EverbakeError, match="--keep 0"):
        gc.plan([], family="fam", keep=0, protected=(), now=NOW, policy=get("gcp").retirement())


def test_protected_images_read_defensively(tmp_path):
    (tmp_path / "resources").mkdir()
    (tmp_path / "builds" / "gcp").mkdir(parents=True)
    (tmp_path / "resources" / "opt.json").write_text(
        json.dumps({"provider": "gcp", "image": {"name": "fam-r", "id": "111"}})
    )
    (tmp_path / "resources" / "yc.json").write_text(
        json.dumps({"provider": "yandex", "image": {"name": "fam-y"}})
    )
    (tmp_path / "resources" / "broken.json").write_text("{not json")
    (tmp_path / "resources" / "list.json").write_text("[1, 2]")
    # A build record is history, not a publication: every built image has one.
    (tmp_path / "builds" / "gcp" / "opt.json").write_text(
        json.dumps({"image_name": "fam-b", "image_id": "5", "base": {"image_name": "fam-base-1"}})
    )
    assert gc.protected_images(tmp_path, "gcp") == {"fam-r", "111"}
    assert gc.published_names(tmp_path, "yandex") == {tmp_path / "resources" / "yc.json": {"fam-y"}}
    assert gc.protected_images(tmp_path / "missing", "gcp") == set()


def test_apply_on_gce(gce, gcp_store):
    for i in range(4):
        gce.add_image(PROJECT, f"fam-{i}", "fam", created=NOW - timedelta(days=10 - i))
    gce.add_image(
        PROJECT,
        "fam-gone",
        "fam",
        created=NOW - timedelta(days=90),
        deprecated="DEPRECATED",
        deprecated_at=NOW - timedelta(days=60),
    )
    gce.add_image(PROJECT, "other-0", "other", created=NOW - timedelta(days=90))
    actions = gc.plan(
        gcp_store.list_family("fam"),
        family="fam",
        keep=2,
        protected={"fam-0"},
        now=NOW,
        policy=get("gcp").retirement(),
    )
    lines: list[str] = []
    assert gc.apply(gcp_store, actions, say=lines.append) == 2
    assert lines == ["deprecating fam-1", "deleting fam-gone"]
    assert gce.image_names(PROJECT) == {"fam-0", "fam-1", "fam-2", "fam-3", "other-0"}
    assert gce.image(PROJECT, "fam-1")["deprecated"]["replacement"].endswith("/fam-3")
    assert "deprecated" not in gce.image(PROJECT, "fam-0")
    assert "deprecated" not in gce.image(PROJECT, "fam-3")


def test_apply_on_yandex(yc, yandex_store):
    for i in range(4):
        yc.add_image(FOLDER, f"fam-{i}", "fam", created=NOW - timedelta(days=10 - i))
    yc.add_image(FOLDER, "other-0", "other", created=NOW - timedelta(days=90))
    actions = gc.plan(
        yandex_store.list_family("fam"),
        family="fam",
        keep=1,
        protected={"fam-1"},
        now=NOW,
        policy=get("yandex").retirement(),
    )
    assert gc.apply(yandex_store, actions, say=lambda _: None) == 2
    assert yc.image_names(FOLDER) == {"fam-1", "fam-3", "other-0"}


def test_dry_run_plan_changes_nothing(gce, gcp_store):
    for i in range(3):
        gce.add_image(PROJECT, f"fam-{i}", "fam", created=NOW - timedelta(days=10 - i))
    actions = gc.plan(
        gcp_store.list_family("fam"),
        family="fam",
        keep=1,
        protected=(),
        now=NOW,
        policy=get("gcp").retirement(),
    )
    assert [a.describe().split()[0] for a in actions] == ["keep", "deprecate", "deprecate"]
    assert all(r.method == "GET" for r in gce.state.requests)
