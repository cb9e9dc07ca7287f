"""What a careless or hostile model can do to its directory, its outputs and
the runner's files while it runs, and what the task still delivers."""

from __future__ import annotations

import json
import zipfile

import pytest

from tests.runtime.cli_env import clean_env
from tests.runtime.tasks import make_model, make_task, run_task, status_text, zip_members

ODD_NAMES = r"""
import os
os.makedirs("out", exist_ok=True)
open(b"out/caf\xe9-latin1.csv", "w").write("latin-1 name")  # not UTF-8
open("out/new\nline.csv", "w").write("control character")
open("out/ok.csv", "w").write("plain")
open("out/old.csv", "w").write("from 1970")
os.utime("out/old.csv", (0, 0))  # zip cannot store dates before 1980
os.symlink("loop-b", "out/loop-a")
os.symlink("loop-a", "out/loop-b")
os.mkfifo("out/pipe.csv")
os.symlink("/etc/hostname", "out/outside.csv")
os.symlink("ok.csv", "out/inside-link.csv")
print("##status optimal: 3 files")
"""


def test_odd_result_files_cost_nothing_but_themselves(tmp_path):
    model = make_model(tmp_path, ODD_NAMES, 'results = ["out/*"]\n')
    task = make_task(tmp_path)
    result = run_task(task, model)
    assert result.returncode == 0, result.stderr.decode()
    members = zip_members(task / "results.zip")
    assert members == {
        "out/caf%E9-latin1.csv": b"latin-1 name",
        "out/new%0Aline.csv": b"control character",
        "out/ok.csv": b"plain",
        "out/old.csv": b"from 1970",
        "out/inside-link.csv": b"plain",
    }
    with zipfile.ZipFile(task / "results.zip") as zf:
        assert zf.testzip() is None
        assert zf.getinfo("out/old.csv").date_time[0] == 1980
    err = result.stderr.decode()
    assert "warning: result 'out/caf\\udce9-latin1.csv' -> 'out/caf%E9-latin1.csv'" in err
    assert status_text(task) == "optimal: 3 files"


def test_a_replaced_work_directory_gives_no_results_from_elsewhere(tmp_path):
    script = (
        "import os\nwork = os.getcwd()\nos.rename(work, work + '.old')\nos.symlink('/etc', work)\n"
    )
    model = make_model(tmp_path, script, 'results = ["*"]\n')
    task = make_task(tmp_path)
    result = run_task(task, model)
    assert result.returncode == 0, result.stderr.decode()
    assert zip_members(task / "results.zip") == {}
    assert "the work directory was replaced during the run" in status_text(task)


def test_things_left_in_the_way_of_the_outputs(tmp_path):
    # A directory where results.zip goes, and links where the temporary files
    # of status.txt and results.zip could be guessed (the runner's pid is known).
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    script = (
        "import os\n"
        "task = os.environ['EVEREST_TASK_DIR']\n"
        "os.mkdir(os.path.join(task, 'results.zip'))\n"
        "for name in ('status.txt', 'results.zip', 'stats.json'):\n"
        f"    os.symlink({str(victim)!r}, os.path.join(task, f'.{{name}}.{{os.getppid()}}.part'))\n"
        "open('answer.txt', 'w').write('42')\n"
    )
    model = make_model(tmp_path, script, 'results = ["answer.txt"]\n')
    task = make_task(tmp_path)
    result = run_task(task, model)
    assert result.returncode == 0, result.stderr.decode()
    assert victim.read_text() == "untouched"
    assert zip_members(task / "results.zip") == {"answer.txt": b"42"}
    assert [p.name for p in task.glob("results.zip.moved-aside.*")]  # kept, not deleted
    assert status_text(task).startswith("done: exit 0")


def test_a_model_that_removes_the_runners_files_still_gets_its_debug_logs(tmp_path):
    script = (
        "import os, shutil\n"
        "print('before the removal', flush=True)\n"
        "shutil.rmtree(os.path.join(os.environ['EVEREST_TASK_DIR'], '.everest'))\n"
        "print('after the removal', flush=True)\n"
    )
    task = make_task(tmp_path, {"debug": True})
    result = run_task(task, make_model(tmp_path, script))
    assert result.returncode == 0, result.stderr.decode()
    with zipfile.ZipFile(task / "debug.zip") as zf:
        log = zf.read("logs/stdout.log")
    assert b"before the removal" in log and b"after the removal" in log


def test_output_beyond_the_log_limit_still_passes_through(tmp_path):
    script = "import sys\nfor i in range(2000):\n    print('z' * 99)\n"
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script), "--max-log-bytes", "10000")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.count(b"z" * 99) == 2000
    log = (task / ".everest" / "logs" / "stdout.log").read_bytes()
    assert log.startswith(b"z" * 99) and b"stdout.log stops at 10000 bytes" in log
    assert len(log) < 10200
    assert "stdout.log cut at 10000 bytes" in status_text(task)


def test_a_huge_status_line_without_a_newline_is_cut_and_the_output_kept(tmp_path):
    script = "import sys\nsys.stdout.write('##status ' + 'w' * 300000)\n"
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"##status " + b"w" * 300000
    status = status_text(task)
    assert status.startswith("w" * 100) and len(status) < 5000


def test_a_model_closing_its_output_and_detaching_a_chatty_helper(tmp_path):
    # The helper keeps writing into the pipes after the model has gone; the
    # runner ends it and does not wait for the pipes.
    script = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    while True:\n"
        "        print('helper', flush=True)\n"
        "        time.sleep(0.01)\n"
        "time.sleep(0.2)\n"
        "os.close(1)\n"
        "print('##status model done', file=sys.stderr, flush=True)\n"
    )
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script), env=clean_env())
    assert result.returncode == 0, result.stderr.decode()
    assert b"helper" in result.stdout
    assert status_text(task) == "model done"
    assert b"ended 1 background process" in result.stderr


EXTREME = [
    ('{"depth": ' + "[" * 5000 + "]" * 5000 + "}", "parameter 'depth' is nested too deeply"),
    ('{"depth": ' + "[" * 150 + "]" * 150 + "}", "parameter 'depth' is nested more than 100"),
    ('{"a": 1, "big": ' + "7" * 5000 + "}", "parameter 'big' holds a number with 5000 digits"),
    ('{"huge": 1e999}', "parameter 'huge' holds 1e999, beyond what a floating-point"),
    ('{"nul": "a\\u0000b"}', "parameter 'nul' holds a NUL character"),
    ('{"half": "\\ud800"}', "parameter 'half' holds a lone surrogate (\\ud800)"),
    ('{"long": "' + "q" * 200000 + '"}', "parameter 'long' is 200000 bytes"),
]


EXTREME_IDS = [f"{m.split(chr(39))[1]}-{i}" for i, (_, m) in enumerate(EXTREME)]


@pytest.mark.parametrize("text, message", EXTREME, ids=EXTREME_IDS)
def test_extreme_parameters_are_one_line_and_a_failed_status(tmp_path, text, message):
    model = make_model(tmp_path, "open('ran', 'w').close()\n")
    task = make_task(tmp_path)
    (task / "params.json").write_text(text)
    result = run_task(task, model)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert status_text(task).startswith("error: ") and message in status_text(task)
    assert not (task / "work" / "ran").exists()
    if "long" in message:
        assert 'parameters = "json"' in errors[0]


def test_a_command_line_too_long_in_total_names_the_largest_parameter(tmp_path):
    model = make_model(tmp_path, "open('ran', 'w').close()\n")
    task = make_task(tmp_path, {f"p{i}": "v" * 100000 for i in range(40)} | {"big": "b" * 120000})
    result = run_task(task, model)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert "the largest parameter is 'big'" in err and 'parameters = "json"' in err
    assert "Traceback" not in err


def test_the_runners_memory_stays_bounded_whatever_the_model_sends(tmp_path):
    # 200 MB on stdout in one line, with a secret to look for, and big frames
    # on many status sessions at once.
    script = (
        "import os, socket, struct\n"
        "port = int(os.environ['EVEREST_AGENT_PORT'])\n"
        "socks = []\n"
        "for _ in range(100):\n"
        "    s = socket.create_connection(('127.0.0.1', port))\n"
        "    socks.append(s)\n"
        "    try:  # the relay may close an oversized session while we still send\n"
        "        s.sendall(struct.pack('>I', 2) + b'\\x00t' + struct.pack('>I', 15 << 20))\n"
        "        s.sendall(b'y' * (2 << 20))\n"
        "    except OSError:\n"
        "        pass\n"
        "block = b'z' * (1 << 20)\n"
        "for _ in range(200):\n"
        "    os.write(1, block)\n"
        "print('\\n##status done')\n"
    )
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script), env=clean_env(SOLVER_KEY="k-123456789"))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert len(result.stdout) == (200 << 20) + len(b"\n##status done\n")
    summary = json.loads((task / "stats.json").read_text())
    assert summary["runner_peak_rss_bytes"] < 64 << 20, summary
    assert status_text(task) == "done"


def test_junk_written_into_stats_csv_does_not_stop_the_chart(tmp_path):
    script = (
        "import os, time\n"
        "path = os.path.join(os.environ['EVEREST_TASK_DIR'], 'stats.csv')\n"
        "while not os.path.exists(path):\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.3)\n"
        "open(path, 'a').write('junk,,x\\n\\x00\\xff,not,a,row\\n1e999,nan,,,,,\\n')\n"
        "time.sleep(0.5)\n"
        "print('##status done')\n"
    )
    task = make_task(tmp_path)
    result = run_task(task, make_model(tmp_path, script), "--sample-interval", "0.1")
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert (task / "stats.svg").read_text().startswith("<svg")
    assert status_text(task) == "done"
