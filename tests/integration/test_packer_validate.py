"""Real `packer validate` and `packer fmt -check` on rendered directories.

With Packer 1.6.6 (Debian): full validate for gcp and local; yandex gets
-syntax-only plus the argument check against the plugin's field list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from everbake import packer, packer_dir, render
from everbake.errors import RenderError
from everbake.providers import get
from everbake.spec import list_images, load_spec

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SPECS = [*list_images(), *(str(p) for p in sorted(GOLDEN.glob("*/spec.toml")))]


@pytest.fixture(scope="module")
def version():
    return packer.detect_version()


def render_to(tmp_path: Path, spec_ref: str, provider: str, version) -> list[render.Rendered]:
    spec = load_spec(spec_ref)
    return packer_dir.write_layers(
        spec, get(provider), tmp_path / "build", version, dist_root=tmp_path / "dist"
    )


@pytest.mark.parametrize("provider", ["local", "gcp", "yandex"])
@pytest.mark.parametrize("spec_ref", SPECS, ids=[Path(s).parent.name or s for s in SPECS])
def test_rendered_directories_validate(tmp_path, version, spec_ref, provider):
    for rendered in render_to(tmp_path, spec_ref, provider, version):
        depth = packer_dir.validate_rendered(rendered, version)
        expect_full = provider != "yandex" or packer.supports_plugins(version)
        assert depth == ("full" if expect_full else "syntax + arguments")
        has_versions = (rendered.directory / "versions.pkr.hcl").exists()
        assert has_versions == packer.supports_plugins(version)


def test_packer_validate_catches_an_unknown_gcp_argument(tmp_path, version):
    (rendered, _) = render_to(tmp_path, "optimization", "gcp", version)
    source = rendered.directory / "source.pkr.hcl"
    source.write_text(source.read_text().replace("  zone ", "  zonee ", 1))
    with pytest.raises(RenderError, match="packer validate failed"):
        packer.validate(rendered.directory, env=packer_dir.validation_env(rendered))


def test_yandex_arguments_checked_against_the_plugin(tmp_path, version):
    (rendered, _) = render_to(tmp_path, "optimization", "yandex", version)
    source = rendered.directory / "source.pkr.hcl"
    source.write_text(source.read_text().replace("instance_cores ", "instance_core  ", 1))
    # Packer 1.6.6's -syntax-only does not notice; our check does.
    packer.validate(rendered.directory, syntax_only=True)
    with pytest.raises(RenderError, match="unknown argument instance_core"):
        packer_dir.check_rendered(rendered.directory, get("yandex"))


def test_missing_build_block_is_caught(tmp_path, version):
    (rendered,) = render_to(tmp_path, "optimization", "local", version)
    (rendered.directory / "build.pkr.hcl").unlink()
    with pytest.raises(RenderError, match="no build block"):
        packer_dir.check_rendered(rendered.directory, get("local"))


def test_fmt_check_catches_unformatted_files(tmp_path, version):
    (rendered,) = render_to(tmp_path, "optimization", "local", version)
    path = rendered.directory / "source.pkr.hcl"
    path.write_text(path.read_text().replace("communicator = ", "communicator     = "))
    with pytest.raises(RenderError, match="not formatted"):
        packer.fmt_check(rendered.directory)


def test_old_packer_gets_no_versions_file(tmp_path):
    (rendered, _) = render_to(tmp_path, "optimization", "gcp", (1, 9, 0))
    assert (rendered.directory / "versions.pkr.hcl").exists()
    (rendered, _) = render_to(tmp_path, "optimization", "gcp", (1, 6, 6))
    assert not (rendered.directory / "versions.pkr.hcl").exists()
