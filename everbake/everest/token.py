"""The Everest token: EVEREST_TOKEN, or the one `invoke everest-login` stored.

The stored token lives in ``$XDG_CONFIG_HOME/everbake/token`` (default
``~/.config/everbake/token``), mode 0600 in a 0700 directory, written through a
temporary file created 0600 and renamed. It is the only file we ever write a
token into; it is never printed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from everbake.everest.client import LOGIN_FIX, EverestAuthError, EverestClient, EverestError

TOKEN_ENV = "EVEREST_TOKEN"
DEFAULT_LABEL = "everbake"


def token_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(config) / "everbake" / "token"


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for messages: never the value

    def __repr__(self) -> str:  # a stray print or traceback shows no token
        return f"Token(source={self.source!r})"


def save_token(value: str, path: Path) -> None:
    """Write the token 0600 (directory 0700) in one step; the old one stays until then."""
    if not value or "\n" in value.strip():
        raise EverestError("Everest returned an empty or multi-line token; nothing was stored")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value.strip() + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def stored_token(path: Path) -> str | None:
    """The stored token, or None; a token others can read is refused with the fix."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EverestAuthError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`, or `invoke everest-login` again"
        )
    value = path.read_text(encoding="utf-8").strip()
    return value or None


def resolve_token(env: Mapping[str, str] | None = None) -> Token | None:
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV, "").strip():
        return Token(env[TOKEN_ENV].strip(), TOKEN_ENV)
    path = token_path(env)
    value = stored_token(path)
    return Token(value, str(path)) if value else None


def require_token(url: str, env: Mapping[str, str] | None = None) -> Token:
    found = resolve_token(env)
    if found is None:
        raise EverestAuthError(f"no Everest token for {url}; {LOGIN_FIX}")
    return found


def login(
    url: str,
    username: str,
    password: str,
    *,
    label: str = DEFAULT_LABEL,
    lifetime: int | None = None,
    path: Path,
) -> Path:
    """POST /api/auth/access_token {username, password, label, lifetime?} -> store it."""
    if not username:
        raise EverestError("--username is empty; give your Everest user name")
    body: dict[str, object] = {"username": username, "password": password, "label": label}
    if lifetime is not None:
        body["lifetime"] = int(lifetime)
    client = EverestClient(url)
    try:
        answer = client.send_json("POST", "/api/auth/access_token", body, auth=False)
    except EverestAuthError:
        raise EverestAuthError(
            f"Everest at {client.url} refused user {username!r}: wrong user name or password"
        ) from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token.strip():
        raise EverestError(f"Everest at {client.url} answered the login without an access_token")
    save_token(token, path)
    return path


def client_for(url: str, env: Mapping[str, str] | None = None) -> EverestClient:
    """A client for ``url`` with the resolved token (EVEREST_TOKEN or the stored one)."""
    return EverestClient(url, require_token(url, env).value)
