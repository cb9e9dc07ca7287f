"""export-app: the descriptor, bootstrap.sh and the zip; the command checked against
the agent config baked into the image."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from everbake.everest.agentconf import AppError
from everbake.everest.app import COMMAND, export_app, load_app, requirements, schema_problems
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
    assert done.files == [
        "ApplicationFiles/bootstrap.sh", "application.json", "everbake.json",
        "optimization-app.zip",
    ]  # fmt: skip
    assert "the spec's templates/agent/agent.conf.json.j2" in done.agent_config
    app = load_app(out)
    assert schema_problems(app) == []
    # Exactly the top-level keys of Everest's own exports.
    assert set(app) == {
        "alias", "name", "annotation", "keywords", "description", "inputs", "outputs", "type",
        "config", "retryFailedTasks", "files", "version",
    }  # fmt: skip
    assert app["type"] == "application" and app["files"] == []
    assert app["config"]["command"] == COMMAND == "bash bootstrap.sh"
    assert set(app["inputs"]) == {"version", "parameters", "data", "debug"}
    for declared in [*app["inputs"].values(), *app["outputs"].values()]:
        assert isinstance(declared["required"], bool) and "optional" not in declared
    required = {name for name, d in app["inputs"].items() if d["required"]}
    assert required == {"version", "parameters"}
    # Values reach the task as files: every input has a mapping, with "pattern".
    assert app["config"]["inputMappings"] == [
        {"param": "version", "file": "input-version.txt", "pattern": ""},
        {"param": "parameters", "file": "params.json", "pattern": ""},
        {"param": "data", "file": "data.archive", "pattern": ""},
        {"param": "debug", "file": "input-debug.txt", "pattern": ""},
    ]
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
        "metrics": "metrics.json",
        "provenance": "provenance.json",
    }
    assert all(m["pattern"] == "" for m in app["config"]["outputMappings"])
    optional = {name for name, d in app["outputs"].items() if not d["required"]}
    assert optional == {"results", "debug_archive", "stats_chart", "metrics", "provenance"}
    assert app["outputs"]["metrics"]["format"] == "uri"
    reqs = app["config"]["resourceRequirements"]
    assert set(reqs) == {"nodes", "coresPerNode", "memoryPerCore", "timeLimit"}
    assert all(set(r) == {"defaultValue", "allowOverride"} for r in reqs.values())
    assert app["retryFailedTasks"] is False  # everbake resubmits preempted jobs itself
    meta = json.loads((out / "everbake.json").read_text())
    assert meta["image"] == record["image"] and meta["spec"] == "optimization"
    assert meta["fingerprint"] == record["fingerprints"]["image"]
    assert meta["allowed_command"] == "bash bootstrap\\.sh"
    assert record["image"] in app["description"]
    with zipfile.ZipFile(out / "optimization-app.zip") as archive:
        assert sorted(archive.namelist()) == [
            "ApplicationFiles/", "ApplicationFiles/bootstrap.sh", "application.json",
        ]  # fmt: skip
        assert json.loads(archive.read("application.json")) == app
        boot_in_zip = archive.read("ApplicationFiles/bootstrap.sh")
    script = out / "ApplicationFiles" / "bootstrap.sh"
    assert boot_in_zip == script.read_bytes()
    boot = script.read_text()
    assert ': "${EVEREST_GITLAB_PROJECT:=group/transport}"' in boot
    assert ': "${EVEREST_GITLAB_TOKEN_ENV:=EVEREST_GITLAB_TOKEN}"' in boot
    assert script.stat().st_mode & 0o111
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(script)], check=True)


def test_resource_requirements_come_from_the_spec_s_resource(repo_copy: Path) -> None:
    spec = load_spec("optimization", repo_copy / "images")
    # yandex: 4 cores and 16 GB per VM, one task slot (images/defaults.toml)
    reqs = requirements(spec, {"provider": "yandex"})
    assert reqs["coresPerNode"] == {"defaultValue": 4, "allowOverride": False}
    assert reqs["memoryPerCore"] == {"defaultValue": 4, "allowOverride": False}
    assert reqs["nodes"]["defaultValue"] == 1
    # gcp: the vCPUs of the machine type; the local provider has no machine
    assert requirements(spec, {"provider": "gcp"})["coresPerNode"]["defaultValue"] == 4
    assert requirements(spec, {"provider": "local"})["coresPerNode"]["defaultValue"] == 1


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
    boot = (tmp_path / "app" / "ApplicationFiles" / "bootstrap.sh").read_text()
    assert ': "${EVEREST_GITLAB_TOKEN_METADATA_KEY:=model-token}"' in boot
    for path in (tmp_path / "app").rglob("*"):
        assert path.is_dir() or b"glpat-never-in-files-31337" not in path.read_bytes()


def test_the_agent_config_in_the_image_is_what_counts(repo_copy: Path, tmp_path: Path) -> None:
    tarball = _image_with_agent_conf(tmp_path / "img.tar.zst", ["bash bootstrap\\.sh .*"])
    _local_record(repo_copy, tarball=tarball)
    out = tmp_path / "app"
    with pytest.raises(AppError) as refused:
        export_app("optimization", output=out, images_dir=repo_copy / "images")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("command 'bash bootstrap.sh' matches no security.")
    assert 'add "bash bootstrap\\\\.sh" to allowedCommands' in message
    assert "/opt/everest/agent/conf/agent.conf.template in img.tar.zst" in message
    assert not out.exists()
    # With the regex in the image's config the same export passes.
    _image_with_agent_conf(tarball, ["everest-bootstrap .*", "bash bootstrap\\.sh"])
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
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(AppError, match=r"cannot go into bootstrap\.sh"):
        export_app(
            "optimization", output=out, project='x"; rm -rf /', images_dir=repo_copy / "images"
        )
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "checkout"]


def test_load_app_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(AppError, match=r"no application.json in it; export one"):
        load_app(tmp_path)
    (tmp_path / "application.json").write_text('{"config": {}}')
    with pytest.raises(AppError) as refused:
        load_app(tmp_path)
    assert "application.json: not Everest's application format: " in str(refused.value)
    assert "\n" not in str(refused.value)


STUB = """#!/bin/sh
# A stand-in for everest-bootstrap: records its arguments, environment and parameters.
{ printf '%s\\n' "$@"; echo "--"; env | grep '^EVEREST_' | sort; echo "--"
  cat params.json; } > seen
"""


def _run_bootstrap(app: Path, task: Path, env: dict[str, str] | None = None):
    stub_dir = task.parent / "bin"
    stub_dir.mkdir(exist_ok=True)
    (stub_dir / "everest-bootstrap").write_text(STUB)
    (stub_dir / "everest-bootstrap").chmod(0o755)
    path = f"{stub_dir}:/usr/local/bin:/usr/bin:/bin"
    shutil.copy(app / "ApplicationFiles" / "bootstrap.sh", task / "bootstrap.sh")
    # The app's fixed command, in the task directory, as the agent runs it.
    return subprocess.run(
        shlex.split(COMMAND),
        cwd=task,
        env={"PATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _values(task: Path, **values: str | None) -> None:
    """What Everest writes for the job's value inputs: one file per mapped input."""
    for name, text in values.items():
        path = task / f"input-{name}.txt"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)


def test_bootstrap_sh_reads_the_value_files_and_passes_settings_on(
    repo_copy: Path, tmp_path: Path
) -> None:
    _local_record(repo_copy)
    app = export_app(
        "optimization", output=tmp_path / "app", project="g/m", images_dir=repo_copy / "images"
    ).directory
    task = tmp_path / "task"
    task.mkdir()
    (task / "params.json").write_text('{"freight": 90}')
    _values(task, version="v1.2\n", debug="true")
    done = _run_bootstrap(app, task, env={"EVEREST_GITLAB_URL": "https://gl.x"})
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
    # No debug file (an optional input left out): false, parameters untouched.
    (task / "params.json").write_text('{"freight": 90}')
    _values(task, version=" v1.3 ", debug=None)
    assert _run_bootstrap(app, task).returncode == 0
    assert (task / "seen").read_text().split("\n")[1] == "v1.3"
    assert json.loads((task / "params.json").read_text()) == {"freight": 90}
    # Bad values stop it before everest-bootstrap runs: one line, exit 2.
    (task / "seen").unlink()
    for version, debug, message in (
        ("v1; rm -rf /", "false", "is not a commit, tag or branch name"),
        ("v1\nv2", "false", "is not a commit, tag or branch name"),
        ("-v1", "false", "is not a commit, tag or branch name"),
        ("v1", "yes", "debug must be true or false"),
        (None, "false", 'the model version (input "version", file input-version.txt) is missing'),
        ("", "false", "is missing"),
    ):
        _values(task, version=version, debug=debug)
        bad = _run_bootstrap(app, task)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
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
    assert dry.diff == ['~ config.command: "bash old.sh" -> "bash bootstrap.sh"']
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
