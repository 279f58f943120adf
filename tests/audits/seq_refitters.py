"""Sequence generators for the refitting audits' tests: a leaky one that copies its training entities and a
0-DP one that ignores them. Module-level, so that worker processes can unpickle them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from privacy.schema import Schema
from privacy.sequences import SequenceData


def resample_entities(data: SequenceData, n: int, seed: int) -> SequenceData:
    """``n`` entities of ``data`` (all of them, in order, when ``n`` equals its size; else drawn with
    replacement), under fresh keys "1".."n" as a generator's output has."""
    rng = np.random.default_rng(seed)
    e = data.spec.entity
    picked = np.arange(n) if n == data.n_entities else rng.integers(0, data.n_entities, size=n)
    keys = data.statics.get_column(e)
    mapping = pl.DataFrame({e: keys.gather(picked), "_new": [str(i + 1) for i in range(n)]})
    statics = data.statics.join(mapping, on=e, how="inner").drop(e).rename({"_new": e})
    statics = statics.select(data.statics.columns).sort(e)
    events = data.events.join(mapping, on=e, how="inner", maintain_order="left").drop(e).rename({"_new": e})
    position = statics.select(e).with_row_index("_pos")
    events = (events.select(data.events.columns).join(position, on=e, how="left")
              .sort("_pos", maintain_order=True).drop("_pos"))
    return SequenceData(statics=statics, events=events, spec=data.spec)


@dataclass(frozen=True)
class SequenceCopyRefitter:
    """The leakiest sequence generator: its training entities, resampled to ``n``."""

    name: str = "copy (sequences)"

    def fit_sample(self, data: SequenceData, schema: Schema, n_entities: int, seed: int) -> SequenceData:
        del schema
        return resample_entities(data, n_entities, seed)


@dataclass(frozen=True)
class IgnoringSequenceRefitter:
    """A 0-DP sequence generator: resamples a fixed public set of entities and never looks at its data."""

    public: SequenceData
    name: str = "ignoring (sequences)"

    def fit_sample(self, data: SequenceData, schema: Schema, n_entities: int, seed: int) -> SequenceData:
        del data, schema
        return resample_entities(self.public, n_entities, seed)


def random_sequences(schema: Schema, n: int, seed: int, *, missing: float = 0.1) -> SequenceData:
    """``n`` entities drawn from nothing but the schema: static values, lengths (1 to max_events), order
    values and event values uniform over their public domains (nullable values missing with probability
    ``missing``): synthetic data from a generator that learnt nothing, conformed like real data."""
    from privacy.sequences import conform_sequences

    rng = np.random.default_rng(seed)
    spec = schema.seq
    lengths = rng.integers(1, spec.max_events + 1, size=n)
    total = int(lengths.sum())
    entity = np.repeat([str(i + 1) for i in range(n)], lengths)
    # order values: sorted uniform draws over the public range (distinct where ties are not allowed);
    # gaps may then exceed the schema's gap bounds, as a generator that learnt nothing may produce
    span = np.arange(spec.order_min, spec.order_max + 1)
    order = np.concatenate([np.sort(rng.choice(span, size=int(k), replace=spec.ties)) for k in lengths])
    cols: dict[str, pl.Series] = {spec.entity: pl.Series(entity)}
    if spec.order_type == "date":
        cols[spec.order] = pl.Series(order).cast(pl.Date)
    else:
        cols[spec.order] = pl.Series(order, dtype=pl.Int64)
    for col in schema.columns:
        size = n if col.name in spec.static else total
        if col.type == "categorical":
            values = pl.Series(col.name, rng.choice(list(col.categories), size=size), dtype=pl.Utf8)
        else:
            assert col.min is not None and col.max is not None
            x = rng.uniform(col.min, col.max, size=size)
            values = pl.Series(col.name, np.round(x).astype(np.int64) if col.type == "integer" else x)
        if col.nullable:
            values = pl.select(pl.when(pl.Series(rng.random(size) < missing)).then(None).otherwise(values)).to_series()
        cols[col.name] = values.gather(np.repeat(np.arange(n), lengths)) if col.name in spec.static else values
    long = pl.DataFrame([s.alias(name) for name, s in cols.items()])
    return conform_sequences(long, None, schema, path_hint="random")[0]


def noisy_copy(data: SequenceData, schema: Schema, seed: int, *, scale: float = 0.05) -> SequenceData:
    """``data``'s entities with every value perturbed (a memorising generator with a little noise): numeric
    values (static and event) get Gaussian noise of ``scale`` x their public range (clipped to it, integers
    rounded), categorical values are redrawn uniformly with probability ``2 x scale``; missing values, the
    lengths and the order values stay. No entity is then an exact copy."""
    rng = np.random.default_rng(seed)

    def perturb(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
        out = []
        for name in names:
            col = schema.column(name)
            s = df.get_column(name)
            missing = s.is_null().to_numpy()
            if col.type == "categorical":
                redraw = rng.random(s.len()) < 2 * scale
                new = pl.Series(name, rng.choice(list(col.categories), size=s.len()), dtype=s.dtype)
                values = pl.select(pl.when(pl.Series(redraw & ~missing)).then(new).otherwise(s)).to_series()
            else:
                assert col.min is not None and col.max is not None
                x = s.cast(pl.Float64).fill_null(col.min).to_numpy()
                x = np.clip(x + rng.normal(0.0, scale * (col.max - col.min), size=x.size), col.min, col.max)
                values = pl.Series(name, np.round(x) if col.type == "integer" else x).cast(s.dtype)
                values = pl.select(pl.when(pl.Series(missing)).then(None).otherwise(values)).to_series()
            out.append(values.alias(name))
        return df.with_columns(out) if out else df

    statics = perturb(data.statics, [c.name for c in schema.static_columns])
    events = perturb(data.events, [c.name for c in schema.event_columns])
    return SequenceData(statics=statics, events=events, spec=data.spec)
