"""Stewards and their signed decisions: dual control over what leaves.

An approval is a steward's Ed25519 signature over the run's statement digest (the digest of what
the audit produced: data files, audit results, gate checks, spend, policy). It is checked against
the key registered for that steward, is bound to one run and one statement (not replayable), and is
refused for a run whose gate failed and, where the policy says so, for the run's requester. Stewards
are registered and revoked by an admin (``release.members``); a revoked steward decides nothing more,
and their approvals stop counting for runs not yet released.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from privacy.errors import GateError, InputError, IntegrityError
from privacy.ledger import Source
from release.approval_sig import sign_decision, verify_decision
from release.db import Approval, log_event
from release.keys import load_private_key, public_key_from_pem
from release.members import counted_approvers, require_steward
from release.runs import get_run, load_statement
from release.sources import source_policy
from release.workspace import Workspace


def decide(
    ws: Workspace, run_id: str, steward: str, key_file: Path, decision: Literal["approve", "reject"], comment: str = ""
) -> dict[str, Any]:
    """Sign and record a steward's decision ("approve" or "reject") on a run."""
    key = load_private_key(key_file)
    with ws.transaction() as s:
        run = get_run(s, run_id)
        digest = run.statement_digest
    if digest is None:
        raise GateError(f"run {run_id} has not been audited; nothing to sign yet")
    record = sign_decision(key, run_id=run_id, statement_digest=digest, decision=decision, steward=steward, comment=comment)
    return record_decision(ws, record)


def record_decision(ws: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    """Check a signed decision record against the registered key and the run, then store it."""
    try:
        run_id = str(record["run_id"])
        steward = str(record["steward"])
        decision = str(record["decision"])
    except (KeyError, TypeError) as exc:
        raise InputError("malformed decision record") from exc
    if decision not in ("approve", "reject"):
        raise InputError(f"decision must be 'approve' or 'reject', not {decision!r}")
    with ws.transaction() as s:
        run = get_run(s, run_id)
        st = require_steward(s, steward)
        try:
            verify_decision(record, public_key_from_pem(st.public_key_pem))
        except IntegrityError as exc:
            raise IntegrityError(f"the decision is not signed by the key registered for steward {steward!r}") from exc
        if record.get("statement_digest") != run.statement_digest:
            raise IntegrityError(f"the decision was signed over another statement than run {run_id}'s")
        if run.state in ("rejected", "released", "auditing"):
            raise GateError(f"run {run_id} is {run.state}; no decisions are taken now")
        if decision == "approve" and run.state != "awaiting_approval" and run.state != "approved":
            reason = "its gate failed" if run.state == "gate_failed" else f"it is {run.state}"
            raise GateError(f"run {run_id} cannot be approved: {reason}")
        src = s.get(Source, run.source_id)
        assert src is not None
        policy = source_policy(src)
        if decision == "approve" and not policy.approvals.requester_may_approve and steward == run.requester:
            raise GateError(
                f"policy {policy.name!r} forbids the requester ({steward}) from approving their own run"
            )
        if s.scalars(select(Approval).where(Approval.run_id == run_id, Approval.steward == steward)).first():
            raise GateError(f"steward {steward!r} has already decided on run {run_id}")
        # the statement on disk must still be the one signed
        load_statement(ws, run)
        s.add(Approval(run_id=run_id, steward=steward, decision=decision, record_json=json.dumps(record, sort_keys=True)))
        s.flush()
        log_event(s, f"run.{decision}", run_id, steward=steward, keyid=st.keyid)
        approvers = counted_approvers(s, run)
        if decision == "reject":
            run.state = "rejected"
        elif len(approvers) >= policy.approvals.required:
            run.state = "approved"
        log_event(s, "run.state", run_id, state=run.state)
        return {
            "run_id": run_id, "steward": steward, "decision": decision, "state": run.state,
            "approvals": len(approvers), "approvals_required": policy.approvals.required,
        }




def approve(ws: Workspace, run_id: str, steward: str, key_file: Path, comment: str = "") -> dict[str, Any]:
    """Sign and record an approval (``synthgate approve``)."""
    return decide(ws, run_id, steward, key_file, "approve", comment)


def reject(ws: Workspace, run_id: str, steward: str, key_file: Path, reason: str) -> dict[str, Any]:
    """Sign and record a rejection (``synthgate reject``); one rejection stops the run."""
    return decide(ws, run_id, steward, key_file, "reject", reason)
