"""Output files of a task: archives written atomically, and secret removal for
everything that goes into debug.zip."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|LICEN[CS]E|CREDENTIAL", re.IGNORECASE)
REDACTED = "<redacted>"


def secret_values(env: dict[str, str], extra: Iterable[str] = ()) -> list[str]:
    """Values worth scrubbing: those of secret-looking variables, plus `extra`.
    Longest first, so a secret that contains another is removed whole."""
    values = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= 4}
    values.update(v for v in extra if v and len(v) >= 4)
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def clean_env(env: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """The environment without secret-looking variables or any known secret value."""
    return {k: redact(v, secrets) for k, v in sorted(env.items()) if not SECRET_NAME.search(k)}


def collect(work_dir: Path, patterns: Iterable[str]) -> list[tuple[Path, str]]:
    """Files under work_dir matching the globs, as (path, name in archive).
    Links leading outside the work directory are skipped."""
    root = work_dir.resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        for path in sorted(work_dir.glob(pattern)):
            if not path.is_file():
                continue
            real = path.resolve()
            if root not in real.parents:
                continue
            found.setdefault(path.relative_to(work_dir).as_posix(), path)
    return [(p, name) for name, p in sorted(found.items())]


def write_zip(target: Path, members: Iterable[tuple[Path, str]], texts=()) -> int:
    """Write a zip atomically (temp file + rename). `texts` are (name, str) pairs.
    Returns the number of members."""
    import zipfile

    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    count = 0
    try:
        with zipfile.ZipFile(str(tmp), "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path, name in members:
                try:
                    zf.write(str(path), name)
                    count += 1
                except OSError:
                    continue  # vanished or unreadable: the rest still counts
            for name, text in texts:
                zf.writestr(name, text)
                count += 1
        os.replace(str(tmp), str(target))
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def write_text(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(str(tmp), str(target))
