"""The REST client and login against the fake Everest on loopback."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from everbake.everest.client import (
    EverestAuthError,
    EverestClient,
    EverestConflict,
    EverestError,
    EverestNotFound,
    EverestUnavailable,
    base_url,
    resolve_url,
)
from everbake.everest.token import login, resolve_token, save_token, token_path
from tests.fakes.everest import EverestFake


def _client(fake: EverestFake, token: str | None, **kwargs: object) -> EverestClient:
    return EverestClient(fake.url, token, backoff=0.0, **kwargs)  # type: ignore[arg-type]


def test_login_stores_the_token_0600_and_never_shows_it(
    everest: EverestFake, config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = login(everest.url, "alice", "alice-password", path=token_path())
    assert path == config_home / "everbake" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    value = path.read_text().strip()
    assert everest.tokens[value] == "alice"
    assert everest.logins == [{"username": "alice", "label": "everbake"}]
    out = capsys.readouterr()
    assert value not in out.out + out.err
    found = resolve_token()
    assert found is not None and found.value == value and value not in repr(found)
    # The stored token works for the next calls.
    assert _client(everest, value).get_json("/api/apps") == []


def test_login_with_a_wrong_password_is_one_line_and_stores_nothing(
    everest: EverestFake, config_home: Path
) -> None:
    with pytest.raises(EverestAuthError, match=r"refused user 'alice': wrong user name or pass"):
        login(everest.url, "alice", "nope", path=token_path())
    assert not token_path().exists()


def test_env_token_wins_and_a_world_readable_file_is_refused(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = token_path()
    save_token("stored-one", path)
    found = resolve_token()
    assert found is not None and found.value == "stored-one"
    monkeypatch.setenv("EVEREST_TOKEN", "from-env")
    found = resolve_token()
    assert found is not None and (found.value, found.source) == ("from-env", "EVEREST_TOKEN")
    monkeypatch.delenv("EVEREST_TOKEN")
    path.chmod(0o644)
    with pytest.raises(EverestAuthError, match=r"readable by other users .*chmod 600"):
        resolve_token()


def test_errors_are_one_line_each(everest: EverestFake) -> None:
    good = everest.issue_token()
    with pytest.raises(EverestAuthError) as refused:
        _client(everest, "not-a-token").get_json("/api/apps")
    assert "401" in str(refused.value) and "everest-login" in str(refused.value)
    assert "not-a-token" not in str(refused.value)
    with pytest.raises(EverestAuthError, match="no Everest token"):
        _client(everest, None).get_json("/api/apps")
    with pytest.raises(EverestNotFound, match=r"GET /api/apps/0{24} not found \(404\)"):
        _client(everest, good).get_json("/api/apps/" + "0" * 24)
    client = _client(everest, good)
    client.send_json("POST", everest.resource_path, {"name": "r1"})
    with pytest.raises(EverestConflict, match=r"409 conflict\): resource r1 already exists"):
        client.send_json("POST", everest.resource_path, {"name": "r1"})
    for exc in (refused.value,):
        assert "\n" not in str(exc)


def test_idempotent_calls_retry_5xx_then_succeed(everest: EverestFake) -> None:
    everest.fail("GET", r"/api/apps", 503, times=2)
    assert _client(everest, everest.issue_token()).get_json("/api/apps") == []
    assert everest.count("GET", "/api/apps") == 3


def test_5xx_that_persists_says_how_often(everest: EverestFake) -> None:
    everest.fail("GET", r"/api/apps", 500, times=10)
    with pytest.raises(
        EverestUnavailable, match=r"answered 500 for GET /api/apps after 3 attempts"
    ) as failed:
        _client(everest, everest.issue_token(), retries=2).get_json("/api/apps")
    assert failed.value.status == 500


def test_only_a_server_that_errs_or_is_away_is_marked_worth_retrying(
    everest: EverestFake,
) -> None:
    """The jobs' watch decides by the type, never by the message text."""
    client = _client(everest, everest.issue_token(), retries=0)
    for status, kind in ((429, EverestUnavailable), (503, EverestUnavailable), (400, None)):
        everest.fail("GET", r"/api/apps", status, times=1)
        with pytest.raises(EverestError) as failed:
            client.get_json("/api/apps")
        if kind is None:
            assert not isinstance(failed.value, EverestUnavailable), status
        else:
            assert isinstance(failed.value, kind) and failed.value.status == status
    with pytest.raises(EverestNotFound) as missing:
        client.get_json("/api/apps/" + "0" * 24)
    assert not isinstance(missing.value, EverestUnavailable)


def test_a_creating_post_is_sent_once(everest: EverestFake) -> None:
    everest.fail("POST", everest.resource_path, 502)
    with pytest.raises(EverestError, match=r"answered 502 for POST"):
        _client(everest, everest.issue_token()).send_json(
            "POST", everest.resource_path, {"name": "x"}
        )
    assert everest.count("POST", everest.resource_path) == 1
    assert everest.resources == {}


def test_dropped_connections_are_retried(everest: EverestFake) -> None:
    everest.fail("GET", r"/api/apps", 0, times=1)
    assert _client(everest, everest.issue_token()).get_json("/api/apps") == []


def test_unreachable_server_is_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = EverestClient(f"http://127.0.0.1:{port}", "t", retries=1, backoff=0.0)
    with pytest.raises(
        EverestUnavailable, match=r"cannot reach Everest at .* after 2 attempts"
    ) as failed:
        client.get_json("/api/apps")
    assert failed.value.status is None


def test_upload_then_download_round_trips(everest: EverestFake, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    source = tmp_path / "data.zip"
    source.write_bytes(data)
    client = _client(everest, everest.issue_token())
    uri = client.upload(source)
    assert uri.startswith("/api/files/temp/") and uri.endswith("/data.zip")
    got = client.download(uri, tmp_path / "out" / "copy.zip")
    assert got.read_bytes() == data
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["copy.zip"]


def test_upload_retries_a_5xx(everest: EverestFake, tmp_path: Path) -> None:
    source = tmp_path / "params.json"
    source.write_text("{}")
    everest.fail("POST", r"/api/files/temp", 503)
    uri = _client(everest, everest.issue_token()).upload(source)
    assert everest.files[uri] == b"{}"


def test_urls_are_checked_and_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert base_url("https://everest.example.org/api/") == "https://everest.example.org"
    with pytest.raises(EverestError, match=r"not an http\(s\) URL; set `everest.url`"):
        base_url("everest.example.org")
    with pytest.raises(EverestError, match="must not hold a user or password"):
        base_url("https://u:p@everest.example.org")
    monkeypatch.setenv("EVEREST_URL", "https://env.example.org")
    assert resolve_url("https://config.example.org") == "https://env.example.org"
    monkeypatch.delenv("EVEREST_URL")
    assert resolve_url("https://config.example.org") == "https://config.example.org"


def test_cookie_auth_is_accepted_by_the_fake(everest: EverestFake) -> None:
    good = everest.issue_token()
    client = EverestClient(everest.url, None)
    answer = client.request(
        "GET", "/api/apps", headers={"Cookie": f"access_token={good}"}, auth=False
    )
    assert answer.status == 200
