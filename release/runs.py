"""Runs after synthesis: audit, the gate, the statement stewards sign, and review."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audits.context import AuditContext, Claim
from audits.report import data_figures, first_screen, library_versions
from audits.suite import audit_document, run_audits
from policies.loader import policy_digest
from privacy.dataset import SourceFiles, load_source, split_source
from privacy.errors import GateError, InputError, IntegrityError
from privacy.generators.registry import RegisteredRefitter
from privacy.graphs import GraphData
from privacy.ledger import Source
from privacy.schema import Schema
from privacy.sequences import SequenceData
from release.atomic import write_atomic
from release.crashpoints import crash_point, on_other_host, owner_alive, process_owner
from release.db import Approval, DatasetVersion, Event, Run, log_event
from release.gate import GateDecision, evaluate
from release.heartbeat import Heartbeat, as_utc, db_now, silent_for, stale_limit
from release.members import approval_rows
from release.report import audit_time_extras, current_extras, write_audit_reports
from release.sources import source_policy, version_files
from release.statement import file_digests, statement_digest
from release.synthesize import check_target, load_synthetic_data
from release.workspace import Workspace

Progress = Callable[[str], None]

#: states from which ``audit`` may (re)run; "auditing" only after a crashed audit whose process
#: this host cannot see (``reap_dead_runs`` takes a run whose audit process is gone out of it)
AUDITABLE = {"synthesized", "auditing", "gate_failed", "awaiting_approval"}

#: states a command holds a run in while its process works; the event entering one names the process
TRANSIENT = {"created": "run.created", "auditing": "run.auditing"}


def _transient_event(s: Session, run: Run) -> dict[str, Any]:
    """The detail of the event that put ``run`` into its transient state (owner, previous state)."""
    ev = s.scalars(select(Event).where(Event.run_id == run.id, Event.kind == TRANSIENT[run.state])
                   .order_by(Event.id.desc()).limit(1)).first()
    try:
        detail = json.loads(ev.detail_json) if ev is not None else {}
    except ValueError:
        detail = {}
    return detail if isinstance(detail, dict) else {}


def _statement_intact(ws: Workspace, run: Run) -> bool:
    try:
        load_statement(ws, run)
    except (GateError, IntegrityError):
        return False
    return True


def _end_audit(s: Session, ws: Workspace, run: Run, previous: Any, reason: str) -> None:
    """Take a run out of "auditing" after an audit that did not finish, in the caller's transaction.

    The previous audit stands if its files are all still there as its statement lists them;
    otherwise (the audit had begun replacing them) the run is back to "synthesized", with no
    statement, and must be audited again: files of two audits are never offered for decision.
    """
    if previous in ("gate_failed", "awaiting_approval") and _statement_intact(ws, run):
        run.state = previous
    else:
        run.state = "synthesized"
        run.statement_digest = None
        run.gate_passed = None
    run.error = f"{reason}; the run is {run.state}" + ("" if run.state != "synthesized" else ", audit it again")
    log_event(s, "run.audit_failed", run.id, error=run.error, state=run.state)


def _why_dead(run: Run, owner: Any, now: datetime, limit: float) -> str | None:
    """Why the process working on ``run`` is taken for dead ("process N on H ..."), or None while it may
    be running: on this host, when it is gone; on another host, when its heartbeat is older than
    ``limit`` seconds. A run of another host without a heartbeat (its process predates heartbeats)
    or without a recorded process is never taken for dead: it may be running."""
    if not isinstance(owner, dict):
        return None
    who = f"process {owner.get('pid')} on {owner.get('host')}"
    if owner_alive(owner) is False:
        return f"{who} ended before finishing (killed or crashed)"
    silent = silent_for(run.heartbeat_at, now)
    if on_other_host(owner) and run.heartbeat_at is not None and silent is not None and silent > limit:
        since = as_utc(run.heartbeat_at).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{who} sent no heartbeat since {since} (over {limit:g} s): presumed dead"
    return None


def reap_dead_runs(ws: Workspace) -> list[str]:
    """Mark the runs whose synthesis or audit process is gone (killed, crashed, the machine
    restarted, or on another host silent for too long), in one transaction; return their ids.

    A run "created" whose synthesis process ended is failed (its charge stays: the data may have
    been read); a run "auditing" whose audit process ended gets its previous state back, or
    "synthesized" when its audit files were partly replaced (``_end_audit``). A process on another
    host is presumed dead once its run's heartbeat (``release.heartbeat``) is older than the stale
    limit (``STALE_S``, or ``SYNTHGATE_RUN_STALE_S``); one without a heartbeat, or a run with no
    recorded process, is left as it is (it may be running). The reason is in the run's ``error``.
    """
    reaped: list[str] = []
    limit = stale_limit()
    with ws.transaction() as s:
        now = db_now(s)
        for run in s.scalars(select(Run).where(Run.state.in_(list(TRANSIENT)))).all():
            detail = _transient_event(s, run)
            why = _why_dead(run, detail.get("owner"), now, limit)
            if why is None:
                continue
            if run.state == "created":
                run.state = "failed"
                run.error = f"synthesis interrupted: {why}; the budget stays charged"
                log_event(s, "run.failed", run.id, error=run.error)
            else:
                _end_audit(s, ws, run, detail.get("from_state"), f"audit interrupted: {why}")
            reaped.append(run.id)
    for run_id in reaped:
        # a synthesis killed while writing leaves its hidden staging folder
        for partial in ws.runs_dir.glob(f".{run_id}.partial-*"):
            shutil.rmtree(partial, ignore_errors=True)
    return reaped


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


def audit(ws: Workspace, run_id: str, *, target: str | None = None, profile: str | None = None,
          progress: Progress | None = None) -> AuditOutcome:
    """Audit a synthesized run, write audit.json and report.html, evaluate the gate.

    ``profile`` picks the membership attacks' settings ("fast" or "thorough"); the default is the
    one the policy requires. The attacks that retrain refit the run's generator with its options
    and spend, and test its DP claim (epsilon, delta as charged).
    """
    reap_dead_runs(ws)
    with ws.transaction() as s:
        run = get_run(s, run_id)
        owner = _transient_event(s, run).get("owner") if run.state == "auditing" else None
        if isinstance(owner, dict) and owner_alive(owner):
            raise GateError(f"run {run_id} is being audited by process {owner['pid']}; wait for it to finish")
        silent = silent_for(run.heartbeat_at, db_now(s)) if run.state == "auditing" else None
        if on_other_host(owner) and silent is not None and silent <= stale_limit():
            # its heartbeat is fresh: that process is working on the run (reap_dead_runs took it
            # out of "auditing" otherwise)
            assert isinstance(owner, dict)
            raise GateError(f"run {run_id} is being audited by process {owner.get('pid')} on {owner.get('host')} "
                            f"(heartbeat {max(silent, 0):.0f} s ago); wait for it to finish")
        if run.state not in AUDITABLE:
            raise GateError(f"run {run_id} is {run.state}; only a synthesized run can be audited")
        if s.scalars(select(Approval).where(Approval.run_id == run_id)).first() is not None:
            raise GateError(f"run {run_id} already has steward decisions; re-auditing would change what they signed")
        src = s.get(Source, run.source_id)
        ver = s.get(DatasetVersion, run.version_id)
        assert src is not None and ver is not None
        policy = source_policy(src)
        schema = Schema.from_dict(json.loads(ver.schema_json))
        if target is not None and run.target is not None and target != run.target:
            # the target is fixed once chosen, so that re-auditing cannot shop for a passing one
            raise InputError(f"run {run_id} was requested with target {run.target!r}; it cannot change")
        target = target or run.target
        check_target(target, schema)
        profile = profile or policy.audit.membership_required
        if profile not in policy.audit.membership:
            raise InputError(f"unknown membership profile {profile!r} (known: fast, thorough)")
        refitter = RegisteredRefitter(name=run.generator, options=json.loads(run.options_json or "{}"),
                                      epsilon=run.epsilon, delta=run.delta)
        files, split_seed = version_files(s, ver), run.split_seed
        src_name = src.name
        card = json.loads(run.card_json or "{}")
        spend = spend_of(run)
        requester = run.requester
        rows_requested = run.rows_requested
        # after an audit whose process this host could not see, the state before it
        previous_state = _transient_event(s, run).get("from_state") if run.state == "auditing" else run.state
        # while the audit runs no decision or release may happen: they would sign or publish files
        # that the audit is about to replace
        run.state = "auditing"
        run.heartbeat_at = db_now(s)
        log_event(s, "run.auditing", run_id, owner=process_owner(), from_state=previous_state)

    # while the audit works a heartbeat tells other hosts this process is alive (``reap_dead_runs``)
    heart = Heartbeat(ws, run_id, "auditing").start()
    try:
        ctx = AuditContext(target=target, claim=Claim(epsilon=spend["epsilon"], delta=spend["delta"]),
                           refitter=refitter, profile=profile, progress=progress)
        return _audit_body(ws, run_id, files, split_seed, schema, policy, ctx, src_name, card, spend,
                           requester, rows_requested, progress)
    except BaseException as exc:
        heart.stop()
        with ws.transaction() as s:
            run = get_run(s, run_id)
            if run.state == "auditing":
                _end_audit(s, ws, run, previous_state,
                           f"audit failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"[:500])
        raise
    finally:
        heart.stop()  # a beat still under way changes nothing once the run has left "auditing"


def _audit_body(ws: Workspace, run_id: str, files: SourceFiles, split_seed: int, schema: Schema,
                policy: Any, ctx: AuditContext, src_name: str, card: dict[str, Any], spend: dict[str, float],
                requester: str, rows_requested: int | None, progress: Progress | None) -> AuditOutcome:
    import polars as pl

    target = ctx.target
    data = load_source(files, schema)
    train, holdout = split_source(data, schema, policy.holdout_for(schema.kind), split_seed)
    try:
        synthetic = load_synthetic_data(ws, run_id, schema)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise IntegrityError(f"run {run_id}: synthetic.parquet is missing or unreadable") from exc
    except InputError as exc:
        raise IntegrityError(f"run {run_id}: synthetic.parquet does not conform to the schema: {exc}") from exc
    if schema.is_graph:
        from audits.graph.suite import run_graph_audits

        assert isinstance(synthetic, GraphData)
        results = run_graph_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    elif schema.is_sequential:
        from audits.sequential.suite import run_sequence_audits

        assert isinstance(synthetic, SequenceData)
        results = run_sequence_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    else:
        assert isinstance(synthetic, pl.DataFrame)
        results = run_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    decision = evaluate(results)
    context = {
        "run_id": run_id, "source": src_name, "generator": card.get("name"), "epsilon": spend["epsilon"],
        "delta": spend["delta"], "policy": policy.name, "target": target,
        "unit_of_privacy": card.get("unit_of_privacy"), "accounting": card.get("accounting"),
        "membership_profile": ctx.profile, "kind": schema.kind,
    }
    doc = audit_document(results, context)
    doc["gate"] = decision.to_dict()
    doc["software"] = library_versions()
    if progress is not None:
        progress("report: figures and report.html")
    figures = data_figures(schema.kind, train, synthetic, schema)
    d = ws.run_dir(run_id)
    write_atomic(d / "audit.json", json.dumps(doc, indent=2, sort_keys=True).encode())
    crash_point("audit.after_audit_json")
    extras = audit_time_extras(ws, source=src_name, policy=policy, requester=requester, schema=schema.to_dict(),
                               state="awaiting_approval" if decision.passed else "gate_failed")
    write_audit_reports(d, doc, figures, extras)

    statement = {
        "synthgate_statement": 1,
        "run_id": run_id,
        "source": src_name,
        "source_commitment": ws.source_commitment(files.combined_fingerprint),
        "domain_from_data": schema.drafted_from_data,
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
    crash_point("audit.before_commit")
    with ws.transaction() as s:
        run = get_run(s, run_id)
        if run.state != "auditing" or s.scalars(select(Approval).where(Approval.run_id == run_id)).first():
            raise GateError(f"run {run_id} changed while it was being audited ({run.state}); audit again")
        run.target = target
        run.state = "awaiting_approval" if decision.passed else "gate_failed"
        run.gate_passed = decision.passed
        run.statement_digest = digest
        run.error = None
        log_event(s, "run.audited", run_id, gate_passed=decision.passed, statement_digest=digest,
                  failed=[c["name"] for c in decision.failed])
    return AuditOutcome(run_id=run_id, decision=decision, document=doc)


def load_statement(ws: Workspace, run: Run) -> dict[str, Any]:
    """The stored statement, refused if it no longer matches the digest recorded at audit time."""
    path = ws.run_dir(run.id) / "statement.json"
    if run.statement_digest is None:
        raise GateError(f"run {run.id} has not been audited")
    try:
        st = json.loads(path.read_text())
        digests = file_digests(ws.run_dir(run.id))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"run {run.id}: a run file is missing or unreadable") from exc
    if not isinstance(st, dict) or statement_digest(st) != run.statement_digest:
        raise IntegrityError(f"run {run.id}: statement.json changed since the audit")
    if digests != st.get("files"):
        raise IntegrityError(f"run {run.id}: a run file changed since the audit")
    return st


def review(ws: Workspace, run_id: str) -> dict[str, Any]:
    """Everything a steward needs to decide: the run, its spend, the gate checks, decisions so far."""
    reap_dead_runs(ws)
    with ws.transaction() as s:
        run = get_run(s, run_id)
        src = s.get(Source, run.source_id)
        assert src is not None
        policy = source_policy(src)
        approvals = approval_rows(s, run_id)
        out: dict[str, Any] = {
            "run_id": run.id, "source": src.name, "state": run.state, "generator": run.generator,
            "requester": run.requester, "spend": spend_of(run), "seed": run.seed, "error": run.error,
            "policy": policy.name, "approvals_required": policy.approvals.required,
            "statement_digest": run.statement_digest, "gate_passed": run.gate_passed, "approvals": approvals,
            "gate_checks": [],
        }
    audit_path = ws.run_dir(run_id) / "audit.json"
    out["attacks"] = []
    out["decision"] = None
    if audit_path.is_file():
        try:
            doc = json.loads(audit_path.read_text())
            out["gate_checks"] = doc["gate"]["checks"]
            out["attacks"] = attack_figures(doc)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"run {run_id}: audit.json is unreadable") from exc
        screen = first_screen(doc, current_extras(ws, run_id, doc, view="release", for_print=False))
        out["decision"] = {"status": screen.status, "headline": screen.headline, "reason": screen.reason,
                           "guarantee": screen.guarantee, "budget": screen.budget, "approvals": screen.approvals}
    return out


def list_runs(ws: Workspace, source: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    """Every run (of one source, or in one state), newest first: what ``synthgate runs`` lists.

    Read from the database only; ``decision`` is the gate's (passed / failed / null before an
    audit), ``kind`` the source's data kind at the run's version, ``error`` why the run failed
    (or why its last audit did not finish; null otherwise). Runs whose synthesis or audit process
    is gone are marked first (``reap_dead_runs``).
    """
    reap_dead_runs(ws)
    with ws.transaction() as s:
        q = select(Run, Source.name, DatasetVersion.schema_json).join(Source, Source.id == Run.source_id) \
            .join(DatasetVersion, DatasetVersion.id == Run.version_id)
        if source is not None:
            q = q.where(Source.name == source)
        if state is not None:
            q = q.where(Run.state == state)
        rows = s.execute(q.order_by(Run.created_at.desc(), Run.id)).all()
        if source is not None and not rows and s.scalars(select(Source).where(Source.name == source)).first() is None:
            raise InputError(f"unknown source {source!r}")
        out = []
        for run, src_name, schema_json in rows:
            approvals = approval_rows(s, run.id)
            out.append({
                "run_id": run.id, "source": src_name, "kind": json.loads(schema_json).get("kind", "tabular"),
                "state": run.state, "generator": run.generator, "epsilon": run.epsilon, "delta": run.delta,
                "decision": None if run.gate_passed is None else ("passed" if run.gate_passed else "failed"),
                "approvals": sum(a["decision"] == "approve" and not a["withdrawn"] for a in approvals),
                "requester": run.requester,
                "created_at": run.created_at.isoformat() if run.created_at else None,
                "error": run.error,
            })
    return out


#: the audits whose every figure (gated or not) review shows
MEMBERSHIP_AUDITS = ("membership", "domias", "one_run", "shadow_game")


def attack_figures(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every membership attack's figures from an audit document, reported ones included, and the
    notes of attacks that did not run."""
    rows: list[dict[str, Any]] = []
    for result in doc.get("results", []):
        if result.get("audit") not in MEMBERSHIP_AUDITS:
            continue
        for m in result.get("metrics", []):
            rows.append({"audit": result["audit"], "name": m["name"], "value": m["value"], "interval": m["interval"],
                         "role": m["role"], "kind": m.get("kind", "threshold"), "passed": m["passed"],
                         "flags": m["flags"], "method": (m.get("details") or {}).get("method")})
        for note in result.get("notes", []):
            rows.append({"audit": result["audit"], "name": "note", "value": None, "interval": None, "role": "info",
                         "kind": "threshold", "passed": None, "flags": [note], "method": None})
    return rows
