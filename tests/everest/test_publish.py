"""publish-resource against the fake Everest: create, update with a diff, no-op,
--dry-run, --output, the web-UI fields, refusals, and a token never shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from everbake.everest import resource
from everbake.everest.client import EverestConflict
from everbake.everest.publish import Target, publish_resource
from tests.everest.conftest import files_under
from tests.fakes.everest import EverestFake

EP = "/api/everbake/resources"


def _publish(everest: EverestFake, images_dir: Path, **kwargs: object):
    target = Target(everest.url, EP)
    return publish_resource(
        "optimization",
        "gcp",
        target=target,
        images_dir=images_dir,
        **kwargs,  # type: ignore[arg-type]
    )


def test_create_then_no_op_then_update_with_a_diff(
    everest: EverestFake,
    token: str,
    images_dir: Path,
    built: Callable[..., dict],
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = built("gcp", created="2026-12-01T10:00:00+00:00")
    created = _publish(everest, images_dir)
    assert created.action == "created"
    assert everest.resources["everbake-optimization-gcp"] == created.config
    assert created.path == images_dir.parent / "dist/resources/gcp" / f"{first['image']}.json"
    assert json.loads(created.path.read_text()) == created.config
    assert all(line.startswith("+ ") for line in created.diff)

    again = _publish(everest, images_dir)
    assert (again.action, again.diff) == ("unchanged", [])
    assert everest.count("PATCH", EP + "/.*") == 0 and everest.count("POST", EP) == 1

    # A new build of the spec (another fingerprint) updates the same resource.
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(spec_file.read_text().replace('description = "', 'description = "New: '))
    second = built("gcp", created="2026-12-02T10:00:00+00:00")
    updated = _publish(everest, images_dir)
    assert updated.action == "updated"
    changed = {line.split(":")[0] for line in updated.diff}
    assert changed == {
        "~ image.fingerprint",
        "~ image.name",
        "~ image.self_link",
    }
    assert everest.resources["everbake-optimization-gcp"]["image"]["name"] == second["image"]
    # Only what differs went over the wire, as a merge patch.
    patch = json.loads(everest.bodies[-1])
    assert set(patch) == {"image"} and set(patch["image"]) == {"fingerprint", "name", "self_link"}
    # The record of the old image is superseded: gc-images may retire it now.
    assert updated.removed == [created.path]
    assert sorted(p.name for p in created.path.parent.iterdir()) == [f"{second['image']}.json"]
    out = capsys.readouterr()
    assert token not in out.out + out.err


def test_dry_run_changes_nothing(
    everest: EverestFake, token: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    built("gcp")
    dry = _publish(everest, images_dir, dry_run=True)
    assert dry.action == "would create" and dry.diff and dry.path is None
    assert everest.resources == {}
    assert not (images_dir.parent / "dist/resources").exists()
    _publish(everest, images_dir)
    everest.resources["everbake-optimization-gcp"]["scheduling"]["max_instances"] = 9
    before = json.dumps(everest.resources, sort_keys=True)
    dry = _publish(everest, images_dir, dry_run=True)
    assert dry.action == "would update"
    assert dry.diff == ["~ scheduling.max_instances: 9 -> 4"]
    assert json.dumps(everest.resources, sort_keys=True) == before
    assert everest.count("PATCH", EP + "/.*") == 0


def test_output_file_and_web_ui_fields_without_an_endpoint(
    everest: EverestFake, images_dir: Path, built: Callable[..., dict], tmp_path: Path
) -> None:
    built("yandex")
    out = tmp_path / "mine.json"
    done = publish_resource(
        "optimization",
        "yandex",
        target=Target("https://everest.example.org", ""),
        output=out,
        images_dir=images_dir,
        env={},
    )
    assert done.action == "web UI" and done.path == out
    assert json.loads(out.read_text()) == done.config
    assert done.web_ui[0].startswith(
        "create or edit the resource in the web UI (https://everest.example.org/resources/new)"
    )
    assert '  machine.platform_id = "standard-v3"' in done.web_ui
    assert everest.calls == []  # nothing sent anywhere
    assert not (images_dir.parent / "dist/resources").exists()


def test_mismatches_are_refused_before_anything_is_written_or_sent(
    everest: EverestFake, token: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    built("gcp")
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(spec_file.read_text() + "\n[resource]\ndisk_size_gb = 12\n")
    with pytest.raises(resource.ResourceConfigError) as refused:
        _publish(everest, images_dir)
    # [resource] is not baked (same fingerprint), but the disk is below the image's.
    assert str(refused.value).startswith("disk.size_gb 12 is below the image's minimum of 20")
    assert "\n" not in str(refused.value)
    assert everest.calls == []
    assert not (images_dir.parent / "dist/resources").exists()


def test_an_older_image_is_not_the_newest_build(
    everest: EverestFake, token: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    old = built("gcp", fingerprint="a" * 64, created="2026-11-01T00:00:00+00:00")
    built("gcp", created="2026-12-01T00:00:00+00:00")
    with pytest.raises(
        resource.ResourceConfigError, match=r"^image.fingerprint aaaaaaaaaaaa is not"
    ):
        publish_resource(old["image"], "gcp", target=Target(everest.url, EP), images_dir=images_dir)
    assert everest.calls == []


def test_a_conflicting_create_is_one_line_and_writes_no_record(
    everest: EverestFake, token: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    built("gcp")
    # Someone creates it between our GET (404) and our POST.
    everest.fail("GET", EP + "/everbake-optimization-gcp", 404)
    everest.resources["everbake-optimization-gcp"] = {"name": "everbake-optimization-gcp"}
    with pytest.raises(EverestConflict, match="409 conflict"):
        _publish(everest, images_dir)
    assert not (images_dir.parent / "dist/resources").exists()


def test_the_token_is_in_no_output_and_no_file(
    everest: EverestFake,
    token: str,
    images_dir: Path,
    built: Callable[..., dict],
    capsys: pytest.CaptureFixture[str],
    config_home: Path,
) -> None:
    built("gcp")
    _publish(everest, images_dir)
    out = capsys.readouterr()
    assert token not in out.out + out.err
    for path in files_under(images_dir.parent / "dist", config_home):
        assert token.encode() not in path.read_bytes(), path
    # Sent only as the bearer header, never in a body or a path.
    assert all(token.encode() not in body for body in everest.bodies)
    assert all(token not in path for _, path in everest.calls)


def test_gc_images_and_force_honour_the_published_record(
    everest: EverestFake, token: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    from everbake.retirement import protected_images

    record = built("gcp")
    done = _publish(everest, images_dir)
    dist = images_dir.parent / "dist"
    assert protected_images(dist, "gcp") == {record["image"], record["image_id"]}
    assert protected_images(dist, "yandex") == set()
    assert done.path is not None and done.path.parent == dist / "resources" / "gcp"


def test_the_image_is_looked_up_when_credentials_exist(
    everest: EverestFake,
    token: str,
    images_dir: Path,
    built: Callable[..., dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.cloud.conftest import PROJECT, service_account_key
    from tests.fakes.gce import FakeGce

    record = built("gcp")
    assert record["project"] == PROJECT
    with FakeGce(projects=[PROJECT]) as gce:
        email = f"pub@{PROJECT}.iam.gserviceaccount.com"
        key = service_account_key(tmp_path / "sa.json", f"{gce.endpoint}/token", email)
        gce.state.require_token = gce.state.issued_token
        gce.state.accept_jwt_issuer = email
        # The SDK reads its credentials from the process environment.
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        monkeypatch.setenv("EVERBAKE_GCE_ENDPOINT", gce.endpoint)
        target = Target(everest.url, EP)
        with pytest.raises(resource.ResourceConfigError) as refused:
            publish_resource("optimization", "gcp", target=target, images_dir=images_dir)
        assert str(refused.value) == (
            f"image.name: {record['image']} no longer exists in gcp {PROJECT}; rebuild it: "
            "invoke build-image --provider gcp --image optimization"
        )
        assert everest.calls == []
        fp = record["fingerprints"]["image"]
        gce.add_image(PROJECT, record["image"], record["family"], {"everbake-fingerprint": fp[:48]})
        done = publish_resource("optimization", "gcp", target=target, images_dir=images_dir)
        assert done.action == "created"
    assert f"image {record['image']}: exists in gcp {PROJECT}" in capsys.readouterr().err


def test_the_configured_dist_dir_holds_the_build_record_and_what_gc_honours(
    everest: EverestFake,
    token: str,
    images_dir: Path,
    built: Callable[..., dict],
    tmp_path: Path,
) -> None:
    """Build records are read from, and the published record written to, the
    settings' dist dir (not dist/ beside the images); gc-images reads it there."""
    from everbake.records import record_path
    from everbake.retirement import protected_images
    from everbake.settings import Settings

    record = built("gcp")
    dist = tmp_path / "elsewhere-dist"
    moved = record_path(dist, "gcp", record["image"])
    moved.parent.mkdir(parents=True)
    record_path(images_dir.parent / "dist", "gcp", record["image"]).rename(moved)
    settings = Settings(images_dir=images_dir, dist_dir=dist)
    done = publish_resource(
        "optimization", "gcp", target=Target(everest.url, EP), settings=settings
    )
    assert done.path == dist / "resources/gcp" / f"{record['image']}.json"
    assert not (images_dir.parent / "dist/resources").exists()
    assert record["image"] in protected_images(settings.dist_root_of_repo(), "gcp")
