"""Packer plugins the cloud templates need (current Packer, `packer init`).

Their versions are part of the fingerprint: a new plugin may bake differently.
"""

from __future__ import annotations

PLUGINS: dict[str, tuple[str, str]] = {
    "googlecompute": ("github.com/hashicorp/googlecompute", "~> 1.2"),
    "yandex": ("github.com/hashicorp/yandex", "~> 1.1"),
}
