"""Cloud builds for gcp and yandex: attempt planning and the build-image flow.

`build_cloud` is imported on first use: the provider classes import
`everbake.cloudbuild.attempts` (lost-VM signals), and the flow imports them.
"""

from typing import Any

__all__ = ["build_cloud"]


def __getattr__(name: str) -> Any:
    if name == "build_cloud":
        from everbake.cloudbuild.flow import build_cloud

        return build_cloud
    raise AttributeError(name)
