"""The agent's supported Pythons, read from its archive, against the image's interpreter:
refused before baking, one line naming both versions and the fixes."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from everbake import agent_python
from everbake.agent_fetch import resolve_agent
from everbake.errors import BuildError, SpecError
from everbake.spec import load_spec
from everbake.spec.python_range import Supported
from everbake.staging import AGENT_PYTHONS, stage
from tests.spec_text import without_agent_table

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "agent-src"


def _agent(tmp_path: Path, **files: str) -> Path:
    """The fixture agent with its pyproject.toml replaced by ``files`` (name -> text)."""
    agent = tmp_path / "agent-src"
    shutil.copytree(FIXTURE, agent)
    (agent / "pyproject.toml").unlink()
    for name, text in files.items():
        (agent / name.replace("_", ".", 1)).write_text(text)
    return agent


def _images(
    tmp_path: Path, image: str, agent: Path, extra: str = "", edit: tuple[str, str] = ("", "")
) -> Path:
    images = tmp_path / "images"
    images.mkdir(parents=True)
    shutil.copy(REPO / "images" / "defaults.toml", images)
    # The example's own [agent] table goes: these tests give the agent their own keys.
    text = without_agent_table((REPO / "images" / f"{image}.toml").read_text())
    if edit[0]:
        text = text.replace(*edit, 1)
    (images / f"{image}.toml").write_text(f'{text}\n[agent]\nsource = "{agent}"\n{extra}')
    return images


def _archive(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(directory, arcname="agent-master")
    return out


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("setup_cfg", "[options]\npython_requires = >=3.6, <3.10\n", ">=3.6,<3.10"),
        ("setup_py", "setup(name='a', python_requires='>=3.6,<3.10')\n", ">=3.6,<3.10"),
        ("pyproject_toml", '[project]\nrequires-python = ">=3.8"\n', ">=3.8"),
    ],
)
def test_the_range_is_read_from_the_archive_as_text(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    archive = _archive(_agent(tmp_path, **{name: text}), tmp_path / "a.tar.gz")
    found = agent_python.declared(archive)
    assert found is not None and found.text == expected
    assert name.replace("_", ".", 1) in found.where


def test_classifiers_are_the_fallback_and_silence_is_none(tmp_path: Path) -> None:
    setup = "setup(classifiers=['Programming Language :: Python :: 3.7',\n" + (
        "'Programming Language :: Python :: 3.9'])\n"
    )
    archive = _archive(_agent(tmp_path, setup_py=setup), tmp_path / "a.tar.gz")
    found = agent_python.declared(archive)
    assert found is not None and found.allowed() == ["3.7", "3.9"]
    quiet = _archive(_agent(tmp_path / "q"), tmp_path / "q.tar.gz")
    assert agent_python.declared(quiet) is None


def test_ranges_at_minor_granularity() -> None:
    def allowed(text: str) -> list[str]:
        return Supported(text, "t").allowed()

    assert allowed(">=3.6,<3.10") == ["3.6", "3.7", "3.8", "3.9"]
    assert allowed("~=3.8.1") == ["3.8"]
    assert allowed(">=2.7,!=3.0.*,!=3.1.*,<3.4") == ["2.7", "3.2", "3.3"]
    assert allowed("<=3.9,>3.7") == ["3.8", "3.9"]


def test_an_agent_for_python_up_to_39_is_refused_on_bookworm_before_baking(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path, setup_cfg="[options]\npython_requires = >=3.6,<3.10\n")
    spec = load_spec("optimization", _images(tmp_path, "optimization", agent))
    dest = tmp_path / "fetched.tar.gz"
    with pytest.raises(BuildError) as refused:
        resolve_agent(spec, dest)
    message = str(refused.value)
    assert "\n" not in message
    assert "Python is 3.11" in message and ">=3.6,<3.10" in message
    assert "bullseye (Python 3.9)" in message and "[agent] python_requires" in message
    assert not dest.exists()  # nothing fetched is left behind


def test_the_same_agent_on_the_bullseye_example_is_accepted_and_staged(tmp_path: Path) -> None:
    agent = _agent(tmp_path, setup_cfg="[options]\npython_requires = >=3.6,<3.10\n")
    spec = load_spec("optimization-py39", _images(tmp_path, "optimization-py39", agent))
    resolved = resolve_agent(spec, tmp_path / "fetched.tar.gz")
    assert resolved.supported is not None and resolved.supported.text == ">=3.6,<3.10"
    staging = tmp_path / "staging"
    wheel = tmp_path / "everest_runtime-0-py3-none-any.whl"  # staging only copies it
    wheel.write_bytes(b"")
    stage(spec, staging, image="i", fingerprints={}, scripts=[], agent=resolved, wheel=wheel)
    assert (staging / AGENT_PYTHONS).read_text() == "3.6 3.7 3.8 3.9\n"


def test_without_a_declaration_the_spec_key_decides(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    images = _images(tmp_path, "optimization", agent, 'python_requires = ">=3.8"\n')
    spec = load_spec("optimization", images)
    assert resolve_agent(spec, tmp_path / "f.tar.gz").supported == Supported(
        ">=3.8", "[agent] python_requires"
    )
    default = load_spec("optimization", _images(tmp_path / "d", "optimization", agent))
    with pytest.raises(BuildError, match=r"supports >=3\.6,<3\.10 \(\[agent\] python_requires\)"):
        resolve_agent(default, tmp_path / "g.tar.gz")


def test_a_bad_range_and_mismatched_bases_are_spec_problems(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    debian12 = ('"debian-11"', '"debian-12"')  # the first: [base.gcp]
    images = _images(tmp_path, "optimization-py39", agent, 'python_requires = "3.9+"\n', debian12)
    with pytest.raises(SpecError) as bad:
        load_spec("optimization-py39", images)
    text = str(bad.value)
    assert "agent.python_requires: '3.9+'" in text
    assert "base.gcp.image_family: 'debian-12' is Debian 12" in text
    assert "base.local.suite is 'bullseye'" in text
    py311 = ('version = "3.9"', 'version = "3.11"')
    images = _images(tmp_path / "p", "optimization-py39", agent, edit=py311)
    with pytest.raises(SpecError, match=r"python.version: '3.11' but base.local.suite 'bullseye'"):
        load_spec("optimization-py39", images)


def test_an_agent_python_path_is_checked_by_its_name_or_left_to_the_image(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path, setup_cfg="[options]\npython_requires = >=3.6,<3.10\n")
    named = _images(tmp_path / "n", "optimization", agent, 'python = "/usr/bin/python3.12"\n')
    with pytest.raises(BuildError, match=r"Python is 3\.12 \(/usr/bin/python3\.12 on bookworm\)"):
        resolve_agent(load_spec("optimization", named), tmp_path / "n.tar.gz")
    # A 3.9 the base provides is fine; a path without a version is checked in the image.
    for python in ("/usr/bin/python3.9", "/opt/py/bin/python"):
        images = _images(
            tmp_path / python.replace("/", "_"), "optimization", agent, f'python = "{python}"\n'
        )
        assert resolve_agent(load_spec("optimization", images), tmp_path / "x.tar.gz").supported
