"""everest-run-task as a real subprocess: outputs, status forwarding to a fake
agent on 127.0.0.1, bad inputs, exit codes and preemption signals."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.fakes.agent import FaultyAgent
from tests.runtime.cli_env import EXAMPLE, PYTHON, RUNTIME, clean_env

SHELL_EXAMPLE = RUNTIME / "examples" / "shell-model"


def run_task(task: Path, *args: str, env=None, model: Path = EXAMPLE, timeout: float = 60):
    return subprocess.run(
        [PYTHON, "-m", "everest_runtime", "run-task", "--model", str(model), *args],
        cwd=task,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def task_dir(tmp_path: Path, params: dict | None = None) -> Path:
    task = tmp_path / "task"
    task.mkdir()
    if params is not None:
        (task / "params.json").write_text(json.dumps(params))
    return task


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return sorted(zf.namelist())


def write_tar_gz(path: Path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))


def test_example_model_produces_every_output(tmp_path):
    task = task_dir(tmp_path, {"supply": [20, 30], "demand": [10, 25, 15], "verbose": True})
    write_tar_gz(task / "data.tar.gz", {"costs.csv": "0,0,1\n0,1,2\n1,1,1\n1,2,3\n"})
    result = run_task(task)
    assert result.returncode == 0, result.stderr
    assert "total cost" in result.stdout  # the model's stdout goes through
    assert (task / "work" / "input" / "costs.csv").exists()  # unpacked before the start
    assert zip_names(task / "results.zip") == ["out/flows.csv", "out/summary.json"]
    with zipfile.ZipFile(task / "results.zip") as zf:
        summary = json.loads(zf.read("out/summary.json"))
    # Greedy with the archive's costs: 10*1 + 25*1 + 10*3 + 5*3 (135 with the defaults).
    assert summary == {"cost": 80.0, "complete": True}
    assert (task / "status.txt").read_text().strip() == "done: cost 80"
    assert "version: local" in (task / "version.txt").read_text()
    stats = json.loads((task / "stats.json").read_text())
    assert {"peak_rss_bytes", "cpu_seconds", "wall_seconds"} <= set(stats)
    assert (task / "stats.csv").exists()
    assert not (task / "debug.zip").exists()  # only on request
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("everest-run-task: transport ") and "results.zip: 2 files" in last


def test_statuses_reach_the_agent_and_env_is_prepared(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "everest.toml").write_text(
        '[model]\ncommand = ["python", "show.py"]\nresults = ["env.json"]\nstatus_prefix = "@@ "\n'
    )
    (model / "show.py").write_text(
        "import json, os, sys\n"
        "json.dump({k: v for k, v in os.environ.items() if k.startswith('EVEREST_')},"
        " open('env.json', 'w'))\n"
        "print('@@ Статус ✓', flush=True)\n"
        "print('@@ second', file=sys.stderr, flush=True)\n"
        "print(json.dumps(sys.argv[1:]))\n"
    )
    task = task_dir(tmp_path, {"alpha": 1, "debug": False})
    with FaultyAgent() as agent:
        env = clean_env(EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t-7")
        result = run_task(task, env=env, model=model)
        assert result.returncode == 0, result.stderr
        assert agent.wait_for(lambda: "second" in agent.statuses, 5)
    # stdout and stderr are separate pipes: both arrive, in either order.
    assert sorted(agent.statuses) == ["second", "Статус ✓"]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["--alpha", "1"]
    seen = json.loads((task / "work" / "env.json").read_text())
    assert seen["EVEREST_WORK_DIR"] == str(task / "work")
    assert seen["EVEREST_INPUT_DIR"] == str(task / "work" / "input")
    assert seen["EVEREST_PARAMS_FILE"] == str(task / "params.json")
    assert seen["EVEREST_MODEL_DIR"] == str(model)
    assert seen["EVEREST_AGENT_TASK_ID"] == "t-7"
    assert "EVEREST_MODEL_VERSION" in seen and "EVEREST_TASK_DIR" in seen


def test_debug_zip_has_logs_and_no_secrets(tmp_path):
    secret = "s3cr3t-licence-value-42"
    model = tmp_path / "model"
    model.mkdir()
    (model / "everest.toml").write_text(
        '[model]\ncommand = ["python", "leak.py"]\ndebug = ["trace/*"]\nresults = []\n'
    )
    (model / "leak.py").write_text(
        "import os\n"
        "os.makedirs('trace', exist_ok=True)\n"
        "open('trace/t.txt', 'w').write('trace')\n"
        "print('licence is', os.environ['SOLVER_LICENSE'])\n"
    )
    task = task_dir(tmp_path, {"debug": True, "note": "hello"})
    env = clean_env(SOLVER_LICENSE=secret, INNOCENT=f"x-{secret}-y", EVEREST_TASK_TOKEN="tt-9876")
    result = run_task(task, env=env, model=model)
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout  # redacted on the way through too
    names = zip_names(task / "debug.zip")
    for name in (
        "logs/stdout.log",
        "logs/stderr.log",
        "environment.json",
        "params.resolved.json",
        "stats.json",
        "version.txt",
        "work/trace/t.txt",
    ):
        assert name in names
    with zipfile.ZipFile(task / "debug.zip") as zf:
        blob = b"".join(zf.read(n) for n in names)
        env_dump = json.loads(zf.read("environment.json"))
        resolved = json.loads(zf.read("params.resolved.json"))
    assert secret.encode() not in blob and b"tt-9876" not in blob
    assert "SOLVER_LICENSE" not in env_dump and "EVEREST_TASK_TOKEN" not in env_dump
    assert env_dump["INNOCENT"] == "x-<redacted>-y"
    assert resolved["argv"][-2:] == ["--note", "hello"]  # "debug" is the runner's own


def test_run_task_sh_model_with_zip_input(tmp_path):
    task = task_dir(tmp_path)
    with zipfile.ZipFile(task / "data.zip", "w") as zf:
        zf.writestr("a.txt", "a")
        zf.writestr("d/b.txt", "b")
    result = run_task(task, model=SHELL_EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert zip_names(task / "results.zip") == ["results/count.txt"]
    with zipfile.ZipFile(task / "results.zip") as zf:
        assert zf.read("results/count.txt").strip() == b"2"
    assert (task / "status.txt").read_text().strip() == "counting input files"


def test_model_exit_status_is_the_runners(tmp_path):
    task = task_dir(tmp_path, {"fail": 3})
    result = run_task(task)
    assert result.returncode == 3
    status = (task / "status.txt").read_text()
    assert status.startswith("failed: exit 3") and "last status: done: cost" in status
    assert zip_names(task / "results.zip")  # outputs still collected


@pytest.mark.parametrize(
    "params_text, model_toml, message",
    [
        ("{bad", None, "params.json: not valid JSON"),
        ('{"costs": {"a": 1}}', None, "'costs' is a nested object"),
        ('{"debug": "yes"}', None, '"debug" must be true or false'),
        ("{}", '[model]\ncommand = ["no-such-program-xyz"]\n', "cannot start no-such-program-xyz"),
        ("{}", "", "no everest.toml and no run-task.sh"),
    ],
)
def test_bad_inputs_fail_with_one_line(tmp_path, params_text, model_toml, message):
    model = EXAMPLE
    if model_toml is not None:
        model = tmp_path / "model"
        model.mkdir()
        if model_toml:
            (model / "everest.toml").write_text(model_toml)
    task = task_dir(tmp_path)
    (task / "params.json").write_text(params_text)
    result = run_task(task, model=model)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert (task / "status.txt").read_text().startswith("error: ")


def test_malicious_input_archive_is_refused_before_the_model(tmp_path):
    task = task_dir(tmp_path, {})
    with zipfile.ZipFile(task / "data.zip", "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../../escaped.txt", "gotcha")
    result = run_task(task)
    assert result.returncode == 2
    assert "data.zip: member '../../escaped.txt' contains '..'; refused" in result.stderr
    assert not (task / "work" / "input").exists()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (task / "work" / "out").exists()  # the model never ran


def test_input_limits_are_configurable(tmp_path):
    task = task_dir(tmp_path, {})
    with zipfile.ZipFile(task / "inputs.zip", "w") as zf:
        for i in range(5):
            zf.writestr(f"f{i}", "x")
    result = run_task(task, "--input", "inputs.zip", "--max-input-files", "3")
    assert result.returncode == 2 and "inputs.zip: more than 3 files" in result.stderr
    env = clean_env(EVEREST_INPUT_NAMES="inputs.zip", EVEREST_MAX_INPUT_FILES="10")
    assert run_task(task, env=env).returncode == 0
    assert len(list((task / "work" / "input").iterdir())) == 5


def start_runner(task: Path, *args: str, model: Path = EXAMPLE) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "everest_runtime", "run-task", "--model", str(model), *args],
        cwd=task,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(stream, needle: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if needle in line:
            return
        if not line:
            break
    raise AssertionError(f"never saw {needle!r}")


def test_sigterm_is_forwarded_and_partial_results_collected(tmp_path):
    task = task_dir(tmp_path, {"iterations": 200, "sleep": 0.05})
    proc = start_runner(task)
    wait_for_line(proc.stdout, "iteration 2 of 200")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert "preempted: SIGTERM" in err  # the summary line on stderr
    assert proc.returncode == 0  # this model handles SIGTERM and exits cleanly
    status = (task / "status.txt").read_text().strip()
    assert status.startswith("preempted: SIGTERM after ")
    # The runner says what happened and keeps the model's own last word.
    assert status.endswith("; partial results collected (last status: done: cost 135)"), status
    with zipfile.ZipFile(task / "results.zip") as zf:
        assert json.loads(zf.read("out/summary.json"))["complete"] is False


def test_model_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "everest.toml").write_text(
        '[model]\ncommand = ["python", "stubborn.py"]\nresults = ["partial.txt"]\n'
    )
    (model / "stubborn.py").write_text(
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "open('partial.txt', 'w').write('half')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    task = task_dir(tmp_path, {})
    proc = start_runner(task, "--grace", "1", model=model)
    wait_for_line(proc.stdout, "ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 15
    assert proc.returncode == 128 + signal.SIGKILL
    status = (task / "status.txt").read_text().strip()
    assert status.startswith("cancelled: SIGINT after ")
    assert "killed after the 1 s grace period; partial results collected" in status
    assert zip_names(task / "results.zip") == ["partial.txt"]
    assert "grace period of 1 s over" in err


def test_preemption_notice_becomes_a_status_then_sigterm_stops(tmp_path):
    from tests.fakes.metadata import MetadataFake

    task = task_dir(tmp_path, {"iterations": 400, "sleep": 0.05})
    with MetadataFake() as meta, FaultyAgent() as agent:
        env = clean_env(
            EVEREST_PREEMPTION_WATCH="1",
            EVEREST_METADATA_URL=meta.url,
            EVEREST_AGENT_PORT=str(agent.port),
            EVEREST_AGENT_TASK_ID="t-1",
        )
        proc = subprocess.Popen(
            [PYTHON, "-m", "everest_runtime", "run-task", "--model", str(EXAMPLE)],
            cwd=task,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_line(proc.stdout, "iteration 2 of 400")
        assert agent.wait_for(lambda: len(meta.requests) >= 2, 10)  # initial read + long poll
        meta.preempt()
        assert agent.wait_for(
            lambda: any(s.startswith("preemption notice") for s in agent.statuses), 10
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert all(path.endswith("/instance/preempted") for path, _ in meta.requests)
    assert (task / "status.txt").read_text().startswith("preempted: SIGTERM after ")


def test_unusable_task_directory_is_one_line(tmp_path):
    missing = run_task(tmp_path, "--task-dir", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "task directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    task = task_dir(tmp_path, {})
    (task / "work").write_text("a file where the work directory goes")
    clash = run_task(task)
    assert clash.returncode == 2 and "Traceback" not in clash.stderr
    assert "work: File exists" in clash.stderr
    assert (task / "status.txt").read_text().startswith("error: ")


# The model starts a helper through a double fork into a new session (outside its
# process group, and orphaned before the first statistics sample); the helper
# burns CPU, then idles holding the model's stdout and stderr.
DETACHING_MODEL = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("helper.pid", "w") as f:
            f.write(str(os.getpid()))
        end = time.process_time() + 1.0
        while time.process_time() < end:
            pass
        open("burned", "w").close()
        print("helper still here", flush=True)
        time.sleep(60)
    os._exit(0)
while not os.path.exists("burned"):
    time.sleep(0.05)
print("##status model done", flush=True)
"""


def alive(pid: int) -> bool:
    """Running (a zombie has ended; its parent just has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_helper_in_its_own_session_is_ended_with_the_task_and_counted(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "m.py").write_text(DETACHING_MODEL)
    (model / "everest.toml").write_text('[model]\ncommand = ["python", "m.py"]\nresults = []\n')
    task = task_dir(tmp_path, {})
    started = time.monotonic()
    result = run_task(task, "--no-preemption-watch", model=model, timeout=90)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    helper = int((task / "work" / "helper.pid").read_text())
    try:
        assert not alive(helper), "the helper outlived the task"
        # The runner did not sit out the helper's 60 s (nor a wait on its pipes).
        assert took < 30, took
        summary = json.loads((task / "stats.json").read_text())
        assert summary["cpu_seconds"] >= 0.9, summary  # the helper's second of CPU
        assert (task / "status.txt").read_text().strip() == "model done"
    finally:
        if alive(helper):
            os.kill(helper, signal.SIGKILL)


def test_preemption_ends_a_helper_in_its_own_session_too(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    # As above, but the model keeps running until it is stopped.
    (model / "m.py").write_text(DETACHING_MODEL + "time.sleep(60)\n")
    (model / "everest.toml").write_text('[model]\ncommand = ["python", "m.py"]\nresults = []\n')
    task = task_dir(tmp_path, {})
    proc = start_runner(task, "--no-preemption-watch", model=model)
    try:
        wait_for_line(proc.stdout, "helper still here")
        helper = int((task / "work" / "helper.pid").read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert "preempted: SIGTERM" in err
        assert not alive(helper), "the helper outlived the preempted task"
    finally:
        if proc.poll() is None:
            proc.kill()
        pid_file = task / "work" / "helper.pid"
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
