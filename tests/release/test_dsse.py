"""DSSE v1.0 envelopes, in-toto Statement v1, canonical JSON and steward decision signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.errors import InputError, IntegrityError
from release.approval_sig import (
    APPROVAL_CONTEXT,
    APPROVAL_PAYLOAD_TYPE,
    decision_message,
    sign_decision,
    verify_decision,
)
from release.canonical import canonical_json, sha256_hex
from release.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    b64decode,
    make_statement,
    pae,
    sign_envelope,
    verify_envelope,
)
from release.keys import key_id

# Deterministic keys: every run signs the same bytes.
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"key").digest())
OTHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"other").digest())
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'


# --- canonical JSON -------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        b'{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )


def test_canonical_json_is_utf8_without_escapes() -> None:
    assert canonical_json({"name": "Zoë ✓"}) == '{"name":"Zoë ✓"}'.encode()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_nan_and_inf(value: float) -> None:
    with pytest.raises(ValueError, match="refuses NaN and infinite floats"):
        canonical_json({"x": value})


def test_sha256_hex_known_answer() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- PAE and envelopes ------------------------------------------------------------------------


def test_pae_known_answer() -> None:
    # The example of the DSSE protocol: type "http://example.com/HelloWorld" is 29 bytes
    # (7 for "http://", 11 for "example.com", 11 for "/HelloWorld"), "hello world" is 11.
    expected = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("http://example.com/HelloWorld", b"hello world") == expected


def test_pae_counts_bytes_not_characters() -> None:
    # "é" is two UTF-8 bytes; the empty body has length 0 and still gets its separator.
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "


def test_round_trip() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    assert envelope["payloadType"] == IN_TOTO_PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == PAYLOAD
    assert envelope["signatures"][0]["keyid"] == key_id(KEY.public_key())
    # Survives a trip through JSON text, as the manifest does.
    payload, keyid = verify_envelope(json.loads(json.dumps(envelope)), [OTHER.public_key(), KEY.public_key()])
    assert payload == PAYLOAD
    assert keyid == key_id(KEY.public_key())


def test_signature_is_over_pae() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    KEY.public_key().verify(sig, pae(IN_TOTO_PAYLOAD_TYPE, PAYLOAD))


def test_tampered_payload_fails() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    envelope["payload"] = base64.b64encode(PAYLOAD.replace(b"v1", b"v2")).decode()
    with pytest.raises(IntegrityError, match="no signature verifies with a trusted key"):
        verify_envelope(envelope, [KEY.public_key()])


def test_wrong_key_fails() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    with pytest.raises(IntegrityError, match="no signature verifies with a trusted key"):
        verify_envelope(envelope, [OTHER.public_key()])


def test_missing_signatures_fail() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    del envelope["signatures"]
    with pytest.raises(IntegrityError, match="has no signatures"):
        verify_envelope(envelope, [KEY.public_key()])
    envelope["signatures"] = []
    with pytest.raises(IntegrityError, match="has no signatures"):
        verify_envelope(envelope, [KEY.public_key()])


def test_empty_sig_fails() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    envelope["signatures"][0]["sig"] = ""
    with pytest.raises(IntegrityError, match="empty signature"):
        verify_envelope(envelope, [KEY.public_key()])


def test_wrong_payload_type_fails() -> None:
    envelope = sign_envelope(PAYLOAD, "application/json", KEY)
    with pytest.raises(IntegrityError, match="wrong payloadType 'application/json'"):
        verify_envelope(envelope, [KEY.public_key()])
    # Relabelling the type breaks the signature too (PAE authenticates it), but the type check
    # gives the clearer reason.
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    verify_envelope(envelope, [KEY.public_key()])
    with pytest.raises(IntegrityError, match="wrong payloadType"):
        verify_envelope(envelope, [KEY.public_key()], expected_type="application/json")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.__setitem__("payload", "not base64!"), "bad base64 in payload"),
        (lambda e: e.__setitem__("payload", " " + e["payload"]), "bad base64 in payload"),
        (lambda e: e["signatures"][0].__setitem__("sig", "@@@@"), "bad base64 in signature"),
        (lambda e: e.__setitem__("payload", "QR=="), "not canonically encoded"),
        (lambda e: e.__setitem__("payload", "ab-+"), "mixes the standard and URL-safe alphabets"),
    ],
)
def test_bad_base64_fails(mutate: Any, reason: str) -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    mutate(envelope)
    with pytest.raises(IntegrityError, match=reason):
        verify_envelope(envelope, [KEY.public_key()])


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        ([], "not a JSON object"),
        ({"payload": "", "signatures": []}, "payloadType missing"),
        ({"payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": [{"sig": "AA=="}]}, "payload missing"),
        ({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "", "signatures": {}}, "signatures is not a list"),
        (
            {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "", "signatures": ["x"]},
            "signature is not a JSON",
        ),
        ({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "", "signatures": [{}]}, "has no sig string"),
        (
            {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": 3, "signatures": [{"sig": "AA=="}]},
            "not a string",
        ),
    ],
)
def test_malformed_envelope_fails(envelope: Any, reason: str) -> None:
    with pytest.raises(IntegrityError, match=reason):
        verify_envelope(envelope, [KEY.public_key()])


def test_keyid_is_a_hint_that_must_match() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    # Unset or empty keyid: every trusted key is tried.
    envelope["signatures"][0]["keyid"] = ""
    assert verify_envelope(envelope, [OTHER.public_key(), KEY.public_key()])[1] == key_id(KEY.public_key())
    del envelope["signatures"][0]["keyid"]
    assert verify_envelope(envelope, [KEY.public_key()])[1] == key_id(KEY.public_key())
    # A keyid naming another key: the signature is not accepted on the strength of some other key.
    envelope["signatures"][0]["keyid"] = key_id(OTHER.public_key())
    with pytest.raises(IntegrityError, match="no signature verifies"):
        verify_envelope(envelope, [OTHER.public_key(), KEY.public_key()])


def test_one_good_signature_among_several_suffices() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    other = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, OTHER)
    envelope["signatures"] = other["signatures"] + envelope["signatures"]
    assert verify_envelope(envelope, [KEY.public_key()])[1] == key_id(KEY.public_key())


def test_url_safe_and_unpadded_base64_are_read() -> None:
    data = b"\xfb\xff\xfe"
    assert b64decode(base64.urlsafe_b64encode(data).decode(), "x") == data
    assert b64decode(base64.b64encode(b"ab").decode().rstrip("="), "x") == b"ab"


def test_no_trusted_keys_fails() -> None:
    envelope = sign_envelope(PAYLOAD, IN_TOTO_PAYLOAD_TYPE, KEY)
    with pytest.raises(IntegrityError, match="no trusted keys"):
        verify_envelope(envelope, [])


# --- in-toto Statement v1 ---------------------------------------------------------------------


def test_make_statement_shape() -> None:
    digest = sha256_hex(b"data")
    statement = make_statement([("synthetic.csv", digest)], "https://synthgate.dev/release/v1", {"k": 1})
    assert statement == {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "synthetic.csv", "digest": {"sha256": digest}}],
        "predicateType": "https://synthgate.dev/release/v1",
        "predicate": {"k": 1},
    }
    assert STATEMENT_TYPE == "https://in-toto.io/Statement/v1"


def test_make_statement_refuses_bad_digest() -> None:
    with pytest.raises(ValueError, match="sha256 must be 64 lower-case hex"):
        make_statement([("a", "ABC")], "t", {})


# --- steward decisions ------------------------------------------------------------------------

DIGEST = sha256_hex(b"approval statement")


def _decision(**overrides: Any) -> dict[str, str]:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "statement_digest": DIGEST,
        "decision": "approve",
        "steward": "alice",
        "comment": "utility and privacy audits reviewed",
    }
    fields.update(overrides)
    return sign_decision(KEY, **fields)


def test_decision_round_trip() -> None:
    record = _decision()
    assert set(record) == {"run_id", "statement_digest", "decision", "steward", "comment", "keyid", "sig"}
    assert record["keyid"] == key_id(KEY.public_key())
    verify_decision(record, KEY.public_key())
    verify_decision(_decision(decision="reject"), KEY.public_key())


def test_decision_message_is_pae_over_canonical_body() -> None:
    record = _decision()
    body = canonical_json(
        {
            "context": APPROVAL_CONTEXT.decode(),
            "run_id": "run-1",
            "statement_digest": DIGEST,
            "decision": "approve",
            "steward": "alice",
            "comment": record["comment"],
        }
    )
    message = pae(APPROVAL_PAYLOAD_TYPE, body)
    assert message == decision_message(
        run_id="run-1",
        statement_digest=DIGEST,
        decision="approve",
        steward="alice",
        comment=record["comment"],
    )
    KEY.public_key().verify(base64.b64decode(record["sig"]), message)


def test_approval_copied_from_another_run_fails() -> None:
    record = _decision()
    for field, value in [
        ("run_id", "run-2"),
        ("statement_digest", sha256_hex(b"another statement")),
        ("decision", "reject"),
        ("steward", "bob"),
        ("comment", "edited"),
    ]:
        copied = dict(record, **{field: value})
        with pytest.raises(IntegrityError, match="signature does not verify"):
            verify_decision(copied, KEY.public_key())


def test_decision_wrong_key_fails() -> None:
    record = _decision()
    with pytest.raises(IntegrityError, match="is not the steward's key"):
        verify_decision(record, OTHER.public_key())
    # Even with the keyid relabelled, the signature itself does not verify.
    forged = dict(record, keyid=key_id(OTHER.public_key()))
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_decision(forged, OTHER.public_key())


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r.pop("sig"), "missing sig"),
        (lambda r: r.__setitem__("extra", 1), "unknown extra"),
        (lambda r: r.__setitem__("decision", "maybe"), "decision 'maybe' must be one of"),
        (lambda r: r.__setitem__("statement_digest", "abc"), "statement_digest must be 64"),
        (lambda r: r.__setitem__("sig", ""), "signature does not verify"),
        (lambda r: r.__setitem__("sig", "***"), "bad base64"),
        (lambda r: r.__setitem__("comment", None), "comment must be a string"),
    ],
)
def test_malformed_decision_fails(mutate: Any, reason: str) -> None:
    record = _decision()
    mutate(record)
    with pytest.raises(IntegrityError, match=reason):
        verify_decision(record, KEY.public_key())
    with pytest.raises(IntegrityError, match="not a JSON object"):
        verify_decision([], KEY.public_key())


def test_sign_decision_refuses_bad_fields() -> None:
    with pytest.raises(InputError, match="decision 'ok' must be one of approve, reject"):
        _decision(decision="ok")
    with pytest.raises(InputError, match="run_id must be a non-empty string"):
        _decision(run_id="")
