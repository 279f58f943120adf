"""Checks and entity-level sampling of the three ``SequenceData`` an audit compares.

Every sequence audit receives real training entities, real holdout entities and synthetic entities.
They must be conformed to the same sequential schema (``privacy.sequences.conform_sequences``); a
usage error is an ``InputError`` that names what is wrong (counts and column names, never values).
Sampling is always by entity: an entity is the unit of privacy, so it is never split.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.schema import Schema
from privacy.sequences import SequenceData


class SequenceRefitter(Protocol):
    """Refits the audited sequential generator, with the run's options and spend, on other entities.

    The pipeline passes one of these as ``AuditContext.refitter`` for sequential runs (the context's
    annotation names the tabular protocol). Implementations must be picklable: shadow fits run in
    worker processes.
    """

    @property
    def name(self) -> str:
        """The generator's name, for progress messages and reports."""
        ...

    def fit_sample(self, data: SequenceData, schema: Schema, n_entities: int, seed: int) -> SequenceData:
        """Fit on ``data`` and return ``n_entities`` synthetic entities drawn with ``seed``."""
        ...


def check_sequences(
    real_train: SequenceData, real_holdout: SequenceData, synthetic: SequenceData, schema: Schema
) -> None:
    """Raise ``InputError`` unless all three are non-empty ``SequenceData`` of ``schema``'s layout.

    Each must have at least one entity, exactly the schema's static and event columns (plus the
    entity key and the order column), every event must belong to an entity of its ``statics`` and
    every entity must have an event (as ``conform_sequences`` guarantees).
    """
    if not schema.is_sequential:
        raise InputError(f"the sequence audits need a sequential schema (this one is {schema.kind})")
    spec = schema.seq
    static_cols = [spec.entity, *[c.name for c in schema.static_columns]]
    event_cols = [spec.entity, spec.order, *[c.name for c in schema.event_columns]]
    for label, data in (("real_train", real_train), ("real_holdout", real_holdout), ("synthetic", synthetic)):
        if not isinstance(data, SequenceData):
            raise InputError(f"{label} must be SequenceData (privacy.sequences), got {type(data).__name__}")
        if data.n_entities == 0:
            raise InputError(f"{label} has no entities")
        if data.events.height == 0:
            raise InputError(f"{label} has no events")
        _check_columns(f"{label} (statics)", data.statics, static_cols)
        _check_columns(f"{label} (events)", data.events, event_cols)
        keys = data.statics.get_column(spec.entity)
        if keys.n_unique() != keys.len():
            raise InputError(f"{label}: {keys.len() - keys.n_unique()} entity keys appear more than once in statics")
        ev_keys = data.events.get_column(spec.entity)
        orphans = int((~ev_keys.is_in(keys.implode())).sum())
        if orphans:
            raise InputError(f"{label}: {orphans} events belong to no entity of its statics")
        empty = int((~keys.is_in(ev_keys.implode())).sum())
        if empty:
            raise InputError(f"{label}: {empty} entities have no events (an entity's sequence has at least one)")


def _check_columns(label: str, df: pl.DataFrame, wanted: list[str]) -> None:
    have = list(df.columns)
    if sorted(have) != sorted(wanted):
        missing = [c for c in wanted if c not in have]
        extra = [c for c in have if c not in wanted]
        raise InputError(
            f"{label} does not match the schema (missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})"
        )


def sample_entities(data: SequenceData, n: int, rng: np.random.Generator) -> SequenceData:
    """A seeded sample of ``n`` entities without replacement (all of them when ``n`` is not smaller)."""
    if n >= data.n_entities:
        return data
    mask = np.zeros(data.n_entities, dtype=bool)
    mask[rng.choice(data.n_entities, size=n, replace=False)] = True
    return data.take(mask)


def take_indices(data: SequenceData, idx: np.ndarray) -> SequenceData:
    """The entities at positions ``idx`` of ``statics`` (order and duplicates ignored)."""
    mask = np.zeros(data.n_entities, dtype=bool)
    mask[np.asarray(idx, dtype=np.int64)] = True
    return data.take(mask)


def equal_size_entities(
    real_train: SequenceData, real_holdout: SequenceData, rng: np.random.Generator, cap: int | None = None
) -> tuple[SequenceData, SequenceData]:
    """Subsample train and holdout to one size, the smaller of the two (and ``cap``), seeded.

    Protocol rule 1 of policy-thresholds.md, with entities for rows: a synthetic entity with no
    memorised neighbour is then equally likely to land nearer either side.
    """
    n = min(real_train.n_entities, real_holdout.n_entities)
    if cap is not None:
        n = min(n, cap)
    return sample_entities(real_train, n, rng), sample_entities(real_holdout, n, rng)


def concat_entities(parts: list[SequenceData]) -> SequenceData:
    """Entities of several ``SequenceData`` with distinct keys, as one (statics sorted by key).

    Events stay grouped by entity in the new statics order, each entity's events in their order.
    """
    spec = parts[0].spec
    e = spec.entity
    statics = pl.concat([p.statics for p in parts]).sort(e, maintain_order=True)
    if statics.get_column(e).n_unique() != statics.height:
        raise InputError("cannot combine entities that share keys")
    position = statics.select(e).with_row_index("_pos")
    events = (
        pl.concat([p.events for p in parts])
        .join(position, on=e, how="left", maintain_order="left")
        .sort("_pos", maintain_order=True)
        .drop("_pos")
    )
    return SequenceData(statics=statics, events=events, spec=spec)


def sub_seed(rng: np.random.Generator) -> int:
    """A seed for a library call, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))
