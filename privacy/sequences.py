"""Sequential data: one long table of events per entity, conformed to the public schema.

The unit of privacy is an entity with all its events. This module turns the steward's files (one
long events table with the static columns repeated, or an events table plus a static table joined
on the entity key) into a ``SequenceData``:

- ``statics``: one row per entity, ``[entity, *static columns]``, sorted by the entity key;
- ``events``: ``[entity, order, *event columns]``, grouped by entity in the same key order, each
  entity's events in order, at most ``max_events`` of them (the schema's truncation rule).

Order values become integers (days since 1970-01-01 for dates); events outside the schema's order
bounds are dropped (and an entity left without events with them), counted. Other values are clipped
or mapped into the public domain exactly as for tables (``privacy.table.conform_column``), counted,
never widened.
Clear errors (counts, never values) for: missing entity keys, an order column that does not parse,
events out of order within an entity, repeated order values where the schema forbids ties, static
values that disagree across an entity's rows, and a static table with duplicate or missing keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from privacy.errors import InputError, IntegrityError
from privacy.schema import Schema
from privacy.sequence_spec import EPOCH, SequenceSpec
from privacy.split import split_mask
from privacy.table import conform_column, parse_table, read_raw_fingerprinted

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


@dataclass(frozen=True)
class SequenceReport:
    """What conforming changed, as counts (never values)."""

    entities: int
    events: int
    #: events dropped by the max_events truncation, and the entities that lost some
    truncated_events: int
    truncated_entities: int
    clipped: dict[str, int] = field(default_factory=dict)
    mapped_to_other: dict[str, int] = field(default_factory=dict)
    #: gaps outside [gap_min, gap_max] (generators clip them to the bounds)
    gaps_outside: int = 0
    #: entities of a static table without any event (not part of the source)
    entities_without_events: int = 0
    #: events whose order value is outside the schema's bounds (dropped), and the entities left
    #: with no event by that (dropped too)
    events_outside_order: int = 0
    entities_dropped: int = 0

    @property
    def total_changed(self) -> int:
        return (sum(self.clipped.values()) + sum(self.mapped_to_other.values()) + self.truncated_events
                + self.events_outside_order)

    def to_dict(self) -> dict[str, object]:
        return {
            "entities": self.entities, "events": self.events, "truncated_events": self.truncated_events,
            "truncated_entities": self.truncated_entities, "clipped": dict(self.clipped),
            "mapped_to_other": dict(self.mapped_to_other), "gaps_outside_bounds": self.gaps_outside,
            "entities_without_events": self.entities_without_events,
            "events_outside_order": self.events_outside_order, "entities_dropped": self.entities_dropped,
        }


@dataclass(frozen=True)
class SequenceData:
    """Conformed sequences: ``statics`` one row per entity, ``events`` grouped by entity in that order."""

    statics: pl.DataFrame
    events: pl.DataFrame
    spec: SequenceSpec

    @property
    def n_entities(self) -> int:
        return self.statics.height

    @property
    def height(self) -> int:
        """Entities: the unit of privacy is the entity (so ``len``-style sizes count entities)."""
        return self.statics.height

    def lengths(self) -> np.ndarray:
        """Events per entity, in ``statics`` order."""
        import numpy as np

        counts = self.events.group_by(self.spec.entity, maintain_order=True).len()
        return np.asarray(counts.get_column("len").to_numpy(), dtype=np.int64)

    def offsets(self) -> np.ndarray:
        """Start index of each entity's events in ``events`` (length n_entities + 1)."""
        import numpy as np

        return np.concatenate([[0], np.cumsum(self.lengths())])

    def gaps(self) -> pl.Series:
        """The gap before each event (null for an entity's first event)."""
        import polars as pl

        e, o = self.spec.entity, self.spec.order
        return self.events.select(pl.col(o).diff().over(e).alias("gap")).get_column("gap")

    def take(self, mask: np.ndarray) -> "SequenceData":
        """The entities where ``mask`` (over ``statics`` rows) is True."""
        import polars as pl

        keep = self.statics.filter(pl.Series(mask))
        ev = self.events.filter(pl.col(self.spec.entity).is_in(keep.get_column(self.spec.entity).implode()))
        return SequenceData(statics=keep, events=ev, spec=self.spec)

    def to_long(self) -> pl.DataFrame:
        """One row per event: entity, order (schema format), static columns repeated, event columns."""
        e, o = self.spec.entity, self.spec.order
        long = self.events.join(self.statics, on=e, how="left", maintain_order="left")
        static_cols = [c for c in self.statics.columns if c != e]
        event_cols = [c for c in self.events.columns if c not in (e, o)]
        return long.select(e, order_expr(self.spec, o), *static_cols, *event_cols)


def order_expr(spec: SequenceSpec, col: str) -> pl.Expr:
    """Integer order values back to the data's own representation."""
    import polars as pl

    if spec.order_type == "date":
        return (pl.lit(EPOCH) + pl.duration(days=pl.col(col))).dt.strftime(spec.date_format).alias(col)
    return pl.col(col)


# -- reading and conforming ------------------------------------------------------------------------


def conform_sequences(
    events_raw: pl.DataFrame, statics_raw: pl.DataFrame | None, schema: Schema, *, path_hint: str = "events"
) -> tuple[SequenceData, SequenceReport]:
    """Validate and conform sequential data to ``schema`` (see the module docstring)."""
    import polars as pl

    spec = schema.seq
    e, o = spec.entity, spec.order
    static_names = list(spec.static)
    event_names = [c.name for c in schema.event_columns]
    if statics_raw is None:
        _check_exact(events_raw, [e, o, *static_names, *event_names], path_hint)
    else:
        _check_exact(events_raw, [e, o, *event_names], path_hint)
        _check_exact(statics_raw, [e, *static_names], f"{path_hint} (static table)")

    events_raw = events_raw.with_columns(_key(events_raw.get_column(e), f"{path_hint}: entity column {e!r}"))
    order_vals = _parse_order(events_raw.get_column(o), spec, f"{path_hint}: order column {o!r}")
    events_raw = events_raw.with_columns(order_vals)

    # order within each entity, in file order: sorted, and strictly increasing unless ties allowed
    gaps = events_raw.select(pl.col(o).diff().over(e).alias("g")).get_column("g")
    n_unsorted = events_raw.filter((gaps < 0).fill_null(False)).get_column(e).n_unique()
    if n_unsorted:
        raise InputError(
            f"{path_hint}: the events of {n_unsorted} entities are not in {o!r} order (sort each entity's events)"
        )
    if not spec.ties:
        n_dup = events_raw.filter((gaps == 0).fill_null(False)).get_column(e).n_unique()
        if n_dup:
            raise InputError(
                f"{path_hint}: {n_dup} entities have repeated {o!r} values (declare 'ties: true' if that is expected)"
            )

    clipped: dict[str, int] = {}
    mapped: dict[str, int] = {}
    # statics: one row per entity, either deduplicated from the long table or from the static table
    if statics_raw is None:
        stat_part = events_raw.select(e, *static_names)
        if static_names:
            disagree = stat_part.group_by(e).agg(pl.struct(static_names).n_unique().alias("k")).filter(pl.col("k") > 1)
            if disagree.height:
                raise InputError(
                    f"{path_hint}: {disagree.height} entities have static values that disagree across their rows"
                )
        statics = stat_part.unique(subset=[e], keep="first")
        without_events = 0
    else:
        statics = statics_raw.with_columns(_key(statics_raw.get_column(e), f"{path_hint} (static table): key {e!r}"))
        n_dup = statics.height - statics.get_column(e).n_unique()
        if n_dup:
            raise InputError(f"{path_hint} (static table): {n_dup} entity keys appear more than once")
        ev_keys = events_raw.get_column(e).unique()
        missing = int((~ev_keys.is_in(statics.get_column(e).implode())).sum())
        if missing:
            raise InputError(f"{path_hint}: {missing} entities of the events have no row in the static table")
        has_events = statics.get_column(e).is_in(ev_keys.implode())
        without_events = int((~has_events).sum())
        statics = statics.filter(has_events)
    statics = statics.sort(e)
    stat_cols = [statics.get_column(e)]
    for col in schema.static_columns:
        stat_cols.append(conform_column(statics.get_column(col.name), col, path_hint, clipped, mapped))
    statics = pl.DataFrame(stat_cols)

    # events: conform values, clip order to public bounds, truncate to max_events
    ev_cols = [events_raw.get_column(e), events_raw.get_column(o)]
    for col in schema.event_columns:
        ev_cols.append(conform_column(events_raw.get_column(col.name), col, path_hint, clipped, mapped))
    events = pl.DataFrame(ev_cols)
    # events outside the public order bounds (outside the study period) are dropped, not clipped:
    # clipping would pile them on the bounds and could create ties a 'ties: false' schema forbids.
    # Each entity's output depends on its own events only, so this keeps the entity-level argument.
    inside = (events.get_column(o) >= spec.order_min) & (events.get_column(o) <= spec.order_max)
    outside_order = int((~inside).sum())
    if outside_order:
        events = events.filter(inside)
        alive = events.get_column(e).unique()
        before = statics.height
        statics = statics.filter(pl.col(e).is_in(alive.implode()))
        dropped_entities = before - statics.height
    else:
        dropped_entities = 0
    # stable sort by entity keeps each entity's file (= time) order
    events = events.with_row_index("_i").sort([e, "_i"]).drop("_i")
    pos = pl.int_range(pl.len(), dtype=pl.Int64).over(e)
    n_total = events.height
    if spec.truncate == "first":
        keep = pos < spec.max_events
    else:
        # signed: pl.len() is unsigned and len - max_events would wrap around
        keep = pos >= pl.len().over(e).cast(pl.Int64) - spec.max_events
    over = events.group_by(e).len().filter(pl.col("len") > spec.max_events)
    events = events.filter(keep)
    gaps = events.select(pl.col(o).diff().over(e).alias("g")).get_column("g")
    outside = int(((gaps < spec.gap_min) | (gaps > spec.gap_max)).fill_null(False).sum())
    data = SequenceData(statics=statics, events=events, spec=spec)
    report = SequenceReport(
        entities=statics.height, events=events.height, truncated_events=n_total - events.height,
        truncated_entities=over.height, clipped=clipped, mapped_to_other=mapped, gaps_outside=outside,
        entities_without_events=without_events, events_outside_order=outside_order,
        entities_dropped=dropped_entities,
    )
    if statics.height == 0:
        raise InputError(f"{path_hint}: no entity has an event within the schema's order bounds")
    return data, report


def _check_exact(df: pl.DataFrame, wanted: list[str], hint: str) -> None:
    have = list(df.columns)
    missing = [c for c in wanted if c not in have]
    extra = [c for c in have if c not in wanted]
    if missing and len(have) == 1:
        for sep in (";", "\t", "|"):
            if sep in have[0]:
                raise InputError(f"{hint}: found one column whose header contains {sep!r}; the file must be comma-separated")
    if missing:
        raise InputError(f"{hint}: missing columns: {', '.join(missing)}")
    if extra:
        raise InputError(f"{hint}: columns not in the schema: {', '.join(extra)}")


def _key(s: pl.Series, where: str) -> pl.Series:
    """Entity keys as stripped text; missing or empty keys are an error."""
    import polars as pl

    txt = s.cast(pl.Utf8, strict=False).str.strip_chars()
    n_bad = txt.null_count() + int((txt == "").sum())
    if n_bad:
        raise InputError(f"{where}: {n_bad} rows have no entity key")
    return txt.alias(s.name)


def _parse_order(s: pl.Series, spec: SequenceSpec, where: str) -> pl.Series:
    import polars as pl

    if s.dtype == pl.Date:
        vals = s.cast(pl.Int64)  # a polars Date is days since 1970-01-01
        n_missing = vals.null_count()
        if n_missing:
            raise InputError(f"{where}: {n_missing} missing values")
        if spec.order_type != "date":
            raise InputError(f"{where}: holds dates but the schema says type {spec.order_type!r}")
        return vals.alias(s.name)
    txt = s.cast(pl.Utf8, strict=False).str.strip_chars()
    n_missing = txt.null_count() + int((txt == "").sum())
    if n_missing:
        raise InputError(f"{where}: {n_missing} missing values")
    if spec.order_type == "date":
        parsed = txt.str.strptime(pl.Date, spec.date_format, strict=False)
        n_bad = parsed.null_count()
        if n_bad:
            raise InputError(f"{where}: {n_bad} values are not dates in the format {spec.date_format!r}")
        return parsed.cast(pl.Int64).alias(s.name)
    as_float = txt.cast(pl.Float64, strict=False)
    not_int = (as_float.round(0) != as_float) | ~as_float.is_finite()
    n_bad = as_float.null_count() + int(not_int.fill_null(False).sum())
    if n_bad:
        raise InputError(f"{where}: {n_bad} values are not integers")
    # an integer beyond int64 is outside any order bounds (they lie within 2**53): keep it outside
    # them, where it is dropped and counted, instead of failing the cast
    return as_float.clip(-(2.0**62), 2.0**62).cast(pl.Int64).alias(s.name)


def read_sequences(
    events_path: str | Path, statics_path: str | Path | None = None
) -> tuple[pl.DataFrame, pl.DataFrame | None, str, str | None]:
    """Read the events file (and the static table) once, returning the parsed frames and fingerprints."""
    events, fp = read_raw_fingerprinted(events_path)
    if statics_path is None:
        return events, None, fp, None
    statics, sfp = read_raw_fingerprinted(statics_path)
    return events, statics, fp, sfp


def load_sequences_verified(
    events_path: str | Path, schema: Schema, expected: str, statics_path: str | Path | None = None,
    expected_statics: str | None = None,
) -> SequenceData:
    """Read registered sequence files, refusing them if their bytes changed since registration."""
    events, statics, fp, sfp = read_sequences(events_path, statics_path)
    if fp != expected:
        raise IntegrityError(f"{events_path} changed since it was registered (SHA-256 differs); register the new version")
    if statics_path is not None and sfp != expected_statics:
        raise IntegrityError(f"{statics_path} changed since it was registered (SHA-256 differs); register the new version")
    return conform_sequences(events, statics, schema, path_hint=str(events_path))[0]


def parse_synthetic(data: bytes, schema: Schema, hint: str = "synthetic") -> SequenceData:
    """A stored long table (ours or a steward's external one) back into ``SequenceData``."""
    return conform_sequences(parse_table(data, hint), None, schema, path_hint=hint)[0]


def split_entities(data: SequenceData, holdout_fraction: float, seed: int) -> tuple[SequenceData, SequenceData]:
    """Entity-level train/holdout split (see ``privacy.split``: independent coins, one per entity).

    The coins follow the sorted entity keys; removing one entity removes its coin and its events
    and nothing else, so the training split is a Poisson subsample of entities.
    """
    mask = split_mask(data.n_entities, holdout_fraction, seed)
    train, holdout = data.take(~mask), data.take(mask)
    if train.n_entities < 2 or holdout.n_entities < 2:
        raise InputError("the data is too small to split into training and holdout entities")
    return train, holdout


def combined_fingerprint(events_fp: str, statics_fp: str | None) -> str:
    """One fingerprint for a source version made of an events file and an optional static table."""
    if statics_fp is None:
        return events_fp
    return hashlib.sha256(f"events:{events_fp}\nstatics:{statics_fp}\n".encode()).hexdigest()
