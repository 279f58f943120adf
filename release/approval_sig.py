"""A steward's signed decision (approve or reject) on one run's approval statement.

The signed message is the DSSE v1 PAE (see ``release.dsse``) with payloadType
``application/vnd.synthgate.approval+json`` over the canonical JSON of::

    {"context": "synthgate-approval-v1", "run_id": ..., "statement_digest": ...,
     "decision": "approve" | "reject", "steward": ..., "comment": ...}

The run id and the statement digest are inside the signed bytes, so an approval copied onto
another run, or onto a changed statement, does not verify. ``context`` (``APPROVAL_CONTEXT``)
versions the message: the payloadType already separates approvals from every other synthgate
signature, and the context keeps a future v2 message from ever being read as a v1 one. It is
fixed, so the stored record does not repeat it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.errors import InputError, IntegrityError
from release.canonical import canonical_json
from release.dsse import b64decode, b64encode, pae
from release.keys import key_id

APPROVAL_CONTEXT = b"synthgate-approval-v1"
APPROVAL_PAYLOAD_TYPE = "application/vnd.synthgate.approval+json"
DECISIONS = ("approve", "reject")
RECORD_KEYS = frozenset({"run_id", "statement_digest", "decision", "steward", "comment", "keyid", "sig"})

Decision = Literal["approve", "reject"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _field_problem(
    run_id: Any, statement_digest: Any, decision: Any, steward: Any, comment: Any
) -> str | None:
    """The first thing wrong with the signed fields, or None."""
    if not isinstance(run_id, str) or not run_id:
        return "run_id must be a non-empty string"
    if not isinstance(statement_digest, str) or not _HEX64.fullmatch(statement_digest):
        return "statement_digest must be 64 lower-case hex characters (a SHA-256)"
    if decision not in DECISIONS:
        return f"decision {decision!r} must be one of {', '.join(DECISIONS)}"
    if not isinstance(steward, str) or not steward:
        return "steward must be a non-empty string"
    if not isinstance(comment, str):
        return "comment must be a string"
    return None


def decision_message(
    *, run_id: str, statement_digest: str, decision: str, steward: str, comment: str
) -> bytes:
    """The exact bytes a steward signs (PAE over the canonical JSON body); exposed for tests and audits."""
    body = canonical_json(
        {
            "context": APPROVAL_CONTEXT.decode("ascii"),
            "run_id": run_id,
            "statement_digest": statement_digest,
            "decision": decision,
            "steward": steward,
            "comment": comment,
        }
    )
    return pae(APPROVAL_PAYLOAD_TYPE, body)


def sign_decision(
    key: Ed25519PrivateKey,
    *,
    run_id: str,
    statement_digest: str,
    decision: Decision,
    steward: str,
    comment: str,
) -> dict[str, str]:
    """Sign a steward's decision on ``statement_digest`` of ``run_id``; return the approval record.

    The record is ``{"run_id", "statement_digest", "decision", "steward", "comment", "keyid",
    "sig"}`` with ``keyid`` the signer's key id and ``sig`` the Base64 Ed25519 signature.
    Raises ``InputError`` for a malformed field.
    """
    problem = _field_problem(run_id, statement_digest, decision, steward, comment)
    if problem:
        raise InputError(f"cannot sign decision: {problem}")
    message = decision_message(
        run_id=run_id, statement_digest=statement_digest, decision=decision, steward=steward, comment=comment
    )
    return {
        "run_id": run_id,
        "statement_digest": statement_digest,
        "decision": decision,
        "steward": steward,
        "comment": comment,
        "keyid": key_id(key.public_key()),
        "sig": b64encode(key.sign(message)),
    }


def verify_decision(record: Any, public_key: Ed25519PublicKey) -> None:
    """Check an approval record's signature with ``public_key``; ``IntegrityError`` if it fails.

    Fails if the record is malformed (missing or unknown fields, bad types), if its ``keyid`` is
    not ``public_key``'s id, or if the signature does not verify over the recorded fields.
    """
    if not isinstance(record, dict):
        raise IntegrityError("malformed approval record: not a JSON object")
    missing = RECORD_KEYS - record.keys()
    extra = record.keys() - RECORD_KEYS
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(sorted(missing))}" if missing else "",
                f"unknown {', '.join(sorted(map(str, extra)))}" if extra else "",
            )
            if part
        )
        raise IntegrityError(f"malformed approval record: {detail}")
    who = record["steward"] if isinstance(record["steward"], str) else "?"
    problem = _field_problem(
        record["run_id"], record["statement_digest"], record["decision"], record["steward"], record["comment"]
    )
    if problem:
        raise IntegrityError(f"malformed approval record of {who!r}: {problem}")
    expected_id = key_id(public_key)
    if record["keyid"] != expected_id:
        raise IntegrityError(
            f"approval of {who!r}: keyid {str(record['keyid'])[:16]} "
            f"is not the steward's key {expected_id[:16]}"
        )
    sig = b64decode(record["sig"], f"approval signature of {who!r}")
    message = decision_message(
        run_id=record["run_id"],
        statement_digest=record["statement_digest"],
        decision=record["decision"],
        steward=record["steward"],
        comment=record["comment"],
    )
    try:
        public_key.verify(sig, message)
    except InvalidSignature as exc:
        raise IntegrityError(f"approval of {who!r}: signature does not verify") from exc
