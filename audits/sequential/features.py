"""Sequences as arrays, and per-entity features, built from the public schema alone.

Every sequence audit looks at entities through one of three views, all defined here so that real
and synthetic data line up column for column (their layout depends on the schema, never on the
data, DESIGN.md section 4 rule 1):

- ``EncodedSequences``: the events as a float matrix in schema column order (categorical columns as
  the index of the value in the schema's category list, numeric columns scaled to [0, 1] by the
  schema's public bounds, missing values NaN), the order values scaled by the public order range,
  and per-entity lengths and offsets. The sequence distance (``audits.sequential.distance``) and the
  fidelity statistics read it.
- ``entity_features``: one numeric vector per entity for classifiers (the discriminator, the
  utility models, the game's attack): static columns one-hot or scaled; the number of events, the
  start, the span and gap statistics; per categorical event column the share of each category
  (missing counted as a category of its own); per numeric event column mean, standard deviation,
  first, last, minimum and maximum (and the share missing where nullable); per state column the
  share of each transition, the rate of state changes and the first and last state.
- ``entity_table`` / ``view_schema``: a tabular view of each entity (static columns, event count,
  start and span, per categorical event column its most frequent value, per numeric event column
  its mean) with a tabular ``Schema`` whose domains are derived from the sequence schema, so that
  the tabular anonymeter audit can attack entities.

Missing values are information (a lab test not taken), never imputed: they are a category of their
own in shares and modes, a NaN in numeric features (the gradient-boosted models take NaN natively).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.schema import Column, Schema
from privacy.sequences import SequenceData

#: the category standing for a missing value (or no value at all) in the tabular view
MISSING = "(missing)"
#: transition shares are features only for state columns with at most this many states (K^2 features)
MAX_TRANSITION_STATES = 12
#: structural columns of the tabular view
COUNT, START, SPAN = "events:count", "events:start", "events:span"


@dataclass(frozen=True, eq=False)
class EncodedSequences:
    """Sequences as arrays in the schema's column order (see the module docstring)."""

    #: events per entity, in ``statics`` order
    lengths: np.ndarray
    #: start of each entity's events in ``events`` (length n + 1)
    offsets: np.ndarray
    #: (entities, static columns): codes or scaled values, NaN missing
    statics: np.ndarray
    #: (events, event columns): codes or scaled values, NaN missing
    events: np.ndarray
    #: order values (days since 1970-01-01 for dates), integers as floats
    order: np.ndarray
    #: order values scaled to [0, 1] by the schema's public order bounds
    order_scaled: np.ndarray
    static_columns: tuple[Column, ...]
    event_columns: tuple[Column, ...]

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def entity_of_event(self) -> np.ndarray:
        """The entity index (``statics`` row) of each event."""
        return np.repeat(np.arange(self.n), self.lengths)

    def gaps(self) -> np.ndarray:
        """The gap before each event in order units; NaN for an entity's first event."""
        g = np.empty_like(self.order)
        g[0:1] = np.nan
        g[1:] = np.diff(self.order)
        starts = self.offsets[:-1][self.lengths > 0]
        g[starts] = np.nan
        return g


def encode(data: SequenceData, schema: Schema) -> EncodedSequences:
    """Encode conformed sequences; ``InputError`` for values outside the schema's domain.

    Events are put in ``statics`` order (stable, so each entity keeps its event order) whatever the
    order of the events table.
    """
    spec = schema.seq
    e = spec.entity
    n = data.n_entities
    index = data.statics.select(e).with_row_index("_pos")
    pos_s = data.events.select(e).join(index, on=e, how="left", maintain_order="left").get_column("_pos")
    if pos_s.null_count():
        raise InputError(f"{pos_s.null_count()} events belong to no entity of the statics")
    pos = pos_s.to_numpy().astype(np.int64)
    perm = np.argsort(pos, kind="stable")
    lengths = np.bincount(pos, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stat_cols = tuple(schema.static_columns)
    ev_cols = tuple(schema.event_columns)
    statics = np.column_stack(
        [encode_column(data.statics.get_column(c.name), c) for c in stat_cols]
    ) if stat_cols else np.zeros((n, 0))
    events = np.column_stack([encode_column(data.events.get_column(c.name), c)[perm] for c in ev_cols])
    order = data.events.get_column(spec.order).cast(pl.Float64).to_numpy()[perm]
    span = float(spec.order_max - spec.order_min)
    return EncodedSequences(
        lengths=lengths, offsets=offsets, statics=statics, events=events, order=order,
        order_scaled=np.clip((order - spec.order_min) / span, 0.0, 1.0), static_columns=stat_cols,
        event_columns=ev_cols,
    )


def encode_column(s: pl.Series, col: Column) -> np.ndarray:
    """One conformed column as floats: category index or value scaled to [0, 1] by the public bounds."""
    where = f"column {col.name!r}"
    n_null = s.null_count()
    if n_null and not col.nullable:
        raise InputError(f"{where}: {n_null} missing values in a column that is not nullable; conform the data first")
    if col.type == "categorical":
        codes = s.cast(pl.Utf8).replace_strict(
            list(col.categories), list(range(len(col.categories))), default=None, return_dtype=pl.Float64
        )
        bad = codes.null_count() - n_null
        if bad:
            raise InputError(f"{where}: {bad} values outside the schema's categories; conform the data first")
        return np.asarray(codes.fill_null(np.nan).to_numpy(), dtype=np.float64)
    assert col.min is not None and col.max is not None  # Column validates numeric bounds
    x = np.asarray(s.cast(pl.Float64).fill_null(np.nan).to_numpy(), dtype=np.float64)
    return np.clip((x - col.min) / (col.max - col.min), 0.0, 1.0)


def state_columns(schema: Schema) -> list[Column]:
    """The columns whose values form an event's state: ``sequence.state``, else the categorical
    event columns, else the first event column (discretised by its public bins)."""
    spec = schema.seq
    if spec.state:
        return [schema.column(c) for c in spec.state]
    cats = [c for c in schema.event_columns if c.type == "categorical"]
    return cats or [schema.event_columns[0]]


def state_cardinality(col: Column) -> int:
    """Distinct state codes of a column: its categories (or public bins), plus one for missing if nullable."""
    k = len(col.categories) if col.type == "categorical" else len(col.bin_edges()) - 1
    return k + (1 if col.nullable else 0)


def column_states(enc: EncodedSequences, col: Column) -> np.ndarray:
    """Integer state codes of one event column: category index or public bin, missing the last code."""
    j = enc.event_columns.index(col)
    x = enc.events[:, j]
    if col.type == "categorical":
        k = len(col.categories)
        codes = np.where(np.isnan(x), k, np.nan_to_num(x)).astype(np.int64)
    else:
        assert col.min is not None and col.max is not None
        edges = (np.asarray(col.bin_edges(), dtype=np.float64) - col.min) / (col.max - col.min)
        k = len(edges) - 1
        binned = np.clip(np.searchsorted(edges, np.nan_to_num(x), side="right") - 1, 0, k - 1)
        codes = np.where(np.isnan(x), k, binned).astype(np.int64)
    return codes


def joint_states(enc: EncodedSequences, schema: Schema) -> tuple[np.ndarray, int]:
    """Each event's joint state over ``state_columns`` (mixed-radix code) and the number of codes."""
    code = np.zeros(enc.events.shape[0], dtype=np.int64)
    total = 1
    for col in state_columns(schema):
        k = state_cardinality(col)
        code = code * k + column_states(enc, col)
        total *= k
    return code, total


@dataclass(frozen=True, eq=False)
class EntityFeatures:
    """One row of numeric features per entity; ``sources`` names the schema column each comes from
    ("" for structure: counts, times, gaps)."""

    names: tuple[str, ...]
    sources: tuple[str, ...]
    matrix: np.ndarray

    def without(self, columns: set[str]) -> "EntityFeatures":
        """The features not derived from ``columns`` (e.g. a utility target)."""
        keep = [i for i, s in enumerate(self.sources) if s not in columns]
        return EntityFeatures(
            names=tuple(self.names[i] for i in keep), sources=tuple(self.sources[i] for i in keep),
            matrix=self.matrix[:, keep],
        )


def entity_features(enc: EncodedSequences, schema: Schema) -> EntityFeatures:
    """Per-entity feature vectors (see the module docstring); NaN where a feature is undefined."""
    n, ent = enc.n, enc.entity_of_event
    names: list[str] = []
    sources: list[str] = []
    cols: list[np.ndarray] = []

    def add(name: str, source: str, values: np.ndarray) -> None:
        names.append(name)
        sources.append(source)
        cols.append(np.asarray(values, dtype=np.float64))

    for j, col in enumerate(enc.static_columns):
        x = enc.statics[:, j]
        if col.type == "categorical":
            for k, cat in enumerate(col.categories):
                add(f"{col.name}={cat}", col.name, (x == k).astype(np.float64))
        else:
            add(col.name, col.name, x)
        if col.nullable:
            add(f"{col.name}:missing", col.name, np.isnan(x).astype(np.float64))

    spec = schema.seq
    first, last = enc.offsets[:-1], enc.offsets[1:] - 1
    has = enc.lengths > 0
    add(COUNT, "", enc.lengths / spec.max_events)
    add(START, "", _at(enc.order_scaled, first, has))
    add(SPAN, "", _at(enc.order_scaled, last, has) - _at(enc.order_scaled, first, has))
    gaps = enc.gaps() / max(1, spec.gap_max)
    g = segment_stats(gaps, ent, n, enc.offsets, enc.lengths)
    for stat in ("mean", "std", "min", "max"):
        add(f"gap:{stat}", "", g[stat])

    states = {c.name for c in state_columns(schema)}
    for j, col in enumerate(enc.event_columns):
        x = enc.events[:, j]
        if col.type == "categorical":
            shares = category_shares(column_states(enc, col), state_cardinality(col), ent, n, enc.lengths)
            labels = [*col.categories, MISSING] if col.nullable else list(col.categories)
            for k, label in enumerate(labels):
                add(f"{col.name}={label}:share", col.name, shares[:, k])
        else:
            s = segment_stats(x, ent, n, enc.offsets, enc.lengths)
            for stat in ("mean", "std", "first", "last", "min", "max"):
                add(f"{col.name}:{stat}", col.name, s[stat])
            if col.nullable:
                add(f"{col.name}:missing", col.name, s["missing"])
        if col.name in states:
            k = state_cardinality(col)
            codes = column_states(enc, col)
            first_state, last_state = _at(codes.astype(np.float64), first, has), _at(codes.astype(np.float64), last, has)
            for code in range(k):
                add(f"{col.name}:first={code}", col.name, (first_state == code).astype(np.float64))
                add(f"{col.name}:last={code}", col.name, (last_state == code).astype(np.float64))
            pairs, changes = transition_counts(codes, k, enc)
            n_pairs = np.maximum(enc.lengths - 1, 0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                add(f"{col.name}:change_rate", col.name, np.where(n_pairs > 0, changes / np.maximum(n_pairs, 1), np.nan))
                if k <= MAX_TRANSITION_STATES:
                    for a in range(k):
                        for b in range(k):
                            share = np.where(n_pairs > 0, pairs[:, a * k + b] / np.maximum(n_pairs, 1), np.nan)
                            add(f"{col.name}:{a}->{b}", col.name, share)
    return EntityFeatures(names=tuple(names), sources=tuple(sources), matrix=np.column_stack(cols))


def _at(x: np.ndarray, idx: np.ndarray, has: np.ndarray) -> np.ndarray:
    out = np.full(idx.shape[0], np.nan)
    out[has] = x[idx[has]]
    return out


def segment_stats(
    x: np.ndarray, ent: np.ndarray, n: int, offsets: np.ndarray, lengths: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-entity mean, std (population), first, last, min, max over non-missing values, and the
    share missing. NaN where an entity has no value."""
    valid = ~np.isnan(x)
    cnt = np.bincount(ent[valid], minlength=n).astype(np.float64)
    s1 = np.bincount(ent[valid], weights=x[valid], minlength=n)
    s2 = np.bincount(ent[valid], weights=x[valid] ** 2, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), np.nan)
        std = np.where(cnt > 0, np.sqrt(np.maximum(s2 / np.maximum(cnt, 1) - mean**2, 0.0)), np.nan)
        missing = np.where(lengths > 0, 1.0 - cnt / np.maximum(lengths, 1), np.nan)
    has = lengths > 0
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if has.any():
        starts = offsets[:-1][has]
        lo[has] = np.fmin.reduceat(x, starts)
        hi[has] = np.fmax.reduceat(x, starts)
    return {
        "mean": mean, "std": std, "first": _at(x, offsets[:-1], has), "last": _at(x, offsets[1:] - 1, has),
        "min": lo, "max": hi, "missing": missing,
    }


def category_shares(codes: np.ndarray, k: int, ent: np.ndarray, n: int, lengths: np.ndarray) -> np.ndarray:
    """(entities, k): each entity's share of events in each state code."""
    counts = np.bincount(ent * k + codes, minlength=n * k).reshape(n, k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths[:, None] > 0, counts / np.maximum(lengths, 1)[:, None], np.nan)


def transition_pairs(codes: np.ndarray, enc: EncodedSequences) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(from, to, entity) of every pair of consecutive events within an entity."""
    if codes.shape[0] < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    within = np.ones(codes.shape[0], dtype=bool)
    within[enc.offsets[:-1][enc.offsets[:-1] < codes.shape[0]]] = False  # an entity's first event has no predecessor
    idx = np.flatnonzero(within)
    return codes[idx - 1], codes[idx], enc.entity_of_event[idx]


def transition_counts(codes: np.ndarray, k: int, enc: EncodedSequences) -> tuple[np.ndarray, np.ndarray]:
    """(entities, k*k) counts of each transition a -> b (column a*k+b), and the count of changes."""
    a, b, ent = transition_pairs(codes, enc)
    pairs = np.bincount(ent * k * k + a * k + b, minlength=enc.n * k * k).reshape(enc.n, k * k)
    changes = np.bincount(ent, weights=(a != b).astype(np.float64), minlength=enc.n)
    return pairs.astype(np.float64), changes


# -- the tabular view for anonymeter -------------------------------------------------------------


def _mode_column(name: str) -> str:
    return f"{name}:mode"


def _mean_column(name: str) -> str:
    return f"{name}:mean"


def view_columns(schema: Schema, column: str) -> list[str]:
    """The view's columns derived from one schema column (a static column keeps its name)."""
    col = schema.column(column)
    if col.name in schema.seq.static:
        return [col.name]
    return [_mode_column(col.name) if col.type == "categorical" else _mean_column(col.name)]


def _bin_labels(col: Column) -> list[str]:
    edges = col.bin_edges()
    return [f"[{edges[i]:g}, {edges[i + 1]:g})" for i in range(len(edges) - 1)]


def view_schema(schema: Schema) -> Schema:
    """The tabular schema of ``entity_table``, derived from the sequence schema alone.

    Nullable columns become categorical (their categories, or the labels of their public bins,
    plus ``MISSING``), because a tabular schema has no missing values.
    """
    spec = schema.seq
    cols: list[Column] = []
    for col in schema.static_columns:
        if not col.nullable:
            cols.append(Column(name=col.name, type=col.type, categories=col.categories, min=col.min, max=col.max,
                               bins=col.bins, cuts=col.cuts))
        else:
            labels = list(col.categories) if col.type == "categorical" else _bin_labels(col)
            cols.append(Column(name=col.name, type="categorical", categories=(*labels, MISSING)))
    cols.append(Column(name=COUNT, type="integer", min=0, max=spec.max_events))
    cols.append(Column(name=START, type="integer", min=spec.order_min, max=spec.order_max))
    cols.append(Column(name=SPAN, type="integer", min=0, max=spec.order_max - spec.order_min))
    for col in schema.event_columns:
        if col.type == "categorical":
            cols.append(Column(name=_mode_column(col.name), type="categorical", categories=(*col.categories, MISSING)))
        elif not col.nullable:
            cols.append(Column(name=_mean_column(col.name), type="float", min=col.min, max=col.max))
        else:
            cols.append(Column(name=_mean_column(col.name), type="categorical", categories=(*_bin_labels(col), MISSING)))
    return Schema(columns=tuple(cols), kind="tabular", name=f"{schema.name or 'sequences'} (per entity)")


def entity_table(enc: EncodedSequences, schema: Schema) -> pl.DataFrame:
    """One row per entity in ``view_schema(schema)``'s columns (every entity needs an event).

    The mode of a categorical event column counts missing as a category; ties go to the category
    listed first in the schema (missing last). The mean of a numeric column is over its present
    values; for a nullable column it is reported as its public bin (``MISSING`` when none is present).
    """
    if (enc.lengths == 0).any():
        raise InputError(f"{int((enc.lengths == 0).sum())} entities have no events")
    n, ent = enc.n, enc.entity_of_event
    out: dict[str, pl.Series] = {}
    for j, col in enumerate(enc.static_columns):
        x = enc.statics[:, j]
        if not col.nullable:
            out[col.name] = _decode(x, col)
        else:
            out[col.name] = _labels(x, col)
    first, last = enc.offsets[:-1], enc.offsets[1:] - 1
    out[COUNT] = pl.Series(COUNT, enc.lengths, dtype=pl.Int64)
    out[START] = pl.Series(START, enc.order[first].astype(np.int64), dtype=pl.Int64)
    out[SPAN] = pl.Series(SPAN, (enc.order[last] - enc.order[first]).astype(np.int64), dtype=pl.Int64)
    for j, col in enumerate(enc.event_columns):
        if col.type == "categorical":
            k = len(col.categories)
            shares = category_shares(column_states(enc, col), k + 1 if col.nullable else k, ent, n, enc.lengths)
            labels = np.asarray([*col.categories, MISSING], dtype=object)
            out[_mode_column(col.name)] = pl.Series(_mode_column(col.name), labels[np.argmax(shares, axis=1)].tolist(),
                                                    dtype=pl.Utf8)
        else:
            mean = segment_stats(enc.events[:, j], ent, n, enc.offsets, enc.lengths)["mean"]
            name = _mean_column(col.name)
            out[name] = (_decode(mean, col) if not col.nullable else _labels(mean, col)).alias(name)
    return pl.DataFrame(list(out.values()))


def _decode(x: np.ndarray, col: Column) -> pl.Series:
    if col.type == "categorical":
        return pl.Series(col.name, np.asarray(col.categories, dtype=object)[x.astype(np.int64)].tolist(), dtype=pl.Utf8)
    assert col.min is not None and col.max is not None
    raw = col.min + x * (col.max - col.min)
    if col.type == "integer":
        return pl.Series(col.name, np.round(raw).astype(np.int64), dtype=pl.Int64)
    return pl.Series(col.name, raw, dtype=pl.Float64)


def _labels(x: np.ndarray, col: Column) -> pl.Series:
    """Categories, or public bin labels of scaled numeric values; ``MISSING`` for NaN."""
    if col.type == "categorical":
        labels = [*col.categories, MISSING]
        codes = np.where(np.isnan(x), len(col.categories), np.nan_to_num(x)).astype(np.int64)
    else:
        assert col.min is not None and col.max is not None
        labels = [*_bin_labels(col), MISSING]
        edges = (np.asarray(col.bin_edges(), dtype=np.float64) - col.min) / (col.max - col.min)
        k = len(edges) - 1
        binned = np.clip(np.searchsorted(edges, np.nan_to_num(x), side="right") - 1, 0, k - 1)
        codes = np.where(np.isnan(x), k, binned).astype(np.int64)
    return pl.Series(col.name, np.asarray(labels, dtype=object)[codes].tolist(), dtype=pl.Utf8)
