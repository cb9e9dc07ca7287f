"""build.local.compression and compression_level: the export writes the tarball the
spec asks for (name, format and level), and everything that reads local images back
(run-local's lookup and extraction, gc's store) takes it as it is."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import pytest

from everbake.errors import SpecError
from everbake.localbuild import export, overlay, steps
from everbake.localbuild.step_plan import image_tarball, make_plan
from everbake.runlocal import resolve_image
from everbake.settings import Settings
from everbake.spec import load_spec
from everbake.spec.schema import COMPRESSIONS
from everbake.stores.local import LocalImageStore

FAMILY = "everbake-case"
IMAGE = f"{FAMILY}-0123456789ab"

# Magic numbers: zstd frame (RFC 8878 3.1.1, 0xFD2FB528 little-endian), gzip member
# (RFC 1952 2.3.1), POSIX/GNU tar header ("ustar" at offset 257).
ZSTD_MAGIC = bytes.fromhex("28b52ffd")
GZIP_MAGIC = bytes.fromhex("1f8b")


def spec_with(write_spec, minimal_spec: str, local: str):
    return load_spec(write_spec(minimal_spec + "\n[build.local]\n" + local))


def tiny_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("tiny\n" * 200)  # something to compress
    (root / "bin").mkdir()
    (root / "bin/tool").write_text("#!/bin/sh\necho tool\n")
    (root / "bin/tool").chmod(0o755)
    (root / "bin/link").symlink_to("tool")


def export_like_a_build(spec, repo: Path, tmp_path: Path) -> Path:
    """The export step of a build of ``spec``: the plan says where and how hard."""
    staging = tmp_path / "staging"
    (staging / "scripts").mkdir(parents=True)
    plan = make_plan(
        image=IMAGE,
        base_name=f"{FAMILY}-base-0123456789ab",
        fingerprints={"base": "b" * 64, "image": "a" * 64},
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        build_dir=tmp_path / "build",
        cache_dir=tmp_path / "cache",
        output=image_tarball(repo / "dist", IMAGE, spec.build.local.compression),
        staging_host=staging,
        scripts={"base": [Path("10-base.sh")], "image": [Path("50-agent.sh")]},
        env={"base": {}, "image": {}},
        compression_level=spec.build.local.level,
    )
    tiny_tree(plan.rootfs)
    steps.export_image(plan)
    return Path(plan.output)


@pytest.mark.parametrize(
    ("local", "suffix", "level", "command"),
    [
        ("", ".tar.zst", 3, "zstd -T0 -3 -q"),  # the default, as before
        ('compression = "zstd"\ncompression_level = 19', ".tar.zst", 19, "zstd -T0 -19 -q"),
        ('compression = "gzip"', ".tar.gz", 6, "gzip -6"),
        ('compression = "gzip"\ncompression_level = 9', ".tar.gz", 9, "gzip -9"),
        ('compression = "gzip"\ncompression_level = 1', ".tar.gz", 1, "gzip -1"),
        ('compression = "none"', ".tar", 0, None),
    ],
)
def test_each_method_round_trips_through_export_run_local_and_gc(
    write_spec, minimal_spec, tmp_path, capfd, local, suffix, level, command
):
    if os.geteuid() != 0:
        pytest.skip("tar --numeric-owner keeps owners only as root")
    spec = spec_with(write_spec, minimal_spec, local)
    assert spec.build.local.level == level
    repo = tmp_path / "repo"
    tarball = export_like_a_build(spec, repo, tmp_path)
    assert tarball == repo / "dist" / "local" / f"{IMAGE}{suffix}"
    assert not list(tarball.parent.glob("*.partial"))

    echoed = capfd.readouterr().err
    packed = next(
        line for line in echoed.splitlines() if line.startswith("$ tar") and "-cf" in line
    )
    head = tarball.read_bytes()[:512]
    if command is None:
        assert " -I " not in packed and head[257:262] == b"ustar"
    else:
        assert f"-I '{command}'" in packed
    if suffix == ".tar.zst":
        assert head[:4] == ZSTD_MAGIC
    if suffix == ".tar.gz":
        assert head[:2] == GZIP_MAGIC
        # XFL (RFC 1952 2.3.1): 2 = maximum compression (-9), 4 = fastest (-1), else 0.
        assert head[8] == {9: 2, 1: 4}.get(level, 0)
        assert gzip.decompress(tarball.read_bytes())[257:262] == b"ustar"

    # run-local: found by path and by image name, extracted whole.
    settings = Settings(dist_dir=repo / "dist")
    assert resolve_image(str(tarball), settings) == tarball.resolve()
    assert resolve_image(IMAGE, settings) == tarball
    lower = overlay.extracted_image(tarball)
    assert lower.name.startswith(f"{IMAGE}.") and lower.name.endswith(".rootfs")
    assert (lower / "etc/hostname").read_text() == "tiny\n" * 200
    assert (lower / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert os.readlink(lower / "bin/link") == "tool"

    # gc-images: the store lists it under its family and deletes it with its copy.
    store = LocalImageStore(tarball.parent)
    (listed,) = store.list_family(FAMILY)
    assert listed.name == IMAGE and listed.id == str(tarball)
    store.delete(listed)
    assert sorted(tarball.parent.iterdir()) == []


def test_the_spec_and_the_export_know_the_same_methods() -> None:
    assert tuple(export.FORMATS) == COMPRESSIONS


def test_the_store_lists_each_format_and_nothing_else(tmp_path: Path) -> None:
    names = [f"{FAMILY}-{c * 12}" for c in "abc"]
    for name, suffix in zip(names, (".tar.zst", ".tar.gz", ".tar"), strict=True):
        (tmp_path / f"{name}{suffix}").write_bytes(b"x")
    (tmp_path / f"{FAMILY}-{'d' * 12}.tar.xz").write_bytes(b"not ours")
    (tmp_path / f"{FAMILY}-{'e' * 12}.tar.gz.123.partial").write_bytes(b"half written")
    listed = LocalImageStore(tmp_path).list_family(FAMILY)
    assert sorted(image.name for image in listed) == names


@pytest.mark.parametrize(
    ("local", "message"),
    [
        (
            "compression_level = 20",
            r"build\.local\.compression_level: 20 is out of range for zstd; use 1\.\.19 "
            r"\(or leave it out for zstd's default, 3\)",
        ),
        (
            'compression = "gzip"\ncompression_level = 12',
            r"build\.local\.compression_level: 12 is out of range for gzip; use 1\.\.9 "
            r"\(or leave it out for gzip's default, 6\)",
        ),
        (
            "compression_level = -1",
            r"build\.local\.compression_level: -1 is out of range for zstd",
        ),
        (
            'compression = "none"\ncompression_level = 3',
            r'build\.local\.compression_level: compression "none" has no levels; '
            r"remove compression_level",
        ),
        (
            'compression = "xz"\ncompression_level = 3',
            r"build\.local\.compression: 'xz' is not supported; use one of: zstd, gzip, none",
        ),
    ],
)
def test_a_bad_level_is_one_clear_line(write_spec, minimal_spec, local, message):
    with pytest.raises(SpecError) as info:
        spec_with(write_spec, minimal_spec, local)
    (problem,) = info.value.problems
    assert re.search(r"case\.toml:\d+: " + message, problem), problem
