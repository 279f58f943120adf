"""A schema-only encoding of a table for neural generators (CTGAN-style mode-specific normalisation).

CTGAN normalises a continuous column by fitting a variational Gaussian mixture to the data and
encoding each value as (one-hot mode, offset within the mode). The mixture is a data-dependent
statistic with no DP guarantee, so synthgate replaces it with a *schema-based* version: the modes
are the schema's public bins of the column (``bin_edges()``, or the steward's ``cuts`` that give,
say, "no capital gain" a bin of its own), and the offset is the value's relative position inside
its bin, scaled to [-1, 1]. Nothing here reads the data to choose anything: ``SchemaEncoder``
is built from the schema alone, and ``encode`` only maps values through it.

Layout of an encoded row, column by column in schema order:

- categorical column: a one-hot span over the schema's categories (``kind="cat"``);
- numeric column: a one-hot span over its public bins (``kind="bin"``) followed, when some bin
  holds more than one value, by a one-wide offset span (``kind="offset"``, in [-1, 1]).

Decoding (post-processing of a model's output): bin or category from the span (argmax or a draw
from the softmax), value = bin low + (offset + 1) / 2 * bin width, clipped to the bin and to the
schema bounds; integer columns round to an integer inside the bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from privacy.generators.tabular.discretize import ColumnCodec, Discretizer
from privacy.schema import Schema

SpanKind = Literal["cat", "bin", "offset"]


@dataclass(frozen=True)
class Span:
    """A slice ``[start, start + width)`` of the encoded row that belongs to one column."""

    column: str
    kind: SpanKind
    start: int
    width: int

    @property
    def stop(self) -> int:
        return self.start + self.width


def _bin_bounds(codec: ColumnCodec) -> tuple[np.ndarray, np.ndarray]:
    """Per bin, the lowest and highest value it holds (integers: the integers inside it)."""
    if codec.type == "integer":
        return np.asarray(codec.int_lows, dtype=np.float64), np.asarray(codec.int_highs, dtype=np.float64)
    edges = np.asarray(codec.edges, dtype=np.float64)
    return edges[:-1], edges[1:]


@dataclass(frozen=True)
class SchemaEncoder:
    """Maps a conformed table to a float matrix and back, from the public schema only."""

    discretizer: Discretizer
    spans: tuple[Span, ...]

    @classmethod
    def from_schema(cls, schema: Schema) -> "SchemaEncoder":
        disc = Discretizer.from_schema(schema)
        spans: list[Span] = []
        at = 0
        for codec in disc.codecs:
            kind: SpanKind = "cat" if codec.type == "categorical" else "bin"
            spans.append(Span(codec.name, kind, at, codec.cardinality))
            at += codec.cardinality
            if codec.type != "categorical":
                lows, highs = _bin_bounds(codec)
                if np.any(highs > lows):
                    spans.append(Span(codec.name, "offset", at, 1))
                    at += 1
        return cls(disc, tuple(spans))

    @property
    def width(self) -> int:
        return self.spans[-1].stop if self.spans else 0

    @property
    def discrete_spans(self) -> tuple[Span, ...]:
        """The one-hot spans (categories and bins), in order."""
        return tuple(s for s in self.spans if s.kind != "offset")

    @property
    def offset_spans(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.kind == "offset")

    @property
    def categorical_spans(self) -> tuple[Span, ...]:
        """The spans of the schema's categorical columns (CTGAN conditions on these)."""
        return tuple(s for s in self.spans if s.kind == "cat")

    def describe(self) -> dict[str, object]:
        """The public encoding as plain data (for the card and for tests)."""
        return {
            "width": self.width,
            "spans": [{"column": s.column, "kind": s.kind, "start": s.start, "width": s.width} for s in self.spans],
            "domain": self.discretizer.describe(),
        }

    def codes_and_offsets(self, data: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per column the category/bin code, and per numeric column the offset in [-1, 1]."""
        codes = self.discretizer.encode(data)
        offsets = np.zeros(codes.shape, dtype=np.float64)
        for j, codec in enumerate(self.discretizer.codecs):
            if codec.type == "categorical" or data.height == 0:
                continue
            vals = data.get_column(codec.name).cast(pl.Float64).to_numpy()
            lows, highs = _bin_bounds(codec)
            lo, hi = lows[codes[:, j]], highs[codes[:, j]]
            width = np.where(hi > lo, hi - lo, 1.0)
            offsets[:, j] = np.clip(2.0 * (vals - lo) / width - 1.0, -1.0, 1.0)
        return codes, offsets

    def encode(self, data: pl.DataFrame) -> np.ndarray:
        """An ``(rows, width)`` float32 matrix (one-hots and offsets)."""
        codes, offsets = self.codes_and_offsets(data)
        return self.encode_parts(codes, offsets)

    def random_parts(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Codes and offsets of ``n`` rows drawn uniformly from the schema's domain (public, no data).

        Used to time training steps before the data is read (``dpsgd.steps_for_time``).
        """
        codes = np.column_stack([rng.integers(0, c.cardinality, size=n) for c in self.discretizer.codecs]) if (
            self.discretizer.codecs) else np.zeros((n, 0), dtype=np.int64)
        offsets = rng.uniform(-1.0, 1.0, size=codes.shape)
        return codes.astype(np.int64), offsets

    def encode_parts(self, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The encoded-row matrix for per-column codes and offsets."""
        n = codes.shape[0]
        out = np.zeros((n, self.width), dtype=np.float32)
        rows = np.arange(n)
        col_index = {c.name: j for j, c in enumerate(self.discretizer.codecs)}
        for span in self.spans:
            j = col_index[span.column]
            if span.kind == "offset":
                out[:, span.start] = offsets[:, j]
            else:
                out[rows, span.start + codes[:, j]] = 1.0
        return out

    def decode_parts(self, codes: np.ndarray, offsets: np.ndarray) -> pl.DataFrame:
        """A schema frame from per-column codes and offsets (offsets ignored for categorical columns)."""
        series = []
        for j, codec in enumerate(self.discretizer.codecs):
            c = np.asarray(codes[:, j], dtype=np.int64)
            if codec.type == "categorical":
                series.append(pl.Series(codec.name, np.asarray(codec.categories, dtype=object)[c], dtype=pl.Utf8))
                continue
            lows, highs = _bin_bounds(codec)
            lo, hi = lows[c], highs[c]
            o = np.clip(np.nan_to_num(np.asarray(offsets[:, j], dtype=np.float64)), -1.0, 1.0)
            vals = lo + (o + 1.0) / 2.0 * (hi - lo)
            assert codec.lo is not None and codec.hi is not None
            if codec.type == "integer":
                ints = np.clip(np.rint(vals), lo, hi)
                series.append(pl.Series(codec.name, np.clip(ints, codec.lo, codec.hi).astype(np.int64), dtype=pl.Int64))
            else:
                series.append(pl.Series(codec.name, np.clip(vals, codec.lo, codec.hi), dtype=pl.Float64))
        return pl.DataFrame(series)

    def decode(self, matrix: np.ndarray, rng: np.random.Generator | None = None) -> pl.DataFrame:
        """A schema frame from an encoded-row matrix (a model's output; post-processing).

        One-hot spans may hold scores or probabilities: with ``rng`` the code is drawn from the
        normalised non-negative scores, without it the argmax is taken.
        """
        m = np.asarray(matrix, dtype=np.float64)
        n = m.shape[0]
        ncols = len(self.discretizer.codecs)
        codes = np.zeros((n, ncols), dtype=np.int64)
        offsets = np.zeros((n, ncols), dtype=np.float64)
        col_index = {c.name: j for j, c in enumerate(self.discretizer.codecs)}
        for span in self.spans:
            j = col_index[span.column]
            block = m[:, span.start:span.stop]
            if span.kind == "offset":
                offsets[:, j] = block[:, 0]
            elif rng is None:
                codes[:, j] = np.argmax(block, axis=1)
            else:
                p = np.clip(np.nan_to_num(block), 0.0, None)
                sums = p.sum(axis=1, keepdims=True)
                p = np.where(sums > 0, p / np.where(sums > 0, sums, 1.0), 1.0 / span.width)
                u = rng.random((n, 1))
                codes[:, j] = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), span.width - 1)
        return self.decode_parts(codes, offsets)
