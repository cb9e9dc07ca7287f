"""One redaction for everything that leaves a task: status messages, the output
passed through, the logs, debug.zip and version.txt.

A secret is the value of a variable whose name looks secret (TOKEN, SECRET,
PASSW, KEY, LICENCE/LICENSE, CREDENTIAL), or one the runtime was handed (the
GitLab token, also one found in a URL's user-info). A value of several lines (a
PEM key) is also looked for line by line, so any one of its lines printed alone
is caught. `Stream` redacts bytes as they come, holding back only what could be
the start of a secret cut by a read boundary; no needle spans a line, so a whole
line is never held back.

Light on imports (no re at import time): everest-status loads this on every call.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

REDACTED = "<redacted>"
GITLAB_TOKEN_ENV = "EVEREST_GITLAB_TOKEN"  # the default variable holding the GitLab token
GITLAB_URL_ENV = "EVEREST_GITLAB_URL"  # may carry a token as user-info
SECRET_WORDS = ("TOKEN", "SECRET", "PASSW", "KEY", "LICENCE", "LICENSE", "CREDENTIAL")
MIN_SECRET = 4  # shorter values would redact ordinary words
MIN_LINE = 8  # a line of a multi-line secret shorter than this is not looked for alone
_BREAKS = ("\r\n", "\n", "\r")


def secret_name(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


def needles(values: Iterable[str]) -> list[str]:
    """What to look for: each value without surrounding blanks, and each line of
    a multi-line value; never a string holding a line break. Longest first, so a
    secret that contains another is removed whole."""
    found = set()
    for value in values:
        value = value.strip()
        if len(value) < MIN_SECRET:
            continue
        lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if len(lines) == 1:
            found.add(value)
            continue
        found.update(line.strip() for line in lines if len(line.strip()) >= MIN_LINE)
    return sorted(found, key=len, reverse=True)


def secret_values(env: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """The needles for this environment's secret-looking variables, a token in
    EVEREST_GITLAB_URL's user-info, plus ``extra``."""
    values = [v for k, v in env.items() if secret_name(k)]
    values.append(url_credentials(env.get(GITLAB_URL_ENV, ""))[1])
    return needles(values + [v for v in extra if v])


def url_credentials(url: str) -> tuple[str, str]:
    """(the URL without its user-info, the secret it held: the password, else
    the user name); (url, "") when it holds none. https://oauth2:TOKEN@host/..."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url, ""
    userinfo, _, host = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{host}{slash}{path}", (password if colon else user)


def text(value: str, secrets: list[str]) -> str:
    """``value`` with every needle replaced (for whole strings: statuses, files)."""
    for secret in secrets:
        if secret in value:
            value = value.replace(secret, REDACTED)
    return value


class Stream:
    """Redacts a byte stream fed in pieces of any size; feed() returns what is
    safe to pass on now, close() the rest. Memory: one piece plus the longest
    needle."""

    def __init__(self, secrets: list[str]) -> None:
        self._needles = [s.encode("utf-8", "surrogateescape") for s in secrets]
        self._keep = max((len(n) for n in self._needles), default=1) - 1
        self._carry = b""
        self._pattern: Any = None

    def feed(self, data: bytes) -> bytes:
        if not self._needles:
            return data
        buf = self._carry + data if self._carry else data
        # Nothing spans a line break, so everything up to the last one is final;
        # of the rest keep what could be the start of a needle.
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
        cut = max(cut, len(buf) - self._keep)
        out, cut = self._replace(buf, cut)
        self._carry = buf[cut:]
        return out

    def close(self) -> bytes:
        rest, self._carry = self._carry, b""
        return self._replace(rest, len(rest))[0] if rest else b""

    def _replace(self, buf: bytes, cut: int) -> tuple[bytes, int]:
        """Redact buf[:cut]; a match starting before ``cut`` moves it to its end."""
        if not any(n in buf for n in self._needles):  # the common case: fast scans only
            return buf[:cut], cut
        if self._pattern is None:
            import re

            self._pattern = re.compile(b"|".join(re.escape(n) for n in self._needles))
        parts, position = [], 0
        for match in self._pattern.finditer(buf):
            if match.start() >= cut:
                break
            parts += [buf[position : match.start()], REDACTED.encode()]
            position = match.end()
            cut = max(cut, position)
        parts.append(buf[position:cut])
        return b"".join(parts), cut


def copy_file(source, sink, secrets: list[str], chunk: int = 1 << 20) -> None:
    """Copy an open binary file into another, redacted, in bounded memory."""
    stream = Stream(secrets)
    while True:
        data = source.read(chunk)
        if not data:
            break
        sink.write(stream.feed(data))
    sink.write(stream.close())
