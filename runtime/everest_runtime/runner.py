"""everest-run-task: inputs -> model -> outputs, for one task directory.

Layout of the task directory T:
  T/params.json, T/data.zip | T/data.tar.gz   inputs (names configurable)
  T/work/                                     the model's working directory
  T/work/input/                               the input archive, always unpacked here first
  T/.everest/                                 the runner's own files (logs, parameter files)
  T/results.zip T/debug.zip T/version.txt T/status.txt T/stats.json T/stats.csv T/stats.svg
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import contract as contract_mod
from . import outputs, params, versioninfo
from .errors import RuntimeFailure
from .limits import DEFAULT_LIMITS, Limits
from .stderrlog import prefixed

DEFAULT_INPUTS = ("data.zip", "data.tar.gz")


class Options(NamedTuple):
    model_dir: Path
    task_dir: Path
    params_name: str = "params.json"
    input_names: Sequence[str] = DEFAULT_INPUTS
    grace: float = 20.0
    limits: Limits = DEFAULT_LIMITS
    sample_interval: float = 1.0
    extra_secrets: Sequence[str] = ()
    metadata_url: str = ""  # "" = EVEREST_METADATA_URL, else metadata.DEFAULT_URL on GCE only
    watch_preemption: bool = True
    version: dict[str, Any] | None = None  # this run's version; default: the model dir's


_log = prefixed("everest-run-task")


class _Status:
    """Forwards status messages to the agent (or stderr) and remembers the last one."""

    def __init__(self, secrets: list[str]):
        self.secrets = secrets
        self.last = ""
        self.client = None
        try:
            from . import agentproto, status

            agent = agentproto.agent_from_env()
            if agent is not None:
                self.client = status.StatusClient(*agent)
        except Exception as exc:  # the status channel must never stop the task
            _log(f"status forwarding unavailable ({exc}); statuses go to stderr")

    def send(self, message: str, echo: bool = True) -> None:
        """Without an agent the status goes to stderr, unless `echo` is off (errors,
        which the CLI prints anyway)."""
        message = outputs.redact(message.strip(), self.secrets)
        if not message:
            return
        self.last = message
        if self.client is not None:
            self.client.send(message)
        elif echo:
            _log(f"status: {message}")

    def close(self) -> None:
        if self.client is not None:
            try:
                if not self.client.flush(3.0):
                    _log("the agent did not take every status before exit")
                self.client.close(1.0)
            except Exception as exc:
                _log(f"closing the status channel failed ({exc})")


class _Pump(threading.Thread):
    """Copies one of the model's streams through to ours and into a log, line by
    line, turning status-prefixed lines into status messages."""

    def __init__(self, source, sink, log_path: Path, prefix, status: _Status, secrets):
        super().__init__(daemon=True)
        self.source, self.sink, self.log_path = source, sink, log_path
        self.prefix = prefix.encode() if prefix else None
        self.status, self.secrets = status, [s.encode() for s in secrets]

    def run(self) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(lambda: self.source.readline(65536), b""):
                for secret in self.secrets:
                    line = line.replace(secret, outputs.REDACTED.encode())
                try:
                    self.sink.write(line)
                    self.sink.flush()
                except (OSError, ValueError):
                    pass  # our own stdout gone: keep logging, keep the model alive
                log.write(line)
                if self.prefix and line.startswith(self.prefix):
                    self.status.send(line[len(self.prefix) :].decode("utf-8", "replace"))


class _Signals:
    """Records SIGTERM/SIGINT and forwards them to the model's group at once (or as
    soon as the model is started, for a signal that came before)."""

    def __init__(self):
        self.received: list[int] = []
        self.first_at: float | None = None
        self.previous = {}
        self.pgid: int | None = None
        self.forwarded = 0

    def forward(self) -> None:
        while self.pgid is not None and self.forwarded < len(self.received):
            sig = self.received[self.forwarded]
            self.forwarded += 1
            _killpg(self.pgid, sig)

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.received.append(signum)
        self.forward()


def run(opts: Options) -> int:
    """Run one task; returns the exit status (the model's, 128+N when killed by N)."""
    task = opts.task_dir.resolve()
    work = task / "work"
    private = task / ".everest"
    secrets = outputs.secret_values(dict(os.environ), opts.extra_secrets)
    signals = _Signals()
    signals.install()
    try:
        status = _Status(secrets)
        try:
            prepared = _prepare(opts, task, work, private)
        except OSError as exc:  # e.g. work/ is a file, or the disk is full
            failure = RuntimeFailure(f"{exc.filename or task}: {exc.strerror or exc}")
            _fail_early(task, status, failure)
            raise failure from None
        except RuntimeFailure as exc:
            _fail_early(task, status, exc)
            raise
        if signals.received:
            status.send(f"cancelled before the model started: {_signame(signals.received[0])}")
            outputs.write_text(task / "status.txt", status.last + "\n")
            status.close()
            return 128 + signals.received[0]
        return _execute(opts, prepared, task, work, private, status, signals, secrets)
    finally:
        signals.restore()


def report_failure(task_dir: Path, exc: RuntimeFailure, extra_secrets: Sequence[str] = ()) -> None:
    """A failure before the runner starts (e.g. fetching the source) becomes the
    task's last status too: the agent hears it and status.txt says it."""
    secrets = outputs.secret_values(dict(os.environ), extra_secrets)
    _fail_early(task_dir, _Status(secrets), exc)


def _fail_early(task: Path, status: _Status, exc: RuntimeFailure) -> None:
    """The error becomes the task's status (status.txt too, when the directory exists)."""
    status.send(f"error: {exc}", echo=False)
    with contextlib.suppress(OSError):
        outputs.write_text(task / "status.txt", status.last + "\n")
    status.close()


class _Prepared(NamedTuple):
    contract: contract_mod.Contract
    params: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    version: dict[str, Any]
    debug: bool


def _prepare(opts: Options, task: Path, work: Path, private: Path) -> _Prepared:
    if not task.is_dir():
        raise RuntimeFailure(f"task directory {task} does not exist")
    model_dir = opts.model_dir.resolve()
    if not model_dir.is_dir():
        raise RuntimeFailure(f"--model {model_dir}: no such directory")
    spec = contract_mod.load(model_dir)
    values = params.load(task / opts.params_name)
    debug = values.get("debug", False)
    if not isinstance(debug, bool):
        raise RuntimeFailure(f'{opts.params_name}: "debug" must be true or false, not {debug!r}')
    version = opts.version if opts.version is not None else versioninfo.read(model_dir)
    outputs.write_text(task / "version.txt", versioninfo.text(version))
    private.mkdir(exist_ok=True)
    (private / "logs").mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    argv = spec.command + params.to_argv(values, spec.parameters, spec.nested, private)
    archive = next((task / n for n in opts.input_names if (task / n).is_file()), None)
    input_dir = work / "input"
    if archive is not None:
        from . import unarchive

        count = unarchive.extract(archive, input_dir, opts.limits, replace=True)
        _log(f"unpacked {archive.name}: {count} entries into work/input")
    else:
        input_dir.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        EVEREST_TASK_DIR=str(task),
        EVEREST_WORK_DIR=str(work),
        EVEREST_INPUT_DIR=str(input_dir),
        EVEREST_PARAMS_FILE=str(task / opts.params_name),
        EVEREST_MODEL_DIR=str(model_dir),
        EVEREST_MODEL_VERSION=versioninfo.short(version),
    )
    return _Prepared(spec, values, argv, env, version, debug)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _execute(opts, prep: _Prepared, task, work, private, status, signals, secrets) -> int:
    from . import proctree

    sampler = None
    # Orphans of the model come back to us, so they can be counted, ended and reaped.
    adopting = proctree.become_subreaper()
    children_before = _children_cpu()
    started = time.monotonic()
    logs = private / "logs"
    try:
        proc = subprocess.Popen(
            prep.argv,
            cwd=str(work),
            env=prep.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        failure = RuntimeFailure(
            f"cannot start {prep.argv[0]} ({exc.strerror}); check model.command"
        )
        _fail_early(task, status, failure)
        raise failure from None
    # One blocking wait in a thread reaps the model and every adopted orphan, so
    # the main thread wakes twice a second rather than polling; signal handlers
    # still run at once (event waits are interruptible).
    reaper = proctree.Reaper(proc.pid)
    reaper.start()
    pumps = [
        _Pump(
            proc.stdout,
            sys.stdout.buffer,
            logs / "stdout.log",
            prep.contract.status_prefix,
            status,
            secrets,
        ),
        _Pump(
            proc.stderr,
            sys.stderr.buffer,
            logs / "stderr.log",
            prep.contract.status_prefix,
            status,
            secrets,
        ),
    ]
    for pump in pumps:
        pump.start()
    try:
        from . import stats

        sampler = stats.Sampler(
            proc.pid,
            interval=opts.sample_interval,
            csv_path=str(task / "stats.csv"),
            adopter=os.getpid() if adopting else None,
        )
        sampler.start()
    except Exception as exc:
        sampler = None
        _log(f"statistics sampler unavailable ({exc}); stats.json from the kernel's totals")

    notice = _watch_preemption(opts, status) if opts.watch_preemption else []
    signals.pgid = proc.pid  # start_new_session: the model leads its own group
    signals.forward()
    killed = False
    while not reaper.exited.wait(0.5 if signals.first_at is None else 0.1):
        overdue = signals.first_at is not None and time.monotonic() - signals.first_at >= opts.grace
        if overdue and not killed:
            _log(f"grace period of {opts.grace:g} s over; killing the model")
            killed = _killpg(proc.pid, signal.SIGKILL)
            proctree.signal_all(proctree.descendants(os.getpid()), signal.SIGKILL)
    wall = time.monotonic() - started
    proc.returncode = reaper.returncode if reaper.returncode is not None else 0
    # What the model left behind (its group, and anything that left the group or
    # the session) must not outlive the task; once it is gone nobody holds the
    # output pipes, so the pumps end on their own.
    leftovers = proctree.end_tree(os.getpid(), grace=1.0)
    if leftovers:
        _log(f"ended {leftovers} background process(es) the model left running")
    reaper.idle.wait(2.0)
    for pump in pumps:
        pump.join(timeout=1.0)  # a process outside our reach may hold a pipe: never hang

    summary = _stats(sampler, wall, task, _children_cpu() - children_before)
    _chart(task, f"{prep.contract.name} {versioninfo.short(prep.version)}")
    rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    final = _final_status(rc, started, wall, signals, killed, status.last, opts.grace)
    n_results = _collect(prep, task, work, private, summary, secrets)
    if signals.received:
        final += "; partial results collected"
    elif notice:
        final += " (after a preemption notice)"
    if final != status.last:
        status.send(final)
    outputs.write_text(task / "status.txt", status.last + "\n")
    _log(
        f"{prep.contract.name} {versioninfo.short(prep.version)}: {final.split(';')[0]}; "
        f"{wall:.1f} s wall, {summary.get('cpu_seconds', 0):.1f} s CPU, peak RSS "
        f"{summary.get('peak_rss_bytes', 0) / 1e6:.1f} MB; results.zip: {n_results} files"
    )
    status.close()
    return rc


def _watch_preemption(opts: Options, status: _Status) -> list[bool]:
    """Start GCE's preemption watch in the background (its import included, so the
    main thread pays nothing); the returned list gets True on a notice. The SIGTERM
    that follows is what stops the model; this only tells the job earlier."""
    notice: list[bool] = []
    base = (opts.metadata_url or os.environ.get("EVEREST_METADATA_URL", "")).rstrip("/")
    if not base and not _on_gce():
        return notice  # no metadata server to ask: nothing leaves this machine

    def on_notice() -> None:
        notice.append(True)
        status.send("preemption notice: the cloud is reclaiming this VM; stopping soon")

    def start() -> None:
        try:
            from . import preemption

            preemption.watch_preemption(on_notice, base or None)
        except Exception as exc:
            _log(f"preemption watch unavailable ({exc})")

    threading.Thread(target=start, name="everest-preempt-start", daemon=True).start()
    return notice


def _on_gce() -> bool:
    """Google's documented check: the DMI product name."""
    try:
        with open("/sys/class/dmi/id/product_name") as f:
            return "Google" in f.read()
    except OSError:
        return False


def _final_status(rc, started, wall, signals: _Signals, killed, last, grace) -> str:
    if signals.received:
        sig = signals.received[0]
        kind = "preempted" if sig == signal.SIGTERM else "cancelled"
        after = (signals.first_at or started) - started
        text = f"{kind}: {_signame(sig)} after {max(after, 0):.1f} s"
        if killed:
            text += f"; killed after the {grace:g} s grace period"
        return text
    if rc == 0:
        return last or f"done: exit 0 in {wall:.1f} s"
    how = f"killed by {_signame(rc - 128)}" if rc > 128 else f"exit {rc}"
    return f"failed: {how} after {wall:.1f} s" + (f" (last status: {last})" if last else "")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stats(sampler, wall: float, task: Path, reaped_cpu: float) -> dict[str, Any]:
    """stats.json from the sampler; from the kernel's totals if it is missing or fails."""
    from . import stats

    if sampler is not None:
        try:
            summary = sampler.stop(final_cpu_seconds=reaped_cpu)
            # A model shorter than one sample can slip past the sampler; the kernel's
            # peak for the reaped tree is a floor.
            floor = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
            summary["peak_rss_bytes"] = max(summary.get("peak_rss_bytes", 0), floor)
            stats.write_summary(task / "stats.json", summary)
            return summary
        except Exception as exc:
            _log(f"statistics sampler failed ({exc}); stats.json from the kernel's totals")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = reaped_cpu
    summary = {
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # of the largest single child
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "utilisation": round(cpu / wall, 3) if wall > 0 else 0.0,
        "samples": 0,
    }
    stats.write_summary(task / "stats.json", summary)
    if not (task / "stats.csv").exists():
        outputs.write_text(task / "stats.csv", ",".join(stats.CSV_COLUMNS) + "\n")
    return summary


def _chart(task: Path, title: str) -> None:
    """stats.svg beside stats.csv; a failure is logged, never raised."""
    try:
        from . import chart

        chart.write_svg(task / "stats.csv", task / "stats.svg", title)
    except Exception as exc:
        _log(f"drawing stats.svg failed ({exc})")


def _collect(prep: _Prepared, task, work, private, summary, secrets) -> int:
    """results.zip always; debug.zip when params ask for it. Never raises."""
    n = 0
    try:
        n = outputs.write_zip(task / "results.zip", outputs.collect(work, prep.contract.results))
    except Exception as exc:
        _log(f"writing results.zip failed ({exc})")
    if not prep.debug:
        return n
    try:
        members = [(p, "work/" + name) for p, name in outputs.collect(work, prep.contract.debug)]
        for name in ("stdout.log", "stderr.log"):
            path = private / "logs" / name
            if path.exists():
                members.append((path, "logs/" + name))
        for name in ("stats.csv", "stats.json", "stats.svg", "version.txt"):
            if (task / name).exists():
                members.append((task / name, name))
        resolved = {"params": prep.params, "argv": prep.argv, "contract": prep.contract._asdict()}
        texts = [
            ("params.resolved.json", outputs.redact(json.dumps(resolved, indent=2), secrets)),
            ("environment.json", json.dumps(outputs.clean_env(prep.env, secrets), indent=2)),
        ]
        outputs.write_zip(task / "debug.zip", members, texts)
    except Exception as exc:
        _log(f"writing debug.zip failed ({exc})")
    return n
