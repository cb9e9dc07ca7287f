"""everest-status MESSAGE: one status to this task's agent, for shell-based models.

Started once per status, so start-up is most of its cost: it imports only what a
plain message needs (argparse only for --help, --version, --timeout and errors;
the queueing client only for '-', stdin lines)."""

from __future__ import annotations

import os
import sys
import time

from . import agentproto, redact
from .stderrlog import write_line

DEFAULT_TIMEOUT = 5.0


def deliver_once(
    agent: tuple[str, int, str], messages: list[str], timeout: float = DEFAULT_TIMEOUT
) -> str | None:
    """Open a session, send the messages, end it as the protocol says; None when
    the agent closed cleanly after reading them, else what went wrong."""
    import socket

    address, port, task_id = agent
    deadline = time.monotonic() + timeout
    payload = agentproto.handshake(task_id) + b"".join(map(agentproto.text_frame, messages))
    # An ASCII host as bytes: getaddrinfo() then skips the idna codec (unicodedata,
    # stringprep), a third of this command's start-up.
    host = address.encode("ascii") if address.isascii() else address
    try:
        with socket.create_connection((host, port), timeout) as sock:  # type: ignore[arg-type]
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            # Only the agent's clean close says it read everything.
            while sock.recv(65536):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
    except socket.timeout:
        return f"the agent did not confirm within {timeout:g} s"
    except Exception as error:
        return getattr(error, "strerror", None) or str(error) or type(error).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from . import procmem

    procmem.hide_args(args)  # the message is nobody else's business (ps shows argv)
    if not args or any(a.startswith("-") and a != "-" for a in args):
        parsed = _parse(args)  # flags, help, version, or a usage error
        if isinstance(parsed, int):
            return parsed
        args, timeout = parsed
    else:
        timeout = DEFAULT_TIMEOUT
    agent = agentproto.agent_from_env()
    secrets = redact.secret_values(os.environ)
    if args == ["-"]:
        return _from_stdin(agent, timeout, secrets)
    message = redact.text(" ".join(args), secrets)
    if agent is None:
        write_line(f"status: {message}")
        return 0
    error = deliver_once(agent, [message], timeout)
    if error is not None:
        write_line(
            f"everest-status: warning: status not delivered to the agent at "
            f"{agent[0]}:{agent[1]} ({error}): {message}"
        )
    return 0


def _from_stdin(agent: tuple[str, int, str] | None, timeout: float, secrets: list[str]) -> int:
    if agent is None:
        for line in sys.stdin:
            write_line("status: {}".format(redact.text(line.rstrip("\n"), secrets)))
        return 0
    from .status import StatusClient

    with StatusClient(*agent, secrets=secrets) as client:
        for line in sys.stdin:
            if line.strip():
                client.send(line.rstrip("\n"))
        delivered = client.close(timeout)
    if not delivered:
        write_line(
            "everest-status: warning: not every status reached the agent at {}:{}".format(*agent)
        )
    return 0


def _parse(args: list[str]) -> tuple[list[str], float] | int:
    """The full parser: (message words, timeout), or an exit status."""
    import argparse

    from . import __version__

    parser = argparse.ArgumentParser(
        prog="everest-status",
        description="Send a live status message to this task's Everest agent "
        "(EVEREST_AGENT_ADDRESS, EVEREST_AGENT_PORT, EVEREST_AGENT_TASK_ID). "
        "Without an agent the message goes to stderr. Always exits 0 once the "
        "arguments are valid.",
    )
    parser.add_argument("message", nargs="+", help="the status text; '-' sends each stdin line")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to try delivering (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    try:
        parsed = parser.parse_args(args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 0
    return parsed.message, parsed.timeout
