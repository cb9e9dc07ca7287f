"""Keep secrets out of what other processes can read about this one.

/proc/<pid>/cmdline and /proc/<pid>/environ show the argument and environment
strings as the kernel laid them out at exec, whatever Python's os.environ or
sys.argv say later. `hide_args` and `hide_environ` overwrite them in place
(through /proc/self/mem: no ctypes, so everest-status stays quick to start).
`undumpable` additionally stops same-user processes (the model) from reading
this process's environ, memory or file descriptors at all. Linux only; elsewhere
each is a no-op returning False.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def _areas() -> tuple[int, int, int, int] | None:
    """(arg_start, arg_end, env_start, env_end) from /proc/self/stat (Linux 3.5+)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        # Fields 48-51 of proc(5), counted from 1 with pid and comm as 1 and 2.
        a, b, c, d = (int(x) for x in fields[45:49])
    except (OSError, ValueError, IndexError):
        return None
    return (a, b, c, d) if 0 < a < b and 0 < c < d else None


def _overwrite(start: int, end: int, keep) -> bool:
    """Rewrite memory [start, end) with keep(old bytes) (same length)."""
    try:
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            old = mem.read(end - start)
            new = keep(old)
            if new != old:
                mem.seek(start)
                mem.write(new)
        return True
    except (OSError, ValueError, OverflowError):
        return False


def hide_args(args: list[str]) -> bool:
    """Blank ``args`` in /proc/self/cmdline (what ps shows) when the command
    line ends with them; False (and nothing changed) otherwise."""
    areas = _areas()
    if areas is None or not args:
        return False
    tail = [a.encode("utf-8", "surrogateescape") for a in args]

    def blank(old: bytes) -> bytes:
        body = old[:-1] if old.endswith(b"\0") else old
        parts = body.split(b"\0")
        if len(parts) <= len(tail) or parts[-len(tail) :] != tail:
            return old
        head = b"\0".join(parts[: -len(tail)]) + b"\0"
        return head + b"\0" * (len(old) - len(head))

    return _overwrite(areas[0], areas[1], blank)


def hide(values: Iterable[str]) -> bool:
    """Overwrite every occurrence of ``values`` in /proc/self/cmdline and
    /proc/self/environ with '*'."""
    areas = _areas()
    secrets = [v.encode("utf-8", "surrogateescape") for v in values if v]
    if areas is None or not secrets:
        return False

    def mask(old: bytes) -> bytes:
        for secret in secrets:
            old = old.replace(secret, b"*" * len(secret))
        return old

    return _overwrite(areas[0], areas[1], mask) and _overwrite(areas[2], areas[3], mask)


def undumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): processes of the same user can no longer read
    our /proc/<pid>/environ, mem or fd (children get it back at exec)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4 <linux/prctl.h>
    except (OSError, AttributeError):
        return False
