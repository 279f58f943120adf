"""Public finite domains for sequence generators, and post-processing of noisy count tables.

Everything here is either built from public numbers alone (the schema's columns, the sequence
block's bounds, a generator's options) or is post-processing of already-noisy counts; no function
takes the sensitive data to choose a domain (DESIGN.md section 4, rule 1).

- ``IntBins``: contiguous integer bins over a public range ``[lo, hi]`` (sequence lengths, start
  times, gaps between events), exact, equal-width or log-spaced; decoding draws uniformly among
  the integers of a bin.
- ``CellCodec``: a schema column as cells ``0 .. size-1``: its categories or public bins
  (``discretize.ColumnCodec``) plus, for a nullable column, one more cell for "missing" (a
  missing value is a state of its own, never imputed).
- ``simplex_projection``, ``pooled_distribution``, ``conditional_rows``: turn noisy counts into
  valid probability distributions, with a stated back-off rule for rows that carry too little
  noisy mass.
- ``draw_rows``: inverse-CDF draws, one per row index, from a seeded generator (sampling only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.discretize import ColumnCodec
from privacy.schema import Column

MISSING_LABEL = "<missing>"


@dataclass(frozen=True)
class IntBins:
    """Contiguous integer bins ``[lows[k], highs[k]]`` covering a public range without gaps."""

    lows: tuple[int, ...]
    highs: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.lows or len(self.lows) != len(self.highs):
            raise ValueError("IntBins needs as many lows as highs, at least one")
        for k, (a, b) in enumerate(zip(self.lows, self.highs)):
            if b < a or (k and a != self.highs[k - 1] + 1):
                raise ValueError("IntBins must be contiguous, increasing, non-empty bins")

    @property
    def size(self) -> int:
        return len(self.lows)

    @property
    def lo(self) -> int:
        return self.lows[0]

    @property
    def hi(self) -> int:
        return self.highs[-1]

    @classmethod
    def from_lows(cls, lows: list[int] | np.ndarray, hi: int) -> "IntBins":
        """Bins starting at each of ``lows`` (deduplicated, sorted), the last one ending at ``hi``."""
        lw = sorted({int(x) for x in lows})
        highs = [b - 1 for b in lw[1:]] + [int(hi)]
        return cls(tuple(lw), tuple(highs))

    @classmethod
    def exact(cls, lo: int, hi: int) -> "IntBins":
        """One bin per integer of ``[lo, hi]``."""
        return cls.from_lows(list(range(int(lo), int(hi) + 1)), hi)

    @classmethod
    def equal_width(cls, lo: int, hi: int, n: int) -> "IntBins":
        """At most ``n`` bins of (nearly) equal integer width over ``[lo, hi]``."""
        span = int(hi) - int(lo) + 1
        if span <= n:
            return cls.exact(lo, hi)
        lows = int(lo) + np.floor(np.arange(n) * (span / n)).astype(np.int64)
        return cls.from_lows(lows, hi)

    @classmethod
    def geometric(cls, lo: int, hi: int, n: int) -> "IntBins":
        """At most ``n`` bins over ``[lo, hi]``: ``{lo}`` alone, then log-spaced widths.

        ``lo`` gets a bin of its own (a tie, a visit on the first day of a study); the others grow
        geometrically from width 1 (fine where gaps are short, coarse where they are long).
        """
        lo, hi = int(lo), int(hi)
        span = hi - lo
        if span + 1 <= n:
            return cls.exact(lo, hi)
        # n - 1 log-spaced bins over offsets [1, span]
        edges = np.geomspace(1.0, span + 1.0, n)[:-1]
        lows = [lo] + [lo + int(x) for x in np.floor(edges)]
        return cls.from_lows(lows, hi)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value (values are clipped to ``[lo, hi]`` first)."""
        v = np.clip(np.asarray(values, dtype=np.int64), self.lo, self.hi)
        return (np.searchsorted(np.asarray(self.lows, dtype=np.int64), v, side="right") - 1).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniform integer inside each code's bin (post-processing)."""
        c = np.asarray(codes, dtype=np.int64)
        if c.size == 0:
            return np.zeros(0, dtype=np.int64)
        lows = np.asarray(self.lows, dtype=np.int64)[c]
        highs = np.asarray(self.highs, dtype=np.int64)[c]
        return np.asarray(rng.integers(lows, highs, endpoint=True), dtype=np.int64)

    def as_list(self) -> list[list[int]]:
        return [[a, b] for a, b in zip(self.lows, self.highs)]


@dataclass(frozen=True)
class CellCodec:
    """A schema column as cells: its categories or public bins, then a "missing" cell if nullable."""

    codec: ColumnCodec
    nullable: bool

    @classmethod
    def from_column(cls, col: Column) -> "CellCodec":
        return cls(ColumnCodec.from_column(col), bool(col.nullable))

    @property
    def name(self) -> str:
        return self.codec.name

    @property
    def size(self) -> int:
        return self.codec.cardinality + (1 if self.nullable else 0)

    @property
    def missing(self) -> int | None:
        """The missing cell's code (``None`` for a column that cannot be missing)."""
        return self.codec.cardinality if self.nullable else None

    def labels(self) -> list[str]:
        """Public names of the cells (categories, bin ranges, ``<missing>``)."""
        c = self.codec
        if c.type == "categorical":
            out = list(c.categories)
        elif c.type == "integer":
            out = [f"[{a}, {b}]" for a, b in zip(c.int_lows, c.int_highs)]
        else:
            out = [f"[{c.edges[k]:g}, {c.edges[k + 1]:g}{']' if k == c.cardinality - 1 else ')'}"
                   for k in range(c.cardinality)]
        return out + ([MISSING_LABEL] if self.nullable else [])

    def encode(self, s: pl.Series) -> np.ndarray:
        """Cells of a conformed column; a missing value is an error unless the column is nullable."""
        miss = s.is_null().to_numpy()
        if self.codec.type == "float":
            miss = miss | s.cast(pl.Float64).is_nan().fill_null(False).to_numpy()
        out = np.empty(s.len(), dtype=np.int64)
        if miss.any():
            if not self.nullable:
                raise InputError(
                    f"column {self.name!r}: {int(miss.sum())} missing values but the schema does not declare "
                    f"it nullable; conform the data to the schema first"
                )
            out[miss] = self.codec.cardinality
        if (~miss).any():
            out[~miss] = self.codec.encode(s.filter(pl.Series(~miss)))
        return out

    def decode(self, cells: np.ndarray, rng: np.random.Generator) -> pl.Series:
        """Values for cells (the schema's dtype; null for the missing cell)."""
        cells = np.asarray(cells, dtype=np.int64)
        if cells.size and (cells.min() < 0 or cells.max() >= self.size):
            raise ValueError(f"column {self.name!r}: cell outside 0..{self.size - 1}")
        dtype = {"categorical": pl.Utf8, "integer": pl.Int64, "float": pl.Float64}[self.codec.type]
        miss = cells == self.codec.cardinality
        if not miss.any():
            return self.codec.decode(cells, rng).alias(self.name).cast(dtype)
        present = self.codec.decode(cells[~miss], rng).cast(dtype)
        out = pl.Series(self.name, [None] * cells.size, dtype=dtype)
        return out.scatter(np.flatnonzero(~miss), present)


# -- noisy counts -> distributions (post-processing) -------------------------------------------------


def simplex_projection(y: np.ndarray, total: float) -> np.ndarray:
    """The closest (Euclidean) vector ``x >= 0`` with ``sum(x) = total`` to the noisy counts ``y``.

    This is "norm-sub" (Wang et al., 2020): subtract one constant from every cell and clip at 0
    so that the mass is the noisy total. For sparse tables it keeps far less spurious mass on
    empty cells than clipping negatives and renormalising (which leaves about 0.4 sigma on every
    empty cell). ``total`` must be > 0.
    """
    y = np.asarray(y, dtype=np.float64)
    if not total > 0:
        raise ValueError("simplex_projection needs a positive total")
    z = np.sort(y)[::-1]
    css = np.cumsum(z) - total
    k = np.arange(1, z.size + 1)
    ok = z - css / k > 0
    rho = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
    theta = css[rho] / (rho + 1)
    return np.maximum(y - theta, 0.0)


def _enough(total: float, cell_sd: float, cells: int, backoff: float) -> bool:
    """The stated back-off rule: keep a row whose noisy total is at least ``backoff`` standard
    deviations of that total (``cell_sd * sqrt(cells)``) and positive."""
    return bool(total > 0 and total >= backoff * cell_sd * math.sqrt(cells))


def pooled_distribution(y: np.ndarray, cell_sd: float, backoff: float) -> tuple[np.ndarray, bool]:
    """A distribution from one noisy count vector; uniform if it carries too little mass.

    Returns the probabilities and whether the counts were used (False: uniform).
    """
    y = np.asarray(y, dtype=np.float64)
    total = float(y.sum())
    if not _enough(total, cell_sd, y.size, backoff):
        return np.full(y.size, 1.0 / y.size), False
    x = simplex_projection(y, total)
    return x / x.sum(), True


def conditional_rows(
    y: np.ndarray, cell_sd: float, backoff: float, fallback: np.ndarray
) -> tuple[np.ndarray, int]:
    """Row-wise conditional distributions from a noisy ``(rows, cells)`` count table.

    A row whose noisy total passes the back-off rule (``_enough``) becomes its simplex projection,
    normalised; any other row takes the matching row of ``fallback`` (a ``(rows, cells)`` array
    of valid distributions, e.g. the pooled distribution repeated). Returns the table and the
    number of rows that backed off.
    """
    y = np.asarray(y, dtype=np.float64)
    fallback = np.broadcast_to(np.asarray(fallback, dtype=np.float64), y.shape)
    out = np.array(fallback, dtype=np.float64, copy=True)
    backed_off = 0
    for r in range(y.shape[0]):
        total = float(y[r].sum())
        if _enough(total, cell_sd, y.shape[1], backoff):
            x = simplex_projection(y[r], total)
            out[r] = x / x.sum()
        else:
            backed_off += 1
    return out, backed_off


def cumulative(p: np.ndarray) -> np.ndarray:
    """Row-wise CDFs of a table of distributions, the last column exactly 1."""
    c = np.cumsum(np.asarray(p, dtype=np.float64), axis=-1)
    c /= c[..., -1:]
    c[..., -1] = 1.0
    return c


def draw_rows(cdf: np.ndarray, rows: np.ndarray, rng: np.random.Generator, chunk_cells: int = 1 << 22) -> np.ndarray:
    """One draw from ``cdf[rows[i]]`` for each ``i`` (inverse CDF), in memory-bounded chunks."""
    rows = np.asarray(rows, dtype=np.int64)
    k = cdf.shape[-1]
    out = np.empty(rows.size, dtype=np.int64)
    u = rng.random(rows.size)
    step = max(1, chunk_cells // max(k, 1))
    for a in range(0, rows.size, step):
        b = min(rows.size, a + step)
        out[a:b] = (cdf[rows[a:b]] < u[a:b, None]).sum(axis=1)
    return np.minimum(out, k - 1)
