"""The JSON Schema of ``audit.json``, shipped with the package, and a validator for audit documents.

``audits/schemas/audit-v1.schema.json`` (JSON Schema draft 2020-12) describes the document
``audits.suite.audit_document`` writes once the release code has put ``release.gate.evaluate``'s
decision under ``"gate"``; every document names the schema it follows in its ``"schema"`` key.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from privacy.errors import IntegrityError

#: The ``$id`` of the schema; ``audit_document`` writes it under the document's ``"schema"`` key.
AUDIT_SCHEMA_URI = "https://synthgate.dev/schemas/audit-v1.json"

_SCHEMA_FILE = "audit-v1.schema.json"


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("audits").joinpath("schemas", _SCHEMA_FILE).read_text(encoding="utf-8")


def load_audit_schema() -> dict[str, Any]:
    """The audit document's JSON Schema, a fresh dict on every call."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def validate_audit_document(doc: Any) -> None:
    """Return if ``doc`` follows the audit schema, else raise ``IntegrityError`` naming the first failing path."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(load_audit_schema()).iter_errors(doc))
    if error is None:
        return
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = " ".join(error.message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    raise IntegrityError(f"audit document does not follow {AUDIT_SCHEMA_URI}: at {path or '(top level)'}: {message}")
