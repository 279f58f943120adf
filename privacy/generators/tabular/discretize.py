"""Discretisation of a conformed table into integer codes, from the public schema only.

Marginal generators (MST, AIM) work on a finite domain. This module builds that domain from the
schema and nothing else (DESIGN.md section 4, rule 1):

- a categorical column is coded as the index of its value in ``column.categories``;
- a numeric column is coded as the index of its bin in ``column.bin_edges()``.

No category list, bound or bin edge is read from the data: ``Discretizer.from_schema`` does not
take the data at all, and ``encode`` refuses a value outside the schema's domain (conform the data
first, ``privacy.table.conform``) instead of widening anything.

Decoding codes back to values is post-processing of the DP model's output: a numeric bin becomes a
value drawn uniformly within the bin (integer columns: uniformly among the integers in the bin),
from the caller's seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.schema import Column, Schema


@dataclass(frozen=True, kw_only=True)
class ColumnCodec:
    """How one schema column maps to codes ``0 .. cardinality-1`` and back."""

    name: str
    type: str
    cardinality: int
    #: categorical: the schema's categories, in code order
    categories: tuple[str, ...] = ()
    #: numeric: the schema's bin edges (``cardinality + 1`` of them)
    edges: tuple[float, ...] = ()
    #: integer: the smallest and largest integer inside each bin
    int_lows: tuple[int, ...] = ()
    int_highs: tuple[int, ...] = ()
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def from_column(cls, col: Column) -> "ColumnCodec":
        """Build the codec from the public column description alone."""
        if col.type == "categorical":
            return cls(name=col.name, type=col.type, cardinality=len(col.categories), categories=col.categories)
        edges = tuple(float(e) for e in col.bin_edges())
        nbins = len(edges) - 1
        assert col.min is not None and col.max is not None
        if col.type == "float":
            return cls(name=col.name, type=col.type, cardinality=nbins, edges=edges, lo=col.min, hi=col.max)
        lows, highs = [], []
        lo_i, hi_i = int(col.min), int(col.max)
        for i in range(nbins):
            # bin i holds x with edges[i] <= x < edges[i+1] (the rule ``encode`` uses)
            low = max(lo_i, math.ceil(edges[i]))
            high = min(hi_i, math.ceil(edges[i + 1]) - 1)
            if high < low:  # cannot happen for width >= 1 bins; guard against rounding anyway
                low = high = min(max(int(round((edges[i] + edges[i + 1]) / 2)), lo_i), hi_i)
            lows.append(low)
            highs.append(high)
        return cls(
            name=col.name,
            type=col.type,
            cardinality=nbins,
            edges=edges,
            int_lows=tuple(lows),
            int_highs=tuple(highs),
            lo=col.min,
            hi=col.max,
        )

    def encode(self, s: pl.Series) -> np.ndarray:
        """Codes of a conformed column; ``InputError`` (with a count, never a value) if outside."""
        where = f"column {self.name!r}"
        if self.type == "categorical":
            codes = s.cast(pl.Utf8).replace_strict(
                list(self.categories), list(range(self.cardinality)), default=None, return_dtype=pl.Int64
            )
            bad = codes.null_count()
            if bad:
                raise InputError(
                    f"{where}: {bad} values outside the schema's categories; conform the data to the schema first"
                )
            return np.asarray(codes.to_numpy(), dtype=np.int64)
        vals = s.cast(pl.Float64).to_numpy()
        assert self.lo is not None and self.hi is not None
        bad = int(np.sum(~np.isfinite(vals) | (vals < self.lo) | (vals > self.hi)))
        if bad:
            raise InputError(
                f"{where}: {bad} values missing or outside the schema bounds; conform the data to the schema first"
            )
        bin_codes = np.searchsorted(np.asarray(self.edges), vals, side="right") - 1
        # a float equal to max sits on the last edge: it belongs to the last bin
        return np.clip(bin_codes, 0, self.cardinality - 1).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pl.Series:
        """Values for codes; numeric bins become uniform draws inside the bin (post-processing)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= self.cardinality):
            raise ValueError(f"column {self.name!r}: code outside 0..{self.cardinality - 1}")
        if self.type == "categorical":
            return pl.Series(self.name, np.asarray(self.categories, dtype=object)[codes], dtype=pl.Utf8)
        if self.type == "integer":
            lows = np.asarray(self.int_lows, dtype=np.int64)[codes]
            highs = np.asarray(self.int_highs, dtype=np.int64)[codes]
            return pl.Series(self.name, rng.integers(lows, highs, endpoint=True), dtype=pl.Int64)
        edges = np.asarray(self.edges)
        vals = rng.uniform(edges[codes], edges[codes + 1])
        assert self.lo is not None and self.hi is not None
        return pl.Series(self.name, np.clip(vals, self.lo, self.hi), dtype=pl.Float64)


@dataclass(frozen=True)
class Discretizer:
    """The schema's public finite domain: one ``ColumnCodec`` per column, in schema order."""

    codecs: tuple[ColumnCodec, ...]

    @classmethod
    def from_schema(cls, schema: Schema) -> "Discretizer":
        """Build the domain from the schema alone (it never sees the data)."""
        return cls(tuple(ColumnCodec.from_column(c) for c in schema.columns))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.codecs]

    @property
    def cardinalities(self) -> list[int]:
        return [c.cardinality for c in self.codecs]

    def describe(self) -> dict[str, dict[str, object]]:
        """The public domain as plain data (cardinality, categories or bin edges) per column."""
        out: dict[str, dict[str, object]] = {}
        for c in self.codecs:
            entry: dict[str, object] = {"type": c.type, "cardinality": c.cardinality}
            if c.type == "categorical":
                entry["categories"] = list(c.categories)
            else:
                entry["bin_edges"] = list(c.edges)
            out[c.name] = entry
        return out

    def encode(self, data: pl.DataFrame) -> np.ndarray:
        """An ``(rows, columns)`` int64 array of codes, columns in schema order."""
        missing = [n for n in self.names if n not in data.columns]
        if missing:
            raise InputError(f"data is missing columns: {', '.join(missing)}")
        if data.height == 0:
            return np.zeros((0, len(self.codecs)), dtype=np.int64)
        return np.column_stack([c.encode(data.get_column(c.name)) for c in self.codecs])

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
        """A frame with the schema's columns and dtypes from an ``(rows, columns)`` code array."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.codecs):
            raise ValueError(f"expected codes of shape (n, {len(self.codecs)}), got {codes.shape}")
        return pl.DataFrame([c.decode(codes[:, j], rng) for j, c in enumerate(self.codecs)])
