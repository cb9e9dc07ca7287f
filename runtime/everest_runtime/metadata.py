"""Read a secret from the VM metadata server (GCE style; Yandex serves the same
path): GET <base>/computeMetadata/v1/instance/attributes/<key> with the header
Metadata-Flavor: Google."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import FetchError

if TYPE_CHECKING:
    import urllib.request

# urllib is imported where it is used: the CLI reads DEFAULT_URL at start-up,
# and a warm-cache bootstrap must not load the network stack.

DEFAULT_URL = "http://169.254.169.254"  # the one default; "" anywhere means this
HEADERS = {"Metadata-Flavor": "Google"}
API_PATH = "/computeMetadata/v1"


def api_url(base_url: str = "") -> str:
    """The metadata API root from a server URL, with or without the API path."""
    base = (base_url or DEFAULT_URL).rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def direct_opener() -> urllib.request.OpenerDirector:
    """An opener that ignores HTTP(S)_PROXY: the metadata server is link-local."""
    import urllib.request

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def attribute(key: str, base_url: str = "", timeout: float = 5.0, tries: int = 3) -> str:
    import urllib.error
    import urllib.parse
    import urllib.request

    server = base_url or DEFAULT_URL
    url = api_url(base_url) + "/instance/attributes/" + urllib.parse.quote(key, safe="")
    request = urllib.request.Request(url, headers=HEADERS)
    opener = direct_opener()
    problem = ""
    for attempt in range(tries):
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.read().decode("utf-8").strip()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FetchError(
                    f"metadata key {key!r} is not set on this VM ({server}); add it to the "
                    "instance metadata or choose another token source"
                ) from None
            problem = f"HTTP {exc.code}"
            if exc.code < 500:
                break
        except (urllib.error.URLError, OSError, UnicodeDecodeError) as exc:
            problem = str(getattr(exc, "reason", exc))
        if attempt + 1 < tries:
            time.sleep(0.2 * 2**attempt)
    raise FetchError(
        f"metadata server {server} did not give key {key!r} ({problem}); "
        "is this a cloud VM? set --metadata-url or another token source"
    )
