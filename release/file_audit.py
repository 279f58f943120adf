"""Audit of an outside file: vet synthetic data that synthgate did not produce.

A steward receives synthetic data made elsewhere (a vendor, a third party's release) from a source
registered here. Every audit that needs no retraining runs on it against a train/holdout split of
the source, and the gate is evaluated; nothing is charged (audits are the steward's side) and
nothing can be released from it: a file audit is evidence for a decision taken outside synthgate.

The split must be the one the outside party trained on, or the membership audits measure nothing:

- ``split_of=RUN`` uses a synthgate run's split;
- otherwise the source version's *external split*: drawn once from OS entropy, kept in the
  workspace, and handed to the outside party with :func:`export_train`.

A graph is two files: the edge list and the node table (``--nodes``; ``export-train --nodes-out``),
split by edges, one coin each; with a public node set the outside party's node ids must be the
public ones, or its edges cannot be held against the real graph.

A claimed guarantee (``--generator-spec "name=...,epsilon=...,delta=..."``) turns on the DP-claim
checks that need no retraining (an attack AUC above what the claimed epsilon allows).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from audits.context import AuditContext, Claim
from audits.report import data_figures, library_versions
from audits.suite import audit_document, run_audits
from policies.model import Policy
from privacy.dataset import SourceFiles, load_source, split_source
from privacy.errors import InputError
from privacy.graphs import GraphData, conform_external_graph
from privacy.ledger import Source
from privacy.schema import Schema
from privacy.sequences import SequenceData, conform_sequences
from privacy.table import conform, read_raw
from release.atomic import write_atomic
from release.db import DatasetVersion, ExternalSplit, Run, log_event
from release.gate import GateDecision, evaluate
from release.report import audit_time_extras, write_audit_reports
from release.sources import get_source, latest_version, source_policy, version_files
from release.synthesize import check_target
from release.workspace import Workspace

Progress = Callable[[str], None] | None


@dataclass(frozen=True)
class GeneratorSpec:
    """What the outside party says it ran: a name and the (epsilon, delta) it claims."""

    name: str
    claim: Claim | None

    @staticmethod
    def parse(text: str | None) -> "GeneratorSpec":
        """Parse ``name=...,epsilon=...,delta=...`` (every key optional; delta defaults to 0)."""
        if text is None:
            return GeneratorSpec(name="unknown", claim=None)
        fields: dict[str, str] = {}
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in {"name", "epsilon", "delta"} or key in fields:
                raise InputError(f"--generator-spec: expected name=...,epsilon=...,delta=..., got {part.strip()!r}")
            fields[key] = value.strip()
        claim = None
        if "epsilon" in fields:
            try:
                eps, delta = float(fields["epsilon"]), float(fields.get("delta", "0"))
            except ValueError:
                raise InputError("--generator-spec: epsilon and delta must be numbers") from None
            if not (math.isfinite(eps) and eps > 0) or not (math.isfinite(delta) and 0 <= delta < 1):
                raise InputError("--generator-spec: epsilon must be > 0 and delta in [0, 1)")
            claim = Claim(epsilon=eps, delta=delta)
        elif "delta" in fields:
            raise InputError("--generator-spec: a delta without an epsilon claims nothing")
        return GeneratorSpec(name=fields.get("name", "unknown") or "unknown", claim=claim)


@dataclass(frozen=True)
class FileAuditOutcome:
    audit_id: str
    directory: Path
    decision: GateDecision
    document: dict[str, Any]


def _external_seed(s: Session, ver: DatasetVersion, create: bool) -> int:
    row = s.get(ExternalSplit, ver.id)
    if row is None:
        if not create:
            raise InputError("this source version has no external split yet (run 'synthgate export-train' first)")
        row = ExternalSplit(version_id=ver.id, split_seed=secrets.randbits(62))
        s.add(row)
        log_event(s, "split.external_created", version=ver.id)
    return row.split_seed


def _split_for(ws: Workspace, source: str, split_of: str | None, *, create: bool,
               vet: Callable[[Schema, SourceFiles, Policy], None] | None = None,
               ) -> tuple[Source, SourceFiles, Policy, Schema, int, str]:
    """The source, its files, policy and schema, and the split's seed; ``vet(schema, files, policy)``
    may refuse the request before an external split is drawn (and stored)."""
    with ws.transaction() as s:
        src = get_source(s, source)
        policy = source_policy(src)
        if split_of is not None:
            run = s.get(Run, split_of)
            if run is None or run.source_id != src.id:
                raise InputError(f"run {split_of!r} is not a run of source {source!r}")
            ver = s.get(DatasetVersion, run.version_id)
            assert ver is not None
            seed: int | None = run.split_seed
            label = f"split of run {split_of}"
        else:
            ver = latest_version(s, src)
            seed, label = None, "external split of the source's latest version"
        schema = Schema.from_dict(json.loads(ver.schema_json))
        files = version_files(s, ver)
        if vet is not None:
            vet(schema, files, policy)
        if seed is None:
            seed = _external_seed(s, ver, create)
        s.expunge(src)
    return src, files, policy, schema, seed, label


def _node_option(schema: Schema, given: Path | None, option: str, what: str) -> None:
    """A graph is two files: the node-table option is required for graph sources, refused for others."""
    if schema.is_graph and given is None:
        raise InputError(f"a graph source needs {option} FILE ({what})")
    if not schema.is_graph and given is not None:
        raise InputError(f"{option} is for graph sources; this is a {schema.kind} source")


def export_train(ws: Workspace, source: str, out: Path, nodes_out: Path | None = None) -> dict[str, Any]:
    """Write the training part of the source's external split (CSV) for an outside party.

    For a graph source ``out`` gets the training edges (one coin per edge) as a CSV edge list with
    the schema's source/target column names, and ``nodes_out`` (required) the node table: every node
    id, isolated ones included, and the node attributes. This hands real records out of synthgate's
    control: it is the steward's decision, logged.
    """
    if nodes_out is not None and nodes_out.resolve() == out.resolve():
        raise InputError("--nodes-out must be another file than -o")
    _src, files, policy, schema, seed, _ = _split_for(
        ws, source, None, create=True,
        vet=lambda sc, _f, _p: _node_option(sc, nodes_out, "--nodes-out",
                                            "the node table: every node id and the node attributes"))
    fraction = policy.holdout_for(schema.kind)
    train, _ = split_source(load_source(files, schema), schema, fraction, seed)
    out_info: dict[str, Any] = {"source": source, "path": str(out), "rows": train.height, "holdout_fraction": fraction}
    if isinstance(train, GraphData):
        assert nodes_out is not None
        write_atomic(out, train.edge_frame().write_csv().encode())
        write_atomic(nodes_out, train.node_frame().write_csv().encode())
        out_info.update(edges=train.n_edges, nodes=train.n_nodes, nodes_path=str(nodes_out))
        with ws.transaction() as s:
            log_event(s, "split.exported", source=source, rows=train.n_edges, path=str(out),
                      nodes_path=str(nodes_out))
        return out_info
    table = train.to_long() if isinstance(train, SequenceData) else train
    write_atomic(out, table.write_csv().encode())
    with ws.transaction() as s:
        log_event(s, "split.exported", source=source, rows=train.height, path=str(out))
    if isinstance(train, SequenceData):
        out_info.update(rows=table.height, entities=train.n_entities)
    return out_info


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(f"cannot read {what} {path}") from None
    if not data:
        raise InputError(f"{what} is empty: {path}")
    return data


def audit_file(ws: Workspace, source: str, synthetic_path: Path, *, spec: GeneratorSpec, split_of: str | None = None,
               target: str | None = None, profile: str | None = None, nodes: Path | None = None,
               progress: Progress = None) -> FileAuditOutcome:
    """Run every audit that needs no retraining on ``synthetic_path``; write audit.json and report.html.

    For a graph source ``synthetic_path`` is the edge list and ``nodes`` (required) the node table:
    every node id, isolated ones included, and the node attributes; with a public node set the ids
    must be the public ones.
    """
    if not synthetic_path.is_file():
        raise InputError(f"{synthetic_path}: no such file")
    pre: dict[str, Any] = {}

    def vet(sc: Schema, src_files: SourceFiles, pol: Policy) -> None:
        # everything that can refuse the request happens here, before a first external split is
        # drawn and stored: a refused file must leave the workspace as it was
        _node_option(sc, nodes, "--nodes", "the synthetic graph's node table: every node id and the node attributes")
        if nodes is not None and not nodes.is_file():
            raise InputError(f"{nodes}: no such file")
        pre["target"] = target or pol.targets.get(source) or sc.target
        check_target(pre["target"], sc)
        if sc.is_graph:
            assert nodes is not None
            data = load_source(src_files, sc)
            assert isinstance(data, GraphData)
            pre["data"] = data
            # with a public node set the ids must be the public ones (every split keeps all of them)
            pre["synthetic"], rep = conform_external_graph(
                _read_bytes(synthetic_path, "edge file"), _read_bytes(nodes, "node table"), sc,
                hint=str(synthetic_path), public_labels=data.labels if sc.gspec.public_nodes else None)
            pre["conformed"] = rep.to_dict()
        elif sc.is_sequential:
            pre["synthetic"], rep_s = conform_sequences(read_raw(synthetic_path), None, sc, path_hint=str(synthetic_path))
            pre["conformed"] = rep_s.to_dict()
        else:
            pre["synthetic"], rep_t = conform(read_raw(synthetic_path), sc, path_hint=str(synthetic_path))
            pre["conformed"] = {"rows": rep_t.rows, "clipped": rep_t.clipped, "mapped_to_other": rep_t.mapped_to_other}

    src, files, policy, schema, seed, split_label = _split_for(ws, source, split_of, create=split_of is None, vet=vet)
    profile = profile or policy.audit.membership_required
    target = pre["target"]
    synthetic = pre["synthetic"]
    conformed: dict[str, Any] = pre["conformed"]
    data = pre["data"] if "data" in pre else load_source(files, schema)
    train, holdout = split_source(data, schema, policy.holdout_for(schema.kind), seed)
    ctx = AuditContext(target=target, claim=spec.claim, refitter=None, profile=profile, progress=progress)
    if schema.is_graph:
        from audits.graph.suite import run_graph_audits

        assert isinstance(train, GraphData)
        results = run_graph_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    elif schema.is_sequential:
        from audits.sequential.suite import run_sequence_audits

        results = run_sequence_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    else:
        results = run_audits(train, holdout, synthetic, schema, policy, ctx, progress=progress)
    figures = data_figures(schema.kind, train, synthetic, schema)
    decision = evaluate(results)
    audit_id = "file-" + secrets.token_hex(6)
    context = {
        "audit_id": audit_id, "source": src.name, "file": synthetic_path.name, "generator": spec.name,
        "epsilon": spec.claim.epsilon if spec.claim else None, "delta": spec.claim.delta if spec.claim else None,
        "claimed_by": "the outside party (not verified by synthgate)" if spec.claim else None,
        "policy": policy.name, "target": target, "split": split_label, "membership_profile": profile,
        "conformed": conformed, "kind": schema.kind,
        "not_run": "audits that refit the generator (one-run audit, shadow-model game): no generator to refit",
    }
    if nodes is not None:
        context["nodes_file"] = nodes.name
    doc = audit_document(results, context)
    doc["gate"] = decision.to_dict()
    doc["software"] = library_versions()
    extras = audit_time_extras(ws, source=src.name, policy=policy, requester=None, state=None,
                               schema=schema.to_dict(), run=False)
    d = ws.root / "file-audits" / audit_id
    d.mkdir(parents=True, exist_ok=False)
    write_atomic(d / "audit.json", json.dumps(doc, indent=2, sort_keys=True).encode())
    write_audit_reports(d, doc, figures, extras)
    with ws.transaction() as s:
        log_event(s, "file.audited", source=src.name, audit_id=audit_id, file=synthetic_path.name,
                  gate_passed=decision.passed, failed=[c["name"] for c in decision.failed])
    return FileAuditOutcome(audit_id=audit_id, directory=d, decision=decision, document=doc)
