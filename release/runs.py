"""Runs after synthesis: audit, the gate, the statement stewards sign, and review."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audits.report import render_html
from audits.suite import audit_document, run_audits
from policies.loader import policy_digest
from privacy.errors import GateError, InputError
from privacy.ledger import Source
from privacy.schema import Schema
from privacy.split import train_holdout
from privacy.table import load_verified
from release.atomic import write_atomic
from release.db import Approval, DatasetVersion, Run, log_event
from release.gate import GateDecision, evaluate
from release.sources import source_policy
from release.statement import file_digests, statement_digest
from release.synthesize import load_synthetic
from release.workspace import Workspace

Progress = Callable[[str], None]

#: states from which ``audit`` may (re)run
AUDITABLE = {"synthesized", "audited", "gate_failed", "awaiting_approval"}


def spend_of(run: Run) -> dict[str, float]:
    """The (epsilon, delta) charged to the ledger for a run."""
    return {"epsilon": run.epsilon, "delta": run.delta}


def get_run(s: Session, run_id: str) -> Run:
    run = s.get(Run, run_id)
    if run is None:
        raise InputError(f"unknown run {run_id!r}")
    return run


@dataclass(frozen=True)
class AuditOutcome:
    run_id: str
    decision: GateDecision
    document: dict[str, Any]


def audit(ws: Workspace, run_id: str, *, target: str | None = None, progress: Progress | None = None) -> AuditOutcome:
    """Audit a synthesized run, write audit.json and report.html, evaluate the gate."""
    with ws.transaction() as s:
        run = get_run(s, run_id)
        if run.state not in AUDITABLE:
            raise GateError(f"run {run_id} is {run.state}; only a synthesized run can be audited")
        if s.scalars(select(Approval).where(Approval.run_id == run_id)).first() is not None:
            raise GateError(f"run {run_id} already has steward decisions; re-auditing would change what they signed")
        src = s.get(Source, run.source_id)
        ver = s.get(DatasetVersion, run.version_id)
        assert src is not None and ver is not None
        policy = source_policy(src)
        schema = Schema.from_dict(json.loads(ver.schema_json))
        target = target or run.target
        if target is not None and target not in schema.names:
            raise InputError(f"target column {target!r} is not in the schema")
        data_path, fp, seed = ver.path, ver.fingerprint, run.seed
        src_name = src.name
        card = json.loads(run.card_json or "{}")
        spend = spend_of(run)
        requester = run.requester
        rows_requested = run.rows_requested

    df = load_verified(data_path, schema, fp)
    train, holdout = train_holdout(df, policy.holdout_fraction, seed)
    synthetic = load_synthetic(ws, run_id)
    results = run_audits(train, holdout, synthetic, schema, policy, target=target, progress=progress)
    decision = evaluate(results)
    context = {
        "run_id": run_id, "source": src_name, "generator": card.get("name"), "epsilon": spend["epsilon"],
        "delta": spend["delta"], "policy": policy.name, "target": target,
        "unit_of_privacy": card.get("unit_of_privacy"), "accounting": card.get("accounting"),
    }
    doc = audit_document(results, context)
    doc["gate"] = decision.to_dict()
    d = ws.run_dir(run_id)
    write_atomic(d / "audit.json", json.dumps(doc, indent=2, sort_keys=True).encode())
    write_atomic(d / "report.html", render_html(doc).encode())

    statement = {
        "synthgate_statement": 1,
        "run_id": run_id,
        "source": src_name,
        "source_fingerprint": fp,
        "schema": schema.to_dict(),
        "generator": card,
        "spend": spend,
        "rows_requested": rows_requested,
        "requester": requester,
        "policy": {
            "name": policy.name,
            "digest": policy_digest(policy),
            "approvals_required": policy.approvals.required,
            "requester_may_approve": policy.approvals.requester_may_approve,
        },
        "gate": decision.to_dict(),
        "files": file_digests(d),
    }
    write_atomic(d / "statement.json", json.dumps(statement, indent=2, sort_keys=True).encode())
    digest = statement_digest(statement)
    with ws.transaction() as s:
        run = get_run(s, run_id)
        run.state = "awaiting_approval" if decision.passed else "gate_failed"
        run.gate_passed = decision.passed
        run.statement_digest = digest
        log_event(s, "run.audited", run_id, gate_passed=decision.passed, statement_digest=digest,
                  failed=[c["name"] for c in decision.failed])
    return AuditOutcome(run_id=run_id, decision=decision, document=doc)


def load_statement(ws: Workspace, run: Run) -> dict[str, Any]:
    """The stored statement, refused if it no longer matches the digest recorded at audit time."""
    from privacy.errors import IntegrityError

    path = ws.run_dir(run.id) / "statement.json"
    if run.statement_digest is None or not path.is_file():
        raise GateError(f"run {run.id} has not been audited")
    st = json.loads(path.read_text())
    if statement_digest(st) != run.statement_digest:
        raise IntegrityError(f"run {run.id}: statement.json changed since the audit")
    if file_digests(ws.run_dir(run.id)) != st["files"]:
        raise IntegrityError(f"run {run.id}: a run file changed since the audit")
    return st


def review(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Everything a steward needs to decide: the run, its spend, the gate checks, decisions so far."""
    with ws.transaction() as s:
        run = get_run(s, run_id)
        src = s.get(Source, run.source_id)
        assert src is not None
        policy = source_policy(src)
        approvals = [
            {"steward": a.steward, "decision": a.decision, "comment": json.loads(a.record_json).get("comment", ""),
             "at": a.created_at.isoformat() if a.created_at else None}
            for a in s.scalars(select(Approval).where(Approval.run_id == run_id).order_by(Approval.id))
        ]
        out: dict[str, Any] = {
            "run_id": run.id, "source": src.name, "state": run.state, "generator": run.generator,
            "requester": run.requester, "spend": spend_of(run), "seed": run.seed, "error": run.error,
            "policy": policy.name, "approvals_required": policy.approvals.required,
            "statement_digest": run.statement_digest, "gate_passed": run.gate_passed, "approvals": approvals,
            "gate_checks": [],
        }
    audit_path = ws.run_dir(run_id) / "audit.json"
    if audit_path.is_file():
        out["gate_checks"] = json.loads(audit_path.read_text())["gate"]["checks"]
    return out
