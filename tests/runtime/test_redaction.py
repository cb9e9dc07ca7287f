"""One redaction on every channel that leaves a task: the output passed
through (across reads), the logs, status messages (runner, CLI, library),
debug.zip (never through a link), version.txt; and tokens kept out of the
model's environment, of ps, and of anything a GitLab URL's user-info touches."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile

from tests.fakes.agent import FaultyAgent
from tests.fakes.gitlab import GitLabFake
from tests.runtime.cli_env import PYTHON, clean_env
from tests.runtime.tasks import every_byte, make_model, make_task, run_task, status_text

SECRET = "sk-live-Q7f3Vx9pLm2Rt8Zw"
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "-----END PRIVATE KEY-----\n"
)
PEM_LINES = [line for line in PEM.splitlines() if not line.startswith("-----")]


def test_a_secret_split_across_reads_and_writes_is_still_redacted(tmp_path):
    script = (
        "import os, sys, time\n"
        "secret = os.environ['SOLVER_TOKEN']\n"
        # One write: the secret straddles the pump's 64 KiB read.
        "os.write(1, b'x' * (65536 - 7) + secret.encode() + b'\\n')\n"
        # Two writes with a pause between: the secret arrives in two reads.
        "os.write(1, b'key=' + secret[:9].encode())\n"
        "time.sleep(0.3)\n"
        "os.write(1, secret[9:].encode() + b' end\\n')\n"
        # Without any newline at all, at the very end.
        "os.write(2, b'tail ' + secret.encode())\n"
    )
    task = make_task(tmp_path)
    env = clean_env(SOLVER_TOKEN=SECRET)
    result = run_task(task, make_model(tmp_path, script), env=env)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout + result.stderr
    assert SECRET.encode() not in out
    assert out.count(b"<redacted>") == 3
    assert b"key=<redacted> end\n" in result.stdout
    assert result.stderr.startswith(b"tail <redacted>")
    assert len(result.stdout) == 65536 - 7 + len(b"<redacted>\n") + len(b"key=<redacted> end\n")
    logs = every_byte(task / ".everest")
    assert SECRET.encode() not in logs and b"<redacted>" in logs


def test_a_multi_line_secret_is_redacted_line_by_line_everywhere(tmp_path):
    script = (
        "import os\n"
        "from everest_runtime import status\n"
        "key = os.environ['SOLVER_LICENSE_KEY']\n"
        "print(key)\n"  # whole
        "print('line 3 alone:', key.splitlines()[2])\n"
        "os.makedirs('trace', exist_ok=True)\n"
        "open('trace/key.txt', 'w').write(key)\n"
        "status.send('using ' + key.splitlines()[1])\n"
        "print('##status key ' + key.splitlines()[3], flush=True)\n"
    )
    model = make_model(tmp_path, script, 'debug = ["trace/*"]\n')
    task = make_task(tmp_path, {"debug": True})
    with FaultyAgent() as agent:
        env = clean_env(
            SOLVER_LICENSE_KEY=PEM, EVEREST_AGENT_PORT=str(agent.port), EVEREST_AGENT_TASK_ID="t"
        )
        result = run_task(task, model, env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert agent.wait_for(lambda: len(agent.statuses) >= 2, 10)
    # Everything that leaves the task (the model's own work files are not a channel).
    left = every_byte(task, skip=task / "work")
    seen = result.stdout + result.stderr + left + "\n".join(agent.texts).encode()
    for line in PEM_LINES:
        assert line.encode() not in seen, line
    assert "using <redacted>" in agent.statuses
    assert b"line 3 alone: <redacted>" in result.stdout
    with zipfile.ZipFile(task / "debug.zip") as zf:
        assert b"<redacted>" in zf.read("work/trace/key.txt")  # the model's debug files too


def statusing_env(agent: FaultyAgent, **extra: str) -> dict[str, str]:
    return clean_env(
        EVEREST_AGENT_ADDRESS="127.0.0.1",
        EVEREST_AGENT_PORT=str(agent.port),
        EVEREST_AGENT_TASK_ID="t-3",
        **extra,
    )


def test_status_through_the_cli_and_the_library_is_redacted_without_a_runner(tmp_path):
    library = (
        "import os; from everest_runtime import status; "
        "status.send('lib ' + os.environ['DB_PASSWORD'])"
    )
    with FaultyAgent() as agent:
        env = statusing_env(agent, DB_PASSWORD=SECRET)
        cli = [PYTHON, "-m", "everest_runtime", "status", f"cli {SECRET}"]
        assert subprocess.run(cli, env=env, timeout=30).returncode == 0
        subprocess.run([PYTHON, "-c", library], env=env, timeout=30, check=True)
        stdin = subprocess.run(
            [PYTHON, "-m", "everest_runtime", "status", "-"],
            env=env, input=f"stdin {SECRET}\n".encode(), timeout=30, check=True,
        )  # fmt: skip
        assert stdin.returncode == 0
        assert agent.wait_for(lambda: len(agent.statuses) == 3, 10)
    assert sorted(agent.statuses) == ["cli <redacted>", "lib <redacted>", "stdin <redacted>"]


def test_the_cli_argument_is_not_visible_in_ps(tmp_path):
    # An agent that never reads: everest-status sits waiting for its confirmation.
    with FaultyAgent(read_delay=30) as agent:
        env = statusing_env(agent)
        proc = subprocess.Popen(
            [PYTHON, "-m", "everest_runtime", "status", "--timeout", "20", f"tell {SECRET}"],
            env=env,
            stderr=subprocess.PIPE,
        )
        try:
            assert agent.wait_for(lambda: agent.connections, 20)  # main() has started
            cmdline = (
                open(f"/proc/{proc.pid}/cmdline", "rb").read()  # noqa: SIM115
            )
            assert b"everest_runtime" in cmdline  # the right process
            assert SECRET.encode() not in cmdline and b"tell" not in cmdline
        finally:
            proc.kill()
            proc.wait()


def test_the_gitlab_token_never_reaches_the_model_when_the_runner_is_started_directly(tmp_path):
    script = (
        "import json, os\n"
        "open('env.json', 'w').write(json.dumps(dict(os.environ)))\n"
        "open('parent.environ', 'wb').write(open(f'/proc/{os.getppid()}/environ', 'rb').read())\n"
    )
    model = make_model(tmp_path, script, 'results = ["env.json", "parent.environ"]\n')
    task = make_task(tmp_path)
    env = clean_env(
        EVEREST_GITLAB_TOKEN=SECRET,
        MY_TOKEN_VAR="glpat-other-Zq81",
        EVEREST_GITLAB_TOKEN_ENV="MY_TOKEN_VAR",
        EVEREST_GITLAB_URL="https://oauth2:glpat-inurl-Kx55@gitlab.example.org",
    )
    result = run_task(task, model, env=env)
    assert result.returncode == 0, result.stderr.decode()
    work = task / "work"
    seen = (work / "env.json").read_bytes() + (work / "parent.environ").read_bytes()
    for token in (SECRET, "glpat-other-Zq81", "glpat-inurl-Kx55"):
        assert token.encode() not in seen, token
    model_env = json.loads((work / "env.json").read_text())
    assert "EVEREST_GITLAB_TOKEN" not in model_env and "MY_TOKEN_VAR" not in model_env
    assert model_env["EVEREST_GITLAB_URL"] == "https://gitlab.example.org"  # no user-info


def test_a_token_in_the_gitlab_urls_user_info_is_used_and_never_echoed(tmp_path):
    token = "glpat-UserInfo-9vQ2m"
    sha = hashlib.sha1(b"userinfo").hexdigest()
    files = {
        "everest.toml": '[model]\ncommand = ["python", "m.py"]\n',
        # The bootstrap's command line and environment as any process of its user
        # reads them, kept in a work file (not redacted: only the scan below looks).
        "m.py": (
            "import os\n"
            "print(os.environ.get('EVEREST_MODEL_VERSION'))\n"
            "proc = f'/proc/{os.getppid()}'\n"
            "seen = open(proc + '/cmdline', 'rb').read() + open(proc + '/environ', 'rb').read()\n"
            "open('parent.bin', 'wb').write(seen)\n"
        ),
    }
    env = clean_env(EVEREST_CACHE_DIR=str(tmp_path / "cache"))
    outputs = b""
    with GitLabFake(token=token) as gitlab:
        gitlab.project(7, "team/m").add_commit(sha, files, refs=["main"])
        url = gitlab.url.replace("http://", f"http://oauth2:{token}@")
        for i, ref in enumerate(("main", "missing")):
            task = make_task(tmp_path, name=f"task{i}")
            done = subprocess.run(
                [PYTHON, "-m", "everest_runtime", "bootstrap", "--gitlab-url", url,
                 "--project", "team/m", "--ref", ref, "--retry-delay", "0.01",
                 "--no-preemption-watch"],
                cwd=task, env=env, capture_output=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == (0 if ref == "main" else 3), done.stderr.decode()
            outputs += done.stdout + done.stderr
        assert all(ok for _, _, ok in gitlab.requests)  # the token went as the header
    assert "version: main" in (tmp_path / "task0" / "version.txt").read_text()
    assert b"--gitlab-url" in (tmp_path / "task0" / "work" / "parent.bin").read_bytes()
    assert "not found" in status_text(tmp_path / "task1")
    assert token.encode() not in outputs + every_byte(tmp_path)


def test_debug_zip_never_follows_a_link_and_redacts_what_the_model_wrote_into_the_logs(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("PRIVATE-FILE-CONTENT")
    script = (
        "import os, time\n"
        f"outside = {str(outside)!r}\n"
        "task = os.environ['EVEREST_TASK_DIR']\n"
        "print('hello', flush=True)\n"
        "logs = os.path.join(task, '.everest', 'logs')\n"
        "with open(os.path.join(logs, 'stderr.log'), 'a') as log:\n"  # past the pump
        "    log.write('appended ' + os.environ['API_SECRET'] + '\\n')\n"
        "os.remove(os.path.join(logs, 'stdout.log'))\n"
        "os.symlink(outside, os.path.join(logs, 'stdout.log'))\n"
        "for name in ('stats.csv', 'version.txt'):\n"
        "    while not os.path.exists(os.path.join(task, name)):\n"  # the sampler's file
        "        time.sleep(0.01)\n"
        "    os.remove(os.path.join(task, name))\n"
        "    os.symlink(outside, os.path.join(task, name))\n"
        "os.makedirs('trace', exist_ok=True)\n"
        "os.symlink(outside, 'trace/link.txt')\n"
        "os.symlink('real.txt', 'trace/inside-link.txt')\n"
        "open('trace/real.txt', 'w').write('real')\n"
    )
    model = make_model(tmp_path, script, 'debug = ["trace/*"]\n')
    task = make_task(tmp_path, {"debug": True})
    result = run_task(task, model, env=clean_env(API_SECRET=SECRET))
    assert result.returncode == 0, result.stderr.decode()
    with zipfile.ZipFile(task / "debug.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    blob = b"".join(members.values())
    assert b"PRIVATE-FILE-CONTENT" not in blob
    assert SECRET.encode() not in blob
    assert b"appended <redacted>" in members["logs/stderr.log"]
    assert b"hello" in members["logs/stdout.log"]  # the runner's own log, not the link
    assert members["version.txt"].startswith(b"version: ")
    assert "work/trace/link.txt" not in members


def test_tokens_are_hidden_from_the_runners_own_proc_files(tmp_path):
    # What any process of the same user could read while the task runs.
    script = "import time\nprint('up', flush=True)\ntime.sleep(30)\n"
    task = make_task(tmp_path)
    env = clean_env(EVEREST_GITLAB_TOKEN=SECRET)
    proc = subprocess.Popen(
        [PYTHON, "-m", "everest_runtime", "run-task", "--model",
         str(make_model(tmp_path, script)), "--no-preemption-watch"],
        cwd=task, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        environ = open(f"/proc/{proc.pid}/environ", "rb").read()  # noqa: SIM115
        assert SECRET.encode() not in environ
        assert b"EVEREST_GITLAB_TOKEN=" in environ  # the right place was read
    finally:
        proc.kill()
        proc.wait()
