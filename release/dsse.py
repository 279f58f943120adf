"""DSSE envelopes and in-toto Statements, the encoding of every signed synthgate document.

Implements DSSE v1.0.0 (https://github.com/secure-systems-lab/dsse, ``envelope.md`` and
``protocol.md`` at tag v1.0.0):

* the signature is ``Sign(PAE(UTF8(payloadType), payload))`` with
  ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, ``LEN`` being the byte
  length as ASCII decimal without leading zeros and ``SP`` one 0x20 byte;
* the JSON envelope is ``{"payloadType", "payload": Base64(body), "signatures": [{"keyid", "sig"}]}``;
  we write standard Base64 with padding and, as the spec allows, read standard or URL-safe, padded
  or not; we refuse non-canonical Base64 (non-zero trailing bits, stray characters) so that no two
  different envelope texts carry the same signature;
* ``keyid`` is an unauthenticated hint: verification never trusts it, but when it is set it must
  name the trusted key that verifies (the spec lets a verifier use it to select the key), so a
  changed keyid is caught; unset and empty are treated alike and then every trusted key is tried;
* unknown envelope fields are ignored, as the spec requires (the bundle verifier is stricter about
  the exact manifest text: see ``release.verify``).

And the in-toto Attestation Statement v1 (https://in-toto.io/Statement/v1) carried as the payload
with payloadType ``application/vnd.in-toto+json``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.errors import IntegrityError
from release.keys import key_id

DSSE_VERSION = "DSSE v1.0.0"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``payload`` (the signed bytes)."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [
            b"DSSEv1",
            str(len(type_bytes)).encode("ascii"),
            type_bytes,
            str(len(payload)).encode("ascii"),
            payload,
        ]
    )


def b64encode(data: bytes) -> str:
    """Standard Base64 with padding, as text (what synthgate writes)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, what: str) -> bytes:
    """Decode standard or URL-safe Base64, padded or not; ``IntegrityError`` unless canonical.

    Canonical means re-encoding the bytes gives the same text (after normalising the alphabet and
    padding): this refuses whitespace, stray characters and non-zero trailing bits, which Python's
    decoder would otherwise silently accept.
    """
    if not isinstance(text, str):
        raise IntegrityError(f"bad base64 in {what}: not a string")
    has_std = "+" in text or "/" in text
    has_url = "-" in text or "_" in text
    if has_std and has_url:
        raise IntegrityError(f"bad base64 in {what}: mixes the standard and URL-safe alphabets")
    normal = text.replace("-", "+").replace("_", "/") if has_url else text
    if len(normal.rstrip("=")) % 4 == 1:
        raise IntegrityError(f"bad base64 in {what}: impossible length")
    if "=" not in normal:
        normal += "=" * (-len(normal) % 4)
    try:
        data = base64.b64decode(normal, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IntegrityError(f"bad base64 in {what}") from exc
    if base64.b64encode(data).decode("ascii") != normal:
        raise IntegrityError(f"bad base64 in {what}: not canonically encoded")
    return data


def sign_envelope(payload: bytes, payload_type: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign ``payload`` as a DSSE JSON envelope with one Ed25519 signature and its key id."""
    signature = key.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": b64encode(payload),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": b64encode(signature)}],
    }


def verify_envelope(
    envelope: Any,
    trusted: list[Ed25519PublicKey],
    *,
    expected_type: str = IN_TOTO_PAYLOAD_TYPE,
) -> tuple[bytes, str]:
    """Verify a DSSE envelope against the ``trusted`` keys; return ``(payload, keyid)``.

    ``keyid`` is computed from the trusted key whose signature verified, never copied from the
    envelope. One verifying signature suffices (the spec leaves multi-signature policy to the
    application). Raises ``IntegrityError`` with the reason: malformed envelope, wrong
    payloadType, no signatures, empty sig, bad Base64, or no signature verifies.
    """
    # (1) Shape: the REQUIRED fields are present with the right JSON types.
    if not isinstance(envelope, dict):
        raise IntegrityError("malformed DSSE envelope: not a JSON object")
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise IntegrityError("malformed DSSE envelope: payloadType missing or not a string")
    # (2) The type is authenticated by PAE, but a verifier must also refuse types it does not
    # expect, or a signature made for one purpose could be replayed for another.
    if payload_type != expected_type:
        raise IntegrityError(f"wrong payloadType {payload_type!r} (expected {expected_type!r})")
    if "payload" not in envelope:
        raise IntegrityError("malformed DSSE envelope: payload missing")
    payload = b64decode(envelope["payload"], "payload")
    signatures = envelope.get("signatures")
    if signatures is None or signatures == []:
        raise IntegrityError("DSSE envelope has no signatures")
    if not isinstance(signatures, list):
        raise IntegrityError("malformed DSSE envelope: signatures is not a list")
    if not trusted:
        raise IntegrityError("no trusted keys to verify the DSSE envelope against")

    by_id = {key_id(k): k for k in trusted}
    message = pae(payload_type, payload)
    claimed: list[str] = []
    # (3) Any one signature that verifies with a trusted key accepts the payload.
    for entry in signatures:
        if not isinstance(entry, dict):
            raise IntegrityError("malformed DSSE envelope: a signature is not a JSON object")
        sig_text = entry.get("sig")
        if not isinstance(sig_text, str):
            raise IntegrityError("malformed DSSE envelope: a signature has no sig string")
        if sig_text == "":
            raise IntegrityError("DSSE envelope has an empty signature")
        keyid = entry.get("keyid") or ""
        if not isinstance(keyid, str):
            raise IntegrityError("malformed DSSE envelope: keyid is not a string")
        sig = b64decode(sig_text, "signature")
        claimed.append(keyid[:16] or "(none)")
        candidates = [(keyid, by_id[keyid])] if keyid in by_id else ([] if keyid else list(by_id.items()))
        for candidate_id, public_key in candidates:
            try:
                public_key.verify(sig, message)
            except InvalidSignature:
                continue
            return payload, candidate_id
    trusted_ids = ", ".join(sorted(k[:16] for k in by_id))
    raise IntegrityError(
        f"no signature verifies with a trusted key "
        f"(signed by keyid {', '.join(claimed)}; trusted: {trusted_ids})"
    )


def make_statement(
    subjects: list[tuple[str, str]], predicate_type: str, predicate: dict[str, Any]
) -> dict[str, Any]:
    """Build an in-toto Statement v1: one subject per ``(name, sha256 hex)``, then the predicate."""
    for name, digest in subjects:
        if not isinstance(name, str) or not name:
            raise ValueError(f"subject name {name!r} must be a non-empty string")
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise ValueError(f"subject {name!r}: sha256 must be 64 lower-case hex characters")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
