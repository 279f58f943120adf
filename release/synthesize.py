"""Synthesis: charge the budget first, then read the data, split, fit on train, sample, store."""

from __future__ import annotations

import io
import json
import os
import pickle
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from privacy.dataset import load_source, parse_output, split_source
from privacy.errors import BudgetError, InputError, PolicyError, SynthgateError
from privacy.generators.registry import check_kind, generator_names, get_generator
from privacy.graphs import GraphData
from privacy.ledger import Charge, charge, lock_account
from privacy.schema import Schema
from privacy.sequences import SequenceData
from privacy.spend import PrivacySpend
from release.atomic import fsync_dir, write_atomic
from release.crashpoints import crash_point, process_owner
from release.db import Run, log_event
from release.heartbeat import Heartbeat, db_now
from release.members import require_requester
from release.sources import caps_of, check_name, get_source, latest_version, source_policy, version_files
from release.workspace import Workspace

if TYPE_CHECKING:
    import polars as pl
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Progress = Callable[[str, float | None], None]

MAX_ROWS = 10_000_000


@dataclass(frozen=True, kw_only=True)
class SynthesisRequest:
    source: str
    generator: str
    epsilon: float
    delta: float | None = None
    rows: int | None = None
    seed: int | None = None
    requester: str = "steward"
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def recommended_generator(ws: Workspace, source: str) -> str:
    """The generator the source's policy recommends for its schema's shape (reads no data)."""
    with ws.transaction() as s:
        src = get_source(s, source)
        policy = source_policy(src)
        schema = Schema.from_dict(json.loads(latest_version(s, src).schema_json))
    share = sum(c.is_numeric for c in schema.columns) / max(len(schema.columns), 1)
    try:
        name = policy.recommended_generator(share, kind=schema.kind)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    check_schema = getattr(get_generator(name), "check_schema", None)
    if check_schema is not None:
        try:
            check_schema(schema)
        except InputError as exc:
            # e.g. dpdk2 for a directed graph or a schema without a degree cap
            raise InputError(f"policy {policy.name!r} recommends {name!r}, which cannot take this source "
                             f"({exc}); name a generator with --generator") from None
    return name


def _accounting_kind(generator: str) -> str:
    return {"mst": "zCDP", "aim": "zCDP", "dpctgan": "RDP, DP-SGD", "dpdiffusion": "RDP, DP-SGD",
            "patectgan": "PATE moments accountant", "dpmarkov": "zCDP, entity-level",
            "dpar": "RDP, MST + DP-SGD, entity-level", "dpdegree": "edge-level DP", "dpdk2": "edge-level DP",
            "privgraph": "edge-level DP"}.get(generator, "DP")


def check_within(reserved: PrivacySpend, actual: PrivacySpend) -> None:
    """A generator's reported spend must not exceed what was charged (a generator bug otherwise)."""
    if actual.epsilon > reserved.epsilon * (1 + 1e-9) or actual.delta > reserved.delta * (1 + 1e-9):
        raise SynthgateError(
            f"generator reported epsilon={actual.epsilon:g}, delta={actual.delta:g}, more than the "
            f"{reserved.epsilon:g}, {reserved.delta:g} charged: refusing the run"
        )


def settle(s: Any, run: Run, reserved: PrivacySpend, actual: PrivacySpend) -> None:
    """Bring a run's charge down to what its accountant reports for the mechanism actually run.

    The reserved spend was charged before the data was read. A generator whose noise calibration
    landed under the budget (PATE's certified vote noise; the DP-SGD generators report their
    fixed-order guarantee, which is the budget itself) reports a smaller
    (epsilon, delta); the ledger then records a credit row for the difference (charges are append-only) and
    the run's claim becomes the accountant's figure. A report *above* the reservation is a bug in
    the generator and fails the run: nothing is credited and the claim is not raised after the fact.
    """
    check_within(reserved, actual)
    tol = 1e-12
    d_eps = reserved.epsilon - actual.epsilon
    d_delta = reserved.delta - actual.delta
    if d_eps <= tol and d_delta <= tol:
        return
    s.add(Charge(source_id=run.source_id, run_id=run.id, epsilon=-max(d_eps, 0.0), delta=-max(d_delta, 0.0),
                 mechanism=f"{run.generator} settlement: accountant reports epsilon {actual.epsilon:.6g}, "
                           f"delta {actual.delta:.3g} for the training run (reserved {reserved.epsilon:g})"))
    run.epsilon = actual.epsilon
    run.delta = actual.delta
    log_event(s, "budget.settle", run.id, epsilon=actual.epsilon, delta=actual.delta,
              reserved_epsilon=reserved.epsilon, reserved_delta=reserved.delta)


def _new_run_id() -> str:
    return "run-" + secrets.token_hex(6)


def synthesize(ws: Workspace, req: SynthesisRequest, progress: Progress | None = None,
               requester_key: Ed25519PrivateKey | None = None) -> str:
    """Run one synthesis; returns the run id. The charge is committed before the data is read.

    ``requester_key``: the requester's private key, required when their role was granted with a
    public key (``release.members.require_requester``).
    """
    say = progress or (lambda _m, _f: None)
    if req.generator not in generator_names():
        raise InputError(f"unknown generator {req.generator!r} (known: {', '.join(generator_names())})")
    check_name("requester", req.requester)
    if req.rows is not None and not 1 <= req.rows <= MAX_ROWS:
        raise InputError(f"--rows ({req.rows}) must be between 1 and {MAX_ROWS}")
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    if not 0 <= seed < 2**63:
        raise InputError(f"seed ({seed}) must be a non-negative integer")
    # everything that can be refused without reading the data is refused before the charge:
    # generator options, the zCDP conversion, the data file's presence and fingerprint
    generator = get_generator(req.generator, **req.options)
    # a run left "created" by a synthesis process that died is marked failed first (its runs count)
    from release.runs import reap_dead_runs

    reap_dead_runs(ws)
    run_id = _new_run_id()
    split_seed = secrets.randbits(62)

    # 1. check and charge in one write-locked transaction, before anything reads the data
    with ws.transaction() as s:
        src = get_source(s, req.source)
        # PostgreSQL: the account row stays locked until this transaction commits, so the run count
        # and the balance below are read after any concurrent charge of this source has committed
        lock_account(s, src)
        policy = source_policy(src)
        if req.generator not in policy.allowed_generators:
            raise PolicyError(
                f"policy {policy.name!r} does not allow generator {req.generator!r} "
                f"(allowed: {', '.join(policy.allowed_generators)})"
            )
        delta = policy.budget.per_release_delta if req.delta is None else req.delta
        spend = PrivacySpend(epsilon=req.epsilon, delta=delta)
        if spend.delta <= 0:
            raise InputError(
                f"generator {req.generator!r} is zCDP and needs delta > 0 (the policy's per-release delta "
                f"is {policy.budget.per_release_delta:g})"
            )
        n_runs = s.scalar(select(func.count()).select_from(Run).where(Run.source_id == src.id)) or 0
        if n_runs >= policy.budget.max_runs_per_source:
            raise BudgetError(
                f"source {src.name!r} has had {n_runs} synthesis runs, the policy's cap "
                f"(max_runs_per_source = {policy.budget.max_runs_per_source})"
            )
        ver = latest_version(s, src)
        schema = Schema.from_dict(json.loads(ver.schema_json))
        check_kind(req.generator, schema)
        # what a generator cannot do with this schema (directed graphs, node attributes, ...) is
        # refused here, before the charge, not in fit after it
        check_schema = getattr(generator, "check_schema", None)
        if check_schema is not None:
            check_schema(schema)
        if schema.is_graph and req.rows is not None:
            raise InputError("--rows is not used for graphs: a synthetic graph has the public node count, or the "
                             "DP estimate of it when the node set is bought")
        files = version_files(s, ver)
        files.precheck()
        target = req.target or policy.targets.get(src.name) or schema.target
        check_target(target, schema)
        # once the workspace has an admin, only a registered requester spends the budget
        requester_keyid = require_requester(s, req.requester, requester_key)
        charge(s, src, spend, caps_of(policy), run_id=run_id, mechanism=f"{req.generator} ({_accounting_kind(req.generator)})")
        s.add(
            Run(
                id=run_id, source_id=src.id, version_id=ver.id, generator=req.generator,
                options_json=json.dumps(req.options, sort_keys=True), epsilon=spend.epsilon, delta=spend.delta,
                rows_requested=req.rows, seed=seed, split_seed=split_seed, requester=req.requester, target=target,
                state="created", heartbeat_at=db_now(s),
            )
        )
        log_event(s, "budget.charge", run_id, source=src.name, epsilon=spend.epsilon, delta=spend.delta)
        # the process doing the synthesis: a run still "created" after it ended was interrupted
        log_event(s, "run.created", run_id, generator=req.generator, requester=req.requester,
                  requester_keyid=requester_keyid,
                  owner=process_owner())
    crash_point("synthesize.after_charge")
    say(f"charged epsilon={spend.epsilon:g}, delta={spend.delta:g} to {req.source!r} (run {run_id})", None)

    # 2. read, fit, sample. Any failure from here on marks the run failed; the charge stays, since
    # the data may already have been touched. Meanwhile a heartbeat tells other hosts this process works.
    heart = Heartbeat(ws, run_id, "created").start()
    try:
        data = load_source(files, schema)
        train, _holdout = split_source(data, schema, policy.holdout_for(schema.kind), split_seed)
        fitted = generator.fit(train, schema, spend, progress=progress)
        check_within(spend, fitted.card.spend)
        n = req.rows if req.rows is not None else min(MAX_ROWS, max(1, int(fitted.estimated_rows)))
        say(f"sampling {n} {_units(schema)}", None)
        synthetic = fitted.sample(n, seed)
        _store_outputs(ws, run_id, synthetic, fitted)
        crash_point("synthesize.before_commit")
    except BaseException as exc:
        heart.stop()
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        with ws.transaction() as s:
            run = s.get(Run, run_id)
            assert run is not None
            if run.state == "created":  # not already failed by a process that presumed this one dead
                run.state = "failed"
                run.error = msg[:500]
                log_event(s, "run.failed", run_id, error=msg[:500])
        if isinstance(exc, SynthgateError):
            raise
        if isinstance(exc, Exception):
            raise SynthgateError(f"synthesis failed (run {run_id} marked failed, budget stays charged): {msg}") from exc
        raise

    heart.stop()  # the work is done; a beat still under way changes nothing once the run leaves "created"
    actual = fitted.card.spend
    with ws.transaction() as s:
        run = s.get(Run, run_id)
        assert run is not None
        if run.state != "created":
            # another host presumed this process dead (no heartbeat for too long) and failed the run:
            # its outputs are not used, the budget stays charged
            raise SynthgateError(f"run {run_id} was marked {run.state} while it was being synthesized "
                                 f"({run.error or 'no reason recorded'}); its outputs are not used")
        settle(s, run, spend, actual)
        run.state = "synthesized"
        run.card_json = json.dumps(fitted.card.to_dict(), sort_keys=True, default=str)
        log_event(s, "run.synthesized", run_id, rows=n)
    return run_id


def _units(schema: Schema) -> str:
    return "entities" if schema.is_sequential else "nodes" if schema.is_graph else "rows"


def check_target(target: str | None, schema: Schema) -> None:
    """A utility target must be a schema column; for sequences, a static (per-entity) one."""
    if target is None:
        return
    if target not in schema.names:
        raise InputError(f"target column {target!r} is not in the schema")
    if schema.is_sequential and target not in schema.seq.static:
        raise InputError(f"target column {target!r} must be a static (per-entity) column for sequences")


def _store_outputs(ws: Workspace, run_id: str, synthetic: pl.DataFrame | SequenceData | GraphData,
                   fitted: Any) -> None:
    """Write the run folder whole: into a hidden staging folder beside it, then renamed into place,
    so that a crash leaves no run folder or a complete one (never a synthetic table without the rest)."""
    final = ws.run_dir(run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    d = final.parent / f".{run_id}.partial-{secrets.token_hex(6)}"
    d.mkdir()
    try:
        _write_outputs(d, synthetic, fitted)
        # rename(2) replaces an empty folder and fails on a full one: a run folder is never merged
        os.replace(d, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise


def _write_outputs(d: Any, synthetic: pl.DataFrame | SequenceData | GraphData, fitted: Any) -> None:
    if isinstance(synthetic, GraphData):
        # a graph is its edge list (synthetic.*) and its node table (every node, isolated ones too)
        _write_frame(d, "synthetic-nodes", synthetic.node_frame())
        synthetic = synthetic.edge_frame()
    elif isinstance(synthetic, SequenceData):
        # one long table, as the steward registered it: entity, order, statics repeated, events
        synthetic = synthetic.to_long()
    _write_frame(d, "synthetic", synthetic)
    write_atomic(d / "card.json", json.dumps(fitted.card.to_dict(), indent=2, sort_keys=True, default=str).encode())
    # the fitted model is DP (post-processing of noisy measurements), kept on the steward's side so
    # more rows can be drawn later without new budget
    write_atomic(d / "model.pkl", pickle.dumps(fitted), mode=0o600)


def _write_frame(d: Any, stem: str, frame: pl.DataFrame) -> None:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    write_atomic(d / f"{stem}.parquet", buf.getvalue())
    crash_point("synthesize.mid_outputs")
    write_atomic(d / f"{stem}.csv", frame.write_csv().encode())


def load_synthetic(ws: Workspace, run_id: str) -> pl.DataFrame:
    import polars as pl

    return pl.read_parquet(ws.run_dir(run_id) / "synthetic.parquet")


def load_synthetic_data(ws: Workspace, run_id: str, schema: Schema) -> pl.DataFrame | SequenceData | GraphData:
    """A run's synthetic output as its kind's structure (sequences and graphs re-conformed to the schema)."""
    import polars as pl

    path = ws.run_dir(run_id) / "synthetic.parquet"
    if schema.is_graph:
        nodes = (ws.run_dir(run_id) / "synthetic-nodes.parquet").read_bytes()
        return parse_output(path.read_bytes(), schema, f"run {run_id} synthetic.parquet",  # type: ignore[no-any-return]
                            nodes=nodes)
    if not schema.is_sequential:
        return pl.read_parquet(path)
    return parse_output(path.read_bytes(), schema, f"run {run_id} synthetic.parquet")  # type: ignore[no-any-return]


