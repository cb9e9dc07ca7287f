"""export-app: the descriptor, bootstrap.sh and the zip; the command checked against
the agent config baked into the image."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from everbake.everest.agentconf import AppError
from everbake.everest.app import COMMAND, export_app, load_app
from everbake.everest.client import EverestAuthError, EverestNotFound
from everbake.fingerprint import fingerprints
from everbake.records import record_path, write_record
from everbake.spec import load_spec
from tests.fakes.everest import EverestFake


def _local_record(root: Path, *, tarball: Path | None = None, fingerprint: str = "") -> dict:
    spec = load_spec("optimization", root / "images")
    fps = fingerprints(spec)
    fp = fingerprint or fps.image
    name = f"{spec.family}-{fp[:12]}"
    record = {
        "image": name,
        "provider": "local",
        "spec": spec.name,
        "spec_canonical": spec.to_canonical(),
        "fingerprints": {"base": fps.base, "image": fp},
    }
    if tarball:
        record["artifact"] = {"path": str(tarball), "size_bytes": tarball.stat().st_size}
    write_record(record_path(root / "dist", "local", name), record)
    return record


def _image_with_agent_conf(path: Path, allowed: list[str]) -> Path:
    """A .tar.zst holding only the agent config, where 50-agent.sh installs it."""
    conf = json.dumps({"token": "AGENTTOKEN", "security": {"allowedCommands": allowed}}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("./opt/everest/agent/conf/agent.conf.template")
        info.size = len(conf)
        tar.addfile(info, io.BytesIO(conf))
    subprocess.run(["zstd", "-qf", "-o", str(path)], input=buffer.getvalue(), check=True)
    return path


def test_export_writes_descriptor_bootstrap_and_zip(repo_copy: Path, tmp_path: Path) -> None:
    record = _local_record(repo_copy)
    out = tmp_path / "app"
    done = export_app(
        "optimization", output=out, project="group/transport", images_dir=repo_copy / "images"
    )
    assert done.files == ["application.json", "bootstrap.sh", "optimization-app.zip"]
    assert "the spec's templates/agent/agent.conf.json.j2" in done.agent_config
    app = load_app(out)
    assert app["config"]["command"] == COMMAND == "bash bootstrap.sh ${version} ${debug}"
    assert set(app["inputs"]) == {"version", "parameters", "data", "debug"}
    files = {m["param"]: m["file"] for m in app["config"]["outputMappings"]}
    assert files == {
        "results": "results.zip",
        "stdout": "stdout",
        "stderr": "stderr",
        "debug_archive": "debug.zip",
        "model_version": "version.txt",
        "status": "status.txt",
        "stats": "stats.json",
        "stats_csv": "stats.csv",
        "stats_chart": "stats.svg",
    }
    assert app["everbake"]["image"] == record["image"]
    assert app["everbake"]["allowed_command"] == "bash bootstrap\\.sh .*"
    with zipfile.ZipFile(out / "optimization-app.zip") as archive:
        assert sorted(archive.namelist()) == ["application.json", "bootstrap.sh"]
        assert archive.read("bootstrap.sh") == (out / "bootstrap.sh").read_bytes()
    boot = (out / "bootstrap.sh").read_text()
    assert ': "${EVEREST_GITLAB_PROJECT:=group/transport}"' in boot
    assert ': "${EVEREST_GITLAB_TOKEN_ENV:=EVEREST_GITLAB_TOKEN}"' in boot
    assert (out / "bootstrap.sh").stat().st_mode & 0o111
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(out / "bootstrap.sh")], check=True)


def test_bootstrap_takes_the_token_from_where_the_spec_says(
    repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = repo_copy / "images" / "optimization.toml"
    spec_file.write_text(
        spec_file.read_text()
        + '\n[secrets.gitlab_token]\nmode = "metadata"\nmetadata_key = "model-token"\n'
    )
    monkeypatch.setenv("EVEREST_GITLAB_TOKEN", "glpat-never-in-files-31337")
    _local_record(repo_copy)
    export_app("optimization", output=tmp_path / "app", images_dir=repo_copy / "images")
    boot = (tmp_path / "app" / "bootstrap.sh").read_text()
    assert ': "${EVEREST_GITLAB_TOKEN_METADATA_KEY:=model-token}"' in boot
    for path in (tmp_path / "app").iterdir():
        assert b"glpat-never-in-files-31337" not in path.read_bytes()


def test_the_agent_config_in_the_image_is_what_counts(repo_copy: Path, tmp_path: Path) -> None:
    tarball = _image_with_agent_conf(tmp_path / "img.tar.zst", ["everest-bootstrap .*"])
    _local_record(repo_copy, tarball=tarball)
    out = tmp_path / "app"
    with pytest.raises(AppError) as refused:
        export_app("optimization", output=out, images_dir=repo_copy / "images")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("command 'bash bootstrap.sh v1.0 false' matches no security.")
    assert 'add "bash bootstrap\\\\.sh .*" to allowedCommands' in message
    assert "/opt/everest/agent/conf/agent.conf.template in img.tar.zst" in message
    assert not out.exists()
    # With the regex in the image's config the same export passes.
    _image_with_agent_conf(tarball, ["everest-bootstrap .*", "bash bootstrap\\.sh .*"])
    done = export_app("optimization", output=out, images_dir=repo_copy / "images")
    assert done.agent_config.startswith("read from the image")


def test_an_image_of_an_older_spec_without_its_config_is_refused(
    repo_copy: Path, tmp_path: Path
) -> None:
    _local_record(repo_copy, fingerprint="b" * 64)
    with pytest.raises(AppError, match="was built from an older optimization spec; rebuild it"):
        export_app("optimization", output=tmp_path / "app", images_dir=repo_copy / "images")


def test_a_failed_export_keeps_the_previous_one(repo_copy: Path, tmp_path: Path) -> None:
    _local_record(repo_copy)
    out = tmp_path / "app"
    export_app("optimization", output=out, images_dir=repo_copy / "images")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(AppError, match=r"cannot go into bootstrap\.sh"):
        export_app(
            "optimization", output=out, project='x"; rm -rf /', images_dir=repo_copy / "images"
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "checkout"]


def test_load_app_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(AppError, match=r"no application.json in it; export one"):
        load_app(tmp_path)
    (tmp_path / "application.json").write_text('{"config": {}}')
    with pytest.raises(AppError, match=r"config\.command is missing"):
        load_app(tmp_path)


STUB = """#!/bin/sh
# A stand-in for everest-bootstrap: records its arguments, environment and parameters.
{ printf '%s\\n' "$@"; echo "--"; env | grep '^EVEREST_' | sort; echo "--"
  cat params.json; } > seen
"""


def _run_bootstrap(app: Path, task: Path, *args: str, env: dict[str, str] | None = None):
    stub_dir = task.parent / "bin"
    stub_dir.mkdir(exist_ok=True)
    (stub_dir / "everest-bootstrap").write_text(STUB)
    (stub_dir / "everest-bootstrap").chmod(0o755)
    path = f"{stub_dir}:/usr/local/bin:/usr/bin:/bin"
    return subprocess.run(
        ["/bin/sh", str(app / "bootstrap.sh"), *args],
        cwd=task,
        env={"PATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bootstrap_sh_passes_inputs_and_settings_on(repo_copy: Path, tmp_path: Path) -> None:
    _local_record(repo_copy)
    app = export_app(
        "optimization", output=tmp_path / "app", project="g/m", images_dir=repo_copy / "images"
    ).directory
    task = tmp_path / "task"
    task.mkdir()
    (task / "params.json").write_text('{"freight": 90}')
    done = _run_bootstrap(app, task, "v1.2", "true", env={"EVEREST_GITLAB_URL": "https://gl.x"})
    assert done.returncode == 0, done.stderr
    argv, env, params = (task / "seen").read_text().split("--\n")
    assert argv.split("\n")[:8] == [
        "--ref", "v1.2", "--task-dir", str(task), "--params-file", "params.json",
        "--input", "data.archive",
    ]  # fmt: skip
    assert "EVEREST_GITLAB_PROJECT=g/m" in env.splitlines()
    assert "EVEREST_GITLAB_URL=https://gl.x" in env.splitlines()  # the environment wins
    assert "EVEREST_CACHE_DIR=/var/tmp/everest/models" in env.splitlines()
    assert json.loads(params) == {"freight": 90, "debug": True}
    # Bad inputs stop it before everest-bootstrap runs.
    (task / "seen").unlink()
    for args, message in (
        (("v1; rm -rf /", "false"), "is not a commit, tag or branch name"),
        (("v1", "yes"), "debug must be true or false"),
        ((), 'the model version (input "version") is missing'),
    ):
        bad = _run_bootstrap(app, task, *args)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr
        assert not (task / "seen").exists()


def test_update_brings_the_app_on_everest_in_line(
    everest: EverestFake, token: str, repo_copy: Path, tmp_path: Path
) -> None:
    _local_record(repo_copy)
    kwargs = {"images_dir": repo_copy / "images", "url": everest.url}
    first = export_app("optimization", output=tmp_path / "a", **kwargs)
    descriptor = json.loads((first.directory / "application.json").read_text())
    stale = {**descriptor, "config": {**descriptor["config"], "command": "bash old.sh"}}
    app_id = everest.add_app(stale, alias="optimization")
    everest.apps[app_id]["server_field"] = "kept"
    with pytest.raises(EverestNotFound, match=r"no such application on .*import the exported zip"):
        export_app("optimization", output=tmp_path / "b", update="alice/other", **kwargs)
    dry = export_app(
        "optimization", output=tmp_path / "c", update="alice/optimization", dry_run=True, **kwargs
    )
    assert (dry.action, dry.files) == ("would update", [])
    assert dry.diff == [
        '~ config.command: "bash old.sh" -> "bash bootstrap.sh ${version} ${debug}"'
    ]
    assert not (tmp_path / "c").exists()
    assert everest.apps[app_id]["config"]["command"] == "bash old.sh"
    done = export_app("optimization", output=tmp_path / "d", update=app_id, **kwargs)
    assert done.action == "updated" and done.diff == dry.diff
    assert everest.apps[app_id]["config"] == descriptor["config"]
    assert everest.apps[app_id]["server_field"] == "kept"
    again = export_app("optimization", output=tmp_path / "d", update=app_id, **kwargs)
    assert (again.action, again.diff) == ("unchanged", [])
    assert everest.count("PUT", r"/api/apps/.*") == 1


def test_update_by_someone_else_is_refused_in_one_line(
    everest: EverestFake, repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local_record(repo_copy)
    monkeypatch.setenv("EVEREST_TOKEN", everest.issue_token("bob"))
    app_id = everest.add_app({"name": "x", "config": {"command": "old"}}, owner="alice")
    with pytest.raises(EverestAuthError) as refused:
        export_app(
            "optimization",
            output=tmp_path / "app",
            update=app_id,
            url=everest.url,
            images_dir=repo_copy / "images",
        )
    assert str(refused.value) == (
        f"Everest at {everest.url} forbids PUT /api/apps/{app_id} (403): Only the owner can "
        "change the application; log in as a user with access to it"
    )
    assert not (tmp_path / "app").exists()
