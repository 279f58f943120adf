"""Registering sensitive datasets: a source, its versions and its budget account under a policy."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.loader import policy_digest
from policies.model import Policy
from privacy.dataset import SourceFiles
from privacy.errors import InputError
from privacy.graphs import GraphReport, read_graph
from privacy.ledger import Balance, Caps, Source, balance
from privacy.schema import Schema
from privacy.sequences import SequenceReport, conform_sequences
from privacy.table import ConformReport, conform, read_raw_fingerprinted
from release.db import DatasetVersion, VersionFile, log_event
from release.workspace import Workspace

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(kind: str, name: str) -> str:
    # fullmatch: with match and "$", a trailing newline ("adult\n") passed as part of a valid name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{kind} name {name!r} must be 1-100 letters, digits, '_', '.' or '-'")
    return name


#: The longest target column name a run can record: ``runs.target`` is VARCHAR(200) (``release.db``).
#: PostgreSQL refuses a longer value (a DataError, an internal error mid-command) where SQLite stores
#: it, so it is refused at input, on either database. The other user-supplied text bound for a
#: length-limited column is shorter by construction: names pass ``check_name`` (100), a policy
#: name its model (100), a generator name the registry.
MAX_TARGET_CHARS = 200


def check_target_name(target: str | None, what: str) -> str | None:
    """Refuse (``InputError``) a target column name longer than the database stores; None passes."""
    if target is not None and len(target) > MAX_TARGET_CHARS:
        raise InputError(f"{what} {target[:40]!r}... is {len(target)} characters long; a target column name "
                         f"may have at most {MAX_TARGET_CHARS} (rename the column)")
    return target


@dataclass(frozen=True)
class Registration:
    source: str
    version: int
    fingerprint: str
    new_account: bool
    report: ConformReport | SequenceReport | GraphReport
    kind: str = "tabular"


def register(ws: Workspace, source: str, data: Path, schema_path: Path, *, accept_drafted: bool = False,
             statics: Path | None = None, kind: str | None = None, nodes: Path | None = None) -> Registration:
    """Validate ``data`` against the schema, fingerprint it, and open (or reuse) the source's account.

    For a sequential schema ``data`` is the long events table; ``statics`` an optional static table
    joined on the entity key (otherwise the static columns are repeated on every event row). For a
    graph schema ``data`` is the edge list and ``nodes`` an optional node table.
    """
    check_name("source", source)
    schema = Schema.load(schema_path)
    check_target_name(schema.target, "the schema's target column")
    if schema.drafted_from_data and not accept_drafted:
        raise InputError(
            "the schema was drafted from the data (drafted_from_data: true): review its domains and "
            "remove that key, or pass --accept-drafted-schema to accept the leak knowingly"
        )
    if kind is not None and kind != schema.kind:
        raise InputError(f"--kind {kind} but the schema says kind: {schema.kind}")
    if statics is not None and not schema.is_sequential:
        raise InputError("--statics (a static table) is for sequential schemas only")
    if nodes is not None and not schema.is_graph:
        raise InputError("--nodes (a node table) is for graph schemas only")
    sfp: str | None = None
    report: ConformReport | SequenceReport | GraphReport
    role = "statics"
    if schema.is_graph:
        _graph, report, fp, sfp = read_graph(data, nodes, schema)
        statics, role = nodes, "nodes"
    elif schema.is_sequential:
        raw, fp = read_raw_fingerprinted(data)
        statics_raw = None
        if statics is not None:
            statics_raw, sfp = read_raw_fingerprinted(statics)
        report = conform_sequences(raw, statics_raw, schema, path_hint=str(data))[1]
    else:
        raw, fp = read_raw_fingerprinted(data)
        report = conform(raw, schema, path_hint=str(data))[1]
    policy = ws.policy()
    with ws.transaction() as s:
        src = s.scalars(select(Source).where(Source.name == source)).first()
        fps = [fp] if sfp is None else [fp, sfp]
        other = s.execute(
            select(Source.name).join(DatasetVersion, DatasetVersion.source_id == Source.id)
            .where(DatasetVersion.fingerprint.in_(fps), Source.name != source)
        ).first()
        if other is None and sfp is not None:
            other = s.execute(
                select(Source.name).join(DatasetVersion, DatasetVersion.source_id == Source.id)
                .join(VersionFile, VersionFile.version_id == DatasetVersion.id)
                .where(VersionFile.fingerprint.in_(fps), Source.name != source)
            ).first()
        if other is not None:
            # a copy under a new name would get a fresh budget for the same people
            raise InputError(f"this file is already registered as source {other[0]!r}; register it there")
        new = src is None
        if src is None:
            # the policy this source keeps for good: its target for the source must fit a run's record
            check_target_name(policy.targets.get(source), f"policy {policy.name!r}: the target column of {source!r}")
            src = Source(
                name=source,
                policy_name=policy.name,
                policy_json=policy.model_dump_json(),
                policy_digest=policy_digest(policy),
            )
            s.add(src)
            s.flush()
        ver = DatasetVersion(
            source_id=src.id, path=str(data.resolve()), fingerprint=fp, schema_json=json.dumps(schema.to_dict())
        )
        s.add(ver)
        s.flush()
        if statics is not None and sfp is not None:
            s.add(VersionFile(version_id=ver.id, role=role, path=str(statics.resolve()), fingerprint=sfp))
        n_versions = len(s.scalars(select(DatasetVersion.id).where(DatasetVersion.source_id == src.id)).all())
        log_event(s, "source.register", source=source, fingerprint=fp, version=n_versions, new_account=new)
    return Registration(source=source, version=n_versions, fingerprint=fp, new_account=new, report=report,
                        kind=schema.kind)


def version_files(s: Session, ver: DatasetVersion) -> SourceFiles:
    """The files of a registered version (the static table of sequences, the node table of graphs)."""
    extra = s.get(VersionFile, (ver.id, "statics")) or s.get(VersionFile, (ver.id, "nodes"))
    return SourceFiles(path=ver.path, fingerprint=ver.fingerprint,
                       statics_path=None if extra is None else extra.path,
                       statics_fingerprint=None if extra is None else extra.fingerprint)


def get_source(s: Session, name: str) -> Source:
    src = s.scalars(select(Source).where(Source.name == name)).first()
    if src is None:
        raise InputError(f"unknown source {name!r} (register it first)")
    return src


def source_policy(src: Source) -> Policy:
    return Policy.model_validate_json(src.policy_json)


def caps_of(policy: Policy) -> Caps:
    b = policy.budget
    return Caps(b.total_epsilon, b.total_delta, b.per_release_epsilon, b.per_release_delta)


def latest_version(s: Session, src: Source) -> DatasetVersion:
    ver = s.scalars(
        select(DatasetVersion).where(DatasetVersion.source_id == src.id).order_by(DatasetVersion.id.desc())
    ).first()
    assert ver is not None
    return ver


def budget_report(ws: Workspace, source: str | None = None) -> list[dict[str, object]]:
    """Spent and remaining budget per source (one source, or all), with every charge."""
    with ws.transaction() as s:
        if source is not None:
            sources = [get_source(s, source)]
        else:
            sources = list(s.scalars(select(Source).order_by(Source.name)))
        out = []
        for src in sources:
            pol = source_policy(src)
            bal: Balance = balance(s, src, caps_of(pol))
            out.append(
                {
                    "source": src.name,
                    "policy": src.policy_name,
                    "total_epsilon": pol.budget.total_epsilon,
                    "total_delta": pol.budget.total_delta,
                    "spent_epsilon": bal.spent_epsilon,
                    "spent_delta": bal.spent_delta,
                    "remaining_epsilon": bal.remaining_epsilon,
                    "remaining_delta": bal.remaining_delta,
                    "charges": bal.charges,
                }
            )
    return out
