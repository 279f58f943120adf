"""Releasing an approved run as a signed bundle (DESIGN.md section 6)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from privacy.errors import GateError, IntegrityError
from release.approval_sig import verify_decision
from release.bundle import write_bundle
from release.crashpoints import crash_point
from release.db import Approval, Steward, chain_head_entry, log_event
from release.keys import key_id, public_key_from_pem
from release.members import active_grant
from release.runs import get_run, load_statement
from release.statement import datasheet_md, privacy_statement_md, statement_digest
from release.workspace import Workspace


def release(ws: Workspace, run_id: str, out: Path, *, tar: bool = False) -> Path:
    """Write the signed bundle of an approved run to ``out`` (and ``out.tar.gz`` with ``tar``)."""
    with ws.transaction() as s:
        run = get_run(s, run_id)
        if run.state not in ("approved", "released"):
            raise GateError(f"run {run_id} is {run.state}; only an approved run can be released")
        statement = load_statement(ws, run)
        # only the approvals of stewards whose role is active now: a revoked key's approval is
        # withdrawn from every release not yet made (release.members)
        rows = list(s.scalars(
            select(Approval).where(Approval.run_id == run_id, Approval.decision == "approve").order_by(Approval.id)))
        approvals = [json.loads(a.record_json) for a in rows if active_grant(s, a.steward, "steward") is not None]
        if len({a["steward"] for a in approvals}) < statement["policy"]["approvals_required"]:
            withdrawn = sorted({a.steward for a in rows} - {a["steward"] for a in approvals})
            why = f" (withdrawn by revocation: {', '.join(withdrawn)})" if withdrawn else ""
            raise GateError(f"run {run_id} lacks the approvals its policy requires{why}")
        stewards = {
            st.name: {"public_key_pem": st.public_key_pem, "keyid": st.keyid}
            for st in s.scalars(select(Steward).where(Steward.name.in_([a["steward"] for a in approvals])))
        }
        # re-check every stored approval before it is published: a row written into the database
        # by hand (or copied from another run) must not reach a bundle
        for a in approvals:
            st = stewards.get(a["steward"])
            if st is None:
                raise IntegrityError(f"approval by unknown steward {a['steward']!r} on run {run_id}")
            verify_decision(a, public_key_from_pem(st["public_key_pem"]))
            if a["run_id"] != run_id or a["statement_digest"] != run.statement_digest:
                raise IntegrityError(f"an approval stored for run {run_id} was signed for another run or statement")
        # the log's head before this release's own event (logged below, after the bundle is written)
        head = chain_head_entry(s)
    if not statement["gate"]["passed"]:
        raise GateError(f"run {run_id}'s gate did not pass")
    release_key = ws.release_key()
    d = ws.run_dir(run_id)
    files: dict[str, bytes] = {name: (d / name).read_bytes() for name in statement["files"]}
    # hash the very bytes that go into the bundle: a file swapped after load_statement's check
    # must not be published under the stewards' signatures
    if {n: hashlib.sha256(b).hexdigest() for n, b in files.items()} != statement["files"]:
        raise IntegrityError(f"run {run_id}: a run file changed while the bundle was being written")
    files["privacy-statement.md"] = privacy_statement_md(statement).encode()
    files["datasheet.md"] = datasheet_md(statement).encode()
    predicate: dict[str, Any] = {
        "run_id": run_id,
        "source": statement["source"],
        "source_commitment": statement["source_commitment"],
        "schema": statement["schema"],
        "generator": statement["generator"],
        "spend": statement["spend"],
        "policy": statement["policy"],
        "gate": statement["gate"],
        "approval_statement": statement,
        "approval_statement_digest": statement_digest(statement),
        "approvals": approvals,
        "stewards": stewards,
        "release_keyid": key_id(release_key.public_key()),
        "event_log_head": head.to_predicate(),
    }
    path = write_bundle(out, files, predicate, release_key, tar=tar)
    # a crash here leaves a complete, verifiable bundle and the run "approved": releasing again is allowed
    crash_point("release.before_commit")
    with ws.transaction() as s:
        run = get_run(s, run_id)
        if run.state not in ("approved", "released"):
            # a rejection landed while the bundle was written: take the bundle back
            shutil.rmtree(path, ignore_errors=True)
            Path(f"{path}.tar.gz").unlink(missing_ok=True)
            raise GateError(f"run {run_id} became {run.state} during release; the bundle was removed")
        run.state = "released"
        log_event(s, "run.released", run_id, out=str(out), tar=tar, event_log_head=head.to_predicate())
    return path
