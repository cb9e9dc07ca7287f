"""Fingerprint properties: deterministic, moved by every baked input, not by the rest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from everbake import naming
from everbake.fingerprint import fingerprints
from everbake.labels import FINGERPRINT_LABEL
from everbake.spec import load_spec


def fps_of(repo: Path, name: str = "optimization"):
    return fingerprints(load_spec(name, repo / "images"))


def test_same_value_in_a_fresh_process(repo):
    here = fps_of(repo)
    code = (
        "import json; from everbake.spec import load_spec; "
        "from everbake.fingerprint import fingerprints; "
        "f = fingerprints(load_spec('optimization')); print(json.dumps([f.base, f.image]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(repo)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [here.base, here.image]


def test_same_value_in_another_checkout(repo, repo_copy):
    # Different absolute path, fresh file mtimes: same fingerprints.
    assert fps_of(repo_copy) == fps_of(repo)


def edit_spec(root: Path, old: str, new: str, name: str = "optimization") -> None:
    path = root / "images" / f"{name}.toml"
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new))


def append_spec(root: Path, text: str, name: str = "optimization") -> None:
    path = root / "images" / f"{name}.toml"
    path.write_text(path.read_text() + "\n" + text + "\n")


def touch_file(root: Path, relative: str) -> None:
    path = root / relative
    path.write_text(path.read_text() + "\n# changed\n")


# Changes that must move BOTH fingerprints (they are baked into the base layer).
BASE_CHANGES = {
    "solver version": lambda r: edit_spec(r, 'version = "1.8.1"', 'version = "1.8.0"'),
    "python package": lambda r: edit_spec(r, "pulp==2.9.0", "pulp==2.8.0"),
    "apt package": lambda r: append_spec(r, '[system]\napt_packages = ["jq"]'),
    "base image pin": lambda r: append_spec(r, '[base.gcp]\nimage = "debian-12-bookworm-v1"'),
    "base script": lambda r: touch_file(r, "provisioning/30-solvers.sh"),
    "gcp template": lambda r: touch_file(r, "templates/gcp/source.pkr.hcl.j2"),
    "disk size": lambda r: append_spec(r, "[build.gcp]\ndisk_size_gb = 30"),
}
# Changes that must move ONLY the image fingerprint.
IMAGE_CHANGES = {
    "runtime source": lambda r: touch_file(r, "runtime/everest_runtime/__init__.py"),
    "runtime new file": lambda r: (r / "runtime/everest_runtime/extra.py").write_text("x = 1\n"),
    # The example has an [agent] table already: add the key to it.
    "agent sha256": lambda r: edit_spec(r, "[agent]\n", "[agent]\nsha256 = '" + "ab" * 32 + "'\n"),
    "agent ref": lambda r: edit_spec(r, "[agent]\n", "[agent]\nref = 'v2'\n"),
    "agent template": lambda r: touch_file(r, "templates/agent/agent.conf.json.j2"),
    "secret mode": lambda r: append_spec(r, "[secrets.gitlab_token]\nmode = 'metadata'"),
    "description": lambda r: edit_spec(r, "for Everest tasks", "for tasks"),
}
# Build-VM-only settings and the like: neither fingerprint moves.
NO_CHANGES = {
    "gcp zones": lambda r: append_spec(r, "[build.gcp]\nzones = ['us-central1-a']"),
    "gcp machine type": lambda r: append_spec(r, "[build.gcp]\nmachine_type = 'n2-standard-8'"),
    "gcp project": lambda r: append_spec(r, "[build.gcp]\nproject = 'other-project'"),
    "preemptible": lambda r: append_spec(r, "[build.yandex]\npreemptible = false"),
    "yandex cores": lambda r: append_spec(r, "[build.yandex]\ncores = 8"),
    "resource settings": lambda r: append_spec(r, "[resource]\nmax_instances = 9"),
    "runtime cache": lambda r: (r / "runtime/everest_runtime/__pycache__").mkdir(),
    "comment": lambda r: append_spec(r, "# just a comment"),
    # The local export's packaging: the same root filesystem in another file (the
    # tarball's suffix says which), so no cloud image is renamed by it.
    "local compression": lambda r: append_spec(
        r, '[build.local]\ncompression = "gzip"\ncompression_level = 9'
    ),
}


@pytest.mark.parametrize("change", sorted(BASE_CHANGES))
def test_base_input_moves_both(repo_copy, change):
    before = fps_of(repo_copy)
    BASE_CHANGES[change](repo_copy)
    after = fps_of(repo_copy)
    assert after.base != before.base
    assert after.image != before.image


@pytest.mark.parametrize("change", sorted(IMAGE_CHANGES))
def test_image_input_moves_only_the_image(repo_copy, change):
    before = fps_of(repo_copy)
    IMAGE_CHANGES[change](repo_copy)
    after = fps_of(repo_copy)
    assert after.base == before.base
    assert after.image != before.image


@pytest.mark.parametrize("change", sorted(NO_CHANGES))
def test_build_vm_settings_do_not_move_it(repo_copy, change):
    before = fps_of(repo_copy)
    NO_CHANGES[change](repo_copy)
    assert fps_of(repo_copy) == before


GOLDEN_EMBED = Path(__file__).resolve().parents[1] / "golden" / "embed-secret" / "spec.toml"


# Embed-mode secrets are the ones whose values the build reads from the environment,
# so they are where a value could slip into the fingerprint's inputs.
@pytest.mark.parametrize("spec_path", ["optimization", GOLDEN_EMBED], ids=["metadata", "embed"])
def test_secret_values_are_not_inputs(repo, monkeypatch, spec_path):
    spec = load_spec(spec_path)
    names = sorted({secret.env for secret in spec.secrets.values() if secret.env})
    assert names, "test setup: the spec names no secret variables"
    if spec_path == GOLDEN_EMBED:
        assert any(secret.mode == "embed" for secret in spec.secrets.values())

    def with_values(value: str):
        for name in names:
            monkeypatch.setenv(name, f"{value}-{name}")
            monkeypatch.setenv(f"PKR_VAR_secret_{name.lower()}", f"{value}-{name}")
        return fingerprints(load_spec(spec_path))

    first = with_values("value-one")
    assert with_values("value-two") == first


def test_specs_differ(repo):
    assert fps_of(repo, "optimization").base != fps_of(repo, "scip").base


NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
LABEL_KEY_RE = re.compile(r"^[a-z][-_a-z0-9]{0,62}$")


@pytest.mark.parametrize("name", ["optimization", "scip"])
@pytest.mark.parametrize("layer", ["base", "image"])
def test_names_and_labels_valid_for_both_clouds(name, layer):
    spec = load_spec(name)
    fps = fingerprints(spec)
    image = naming.image_name(spec, fps, layer)
    assert NAME_RE.match(image) and len(image) <= 63
    assert image.endswith(fps.of(layer)[:12])
    assert ("-base-" in image) == (layer == "base")
    labels = naming.labels(spec, fps, layer)
    assert labels[FINGERPRINT_LABEL] == fps.of(layer)[:48]
    for key, value in labels.items():
        assert LABEL_KEY_RE.match(key), key
        assert LABEL_VALUE_RE.match(value), (key, value)


def test_longest_family_still_gives_valid_names(write_spec, minimal_spec):
    family = "f" + "x" * 44  # the longest family validation accepts
    spec = load_spec(write_spec(minimal_spec.replace("everbake-case", family)))
    fps = fingerprints(spec)
    for layer in ("base", "image"):
        assert NAME_RE.match(naming.image_name(spec, fps, layer))


def test_the_agent_content_baked_is_an_input(repo):
    # A skipped agent ("none") never shares a fingerprint with a baked one, and an
    # unpinned agent is not known until it is fetched.
    spec = load_spec("optimization", repo / "images")
    assert not spec.agent.sha256, "test setup: the default spec does not pin its agent"
    unresolved, skipped = fingerprints(spec), fingerprints(spec, "none")
    baked = fingerprints(spec, "ab" * 32)
    assert len({unresolved.image, skipped.image, baked.image}) == 3
    assert unresolved.base == skipped.base == baked.base
