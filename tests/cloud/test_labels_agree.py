"""The stores look images up by the label the naming module writes."""

from __future__ import annotations

from everbake import stores


def test_fingerprint_label_matches_naming():
    from everbake import naming

    digest = "0123456789abcdef" * 4
    assert stores.FINGERPRINT_LABEL == naming.FINGERPRINT_LABEL
    assert stores.fingerprint_label_value(digest) == naming.fingerprint_label(digest)
    assert stores.fingerprint_label_value(digest.upper()) == naming.fingerprint_label(digest)
