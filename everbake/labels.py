"""Image label keys and values: one definition for the names that write them
(everbake.naming) and the stores that look images up by them.

GCE and Yandex label values hold at most 63 characters of [a-z0-9_-]; a sha256
hex digest has 64, so the fingerprint label carries its first 48 (192 bits).
"""

from __future__ import annotations

import re

FINGERPRINT_LABEL = "everbake-fingerprint"
LAYER_LABEL = "everbake-layer"
SPEC_LABEL = "everbake-spec"
BASE_LABEL = "everbake-base"
FINGERPRINT_LABEL_LEN = 48


def fingerprint_label_value(fingerprint: str) -> str:
    """The label value stored for ``fingerprint`` (a full digest or its label form)."""
    return fingerprint.strip().lower()[:FINGERPRINT_LABEL_LEN]


def label_value(text: str) -> str:
    """Any text as a valid label value: lowercase, [a-z0-9_-], at most 63 chars."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())[:63]
