"""Cloud builds for gcp and yandex: attempt planning and the build-image flow."""

from everbake.cloudbuild.flow import build_cloud

__all__ = ["build_cloud"]
