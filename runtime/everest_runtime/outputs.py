"""Output files of a task: written atomically through temporary files nobody
else can have prepared, archives built member by member (one bad member never
costs the others), and links never followed when archiving."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, NamedTuple

from . import redact


def clean_env(env: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """The environment without secret-looking variables or any known secret value."""
    return {k: redact.text(v, secrets) for k, v in sorted(env.items()) if not redact.secret_name(k)}


def collect(work_dir: Path, patterns: Iterable[str]) -> list[tuple[Path, str]]:
    """Files under work_dir matching the globs, as (real path, name in archive).
    Links leading outside the work directory, link loops and anything that is
    not a regular file are skipped."""
    root = Path(os.path.realpath(str(work_dir)))
    found: dict[str, Path] = {}
    for pattern in patterns:
        try:
            matches = sorted(work_dir.glob(pattern))
        except (OSError, RuntimeError, ValueError):
            continue  # e.g. a directory the model made unreadable
        for path in matches:
            try:
                real = Path(os.path.realpath(str(path)))
                if root not in real.parents or not stat.S_ISREG(os.stat(str(real)).st_mode):
                    continue
            except (OSError, RuntimeError):  # vanished, unreadable, a link loop
                continue
            found.setdefault(os.path.relpath(str(path), str(work_dir)).replace(os.sep, "/"), real)
    return [(p, name) for name, p in sorted(found.items())]


def stored_name(name: str) -> str:
    """A name any unzip can store and show: bytes that are not UTF-8 (kept by
    Python as surrogates) become %XX, control characters too."""
    raw = name.encode("utf-8", "surrogateescape")
    try:
        clean = raw.decode("utf-8")
    except UnicodeDecodeError:
        clean = None
    if clean is not None and all(ord(c) >= 32 and c != "\x7f" for c in clean):
        return clean
    out = []
    for part in raw.decode("utf-8", "surrogateescape"):
        if "\udc80" <= part <= "\udcff":
            out.append(f"%{ord(part) - 0xDC00:02X}")
        elif ord(part) < 32 or part == "\x7f":
            out.append(f"%{ord(part):02X}")
        else:
            out.append(part)
    return "".join(out)


class ZipReport(NamedTuple):
    written: int
    skipped: list[str]  # "name: why", for the log
    renamed: list[str]  # "old -> stored", for the log
    complete: bool  # False when a deadline cut it short


def open_regular(path: Path | str) -> int:
    """A read descriptor for a regular file, never through a link at the last
    step (O_NOFOLLOW) and never blocking on a fifo; OSError otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(str(path), flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def write_zip(
    target: Path,
    members: Iterable[tuple[Path | int, str]],
    texts: Iterable[tuple[str, str]] = (),
    secrets: list[str] | None = None,
    stop: Callable[[], bool] | None = None,
) -> ZipReport:
    """Write a zip atomically. ``members``: (path or open descriptor, name); a
    path is opened without following a final link. ``texts``: (name, str).
    With ``secrets`` every member is redacted on the way in. Once ``stop()``
    says True (out of time) no more members are added. Raises OSError only when the archive
    itself cannot be written (disk full); then no partial file is left."""
    import zipfile

    skipped: list[str] = []
    renamed: list[str] = []
    used: set[str] = set()
    count = 0
    complete = True
    with _AtomicFile(target) as out, zipfile.ZipFile(
        out.handle, "w", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False
    ) as zf:
        for source, name in members:
            if stop is not None and stop():
                complete = False
                break
            stored = _unique(stored_name(name), used)
            if stored != name:
                renamed.append(f"{name!r} -> {stored!r}")
            try:
                _add(zf, source, stored, secrets)
                count += 1
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise
                skipped.append(f"{stored}: {exc.strerror or exc}")
        for name, text in texts:
            zf.writestr(name, redact.text(text, secrets) if secrets else text)
            count += 1
    return ZipReport(count, skipped, renamed, complete)


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem}~{n}.{ext}" if dot and stem else f"{name}~{n}"
    used.add(candidate)
    return candidate


def _add(zf, source: Path | int, name: str, secrets: list[str] | None) -> None:
    import zipfile

    owned = not isinstance(source, int)
    fd = open_regular(source) if owned else os.dup(source)  # type: ignore[arg-type]
    try:
        st = os.fstat(fd)
        info = zipfile.ZipInfo(name, date_time=_zip_time(st.st_mtime))
        info.external_attr = (stat.S_IFREG | (st.st_mode & 0o777)) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = st.st_size
        with os.fdopen(fd, "rb", closefd=False) as handle:
            handle.seek(0)
            os.set_blocking(fd, True)
            with zf.open(info, "w") as dest:
                if secrets:
                    redact.copy_file(handle, dest, secrets)
                else:
                    while True:
                        chunk = handle.read(1 << 20)
                        if not chunk:
                            break
                        dest.write(chunk)
    finally:
        os.close(fd)


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """Zip stores 1980..2107; a file outside (touch -d 1970) is clamped, not fatal."""
    parts = time.localtime(min(max(mtime, 315532800.0), 4354819199.0))[:6]
    year = min(max(parts[0], 1980), 2107)
    return (year, *parts[1:6])


class _AtomicFile:
    """A temporary file beside ``target`` created exclusively (mkstemp: never
    through a link someone left there), renamed over ``target`` on success and
    removed on failure. A directory in the way is moved aside first."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.handle: IO[bytes]

    def __enter__(self) -> _AtomicFile:
        import tempfile

        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part",
                                        dir=str(self.target.parent))  # fmt: skip
        self.handle = os.fdopen(fd, "w+b")
        return self

    def __exit__(self, kind, value, tb) -> None:
        try:
            if kind is None:
                self.handle.flush()
                self.handle.close()
                _clear_way(self.target)
                os.replace(self.tmp, str(self.target))
        finally:
            if not self.handle.closed:
                with contextlib.suppress(OSError):
                    self.handle.close()
            if os.path.lexists(self.tmp):
                os.unlink(self.tmp)


def _clear_way(target: Path) -> None:
    """rename() cannot replace a directory: one the model left at an output's
    name is moved aside (and kept) rather than costing the output."""
    try:
        if stat.S_ISDIR(os.lstat(str(target)).st_mode):
            aside = target.with_name(f"{target.name}.moved-aside.{os.getpid()}")
            os.rename(str(target), str(aside))
    except FileNotFoundError:
        pass


def write_text(target: Path, text: str) -> None:
    """``text`` as ``target``, atomically; OSError (disk full) leaves no temporary."""
    with _AtomicFile(target) as out:
        out.handle.write(text.encode("utf-8", "surrogateescape"))
