"""Console scripts: everest-status, everest-bootstrap, everest-run-task.

Each setting is a flag or an EVEREST_* environment variable (the flag wins).
Modules (argparse and pathlib too) are imported only when their command runs:
everest-status starts once per status, so its start-up is most of its cost.
"""

from __future__ import annotations

import os
import sys

from . import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

COMMANDS = ("status", "bootstrap", "run-task")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "") or default


def _setting(group, flag: str, env: str, help: str, default: str = "", shown: str = "", **kw):
    """A flag whose default is the environment variable ``env``; its help names both."""
    note = f"env {env}; default {shown or default}" if default or shown else f"env {env}"
    group.add_argument(flag, default=_env(env, default), help=f"{help} ({note})", **kw)


def _number(kind: Callable, text: str, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise SystemExit(f"error: {what} must be a number, not {text!r}") from None
    if value < 0:
        raise SystemExit(f"error: {what} must not be negative")
    return value


def _runner_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("task")
    group.add_argument(
        "--task-dir",
        default=_env("EVEREST_TASK_DIR", "."),
        help="task directory with the inputs, receives the outputs "
        "(env EVEREST_TASK_DIR; default: the current directory)",
    )
    _setting(
        group,
        "--params-file",
        "EVEREST_PARAMS_NAME",
        "parameters file name in the task directory",
        "params.json",
    )
    group.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="NAME",
        help="input archive name, repeatable; the first that exists is used "
        "(env EVEREST_INPUT_NAMES, comma-separated; default data.zip,data.tar.gz)",
    )
    _setting(
        group,
        "--grace",
        "EVEREST_GRACE_SECONDS",
        "seconds between forwarding SIGTERM/SIGINT and SIGKILL",
        "20",
    )
    _setting(
        group,
        "--max-input-bytes",
        "EVEREST_MAX_INPUT_BYTES",
        "largest total unpacked size of an archive",
        str(4 << 30),
        shown="4 GiB",
    )
    _setting(
        group,
        "--max-input-files",
        "EVEREST_MAX_INPUT_FILES",
        "most members in an archive",
        "200000",
    )
    _setting(
        group,
        "--max-log-bytes",
        "EVEREST_MAX_LOG_BYTES",
        "most bytes kept of each of the model's streams in .everest/logs "
        "(the stream itself always passes through whole)",
        str(1 << 30),
        shown="1 GiB",
    )
    group.add_argument(
        "--no-preemption-watch",
        action="store_true",
        default=_env("EVEREST_PREEMPTION_WATCH") == "0",
        help="do not poll the metadata server's instance/preempted "
        "(env EVEREST_PREEMPTION_WATCH=0)",
    )
    _setting(
        group,
        "--sample-interval",
        "EVEREST_SAMPLE_INTERVAL",
        "seconds between CPU/memory samples",
        "1.0",
        shown="1",
    )


def _runner_options(args: argparse.Namespace) -> dict:
    from pathlib import Path

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
        max_log_bytes=_number(int, args.max_log_bytes, "--max-log-bytes"),
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
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="everest-run-task",
        description="Run one Everest task: unpack the input archive into work/input, turn "
        "params.json into the model's arguments per its everest.toml (or run its "
        "run-task.sh), run it, and write results.zip, status.txt, version.txt, "
        'stats.json, stats.csv (and debug.zip when params has "debug": true).',
    )
    _setting(parser, "--model", "EVEREST_MODEL_DIR", "the model's source tree")
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
    import argparse

    from .bootstrap import DEFAULT_CACHE, DEFAULT_TOKEN_ENV
    from .metadata import DEFAULT_URL

    parser = argparse.ArgumentParser(
        prog="everest-bootstrap",
        description="Fetch the model's source at a version from GitLab (or a local path), "
        "cached by commit, then run the task in the task directory.",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    src = parser.add_argument_group("source")
    _setting(src, "--gitlab-url", "EVEREST_GITLAB_URL", "GitLab base URL", "https://gitlab.com")
    _setting(
        src,
        "--project",
        "EVEREST_GITLAB_PROJECT",
        "project id or path, e.g. 1234 or group/model",
    )
    _setting(src, "--ref", "EVEREST_MODEL_REF", "version: commit SHA, tag or branch")
    _setting(
        src,
        "--source",
        "EVEREST_SOURCE",
        "repository archive (rate limited) or a CI job artifact",
        "archive",
        choices=("archive", "artifact"),
    )
    _setting(
        src,
        "--artifact-job",
        "EVEREST_ARTIFACT_JOB",
        "CI job whose artifact holds the source archive",
    )
    _setting(
        src,
        "--artifact-path",
        "EVEREST_ARTIFACT_PATH",
        "path of the .tar.gz/.zip inside the job's artifacts",
    )
    _setting(
        src,
        "--local",
        "EVEREST_MODEL_LOCAL",
        "use this directory or archive instead of GitLab, for debugging",
    )
    tok = parser.add_argument_group("token (never given on the command line)")
    tok.add_argument(
        "--token-env",
        default=_env("EVEREST_GITLAB_TOKEN_ENV", DEFAULT_TOKEN_ENV),
        help=f"environment variable holding the token (default {DEFAULT_TOKEN_ENV})",
    )
    _setting(tok, "--token-file", "EVEREST_GITLAB_TOKEN_FILE", "file holding the token")
    _setting(
        tok,
        "--token-metadata-key",
        "EVEREST_GITLAB_TOKEN_METADATA_KEY",
        "VM metadata attribute holding the token",
    )
    _setting(tok, "--metadata-url", "EVEREST_METADATA_URL", "metadata server", shown=DEFAULT_URL)
    fetch = parser.add_argument_group("fetching")
    _setting(fetch, "--cache-dir", "EVEREST_CACHE_DIR", "source cache", DEFAULT_CACHE)
    _setting(fetch, "--retries", "EVEREST_RETRIES", "retries on 429/5xx/resets/truncation", "6")
    _setting(
        fetch,
        "--retry-delay",
        "EVEREST_RETRY_DELAY",
        "first backoff in seconds, doubling",
        "1.0",
        shown="1",
    )
    fetch.add_argument(
        "--verify-cache",
        action="store_true",
        default=_env("EVEREST_VERIFY_CACHE") == "1",
        help="check every cached file's sha256, not only its size "
        "(env EVEREST_VERIFY_CACHE=1); a damaged entry is fetched again",
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
            verify_cache=args.verify_cache,
        )
        if args.fetch_only:
            print(bootstrap.fetch(settings, bootstrap.TokenLookup(settings)).path)
            return 0
        rc, _ = bootstrap.run(settings, runner_options)
        return rc

    return _guarded("everest-bootstrap", body)


def status_main(argv: list[str] | None = None) -> int:
    from . import statuscli

    return statuscli.main(argv)


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
