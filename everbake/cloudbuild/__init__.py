"""Cloud builds: attempt planning and (later) the build-image flow for gcp and yandex."""
