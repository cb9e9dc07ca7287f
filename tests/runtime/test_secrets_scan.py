"""The GitLab token must not appear anywhere: not in any file the bootstrap or
runner writes (inside archives too), not in their output, not in the model's
environment or the process arguments it can see."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

from tests.fakes.gitlab import GitLabFake
from tests.fakes.metadata import MetadataFake
from tests.runtime.cli_env import PYTHON, clean_env

TOKEN = "glpat-ScanMe-7Hq2v9XwLk0p"
SHA = hashlib.sha1(b"leaky").hexdigest()

# A model that tries hard to leak: dumps its environment, its parent's command
# line and environment, reads the token file it names, and prints everything as
# results, debug files and status.
LEAKY_MODEL = {
    "everest.toml": (
        '[model]\ncommand = ["python", "leak.py"]\nresults = ["*.txt"]\ndebug = ["*.txt"]\n'
    ),
    "leak.py": (
        "import os\n"
        "env = '\\n'.join(f'{k}={v}' for k, v in os.environ.items())\n"
        "open('env.txt', 'w').write(env)\n"
        "parent = open(f'/proc/{os.getppid()}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
        "open('parent-cmdline.txt', 'wb').write(parent)\n"
        "print(env)\n"
        "print('##status', parent.decode())\n"
        # The token file's path is in the parent's argv: a model can read and print
        # it, so what the runner passes on must be redacted with the token too.
        "args = parent.split()\n"
        "if b'--token-file' in args:\n"
        "    path = args[args.index(b'--token-file') + 1].decode()\n"
        "    print('token file holds', open(path).read())\n"
    ),
}


def contents(path: Path) -> bytes:
    """A file's bytes, plus the members of a zip."""
    data = path.read_bytes()
    if data[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            data += b"".join(zf.read(name) for name in zf.namelist())
    return data


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "everest_runtime", "bootstrap", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
    )


def test_token_appears_in_no_output_file_log_or_process(tmp_path):
    env = clean_env(EVEREST_CACHE_DIR=str(tmp_path / "cache"))
    outputs = []
    with GitLabFake(token=TOKEN) as gitlab, MetadataFake({"tok": TOKEN}) as meta:
        gitlab.project(7, "team/leaky").add_commit(SHA, LEAKY_MODEL, refs=["main"])
        base = ["--gitlab-url", gitlab.url, "--project", "team/leaky", "--retry-delay", "0.01"]
        token_file = tmp_path / "secrets" / "token"
        token_file.parent.mkdir()
        token_file.write_text(TOKEN)
        runs = [
            # token from the environment, debug archive on, full run
            (["--ref", "main"], {"EVEREST_GITLAB_TOKEN": TOKEN}),
            # token from a file, then from the metadata server (warm cache by sha)
            (["--ref", SHA, "--token-file", str(token_file)], {}),
            (
                ["--ref", "main", "--token-metadata-key", "tok", "--metadata-url", meta.url],
                {},
            ),
            # failures: not found, and a server error the client gives up on
            (["--ref", "nope"], {"EVEREST_GITLAB_TOKEN": TOKEN}),
        ]
        for i, (args, extra) in enumerate(runs):
            task = tmp_path / f"task{i}"
            task.mkdir()
            (task / "params.json").write_text('{"debug": true}')
            result = run(base + args, task, {**env, **extra})
            outputs.append(result.stdout + result.stderr)
            if i < 3:
                assert result.returncode == 0, result.stderr.decode()
        gitlab.faults["commit"].extend([("status", 500)] * 3)
        task = tmp_path / "task-giveup"
        task.mkdir()
        result = run(
            [*base, "--ref", "main", "--retries", "2"], task, {**env, "EVEREST_GITLAB_TOKEN": TOKEN}
        )
        assert result.returncode == 3
        outputs.append(result.stdout + result.stderr)
        # The fake really received the token, so the scan below is meaningful.
        assert any(TOKEN in h for h in gitlab.headers_seen)

    task0 = tmp_path / "task0"
    assert (task0 / "debug.zip").exists() and (task0 / "results.zip").exists()
    with zipfile.ZipFile(task0 / "results.zip") as zf:
        model_env = zf.read("env.txt").decode()
        parent_cmdline = zf.read("parent-cmdline.txt").decode()
    assert "EVEREST_GITLAB_TOKEN" not in model_env  # the model never sees it
    assert "everest_runtime bootstrap" in parent_cmdline  # the argv was captured, token-free
    # The model did read the token file and print it; only the redaction stopped it.
    task1_log = tmp_path / "task1" / ".everest" / "logs" / "stdout.log"
    assert "token file holds <redacted>" in task1_log.read_text()

    token_file = tmp_path / "secrets" / "token"
    scanned = [p for p in tmp_path.rglob("*") if p.is_file() and p != token_file]
    assert len(scanned) > 30  # task dirs, cache, logs, archives
    leaking = [str(p) for p in scanned if TOKEN.encode() in contents(p)]
    assert leaking == []
    for output in outputs:
        assert TOKEN.encode() not in output
