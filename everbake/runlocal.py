"""run-local: one real task inside a local image, in a scratch copy of it.

runs/<run-id>/
    root/     the image's root filesystem: an overlay on a read-only extracted
              copy of the image (dist/local/<image>.<size>-<mtime>.rootfs, made
              once per image), or, without overlayfs or with keep_root, a fresh
              unpack; removed afterwards either way
    ...       the task's outputs, copied out when the task ends (also on Ctrl-C)

Inside the copy: the model at /var/tmp/everbake-run/model, the task directory at
/var/tmp/everbake-run/task (params.json + data archive), and
`everest-bootstrap --local <model> ...` running as the image's task user with
EVEREST_AGENT_* pointing at an agent stand-in on 127.0.0.1 in this process,
which prints every status line as it arrives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from everbake import naming
from everbake.agent_standin import AgentStandin
from everbake.errors import BuildError, EverbakeError
from everbake.fingerprint import fingerprints
from everbake.localbuild import overlay
from everbake.localbuild.chroot import Chroot, chroot, remove_tree
from everbake.localbuild.export import FORMATS, SUFFIXES, unpack
from everbake.localbuild.step_plan import image_tarball
from everbake.providers.local import Local
from everbake.settings import Settings
from everbake.spec import ImageSpec
from everbake.taskproc import Finished, run_in_group
from everbake.ui import phase, say

RUN_DIR_IN_IMAGE = "/var/tmp/everbake-run"
JOB_INPUTS = ("params.json", "data.zip", "data.tar.gz")
DEFAULT_MODEL = "examples/transport"


class TaskSteps(Protocol):
    """What happens in the image's task directory, when not run-local's own steps
    (run-local --app: everbake.everest.runapp)."""

    def check_job(self, job: Path) -> None: ...
    def stage(self, job: Path, task_dir: Path, root: Path) -> list[str]: ...
    def command(self, root: Path, model_in_image: str) -> tuple[list[str], dict[str, str]]: ...
    def run(self, argv: list[str], env: dict[str, str], log: Path) -> Finished: ...
    def collect(self, task_dir: Path, run_dir: Path) -> list[str]: ...


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    run_dir: Path
    exit_code: int
    last_status: str | None
    cancelled: bool
    outputs: list[str]


def resolve_image(image: str | Path, settings: Settings) -> Path:
    """An image tarball from a path, an image name, or a spec name (its current build)."""
    text = str(image)
    path = Path(text)
    if text.endswith(SUFFIXES) and path.is_file():
        return path.resolve()
    dist = settings.dist_root_of_repo()
    for compression in FORMATS:
        named = image_tarball(dist, text, compression)
        if named.is_file():
            return named
    try:
        spec = settings.load_spec(text)
    except EverbakeError:
        raise EverbakeError(
            f"--image {text}: not an image tarball, a built image name or an image spec; "
            "see images/ for spec names"
        ) from None
    tarball = _current_tarball(spec, settings)
    if not tarball.is_file():
        from everbake.stores.local import LocalImageStore

        # The store's exact name pattern: no other family that shares the prefix.
        older = LocalImageStore(tarball.parent).latest_in_family(spec.family)
        hint = f", or run the older build: --image {older.name}" if older else ""
        raise EverbakeError(
            f"--image {text}: no local image for the current spec ({tarball.name} is missing); "
            f"build it: invoke build-image --image {text}{hint}"
        )
    return tarball


def _current_tarball(spec: ImageSpec, settings: Settings) -> Path:
    """The tarball build-image makes of ``spec`` now: the image fingerprint covers the
    agent baked, so an unpinned agent is fetched (as the build does) to name it, and
    an optional agent may have been skipped ("none")."""
    from everbake import agent_fetch
    from everbake.fingerprint import agent_candidates, expected_agent

    reachable = expected_agent(spec)
    if not spec.agent.sha256:
        with tempfile.TemporaryDirectory(prefix="everbake-agent-") as tmp:
            reachable = agent_fetch.resolve_agent(spec, Path(tmp) / "agent.tar.gz").content
    contents = agent_candidates(spec, reachable)
    dist, compression = settings.dist_root(spec), spec.build.local.compression
    tarballs = [
        image_tarball(dist, naming.image_name(spec, fingerprints(spec, c)), compression)
        for c in contents
    ]
    return next((t for t in tarballs if t.is_file()), tarballs[0])


def _copy_job(job_dir: Path, task_dir: Path) -> list[str]:
    copied = []
    for name in JOB_INPUTS:
        if (job_dir / name).is_file():
            shutil.copyfile(job_dir / name, task_dir / name)
            copied.append(name)
    return copied


def _copy_model(model: Path, dest_parent: Path) -> str:
    """Copy a model dir or archive into the image; returns its path inside the image."""
    if model.is_dir():
        shutil.copytree(
            model, dest_parent / "model", ignore=shutil.ignore_patterns("__pycache__", "job")
        )
        return f"{RUN_DIR_IN_IMAGE}/model"
    shutil.copyfile(model, dest_parent / model.name)
    return f"{RUN_DIR_IN_IMAGE}/{model.name}"


def _passwd_ids(root: Path, user: str) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` as the image knows it (its own /etc/passwd, not the host's)."""
    for line in (root / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    return None


def _new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{os.getpid()}"


def _collect(task_dir: Path, run_dir: Path, skip: set[str]) -> list[str]:
    collected: list[str] = []
    if not task_dir.is_dir():
        return collected
    for entry in sorted(task_dir.iterdir()):
        if entry.name in skip:
            continue
        dest = run_dir / entry.name
        if entry.is_dir():
            shutil.copytree(entry, dest, symlinks=True, dirs_exist_ok=True)
        elif entry.is_file():
            shutil.copy2(entry, dest)
        collected.append(entry.name)
    return collected


def run_local(
    image: str | Path | None = None,
    job_dir: Path | str = "examples/transport/job",
    *,
    model: Path | str | None = None,
    runs_dir: Path | None = None,
    user: str = "everest",
    keep_root: bool = False,
    on_status: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    steps: TaskSteps | None = None,
) -> RunOutcome:
    """Run one task of ``job_dir`` in a scratch copy of ``image`` (default: the
    settings' image); outputs -> <runs>/<id>/ (``runs_dir``, else the settings')."""
    settings = settings or Settings()
    tarball = resolve_image(settings.image if image is None else image, settings)
    job = Path(job_dir).resolve()
    model_path = Path(model).resolve() if model else settings.repo_root / DEFAULT_MODEL
    # Bad arguments fail before the image is unpacked or mounted and a run dir exists.
    if not job.is_dir():
        raise EverbakeError(f"--job {job_dir}: no such directory")
    if steps is not None:
        steps.check_job(job)
    elif not (job / "params.json").is_file():
        raise EverbakeError(f"--job {job}: no params.json in it (a job is params.json + data)")
    if not (model_path.is_dir() or model_path.is_file()):
        raise EverbakeError(f"--model {model_path}: no such directory or archive")
    run_id = _new_run_id()
    run_dir = (runs_dir or settings.runs_root()) / run_id
    root = run_dir / "root"
    run_dir.mkdir(parents=True)
    inside = root / RUN_DIR_IN_IMAGE.lstrip("/")
    task_dir = inside / "task"
    status_print = on_status or (lambda text: say(f"status: {text}"))
    # log: a task whose status client sends bad frames should hear about it.
    standin = AgentStandin("127.0.0.1", 0, on_status=status_print, log=say)
    cancelled = False
    code = 1
    scratch = run_dir / ".overlay"  # the run's changes when root is an overlay
    overlaid = False
    try:
        overlaid = not keep_root and _overlay_image(tarball, scratch, root)
        if not overlaid:
            with phase(f"unpack {tarball.name} into {root}"):
                unpack(tarball, root)
        task_dir.mkdir(parents=True)
        inputs = steps.stage(job, task_dir, root) if steps else _copy_job(job, task_dir)
        model_in_image = _copy_model(model_path, inside)
        # An image without the agent user runs the task as root.
        ids = _passwd_ids(root, user)
        task_user = user if ids else "root"
        if ids and task_user != "root":
            _chown_to(inside, *ids)
        standin.start()
        say(f"agent stand-in on 127.0.0.1:{standin.port}; task {run_id}")
        extra: dict[str, str] = {}
        if steps is not None:
            command, extra = steps.command(root, model_in_image)
        else:
            command = [
                "everest-bootstrap",
                "--local",
                model_in_image,
                "--task-dir",
                f"{RUN_DIR_IN_IMAGE}/task",
                "--cache-dir",
                f"{RUN_DIR_IN_IMAGE}/cache",
            ]
        # The task's provenance.json says where it ran (everest_runtime.provenance).
        host = {"EVEREST_HOST_KIND": Local.name}
        env = Chroot.env({**standin.env(run_id), "HOME": "/tmp", **host, **extra})
        with chroot(root) as ch:
            argv = ch.argv([_runuser(root), "-u", task_user, "--", *command])
            with phase(f"run task {run_id} ({job.name}, model {model_path.name})"):
                run = steps.run if steps else run_in_group
                finished = run(argv, env, run_dir / "task.log")
                code, cancelled = finished.exit_code, finished.cancelled
        if steps is not None:
            outputs = steps.collect(task_dir, run_dir)
        else:
            outputs = _collect(task_dir, run_dir, skip=set(inputs))
    finally:
        standin.stop()
        if overlaid:
            overlay.release(scratch)
        if root.exists() and not keep_root:
            remove_tree(root)
    last = standin.last_status
    verdict = "cancelled" if cancelled else ("done" if code == 0 else f"failed (exit {code})")
    say(f"task {verdict}; last status: {last!r}")
    say(f"outputs: {run_dir}")
    if (run_dir / "stats.svg").exists():
        say(f"CPU and memory over time: {run_dir / 'stats.svg'} (open it in a browser)")
    if not cancelled and code != 0 and not outputs:
        raise BuildError(
            f"the task failed (exit {code}) and left no outputs; see {run_dir}/task.log"
        )
    return RunOutcome(run_id, run_dir, code, last, cancelled, outputs)


def _overlay_image(tarball: Path, scratch: Path, root: Path) -> bool:
    """Mount the image read-only under this run's own upper dir at ``root``;
    False (said in one line) when overlays cannot be used here."""
    why = overlay.supported(scratch.parent)
    if why is None:
        with phase(f"image {tarball.name}: extracted copy for overlays"):
            lower = overlay.extracted_image(tarball)
        why = overlay.mount(lower, scratch, root)
    if why is not None:
        remove_tree(scratch)
        say(f"run-local: no overlay ({why}); unpacking the image instead")
        return False
    say(f"image root: overlay on {lower} at {root}")
    return True


def _chown_to(path: Path, uid: int, gid: int) -> None:
    """chown -R, symlinks themselves rather than their targets."""
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _runuser(root: Path) -> str:
    """util-linux's runuser in the image: /usr/sbin on a merged /usr (bookworm and
    later), /sbin on bullseye's mmdebstrap minbase, which has no merged /usr."""
    for path in ("/usr/sbin/runuser", "/sbin/runuser"):
        if (root / path.lstrip("/")).exists():
            return path
    raise BuildError("the image has no runuser (util-linux); it is no Debian image everbake made")
