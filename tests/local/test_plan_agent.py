"""plan names the image a build would bake: an unpinned agent is fetched (as
build-image does) before the local record is looked up; offline it is unknown."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from everbake import build_plan as plan
from everbake import naming
from everbake.agent_fetch import resolve_agent
from everbake.fingerprint import fingerprints
from everbake.providers import get
from everbake.records import record_path
from everbake.settings import Settings
from everbake.spec import load_spec
from tests.spec_text import without_agent_table

REPO = Path(__file__).resolve().parents[2]


def test_plan_finds_the_image_of_the_agent_content_baked(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(REPO / "images" / "defaults.toml", images)
    agent = tmp_path / "agent-src"
    shutil.copytree(REPO / "tests" / "fixtures" / "agent-src", agent)
    text = without_agent_table((REPO / "images" / "optimization.toml").read_text())
    text = text.replace("optimization", "planagent")
    (images / "planagent.toml").write_text(text + f'\n[agent]\nsource = "{agent}"\n')
    spec = load_spec("planagent", images)
    assert not spec.agent.sha256
    content = resolve_agent(spec, tmp_path / "fetched.tar.gz").content
    fps = fingerprints(spec, content)
    assert fps != fingerprints(spec)  # unpinned: not known before the fetch
    # A finished local build of that content.
    tarball = tmp_path / "image.tar.zst"
    tarball.write_bytes(b"x" * 8)
    settings = Settings(images_dir=images, dist_dir=tmp_path / "dist")
    rec = record_path(tmp_path / "dist", "local", naming.image_name(spec, fps))
    rec.parent.mkdir(parents=True)
    artifact = {"path": str(tarball), "size_bytes": 8}
    rec.write_text(json.dumps({"fingerprints": {"image": fps.image}, "artifact": artifact}))

    local = [get("local")]
    rows = plan.add_status(plan.plan_rows([spec], local), [spec], local, settings=settings)
    image = next(r for r in rows if r["layer"] == "image")
    assert (image["exists"], image["action"]) == (True, "up to date")
    assert image["fingerprint"] == fps.image and image["image_name"] == rec.stem

    rows = plan.add_status(
        plan.plan_rows([spec], local), [spec], local, offline=True, settings=settings
    )
    image = next(r for r in rows if r["layer"] == "image")
    assert image["exists"] is None and "the agent is not pinned" in image["action"]
