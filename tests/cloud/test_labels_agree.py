"""The stores look images up by the label the naming module writes (one definition,
everbake.labels, for both)."""

from __future__ import annotations

from everbake import naming
from everbake.fingerprint import fingerprints
from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
from everbake.spec import load_spec
from everbake.stores import CloudImage


def test_the_label_naming_writes_is_what_a_store_matches():
    spec = load_spec("optimization")
    fps = fingerprints(spec)
    for layer in ("base", "image"):
        labels = naming.labels(spec, fps, layer)
        image = CloudImage(
            "n", "1", naming.family(spec, layer), labels, "2026-01-01T00:00:00Z", None
        )
        assert image.fingerprint_label == fingerprint_label_value(fps.of(layer))
        assert len(labels[FINGERPRINT_LABEL]) == 48
    # A store asked with an upper-case or full digest matches the same value.
    assert fingerprint_label_value(fps.image.upper()) == labels[FINGERPRINT_LABEL]
