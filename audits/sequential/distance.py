"""A distance between whole entities (static values and the sequence of events), and nearest neighbours.

The distance between entities A and B, with ``la`` and ``lb`` events::

    D(A, B) = S(A, B) + w * E(A, B) / max(la, lb)

- ``S`` is Gower's distance over the static columns, summed as in ``audits.membership``: a numeric
  column contributes ``|a - b| / (schema max - schema min)``, a categorical column 0 when equal and 1
  otherwise; a missing value equals a missing value (0) and differs from any present one (1).
- ``E`` is the edit (Levenshtein) distance between the two event sequences, computed by the
  Wagner-Fischer dynamic programme, with insertion and deletion cost 1 and substitution cost
  ``c(a_i, b_j)``: the mean of the per-column Gower differences over the event columns and the order
  value (scaled by the schema's public order range, so that when an event happened counts like one
  column). Each term lies in [0, 1], so ``E <= max(la, lb)``: a length difference costs at least
  ``|la - lb|`` (the length penalty), and ``E / max(la, lb)`` is in [0, 1].
- ``w`` is the number of event columns plus one (the order): the sequence part weighs as many
  columns as it holds, like the static columns do in ``S``.

Two copies are at distance 0. Nothing in the distance is read from the data: every scale is a public
bound of the schema. Column subsets (for the worst-of-several-subsets rule of the DCR audit) set the
weights of the other columns to 0.

Nearest neighbours are found exactly by branch and bound: for each query the references are visited
in increasing order of the lower bound ``S + w * |la - lb| / max(la, lb)`` and the visit stops as soon
as the bound exceeds the k-th best distance found; the dynamic programme itself stops early when
every cell of a row, plus the indels still unavoidable from it, exceeds that distance (every
alignment crosses every row, and costs are non-negative). The kernels are compiled with numba
(installed with anonymeter) and run in parallel over the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from audits.sequential.features import EncodedSequences
from privacy.errors import InputError
from privacy.schema import Schema


@dataclass(frozen=True, eq=False)
class DistanceSpace:
    """Which columns count in the entity distance (weights 0 or 1), in schema column order."""

    static_is_cat: np.ndarray
    static_weights: np.ndarray
    event_is_cat: np.ndarray
    event_weights: np.ndarray

    @classmethod
    def from_schema(cls, schema: Schema, columns: list[str] | None = None) -> "DistanceSpace":
        """All static and event columns, or only ``columns`` (the order value always counts)."""
        names = set(schema.names if columns is None else columns)
        unknown = names - set(schema.names)
        if unknown:
            raise InputError(f"distance columns not in the schema: {', '.join(sorted(unknown))}")
        st, ev = schema.static_columns, schema.event_columns
        return cls(
            static_is_cat=np.array([c.type == "categorical" for c in st], dtype=np.bool_),
            static_weights=np.array([1.0 if c.name in names else 0.0 for c in st], dtype=np.float64),
            event_is_cat=np.array([c.type == "categorical" for c in ev], dtype=np.bool_),
            event_weights=np.array([1.0 if c.name in names else 0.0 for c in ev], dtype=np.float64),
        )

    @property
    def sequence_weight(self) -> float:
        """``w``: the event columns counted, plus one for the order."""
        return float(self.event_weights.sum() + 1.0)


@dataclass(frozen=True, eq=False)
class Neighbours:
    """The k nearest references of each query: distances (ascending, inf when fewer than k exist),
    their indices (-1 then), and how many references lie within the query radius."""

    distances: np.ndarray
    indices: np.ndarray
    within: np.ndarray


def nearest(
    space: DistanceSpace,
    queries: EncodedSequences,
    reference: EncodedSequences,
    *,
    k: int = 1,
    radius: float = -1.0,
    exclude_self: bool = False,
) -> Neighbours:
    """Exact k nearest references of every query entity (see the module docstring).

    ``radius`` >= 0 also counts the references within that distance. ``exclude_self`` (queries and
    reference the same set) skips each query's own index.
    """
    if queries.n == 0 or reference.n == 0:
        raise InputError("nearest-entity search needs at least one query and one reference entity")
    maxlen = int(max(queries.lengths.max(initial=0), reference.lengths.max(initial=0)))
    dist, idx, within = _knn(
        np.ascontiguousarray(queries.statics), np.ascontiguousarray(queries.events), queries.order_scaled,
        queries.offsets, np.ascontiguousarray(reference.statics), np.ascontiguousarray(reference.events),
        reference.order_scaled, reference.offsets, space.static_is_cat, space.static_weights, space.event_is_cat,
        space.event_weights, int(k), float(radius), bool(exclude_self), maxlen,
    )
    return Neighbours(distances=dist, indices=idx, within=within)


def pair_distance(space: DistanceSpace, a: EncodedSequences, i: int, b: EncodedSequences, j: int) -> float:
    """D between entity ``i`` of ``a`` and entity ``j`` of ``b`` (for tests and spot checks)."""
    maxlen = int(max(a.lengths.max(initial=0), b.lengths.max(initial=0)))
    return float(_pair(
        a.statics[i], a.events, a.order_scaled, int(a.offsets[i]), int(a.lengths[i]),
        b.statics[j], b.events, b.order_scaled, int(b.offsets[j]), int(b.lengths[j]),
        space.static_is_cat, space.static_weights, space.event_is_cat, space.event_weights,
        np.inf, np.empty(maxlen + 1), np.empty(maxlen + 1),
    ))


@numba.njit(cache=True, inline="always")
def _diff(a: float, b: float, is_cat: bool) -> float:
    if np.isnan(a):
        return 0.0 if np.isnan(b) else 1.0
    if np.isnan(b):
        return 1.0
    if is_cat:
        return 0.0 if a == b else 1.0
    d = abs(a - b)
    return d if d < 1.0 else 1.0


@numba.njit(cache=True)
def _static(qs, rs, is_cat, w):  # type: ignore[no-untyped-def]
    s = 0.0
    for c in range(qs.shape[0]):
        if w[c] > 0.0:
            s += w[c] * _diff(qs[c], rs[c], is_cat[c])
    return s


@numba.njit(cache=True)
def _pair(qs, qe, qo, q0, la, rs, re, ro, r0, lb, s_cat, s_w, e_cat, e_w, bound, prev, cur):  # type: ignore[no-untyped-def]
    """D of one pair, or inf as soon as it provably exceeds ``bound``."""
    base = _static(qs, rs, s_cat, s_w)
    ew = 1.0
    for c in range(e_w.shape[0]):
        ew += e_w[c]
    longest = max(la, lb)
    if longest == 0:
        return base
    if la == 0 or lb == 0:
        return base + ew
    denom = float(longest)
    if base + ew * abs(la - lb) / denom > bound:
        return np.inf
    ncol = e_w.shape[0]
    for j in range(lb + 1):
        prev[j] = float(j)
    for i in range(1, la + 1):
        cur[0] = float(i)
        row_low = cur[0] + abs((la - i) - lb)
        a = q0 + i - 1
        for j in range(1, lb + 1):
            b = r0 + j - 1
            c = abs(qo[a] - ro[b])
            for col in range(ncol):
                if e_w[col] > 0.0:
                    c += e_w[col] * _diff(qe[a, col], re[b, col], e_cat[col])
            c /= ew
            v = prev[j - 1] + c
            if prev[j] + 1.0 < v:
                v = prev[j] + 1.0
            if cur[j - 1] + 1.0 < v:
                v = cur[j - 1] + 1.0
            cur[j] = v
            low = v + abs((la - i) - (lb - j))
            if low < row_low:
                row_low = low
        if base + ew * row_low / denom > bound:
            return np.inf
        for j in range(lb + 1):
            prev[j] = cur[j]
    return base + ew * prev[lb] / denom


@numba.njit(cache=True, parallel=True)
def _knn(qs, qe, qo, qoff, rs, re, ro, roff, s_cat, s_w, e_cat, e_w, k, radius, exclude_self, maxlen):  # type: ignore[no-untyped-def]
    nq = qoff.shape[0] - 1
    nr = roff.shape[0] - 1
    ew = 1.0
    for c in range(e_w.shape[0]):
        ew += e_w[c]
    out_d = np.full((nq, k), np.inf)
    out_i = np.full((nq, k), -1, dtype=np.int64)
    out_n = np.zeros(nq, dtype=np.int64)
    for q in numba.prange(nq):
        la = qoff[q + 1] - qoff[q]
        low = np.empty(nr)
        for r in range(nr):
            lb = roff[r + 1] - roff[r]
            longest = max(la, lb)
            part = 0.0 if longest == 0 else abs(la - lb) / longest
            low[r] = _static(qs[q], rs[r], s_cat, s_w) + ew * part
        visit = np.argsort(low, kind="mergesort")
        best = np.full(k, np.inf)
        best_i = np.full(k, -1, dtype=np.int64)
        count = 0
        prev = np.empty(maxlen + 1)
        cur = np.empty(maxlen + 1)
        for t in range(nr):
            r = visit[t]
            if exclude_self and r == q:
                continue
            limit = max(best[k - 1], radius)
            if low[r] > limit:
                break
            d = _pair(qs[q], qe, qo, qoff[q], la, rs[r], re, ro, roff[r], roff[r + 1] - roff[r],
                      s_cat, s_w, e_cat, e_w, limit, prev, cur)
            if d <= radius:
                count += 1
            if d < best[k - 1]:
                pos = k - 1
                while pos > 0 and best[pos - 1] > d:
                    best[pos] = best[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                    pos -= 1
                best[pos] = d
                best_i[pos] = r
        out_d[q] = best
        out_i[q] = best_i
        out_n[q] = count
    return out_d, out_i, out_n
