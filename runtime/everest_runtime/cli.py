"""Console scripts: everest-status, everest-bootstrap, everest-run-task.

Each setting is a flag or an EVEREST_* environment variable (the flag wins).
Modules are imported only when their command runs, to keep start-up fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__

COMMANDS = ("status", "bootstrap", "run-task")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "") or default


def _number(kind: Callable, text: str, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise SystemExit(f"error: {what} must be a number, not {text!r}") from None
    if value < 0:
        raise SystemExit(f"error: {what} must not be negative")
    return value


def _runner_flags(parser: argparse.ArgumentParser, with_task_dir: bool = True) -> None:
    group = parser.add_argument_group("task")
    if with_task_dir:
        group.add_argument(
            "--task-dir",
            default=_env("EVEREST_TASK_DIR", "."),
            help="task directory with the inputs, receives the outputs "
            "(env EVEREST_TASK_DIR; default: the current directory)",
        )
    group.add_argument(
        "--params-file",
        default=_env("EVEREST_PARAMS_NAME", "params.json"),
        help="parameters file name in the task directory (env EVEREST_PARAMS_NAME; "
        "default params.json)",
    )
    group.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="NAME",
        help="input archive name, repeatable; the first that exists is used "
        "(env EVEREST_INPUT_NAMES, comma-separated; default data.zip,data.tar.gz)",
    )
    group.add_argument(
        "--grace",
        default=_env("EVEREST_GRACE_SECONDS", "20"),
        help="seconds between forwarding SIGTERM/SIGINT and SIGKILL "
        "(env EVEREST_GRACE_SECONDS; default 20)",
    )
    group.add_argument(
        "--max-input-bytes",
        default=_env("EVEREST_MAX_INPUT_BYTES", str(4 << 30)),
        help="largest total unpacked size of an archive (env EVEREST_MAX_INPUT_BYTES; "
        "default 4 GiB)",
    )
    group.add_argument(
        "--max-input-files",
        default=_env("EVEREST_MAX_INPUT_FILES", "200000"),
        help="most members in an archive (env EVEREST_MAX_INPUT_FILES; default 200000)",
    )
    group.add_argument(
        "--no-preemption-watch",
        action="store_true",
        default=_env("EVEREST_PREEMPTION_WATCH") == "0",
        help="do not poll the metadata server's instance/preempted "
        "(env EVEREST_PREEMPTION_WATCH=0)",
    )
    group.add_argument(
        "--sample-interval",
        default=_env("EVEREST_SAMPLE_INTERVAL", "1.0"),
        help="seconds between CPU/memory samples (env EVEREST_SAMPLE_INTERVAL; default 1)",
    )


def _runner_options(args: argparse.Namespace) -> dict:
    from .limits import Limits

    names = args.input or [n for n in _env("EVEREST_INPUT_NAMES").split(",") if n.strip()]
    options = dict(
        task_dir=Path(args.task_dir),
        params_name=args.params_file,
        grace=_number(float, args.grace, "--grace"),
        limits=Limits(
            _number(int, args.max_input_bytes, "--max-input-bytes"),
            _number(int, args.max_input_files, "--max-input-files"),
        ),
        sample_interval=_number(float, args.sample_interval, "--sample-interval") or 1.0,
        watch_preemption=not args.no_preemption_watch,
    )
    if names:
        options["input_names"] = tuple(n.strip() for n in names)
    return options


def _guarded(prog: str, body: Callable[[], int]) -> int:
    """Our errors become one line on stderr (traceback with EVEREST_DEBUG=1)."""
    from .errors import RuntimeFailure

    try:
        return body()
    except RuntimeFailure as exc:
        if _env("EVEREST_DEBUG") == "1" or _env("EVERBAKE_DEBUG") == "1":
            raise
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except OSError as exc:  # disk full, permissions: the file and the reason, no traceback
        if _env("EVEREST_DEBUG") == "1" or _env("EVERBAKE_DEBUG") == "1":
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"{prog}: error: {where}{exc.strerror or exc}\n")
        return 1


def run_task_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="everest-run-task",
        description="Run one Everest task: unpack the input archive into work/input, turn "
        "params.json into the model's arguments per its everest.toml (or run its "
        "run-task.sh), run it, and write results.zip, status.txt, version.txt, "
        'stats.json, stats.csv (and debug.zip when params has "debug": true).',
    )
    parser.add_argument(
        "--model",
        default=_env("EVEREST_MODEL_DIR"),
        help="the model's source tree (env EVEREST_MODEL_DIR)",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    _runner_flags(parser)
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model DIR is required (or set EVEREST_MODEL_DIR)")

    def body() -> int:
        from . import runner

        return runner.run(runner.Options(model_dir=Path(args.model), **_runner_options(args)))

    return _guarded("everest-run-task", body)


def bootstrap_main(argv: list[str] | None = None) -> int:
    from .bootstrap import DEFAULT_CACHE, DEFAULT_TOKEN_ENV

    parser = argparse.ArgumentParser(
        prog="everest-bootstrap",
        description="Fetch the model's source at a version from GitLab (or a local path), "
        "cached by commit, then run the task in the task directory.",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    src = parser.add_argument_group("source")
    src.add_argument(
        "--gitlab-url",
        default=_env("EVEREST_GITLAB_URL", "https://gitlab.com"),
        help="GitLab base URL (env EVEREST_GITLAB_URL; default https://gitlab.com)",
    )
    src.add_argument(
        "--project",
        default=_env("EVEREST_GITLAB_PROJECT"),
        help="project id or path, e.g. 1234 or group/model (env EVEREST_GITLAB_PROJECT)",
    )
    src.add_argument(
        "--ref",
        default=_env("EVEREST_MODEL_REF"),
        help="version: commit SHA, tag or branch (env EVEREST_MODEL_REF)",
    )
    src.add_argument(
        "--source",
        default=_env("EVEREST_SOURCE", "archive"),
        choices=("archive", "artifact"),
        help="repository archive (rate limited) or a CI job artifact (env EVEREST_SOURCE; "
        "default archive)",
    )
    src.add_argument(
        "--artifact-job",
        default=_env("EVEREST_ARTIFACT_JOB"),
        help="CI job whose artifact holds the source archive (env EVEREST_ARTIFACT_JOB)",
    )
    src.add_argument(
        "--artifact-path",
        default=_env("EVEREST_ARTIFACT_PATH"),
        help="path of the .tar.gz/.zip inside the job's artifacts (env EVEREST_ARTIFACT_PATH)",
    )
    src.add_argument(
        "--local",
        default=_env("EVEREST_MODEL_LOCAL"),
        help="use this directory or archive instead of GitLab, for debugging "
        "(env EVEREST_MODEL_LOCAL)",
    )
    tok = parser.add_argument_group("token (never given on the command line)")
    tok.add_argument(
        "--token-env",
        default=_env("EVEREST_GITLAB_TOKEN_ENV", DEFAULT_TOKEN_ENV),
        help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})",
    )
    tok.add_argument(
        "--token-file",
        default=_env("EVEREST_GITLAB_TOKEN_FILE"),
        help="file holding the token (env EVEREST_GITLAB_TOKEN_FILE)",
    )
    tok.add_argument(
        "--token-metadata-key",
        default=_env("EVEREST_GITLAB_TOKEN_METADATA_KEY"),
        help="VM metadata attribute holding the token (env EVEREST_GITLAB_TOKEN_METADATA_KEY)",
    )
    tok.add_argument(
        "--metadata-url",
        default=_env("EVEREST_METADATA_URL", "http://169.254.169.254"),
        help="metadata server (env EVEREST_METADATA_URL; default http://169.254.169.254)",
    )
    fetch = parser.add_argument_group("fetching")
    fetch.add_argument(
        "--cache-dir",
        default=_env("EVEREST_CACHE_DIR", DEFAULT_CACHE),
        help=f"source cache (env EVEREST_CACHE_DIR; default {DEFAULT_CACHE})",
    )
    fetch.add_argument(
        "--retries",
        default=_env("EVEREST_RETRIES", "6"),
        help="retries on 429/5xx/resets/truncation (env EVEREST_RETRIES; default 6)",
    )
    fetch.add_argument(
        "--retry-delay",
        default=_env("EVEREST_RETRY_DELAY", "1.0"),
        help="first backoff in seconds, doubling (env EVEREST_RETRY_DELAY; default 1)",
    )
    fetch.add_argument(
        "--fetch-only",
        action="store_true",
        help="fetch into the cache and print the model directory; run nothing",
    )
    _runner_flags(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        from . import bootstrap

        runner_options = _runner_options(args)
        settings = bootstrap.Settings(
            gitlab_url=args.gitlab_url,
            project=args.project,
            ref=args.ref,
            source=args.source,
            artifact_job=args.artifact_job,
            artifact_path=args.artifact_path,
            token_env=args.token_env,
            token_file=args.token_file,
            token_metadata_key=args.token_metadata_key,
            metadata_url=args.metadata_url,
            cache_dir=args.cache_dir,
            local=args.local,
            retries=_number(int, args.retries, "--retries"),
            retry_delay=_number(float, args.retry_delay, "--retry-delay"),
            limits=runner_options["limits"],
        )
        if args.fetch_only:
            print(bootstrap.fetch(settings, bootstrap.get_token(settings)))
            return 0
        rc, _ = bootstrap.run(settings, runner_options)
        return rc

    return _guarded("everest-bootstrap", body)


def status_main(argv: list[str] | None = None) -> int:
    from . import status

    return status.main(argv)


def module_main(argv: list[str]) -> int:
    """python -m everest_runtime <command> [args]"""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m everest_runtime {status,bootstrap,run-task} [--help] ...")
        return 0 if argv else 2
    if argv[0] == "--version":
        print("everest-runtime " + __version__)
        return 0
    command, rest = argv[0], argv[1:]
    mains = {"status": status_main, "bootstrap": bootstrap_main, "run-task": run_task_main}
    if command not in mains:
        sys.stderr.write(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}\n")
        return 2
    return mains[command](rest)
