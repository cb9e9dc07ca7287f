"""everest-run-task: inputs -> model -> outputs, for one task directory.

Layout of the task directory T:
  T/params.json, T/data.zip | T/data.tar.gz   inputs (names configurable)
  T/work/                                     the model's working directory
  T/work/input/                               the input archive, always unpacked here first
  T/.everest/                                 the runner's own files (logs, parameter files)
  T/results.zip T/debug.zip T/version.txt T/status.txt T/stats.json T/stats.csv T/stats.svg
  T/provenance.json T/metrics.json (the model's out/metrics.json, checked)

At the end, what matters most is saved first and every step is guarded: the
results, then the statistics, chart and debug archive, then status.txt (with
a small reserve of disk freed for it if the disk is full), then the final status
to the agent. Whatever was lost is named in that status.
"""

from __future__ import annotations

import contextlib
import errno
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
from . import metrics, outputs, params, provenance, redact, versioninfo
from .errors import RuntimeFailure, Stopped
from .limits import DEFAULT_LIMITS, Limits
from .stderrlog import prefixed
from .taskstatus import TaskStatus, token_variables

DEFAULT_INPUTS = ("data.zip", "data.tar.gz")
# After the grace period: ending leftovers, saving outputs and the final status
# fit in this, so SIGTERM-to-exit stays under grace + END_SECONDS (25 s by
# default) and the agent has the rest of the ~30 s the clouds give to upload.
END_SECONDS = 5.0
STATUS_SECONDS = 1.5  # of END_SECONDS, kept for the status flush
RESERVE_BYTES = 256 * 1024  # freed on a full disk so status.txt and stats.json still fit


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
    max_log_bytes: int = 1 << 30  # per log in .everest/logs (the stream itself is never cut)


_log = prefixed("everest-run-task")


class _Signals:
    """Records SIGTERM/SIGINT and forwards them at once to every process of the
    task (or as soon as the model is started, for a signal that came before)."""

    def __init__(self, grace: float = 20.0) -> None:
        self.grace = grace
        self.received: list[int] = []
        self.first_at: float | None = None
        self.previous: dict[int, Any] = {}
        self.pgid: int | None = None
        self.adopting = False  # a child subreaper: every descendant is ours to find
        self.forwarded = 0
        self.signalled: set[int] = set()  # pids sent the first signal

    def forward(self) -> None:
        from . import proctree

        while self.pgid is not None and self.forwarded < len(self.received):
            sig = self.received[self.forwarded]
            self.forwarded += 1
            _killpg(self.pgid, sig)  # the group first: what a non-Linux runner can reach
            if self.adopting:
                # Solvers in sessions of their own too, all at once, with the same grace.
                pids = [p for p in proctree.descendants(os.getpid()) if p != self.pgid]
                proctree.signal_all(pids, sig)
                self.signalled.update(pids)
            self.signalled.add(self.pgid)

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

    def stop_requested(self) -> bool:
        return bool(self.received)

    def left(self, reserve: float = 0.0) -> float | None:
        """Seconds left of grace + END_SECONDS since the first signal (None: no signal)."""
        if self.first_at is None:
            return None
        return self.first_at + self.grace + END_SECONDS - reserve - time.monotonic()

    def out_of_time(self) -> bool:
        left = self.left(STATUS_SECONDS)
        return left is not None and left <= 0


class _Reserve:
    """A few hundred KiB of disk taken at the start and given back when a write
    at the end meets a full disk, so status.txt and stats.json still fit."""

    def __init__(self, path: Path) -> None:
        self.path: Path | None = path
        try:
            with open(str(path), "wb") as handle:
                handle.write(b"\0" * RESERVE_BYTES)
        except OSError:
            self.release()

    def release(self) -> bool:
        if self.path is None:
            return False
        with contextlib.suppress(OSError):
            os.unlink(str(self.path))
        self.path = None
        return True


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    return exc.strerror or str(exc)


def run(opts: Options) -> int:
    """Run one task; returns the exit status (the model's, 128+N when killed by N)."""
    task = opts.task_dir.resolve()
    work = task / "work"
    private = task / ".everest"
    hidden = token_variables()
    tokens = [os.environ.get(name, "") for name in hidden]
    tokens.append(redact.url_credentials(os.environ.get(redact.GITLAB_URL_ENV, ""))[1])
    secrets = redact.secret_values(os.environ, [*opts.extra_secrets, *tokens])
    _protect([t for t in [*tokens, *opts.extra_secrets] if t])
    signals = _Signals(opts.grace)
    signals.install()
    status = TaskStatus(secrets, _log)
    try:
        try:
            prepared = _prepare(opts, task, work, private, hidden, secrets, signals)
        except Stopped:
            sig = signals.received[0]
            status.send(f"{_kind(sig)}: {_signame(sig)} while unpacking the input; "
                        "the model never started")  # fmt: skip
            _write_status(task, status.last, None)
            return 128 + sig
        except OSError as exc:  # e.g. work/ is a file, or the disk is full
            failure = RuntimeFailure(f"{exc.filename or task}: {exc.strerror or exc}")
            _fail_early(task, status, failure)
            raise failure from None
        except RuntimeFailure as exc:
            _fail_early(task, status, exc)
            raise
        if signals.received:
            status.send(f"cancelled before the model started: {_signame(signals.received[0])}")
            _write_status(task, status.last, prepared.reserve)
            return 128 + signals.received[0]
        return _execute(opts, prepared, task, work, private, status, signals, secrets)
    finally:
        status.close(_status_budget(signals, status))
        signals.restore()


def _protect(tokens: list[str]) -> None:
    """Nothing the model starts can read the token from this process: not from
    /proc/<runner>/environ (overwritten in place, and the process made
    undumpable), nor from its memory."""
    from . import procmem

    if tokens:
        procmem.hide(tokens)
        procmem.undumpable()


def _status_budget(signals: _Signals, status: TaskStatus) -> float:
    budget = 3.0
    left = signals.left()
    if left is not None:
        budget = min(2.0, max(0.2, left))
    if not status.agent_connected:
        budget = min(budget, 1.0)  # the agent is down: do not spend the upload's time on it
    return budget


def report_failure(task_dir: Path, exc: RuntimeFailure, extra_secrets: Sequence[str] = ()) -> None:
    """A failure before the runner starts (e.g. fetching the source) becomes the
    task's last status too: the agent hears it and status.txt says it."""
    secrets = redact.secret_values(os.environ, extra_secrets)
    status = TaskStatus(secrets, _log)
    try:
        _fail_early(task_dir, status, exc)
    finally:
        status.close(1.0)


def _fail_early(task: Path, status: TaskStatus, exc: RuntimeFailure) -> None:
    """The error becomes the task's status (status.txt too, when the directory exists)."""
    status.send(f"error: {exc}", echo=False)
    if task.is_dir():
        _write_status(task, status.last, None)


def _write_status(task: Path, text: str, reserve: _Reserve | None) -> str:
    """status.txt; "" when written, else why not (after using the reserve)."""
    problems: list[str] = []
    if not _save("status.txt", problems, reserve, lambda: outputs.write_text(
            task / "status.txt", text + "\n")):  # fmt: skip
        _log(problems[0])
        return problems[0]
    return ""


class _Prepared(NamedTuple):
    contract: contract_mod.Contract
    params: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    version: dict[str, Any]
    version_text: str
    debug: bool
    work_id: tuple[int, int]
    reserve: _Reserve
    provenance: provenance.Provenance


def _prepare(opts, task, work, private, hidden, secrets, signals) -> _Prepared:
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
    archive = next((task / n for n in opts.input_names if (task / n).is_file()), None)
    record = provenance.Provenance(version, task / opts.params_name, archive, secrets)
    version_text = redact.text(versioninfo.text(version), secrets) + record.image_line()
    outputs.write_text(task / "version.txt", version_text)
    record.write(task)
    private.mkdir(exist_ok=True)
    (private / "logs").mkdir(exist_ok=True)
    reserve = _Reserve(private / "reserve")
    work.mkdir(exist_ok=True)
    st = os.lstat(str(work))
    argv = spec.command + params.to_argv(values, spec.parameters, spec.nested, private)
    input_dir = work / "input"
    if archive is not None:
        from . import unarchive

        count = unarchive.extract(
            archive, input_dir, opts.limits, replace=True, stop=signals.stop_requested
        )
        _log(f"unpacked {archive.name}: {count} entries into work/input")
    else:
        input_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    if redact.GITLAB_URL_ENV in env:  # without a token in its user-info
        env[redact.GITLAB_URL_ENV] = redact.url_credentials(env[redact.GITLAB_URL_ENV])[0]
    env.update(
        EVEREST_TASK_DIR=str(task),
        EVEREST_WORK_DIR=str(work),
        EVEREST_INPUT_DIR=str(input_dir),
        EVEREST_PARAMS_FILE=str(task / opts.params_name),
        EVEREST_MODEL_DIR=str(model_dir),
        EVEREST_MODEL_VERSION=redact.text(versioninfo.short(version), secrets),
    )
    params.check_command_line(argv, env, values)
    work_id = (st.st_dev, st.st_ino)
    return _Prepared(
        spec, values, argv, env, version, version_text, debug, work_id, reserve, record
    )


def _kind(sig: int) -> str:
    return "preempted" if sig == signal.SIGTERM else "cancelled"


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


def _open_log(path: Path) -> int | None:
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(str(path), flags, 0o600)
    except OSError as exc:
        _log(f"cannot write {path} ({_why(exc)}); the output still passes through")
        return None


def _start(prep: _Prepared, work: Path, env: dict[str, str]) -> subprocess.Popen:
    try:
        return subprocess.Popen(
            prep.argv,
            cwd=str(work),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            raise RuntimeFailure(
                f"cannot start {prep.argv[0]}: the command line is too long for this system; "
                'set parameters = "json" in everest.toml (the model then reads a file)'
            ) from None
        raise RuntimeFailure(
            f"cannot start {prep.argv[0]} ({exc.strerror}); check model.command"
        ) from None


def _execute(opts, prep: _Prepared, task, work, private, status, signals, secrets) -> int:
    from . import proctree
    from .pump import Pump, set_pipe_size

    sampler = None
    # Orphans of the model come back to us, so they can be counted, ended and reaped.
    adopting = proctree.become_subreaper()
    signals.adopting = adopting
    children_before = _children_cpu()
    env = dict(prep.env)
    env.update(status.model_env())  # the model's agent is our relay
    started = time.monotonic()
    logs = private / "logs"
    log_fds = [_open_log(logs / "stdout.log"), _open_log(logs / "stderr.log")]
    try:
        proc = _start(prep, work, env)
    except RuntimeFailure as failure:
        _fail_early(task, status, failure)
        raise
    # One blocking wait in a thread reaps the model and every adopted orphan, so
    # the main thread wakes twice a second rather than polling; signal handlers
    # still run at once (event waits are interruptible).
    reaper = proctree.Reaper(proc.pid)
    reaper.start()
    pumps = []
    for stream, sink, log_fd, name in (
        (proc.stdout, sys.stdout, log_fds[0], "stdout.log"),
        (proc.stderr, sys.stderr, log_fds[1], "stderr.log"),
    ):
        assert stream is not None
        fd = os.dup(stream.fileno())
        stream.close()
        set_pipe_size(fd)
        sink_fd = _fileno(sink)
        pump = Pump(fd, sink_fd, log_fd, name, prep.contract.status_prefix,
                    status.from_model, secrets, opts.max_log_bytes)  # fmt: skip
        pump.start()
        pumps.append(pump)
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
    # output pipes, so the pumps end on their own. After a signal, what is still
    # running has the rest of the grace period (it was signalled with the model).
    left = signals.left(END_SECONDS)
    leftovers = proctree.end_tree(
        os.getpid(), grace=1.0 if left is None else max(0.2, left), already=signals.signalled
    )
    if leftovers:
        _log(f"ended {leftovers} background process(es) the model left running")
    budget = signals.left(STATUS_SECONDS)
    reaper.idle.wait(2.0 if budget is None else min(2.0, max(0.1, budget)))
    for pump in pumps:
        pump.join(timeout=1.0)  # a process outside our reach may hold a pipe: never hang
    status.stop_relay()

    rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    problems = [p.problem for p in pumps if p.problem]
    n_results = _results(prep, task, work, signals, problems)
    _save("metrics.json", problems, prep.reserve,
          lambda: metrics.copy(work, task, _log, lambda t: redact.text(t, secrets)))  # fmt: skip
    _save("provenance.json", problems, prep.reserve, lambda: prep.provenance.write(task, rc))
    summary = _stats(sampler, wall, task, _children_cpu() - children_before, prep, problems)
    svg = _chart(task, f"{prep.contract.name} {versioninfo.short(prep.version)}", summary,
                 prep, problems)  # fmt: skip
    if prep.debug:
        _debug(prep, task, work, log_fds, summary, svg, secrets, signals, problems)
    for log_fd in log_fds:
        if log_fd is not None:
            os.close(log_fd)
    final = _final_status(rc, started, wall, signals, killed, status.model_last, opts.grace,
                          n_results is not None, bool(notice), problems)  # fmt: skip
    lost = _write_status(task, final, prep.reserve)
    prep.reserve.release()
    if final != status.last or lost:
        status.send(final + (f"; {lost}" if lost else ""))
    outcome = _outcome(rc, wall, signals, started)
    _log(
        f"{prep.contract.name} {versioninfo.short(prep.version)}: {outcome}; "
        f"{wall:.1f} s wall, {summary.get('cpu_seconds', 0):.1f} s CPU, peak RSS "
        f"{summary.get('peak_rss_bytes', 0) / 1e6:.1f} MB; results.zip: {n_results or 0} files"
    )
    return rc


def _fileno(stream) -> int | None:
    try:
        return stream.fileno() if stream is not None else None
    except (OSError, ValueError, AttributeError):
        return None


def _watch_preemption(opts: Options, status: TaskStatus) -> list[bool]:
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


def _final_status(
    rc, started, wall, signals: _Signals, killed, last, grace, saved=True, notice=False, problems=()
) -> str:
    """The task's last status. The model's own last word (``last``) when it
    succeeded; otherwise what happened, with the model's last word after it;
    then whatever was lost on the way."""
    if signals.received:
        text = _outcome(rc, wall, signals, started)
        if killed:
            text += f"; killed after the {grace:g} s grace period"
        if saved:
            text += "; partial results collected"
    elif rc == 0:
        text = last or f"done: exit 0 in {wall:.1f} s"
        if notice:
            text += " (after a preemption notice)"
    else:
        text = _outcome(rc, wall, signals, started)
    if last and (signals.received or rc != 0):
        text += f" (last status: {last})"
    return "; ".join([text, *problems])


def _outcome(rc, wall, signals: _Signals, started: float) -> str:
    """What happened, in the runner's words (its summary line in the log)."""
    if signals.received:
        sig = signals.received[0]
        after = (signals.first_at or started) - started
        return f"{_kind(sig)}: {_signame(sig)} after {max(after, 0):.1f} s"
    if rc == 0:
        return f"done: exit 0 in {wall:.1f} s"
    how = f"killed by {_signame(rc - 128)}" if rc > 128 else f"exit {rc}"
    return f"failed: {how} after {wall:.1f} s"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _results(prep: _Prepared, task, work, signals: _Signals, problems: list[str]) -> int | None:
    """results.zip first of all outputs; the number of files, None when not written."""
    members: list[tuple[Path, str]] = []
    try:
        st = os.lstat(str(work))
        same = (st.st_dev, st.st_ino) == prep.work_id and not os.path.islink(str(work))
    except OSError:
        same = False
    if same:
        members = outputs.collect(work, prep.contract.results)
    else:
        problems.append("the work directory was replaced during the run; no results collected")
    try:
        report = outputs.write_zip(task / "results.zip", members, stop=signals.out_of_time)
    except OSError as exc:
        problems.append(f"{_why(exc)}: results.zip not written")
        _log(f"writing results.zip failed ({exc})")
        return None
    for line in report.renamed:
        _log(f"warning: result {line}: the name is not valid UTF-8 or holds control characters")
    for line in report.skipped:
        _log(f"warning: result {line}; not archived")
    if report.skipped:
        problems.append(f"{len(report.skipped)} result file(s) unreadable, not archived")
    if not report.complete:
        problems.append(
            f"results.zip incomplete: time ran out after {report.written} of {len(members)} files"
        )
    return report.written


def _own_peak_rss() -> int:
    """VmHWM of this process: unlike ru_maxrss it starts afresh at exec, so it
    is not the size of whatever forked us."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _save(what: str, problems: list[str], reserve: _Reserve | None, write) -> bool:
    """Run one small write; a full disk frees the reserve and tries once more.
    What could not be written is added to ``problems``."""
    for attempt in range(2):
        try:
            write()
            return True
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if attempt == 0 and full and reserve is not None and reserve.release():
                continue
            problems.append(f"{_why(exc)}: {what} not written")
            return False
    return False


def _stats(sampler, wall, task: Path, reaped_cpu, prep, problems) -> dict[str, Any]:
    """stats.json from the sampler (and the kernel's totals); never raises."""
    from . import stats

    floor = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    summary: dict[str, Any] | None = None
    if sampler is not None:
        try:
            # A model shorter than one sample can slip past the sampler; the kernel's
            # peak of the largest reaped process is a floor.
            summary = sampler.stop(final_cpu_seconds=reaped_cpu, peak_rss_floor=floor)
        except Exception as exc:
            _log(f"statistics sampler failed ({exc}); stats.json from the kernel's totals")
    if summary is None:
        summary = {
            "peak_rss_bytes": floor,  # of the largest single child
            "cpu_seconds": round(reaped_cpu, 3),
            "wall_seconds": round(wall, 3),
            "utilisation": round(reaped_cpu / wall, 3) if wall > 0 else 0.0,
            "samples": 0,
        }
        if not (task / "stats.csv").exists():
            _save("stats.csv", problems, prep.reserve, lambda: outputs.write_text(
                task / "stats.csv", ",".join(stats.CSV_COLUMNS) + "\n"))  # fmt: skip
    # The runner's own peak memory: bounded whatever the model prints or sends.
    summary["runner_peak_rss_bytes"] = _own_peak_rss()
    if sampler is not None and sampler.csv_problem:
        problems.append(sampler.csv_problem)
    _save(
        "stats.json",
        problems,
        prep.reserve,
        lambda: stats.write_summary(task / "stats.json", summary),
    )
    return summary


def _chart(task: Path, title: str, summary, prep, problems) -> str | None:
    """stats.svg beside stats.csv; the SVG text, None when not drawn."""
    try:
        from . import chart

        svg = chart.render_file(task / "stats.csv", title, summary)
    except Exception as exc:
        _log(f"drawing stats.svg failed ({exc})")
        return None
    if svg is not None:
        _save(
            "stats.svg", problems, prep.reserve, lambda: outputs.write_text(task / "stats.svg", svg)
        )
    return svg


def _debug(prep: _Prepared, task, work, log_fds, summary, svg, secrets, signals, problems):
    """debug.zip: everything redacted, nothing read through a link; the logs
    come from the runner's own descriptors, its files from what it wrote."""
    members: list[tuple[Any, str]] = [
        (p, "work/" + name) for p, name in outputs.collect(work, prep.contract.debug)
    ]
    for fd, name in zip(log_fds, ("stdout.log", "stderr.log")):
        if fd is not None:
            members.append((fd, "logs/" + name))
    members.append((task / "stats.csv", "stats.csv"))
    resolved = {"params": prep.params, "argv": prep.argv, "contract": prep.contract._asdict()}
    texts = [
        ("stats.json", json.dumps(summary, indent=2, sort_keys=True) + "\n"),
        ("version.txt", prep.version_text),
        ("params.resolved.json", json.dumps(resolved, indent=2)),
        ("environment.json", json.dumps(outputs.clean_env(prep.env, secrets), indent=2)),
    ]
    if svg is not None:
        texts.append(("stats.svg", svg))
    try:
        report = outputs.write_zip(task / "debug.zip", members, texts, secrets=secrets,
                                   stop=signals.out_of_time)  # fmt: skip
    except OSError as exc:
        problems.append(f"{_why(exc)}: debug.zip not written")
        return
    for line in report.skipped:
        _log(f"debug.zip: {line}; not archived")
