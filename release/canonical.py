"""Canonical JSON: the one byte encoding that every digest and signature in synthgate is taken over.

Sorted keys, no insignificant whitespace, UTF-8 without ``\\u`` escapes for non-ASCII text. This is
deterministic for the values synthgate writes (strings, integers, booleans, null, finite floats,
lists and string-keyed objects) but it is *not* RFC 8785 (JCS): floats use Python's shortest
``repr`` and keys sort by code point, so a digest is only reproducible by this function or a
faithful port of it. NaN and infinities are refused because JSON has no spelling for them and
Python's default (``NaN``) would produce bytes other parsers reject.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes (sorted keys, ``(",", ":")``, UTF-8, no NaN/inf).

    Raises ``ValueError`` for NaN or infinite floats and for strings that are not valid Unicode
    (lone surrogates), and ``TypeError`` for values JSON cannot represent.
    """
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"canonical JSON refuses NaN and infinite floats: {exc}") from exc
    # A lone surrogate survives json.dumps with ensure_ascii=False but has no UTF-8 encoding;
    # UnicodeEncodeError is a ValueError, so callers see one exception type.
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data`` (64 characters)."""
    return hashlib.sha256(data).hexdigest()
