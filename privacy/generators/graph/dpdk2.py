"""dpdk2: an edge-level DP joint degree distribution (dK-2, Sala et al. 2011) and a 2K construction.

The joint degree distribution (JDD) of an undirected graph counts, for each unordered pair of
degrees ``x <= y``, the edges whose endpoints have degrees ``x`` and ``y``: ``J(x, y)``. dK-2
keeps the degree distribution (the stubs per degree) and the degree correlations (assortativity).

Privacy argument
----------------
1. **Public first**: the degree cap ``D`` comes from the schema (``graph.max_degree``) or the
   option ``max_degree`` (never from the data; refused without one), lowered to ``N - 1`` where
   the node count ``N`` is public (or bought: ``common.buy_node_count_laplace``, sensitivity 2).
   The degree classes, the cells, their noise scales, the budget split and the threshold are public.
2. **Two measurements**, composed by adding epsilon: the structure's epsilon is split by the
   public ``degree_share`` (default 0.5) into ``eps_deg`` for the degree sequence and ``eps_jdd``
   (the rest) for the JDD.
3. **Degree sequence** (``eps_deg``): the *input* graph's degrees, each capped at ``D``, sorted
   non-increasing, padded with zeros or cut to length ``N`` (dpdegree's query). One input edge
   raises two degrees by 1; sorting does not increase the L1 distance and capping at the public
   ``D`` is 1-Lipschitz per entry and commutes with sorting: **L1 sensitivity 2**. OpenDP's
   discrete Laplace, scale ``2 / eps_deg``.
4. **Degree-cap projection** (``common.project_degree_cap``, a public hash order): every node of
   the projected graph ``P`` has degree at most ``D``, and adding one edge ``e = (u, v)`` to the
   input adds at most ``e`` to ``P`` and removes at most one edge ``f1 = (u, x)`` at ``u`` and one
   ``f2 = (v, y)`` at ``v`` (proof in ``common``). Removal is the same change read backwards.
5. **What moves in the JDD of P**: an edge kept in both projections changes cell only if an
   endpoint's degree changed, and only ``u, v, x, y`` (at most 4 distinct nodes: ``x != v`` and
   ``y != u`` because ``e`` is new) can change degree, each by at most 1 (``u`` gains ``e`` and/or
   loses ``f1``; ``x`` loses ``f1``), or ``x = y`` by 2. Write ``c(z)`` for the edges at ``z`` kept in
   both projections; ``c(z) <= min(d_z, d'_z) <= D - 1`` (``d, d'`` the old and new degrees of ``z``).
   Plus ``e``, ``f1``, ``f2``. The JDD over classes adds, for each edge ``(a, b)``, the outer product
   ``phi(d_a) phi(d_b)^T`` of the endpoints' class memberships (folded onto ``X <= Y``; folding
   never increases L1). An edge whose two endpoints both changed is charged to each endpoint by
   the triangle inequality: ``|phi(a') phi(b')^T - phi(a) phi(b)^T|_1 <= |phi(a') - phi(a)|_1 + |phi(b') - phi(b)|_1``
   (memberships sum to 1).

   - **Soft classes** (``bins="soft"``, the default): the position ``p(d) = d - 1`` for ``d <= E``,
     ``E - 1 + E ln(d / E)`` above (``E = SOFT_EXACT = 2``), quantised to
     ``P(d) = floor(Q p(d))`` parts of ``1 / Q`` (``Q = SOFT_QUANTUM = 2^16``); class ``X`` is the hat
     ``phi_X(d) = max(0, 1 - |P(d) / Q - X|)``, so each degree has two classes with shares summing
     to 1, multiples of ``1 / Q``. Cells are counted exactly as integers in parts of ``1 / Q^2``.
     A degree step ``m -> m + 1`` moves ``P`` by ``delta_m`` (about ``min(Q, E Q / m)``), and moving
     ``P`` by ``delta`` changes the hat memberships by at most ``2 min(Q, delta)`` parts of ``1 / Q``
     in L1 (rate 2 per part, and both sum to ``Q``). So a node whose degree moves between ``m`` and
     ``m + 1`` moves its ``c(z) <= m`` edges by at most ``B_m = 2 m min(Q, delta_m) Q`` parts (the
     other endpoint's shares sum to ``Q``); ``x = y`` (degree ``m + 2 -> m``) moves by at most
     ``B_m + B_(m+1)``, for one node instead of two. With ``B = max_m B_m`` over the public steps
     below ``D``, and ``e, f1, f2`` of ``Q^2`` parts each: **``L1 <= 4B + 3Q^2``** parts
     (``Classes.sensitivity``, about ``(8E + 3) Q^2 = 19 Q^2``: 19 edges, not growing with ``D``).
     OpenDP's discrete Laplace on the integer parts, calibrated by its map at that exact ``d_in``
     (scale about ``19 / eps_jdd`` edges).
   - **Hard classes** (``bins="log"``: degrees 1..16 each a class, then classes growing by a
     factor 1.25 up to ``D``; ``bins="exact"``: one class per degree). Every edge moved at ``z``
     changes two cells by 1.
     **Uniform** (``weights="uniform"``): ``||dJ||_1 <= 2 * 4 (D - 1) + 3 = 8D - 5`` (moves are a
     subset of the exact case's). **Weighted** (``weights="degree"``): cell ``(X, Y)`` has weight
     ``w`` = the highest degree of the larger class, so a cell holding ``z``'s class has
     ``w >= d_z``; a moved edge at ``z`` adds at most ``1/d_z + 1/d'_z`` to ``sum_c |dJ_c| / w_c``,
     over ``c(z) <= min(d_z, d'_z)`` edges at most 2, the 4 nodes at most 8, and ``e, f1, f2`` at
     most 1 each: **``sum_c |dJ_c| / w_c <= 11``**. Discrete Laplace: uniform scale
     ``(8D - 5) / eps_jdd``, weighted scale ``11 w / eps_jdd`` per cell (the privacy loss
     ``sum_c |dJ_c| / b_c = (eps_jdd / 11) sum_c |dJ_c| / w_c <= eps_jdd``), measured in groups of
     equal ``w`` with OpenDP's map at ``d_in = 11 w`` checked to be at most ``eps_jdd``.

   Why soft: a hard class boundary moves all of a node's ``d`` edges at once, which costs noise
   ``O(d)`` on the high-degree cells (the weights); a hat moves each edge by ``O(1 / d)`` of a cell,
   so every cell gets the same small noise. All bounds are checked by enumerating single-edge
   changes of real graphs in the tests.
6. **Post-processing** (no data): the noisy sequence is fitted non-increasing (isotonic), rounded,
   clipped to ``[0, D]`` and its sum made even: the degree sequence. It gives each class its stubs
   ``s_X = sum_z d_z phi_X(d_z)`` and nodes; the uncorrelated JDD of those stubs
   (``s_X s_Y / S``) is the prior, each noisy cell's departure from it is soft-thresholded by
   ``threshold`` noise scales (default 0: none), and the cells are fitted by weighted least squares
   (weights ``1 / scale^2``) to the class stubs, each cell in ``[0, capacity]`` (the simple-graph
   pairs of its classes' nodes), then rounded.
7. **Node attributes** as in ``common`` (MST with the attribute share, rho / 16); with attributes
   the spend is ``(epsilon, delta)`` by basic composition.

Construction (sampling, seeded numpy generator): node ids are permuted uniformly, the first nodes
get the degree sequence; each node's stubs are split between its classes by its shares (randomised
rounding), each class's stubs shuffled, and each cell ``(X, Y)`` takes its count of stub pairs from
the two pools (2K stub matching, Mahadevan et al. 2006 / Stanton & Pinar 2012 without the
rewiring). Pairs that are self-loops or repeat an edge are matched again inside their cell, and
stubs still free are matched with each other, so the graph keeps about the degree sequence's edges.
Directed graphs are not supported yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.graph.common import (
    NodeAttributeModel,
    buy_node_count_laplace,
    check_sample_n,
    check_seed,
    degree_class_lows,
    fit_node_attributes,
    laplace_measure,
    plan_graph_epsilon,
    project_degree_cap,
    public_labels,
)
from privacy.generators.graph.dpdegree import isotonic_nonincreasing, lower_sum, sorted_degrees
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.marginal import library_versions, report
from privacy.graph_spec import GraphSpec
from privacy.graphs import GraphData, canonical_edges
from privacy.schema import Schema
from privacy.spend import PrivacySpend

WEIGHTS = ("degree", "uniform")
BINS = ("soft", "log", "exact")
#: with bins "soft", degrees 1..SOFT_EXACT are class centres, then SOFT_EXACT classes per e-fold of
#: degree; the soft JDD's L1 sensitivity is 8 SOFT_EXACT + 3 (a larger E: finer classes, more noise)
SOFT_EXACT = 2
#: soft class shares are multiples of 1 / SOFT_QUANTUM, cells of 1 / SOFT_QUANTUM^2 (exact integers)
SOFT_QUANTUM = 2 ** 16
#: with bins "log", degrees up to this have a class each; above, classes grow by LOG_RATIO
EXACT_UP_TO = 16
LOG_RATIO = 1.25
#: each noisy cell's departure from the uncorrelated JDD is shrunk by this many noise scales
DEFAULT_THRESHOLD = 0.0
#: the weighted bound: sum over cells of |change| / max(x, y) under one input edge (see step 3)
WEIGHTED_BOUND = 11
#: the share of the structure budget spent on the sorted degree sequence (the rest on the JDD)
DEFAULT_DEGREE_SHARE = 0.5
#: the L1 sensitivity of the sorted, capped degree sequence under one input edge (dpdegree's query)
DEGREE_SENSITIVITY = 2
#: the most JDD cells dpdk2 measures (OpenDP's sampler takes microseconds per cell)
MAX_CELLS = 2_000_000


def uniform_sensitivity(cap: int) -> int:
    """The L1 sensitivity of the projected graph's JDD under one input edge: ``8 cap - 5``."""
    return 8 * int(cap) - 5


def degree_classes(cap: int, bins: str) -> np.ndarray:
    """Public degree classes ``1..cap`` as lower bounds: every degree (``"exact"``), or ``"log"``.

    ``"log"``: degrees 1..16 each a class of their own, then classes growing by a factor of about
    1.25 up to ``cap`` (from the cap alone, never the data).
    """
    if bins == "exact" or cap <= EXACT_UP_TO:
        return np.arange(1, cap + 1, dtype=np.int64)
    lows = list(range(1, EXACT_UP_TO + 1))
    while True:
        nxt = max(lows[-1] + 1, int(math.ceil(lows[-1] * LOG_RATIO)))
        if nxt > cap:
            break
        lows.append(nxt)
    return np.asarray(lows, dtype=np.int64)


def class_highs(lows: np.ndarray, cap: int) -> np.ndarray:
    """The highest degree of each class."""
    return np.append(lows[1:] - 1, cap).astype(np.int64)


def jdd(graph: GraphData, lows: np.ndarray) -> np.ndarray:
    """The upper-triangular JDD over degree classes of a graph whose degrees are at most the cap.

    ``J[X, Y]`` (``X <= Y``, class indices) counts the edges between a node of class ``X`` and one of
    class ``Y``; with exact classes, ``J[x - 1, y - 1]`` for degrees ``x <= y``. Degrees above the last
    class's range are the caller's error (project first).
    """
    k = lows.size
    out = np.zeros((k, k), dtype=np.int64)
    if graph.n_edges == 0:
        return out
    deg = np.bincount(graph.edges.ravel(), minlength=graph.n_nodes)
    cls = np.searchsorted(lows, deg, side="right") - 1
    a = cls[graph.edges[:, 0]]
    b = cls[graph.edges[:, 1]]
    np.add.at(out, (np.minimum(a, b), np.maximum(a, b)), 1)
    return out


def upper_cells(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the cells ``X <= Y``, grouped by ``Y`` (the larger class) ascending."""
    iu = np.triu_indices(k)
    order = np.lexsort((iu[0], iu[1]))
    return iu[0][order], iu[1][order]


def soft_positions(degree: np.ndarray, e: int) -> np.ndarray:
    """Each degree's position on the soft class axis, in units of ``1 / SOFT_QUANTUM`` of a class (int64).

    ``floor(Q p(d))`` with ``p(d) = d - 1`` up to ``e``, then ``e - 1 + e ln(d / e)``: one degree step
    ``m -> m + 1`` moves ``p`` by at most 1, and by at most ``e / m`` above ``e``. A public function of
    the degree (integers, so the JDD is exact integer arithmetic).
    """
    d = np.maximum(np.asarray(degree, dtype=np.float64), 1.0)
    p = np.where(d <= e, d - 1.0, (e - 1.0) + e * np.log(np.maximum(d, e) / e))
    return np.floor(p * SOFT_QUANTUM).astype(np.int64)


@dataclass(frozen=True)
class Classes:
    """Public degree classes of ``1..cap``: hard (``lows``: each degree in one class) or soft.

    Soft: class ``X`` is the hat ``phi_X(d) = max(0, 1 - |p(d) - X|)`` over the position ``p``
    (``soft_positions``, quantised to ``1 / SOFT_QUANTUM``); every degree belongs to two
    neighbouring classes with shares summing to 1. Counts are kept as integers in ``unit`` parts
    (``SOFT_QUANTUM^2`` for soft classes, 1 for hard ones).
    """

    bins: str
    cap: int
    lows: np.ndarray
    e: int = SOFT_EXACT

    @property
    def k(self) -> int:
        return int(self.lows.size)

    @property
    def quantum(self) -> int:
        return SOFT_QUANTUM if self.bins == "soft" else 1

    @property
    def unit(self) -> int:
        return self.quantum ** 2

    @staticmethod
    def make(cap: int, bins: str, e: int | None = None) -> "Classes":
        e = SOFT_EXACT if e is None else int(e)
        if bins == "soft":
            k = int(soft_positions(np.array([cap]), e)[0]) // SOFT_QUANTUM + 2
            return Classes(bins=bins, cap=cap, lows=np.arange(k, dtype=np.int64), e=e)
        return Classes(bins=bins, cap=cap, lows=degree_classes(cap, bins), e=e)

    def member_parts(self, degree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each degree's lower class (-1 for degree 0) and its share of the next class in ``quantum`` parts."""
        d = np.minimum(np.asarray(degree, dtype=np.int64), self.cap)
        if self.bins == "soft":
            pos = soft_positions(d, self.e)
            lo, q = pos // SOFT_QUANTUM, pos % SOFT_QUANTUM
        else:
            lo = (np.searchsorted(self.lows, d, side="right") - 1).astype(np.int64)
            q = np.zeros(d.size, dtype=np.int64)
        return np.where(d > 0, lo, -1), np.where(d > 0, q, 0)

    def member(self, degree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each degree's lower class (-1 for degree 0) and its share in the next class (0 for hard classes)."""
        lo, q = self.member_parts(degree)
        return lo, q / float(self.quantum)

    def sensitivity(self) -> int:
        """Soft classes: the L1 sensitivity of ``class_jdd`` (in ``unit`` parts) under one input edge.

        ``4 B + 3 Q^2`` with ``B = max_m 2 m min(Q, P(m + 1) - P(m)) Q`` over degree steps ``m -> m + 1``
        below the cap (``P`` the quantised position, ``Q`` the quantum): about ``(8E + 3) Q^2``.
        """
        q = self.quantum
        pos = soft_positions(np.arange(1, self.cap + 1), self.e)
        m = np.arange(1, self.cap, dtype=np.int64)
        b = int((2 * m * np.minimum(q, np.diff(pos)) * q).max()) if self.cap > 1 else 0
        return 4 * b + 3 * q * q


def class_jdd(graph: GraphData, classes: Classes) -> np.ndarray:
    """The upper-triangular JDD over the classes in ``classes.unit`` parts (int64): each edge adds
    ``phi(d_u) phi(d_v)^T``, folded onto ``X <= Y``.

    Hard classes: the edge counts of ``jdd``. Soft: each edge spreads ``Q^2`` parts (a mass of 1) over
    at most 4 cells.
    """
    k = classes.k
    out = np.zeros((k, k), dtype=np.int64)
    if graph.n_edges == 0:
        return out
    deg = np.bincount(graph.edges.ravel(), minlength=graph.n_nodes)
    lo, q = classes.member_parts(deg)
    full = classes.quantum
    a, b = graph.edges[:, 0], graph.edges[:, 1]
    hi = np.minimum(lo + 1, k - 1)
    for xa, wa in ((lo[a], full - q[a]), (hi[a], q[a])):
        for xb, wb in ((lo[b], full - q[b]), (hi[b], q[b])):
            np.add.at(out, (np.minimum(xa, xb), np.maximum(xa, xb)), wa * wb)
    return out


def sorted_capped_degrees(graph: GraphData, length: int, cap: int) -> np.ndarray:
    """The input's degrees capped at ``cap``, sorted non-increasing, padded or cut to ``length`` (sensitive).

    One input edge raises two degrees by 1: the sorted sequence moves by at most 2 in L1 (dpdegree's
    query); capping each entry at the public ``cap`` is 1-Lipschitz and commutes with sorting.
    """
    deg = np.bincount(graph.edges.ravel(), minlength=graph.n_nodes) if graph.n_edges else np.zeros(0, np.int64)
    return np.minimum(sorted_degrees(deg, length), int(cap))


def degree_sequence(noisy: np.ndarray, cap: int) -> np.ndarray:
    """Post-processing of the noisy sorted sequence: isotonic fit, rounded, in ``[0, cap]``, even sum."""
    seq = np.clip(np.rint(isotonic_nonincreasing(noisy)), 0, cap).astype(np.int64)
    if int(seq.sum()) % 2:
        seq = lower_sum(seq, 1)
    return seq


def class_stubs(degree: np.ndarray, classes: Classes) -> tuple[np.ndarray, np.ndarray]:
    """Stubs (``sum_z d_z phi_X(d_z)``) and nodes with a share in each class, of a degree sequence."""
    d = np.asarray(degree, dtype=np.int64)
    lo, fr = classes.member(d)
    at = lo >= 0
    k = classes.k
    hi = np.minimum(lo + 1, k - 1)
    stubs = (np.bincount(lo[at], weights=d[at] * (1.0 - fr[at]), minlength=k)
             + np.bincount(hi[at], weights=d[at] * fr[at], minlength=k))
    nodes = (np.bincount(lo[at], weights=(fr[at] < 1.0).astype(np.float64), minlength=k)
             + np.bincount(hi[at], weights=(fr[at] > 0.0).astype(np.float64), minlength=k))
    return stubs.astype(np.float64), nodes.astype(np.float64)


def independence_jdd(stubs: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The cells (``rows <= cols``) of the JDD with no degree correlation for the given stubs per class.

    ``s_X s_Y / S`` edges between classes ``X < Y`` and ``s_X^2 / (2 S)`` inside a class: each class's
    stubs are used exactly.
    """
    total = float(stubs.sum())
    if total <= 0:
        return np.zeros(rows.size, dtype=np.float64)
    out = stubs[rows] * stubs[cols] / total
    return np.where(rows == cols, out / 2.0, out)


def cell_capacity(nodes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The most simple-graph edges a cell can hold given the nodes per class."""
    return np.where(rows == cols, nodes[rows] * (nodes[rows] - 1) / 2.0, nodes[rows] * nodes[cols])


def fit_jdd(target: np.ndarray, scales: np.ndarray, stubs: np.ndarray, capacity: np.ndarray, rows: np.ndarray,
            cols: np.ndarray, *, max_iter: int = 100) -> np.ndarray:
    """Weighted least squares: the cells closest to ``target`` (weights ``1 / scale^2``) whose stubs per
    class equal ``stubs`` (a diagonal cell counts twice), each in ``[0, capacity]`` (post-processing).

    Solved in the dual: ``x(lambda) = clip(target + D A^T lambda, 0, capacity)`` (``D = diag(scale^2)``,
    ``A`` the stub incidence) with Newton steps on ``A x(lambda) = stubs``; the noisiest cells take
    the most of the adjustment. Where the stubs cannot be met (capacity), the residual is least squares.
    """
    k = stubs.size
    c = rows.size
    d = np.maximum(np.asarray(scales, dtype=np.float64), 1e-9) ** 2
    d = d / d.max()
    cap = np.maximum(np.asarray(capacity, dtype=np.float64), 0.0)
    t = np.asarray(target, dtype=np.float64)
    if c == 0:
        return np.zeros(0, dtype=np.float64)
    from scipy.optimize import minimize

    def x_of(lm: np.ndarray) -> np.ndarray:
        return np.clip(t + d * (lm[rows] + lm[cols]), 0.0, cap)

    def neg_dual(lm: np.ndarray) -> tuple[float, np.ndarray]:
        x = x_of(lm)
        g = np.bincount(rows, x, minlength=k) + np.bincount(cols, x, minlength=k) - stubs
        return -(float(((x - t) ** 2 / (2.0 * d)).sum()) - float(lm @ g)), g

    res = minimize(neg_dual, np.zeros(k, dtype=np.float64), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter * 10, "gtol": 1e-8 * max(1.0, float(np.abs(stubs).max(initial=0)))})
    return x_of(np.asarray(res.x, dtype=np.float64))


def estimate_jdd(noisy: np.ndarray, scales: np.ndarray, degree: np.ndarray, classes: Classes, rows: np.ndarray,
                 cols: np.ndarray, threshold: float) -> np.ndarray:
    """The JDD cells (float, ``rows <= cols``) from the noisy cells and the post-processed degree sequence.

    The degree sequence fixes each class's stubs and nodes; each noisy cell's departure from the
    uncorrelated JDD of those stubs is soft-thresholded by ``threshold`` noise scales (noise alone
    rarely passes it), and the result is fitted to the stubs per class (``fit_jdd``).
    """
    stubs, nodes = class_stubs(degree, classes)
    prior = independence_jdd(stubs, rows, cols)
    dev = noisy - prior
    target = prior + np.sign(dev) * np.maximum(np.abs(dev) - threshold * scales, 0.0)
    return fit_jdd(target, scales, stubs, cell_capacity(nodes, rows, cols), rows, cols)


def integer_jdd(cells: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """The upper-triangular integer matrix of the cells (rounded, non-negative)."""
    j = np.zeros((k, k), dtype=np.int64)
    j[rows, cols] = np.clip(np.rint(cells), 0, None).astype(np.int64)
    return j


def _dedupe(pairs: np.ndarray, n: int, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs are new simple edges (no self-loop, not in ``taken``, first of duplicates); new keys."""
    if pairs.size == 0:
        return np.zeros(0, dtype=bool), taken
    u = np.minimum(pairs[:, 0], pairs[:, 1])
    v = np.maximum(pairs[:, 0], pairs[:, 1])
    key = u * n + v
    ok = (u != v) & ~np.isin(key, taken)
    first = np.zeros(key.size, dtype=bool)
    _, at = np.unique(key, return_index=True)
    first[at] = True
    ok &= first
    return ok, np.union1d(taken, key[ok])


def construct_2k(j: np.ndarray, degree: np.ndarray, n_nodes: int, classes: Classes, rng: np.random.Generator,
                 *, rounds: int = 20) -> np.ndarray:
    """Stub matching by degree class: canonical undirected edges over ``0..n_nodes-1``.

    Node ``perm[i]`` gets ``degree[i]`` stubs in its degree class; each class's stubs are shuffled
    and each cell ``(X, Y)`` takes its count of stub pairs from the two pools. Pairs that are
    self-loops or repeat an edge are matched again inside their cell (``rounds`` times); stubs still
    free (those and the classes' stubs the cells did not use) are then matched with each other
    (``rounds`` times), so the graph keeps about the degree sequence's edges.
    """
    degree = np.asarray(degree, dtype=np.int64)
    perm = rng.permutation(n_nodes)[: degree.size]
    lo, fr = classes.member(degree)
    # a node's stubs split between its two classes by its shares (randomised rounding)
    up = np.floor(degree * fr + rng.random(degree.size)).astype(np.int64)
    up = np.clip(up, 0, degree)
    node_cls = np.concatenate([lo, np.minimum(lo + 1, classes.k - 1)])
    node_id = np.concatenate([perm, perm])
    node_n = np.concatenate([degree - up, up])
    pools: dict[int, np.ndarray] = {}
    for c in np.unique(node_cls[(node_cls >= 0) & (node_n > 0)]):
        at = (node_cls == c) & (node_n > 0)
        pools[int(c)] = rng.permutation(np.repeat(node_id[at], node_n[at]))
    used = {c: 0 for c in pools}
    rows, cols = np.nonzero(j)
    cell_pairs: list[np.ndarray] = []
    cell_ids: list[np.ndarray] = []
    for i in rng.permutation(rows.size):
        xi, yi = int(rows[i]), int(cols[i])
        if xi not in pools or yi not in pools:
            continue
        cnt = int(j[xi, yi])
        if xi == yi:
            s = pools[xi][used[xi]:used[xi] + 2 * cnt]
            used[xi] += s.size
            p = s[: s.size // 2 * 2].reshape(-1, 2)
        else:
            a = pools[xi][used[xi]:used[xi] + cnt]
            b = pools[yi][used[yi]:used[yi] + cnt]
            m = min(a.size, b.size)
            used[xi] += m
            used[yi] += m
            p = np.stack([a[:m], b[:m]], axis=1)
        cell_pairs.append(p)
        cell_ids.append(np.full(p.shape[0], i, dtype=np.int64))
    taken = np.zeros(0, dtype=np.int64)
    edges: list[np.ndarray] = []
    leftover = [pools[c][used[c]:] for c in pools]
    if cell_pairs:
        pairs = np.concatenate(cell_pairs).astype(np.int64)
        ids = np.concatenate(cell_ids)
        for _ in range(rounds):
            ok, taken = _dedupe(pairs, n_nodes, taken)
            edges.append(pairs[ok])
            pairs, ids = pairs[~ok], ids[~ok]
            if pairs.size == 0:
                break
            # rematch each cell's rejected stubs inside the cell: shuffle one side (both for a diagonal cell)
            order = np.argsort(ids, kind="stable")
            pairs, ids = pairs[order], ids[order]
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            ends = np.r_[starts[1:], ids.size]
            for s0, e0 in zip(starts.tolist(), ends.tolist()):
                if rows[ids[s0]] == cols[ids[s0]]:
                    flat = rng.permutation(pairs[s0:e0].ravel())
                    pairs[s0:e0] = flat.reshape(-1, 2)
                else:
                    pairs[s0:e0, 1] = rng.permutation(pairs[s0:e0, 1])
        leftover.append(pairs.ravel())
    rest = rng.permutation(np.concatenate(leftover)) if leftover else np.zeros(0, dtype=np.int64)
    for _ in range(rounds):
        if rest.size < 2:
            break
        p = rest[: rest.size // 2 * 2].reshape(-1, 2)
        ok, taken = _dedupe(p, n_nodes, taken)
        edges.append(p[ok])
        rest = rng.permutation(np.concatenate([p[~ok].ravel(), rest[p.size:]]))
    if not edges:
        return np.zeros((0, 2), dtype=np.int64)
    return canonical_edges(np.concatenate(edges), False)


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 100_000:
        raise InputError(f"dpdk2: {name} ({v!r}) must be an integer in [1, 100000]")
    return int(v)


class DPDK2Generator:
    """The ``dpdk2`` graph generator (see the module docstring for the DP argument).

    Options: ``max_degree`` (the public degree cap; default: the schema's ``graph.max_degree``),
    ``bins`` (``"soft"``: overlapping classes, degrees 1..2 exact then 2 classes per e-fold, one noise
    scale ``19 / eps_jdd`` on every cell, default; hard classes: ``"log"``, degrees 1..16 exact then
    classes growing by 1.25, or ``"exact"``, one class per degree), ``weights`` (hard classes only:
    ``"degree"``: noise scale ``11 max(x, y) / eps_jdd`` per cell, default; ``"uniform"``:
    ``(8D - 5) / eps_jdd`` everywhere), ``degree_share`` (the structure budget's share for the degree
    sequence, default 0.5), ``threshold`` (each noisy cell's departure from the uncorrelated JDD is
    shrunk by this many noise scales; default 0), ``node_share`` (bought node set) and
    ``attribute_share`` (node attributes). Pure epsilon-DP (Laplace) for the structure.
    """

    name = "dpdk2"

    def __init__(self, *, max_degree: int | None = None, weights: str = "degree", bins: str = "soft",
                 threshold: float | None = None, degree_share: float = DEFAULT_DEGREE_SHARE,
                 node_share: float = 0.05, attribute_share: float = 0.2) -> None:
        self.max_degree = None if max_degree is None else _positive_int("max_degree", max_degree)
        if not isinstance(weights, str) or weights not in WEIGHTS:
            raise InputError(f"dpdk2: weights ({weights!r}) must be one of {', '.join(map(repr, WEIGHTS))}")
        self.weights = weights
        if not isinstance(bins, str) or bins not in BINS:
            raise InputError(f"dpdk2: bins ({bins!r}) must be one of {', '.join(map(repr, BINS))}")
        self.bins = bins
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not (math.isfinite(threshold) and threshold >= 0)):
            raise InputError(f"dpdk2: threshold ({threshold!r}) must be a finite number >= 0 (noise scales)")
        self.threshold = None if threshold is None else float(threshold)
        for nm, v in (("degree_share", degree_share), ("node_share", node_share),
                      ("attribute_share", attribute_share)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v < 1):
                raise InputError(f"dpdk2: {nm} ({v!r}) must be a number in (0, 1)")
        self.degree_share = float(degree_share)
        self.node_share = float(node_share)
        self.attribute_share = float(attribute_share)

    def cap(self, schema: Schema, n_nodes: int) -> int:
        """The public degree cap: the option, else the schema's ``max_degree``; at most ``n_nodes - 1``."""
        d = self.max_degree if self.max_degree is not None else schema.gspec.max_degree
        if d is None:
            raise InputError("dpdk2 needs a public degree cap: set graph max_degree in the schema or the "
                             "max_degree option")
        return max(1, min(int(d), n_nodes - 1))

    def check_schema(self, schema: Schema) -> None:
        """Refuse, from the schema alone (before any budget is charged), what dpdk2 cannot do."""
        if not schema.is_graph:
            raise InputError("dpdk2 needs a graph schema (kind: graph)")
        spec = schema.gspec
        if spec.node_unit:
            raise InputError("dpdk2: unit node is not supported yet (use dpdegree)")
        if spec.directed:
            raise InputError("dpdk2 for directed graphs is not supported yet (use dpdegree)")
        if self.max_degree is None and spec.max_degree is None:
            raise InputError("dpdk2 needs a public degree cap: set graph max_degree in the schema or the "
                             "max_degree option")
        if schema.columns and not spec.public_nodes:
            raise InputError("dpdk2: node attributes with nodes: bought are not supported yet "
                             "(declare the node set public)")
        if spec.node_count is not None:
            k = Classes.make(self.cap(schema, spec.node_count), self.bins).k
            if k * (k + 1) // 2 > MAX_CELLS:
                raise InputError(f"dpdk2: the degree cap gives {k * (k + 1) // 2:,} JDD cells, more than the "
                                 f"{MAX_CELLS:,} dpdk2 measures; lower max_degree or use bins 'soft' or 'log'")

    def fit(self, data: GraphData, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> "DPDK2Model":
        """Fit on the conformed training graph, spending at most ``spend`` (edge-level DP)."""
        self.check_schema(schema)
        spec = schema.gspec
        budget = plan_graph_epsilon(spend, schema, node_share=self.node_share, attribute_share=self.attribute_share)
        n = data.n_nodes if spec.public_nodes else buy_node_count_laplace(data, budget.eps_nodes)
        cap = self.cap(schema, n)
        classes = Classes.make(cap, self.bins)
        highs = class_highs(classes.lows, cap)  # hard classes only (the weights)
        k = classes.k
        cells = k * (k + 1) // 2
        if cells > MAX_CELLS:
            raise InputError(f"dpdk2: a degree cap of {cap} gives {cells:,} JDD cells, more than the {MAX_CELLS:,} "
                             f"dpdk2 measures; lower max_degree or use bins 'soft' or 'log'")
        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        eps = budget.eps_structure

        report(progress, f"dpdk2: projecting to degree cap {cap} and counting the JDD", 0.05)
        projected, _dropped = project_degree_cap(data, cap)  # the dropped count is sensitive: not reported
        true = class_jdd(projected, classes)
        del projected
        rows, cols = upper_cells(k)
        values = true[rows, cols]
        del true
        eps_deg = self.degree_share * eps
        eps_jdd = eps - eps_deg
        report(progress, f"dpdk2: measuring the sorted degree sequence ({n} values)", 0.08)
        true_seq = sorted_capped_degrees(data, n, cap)
        noisy_seq, deg_scale, spent_deg = laplace_measure(true_seq, DEGREE_SENSITIVITY, eps_deg)
        del true_seq
        report(progress, f"dpdk2: measuring {cells:,} JDD cells", 0.1)
        noisy_vals = np.zeros(values.size, dtype=np.float64)
        scales = np.zeros(values.size, dtype=np.float64)
        if self.bins == "soft":
            # integer parts of 1 / Q^2: OpenDP's discrete Laplace at the exact sensitivity in parts
            noisy_vals, scale, spent = laplace_measure(values, classes.sensitivity(), eps_jdd)
            noisy_vals = noisy_vals / classes.unit
            scales[:] = scale / classes.unit
        elif self.weights == "uniform":
            noisy_vals, scale, spent = laplace_measure(values, uniform_sensitivity(cap), eps_jdd)
            scales[:] = scale
        else:
            spent = 0.0
            bounds = np.searchsorted(cols, np.arange(k + 1), side="left")
            for y in range(k):
                lo, hi = int(bounds[y]), int(bounds[y + 1])
                # the cells whose larger class is y: weight w = highs[y] (>= every degree in class y),
                # scale 11 w / eps; OpenDP's map at d_in = 11 w is at most eps
                nv, scale, grp = laplace_measure(values[lo:hi], WEIGHTED_BOUND * int(highs[y]), eps_jdd)
                noisy_vals[lo:hi] = nv
                scales[lo:hi] = scale
                spent = max(spent, grp)
        del values

        # post-processing only from here
        degree = degree_sequence(noisy_seq, cap)
        est = estimate_jdd(noisy_vals, scales, degree, classes, rows, cols, threshold)
        j = integer_jdd(est, rows, cols, k)

        attrs: NodeAttributeModel | None = None
        if schema.columns:
            report(progress, "dpdk2: node attributes through MST", 0.5)
            attrs = fit_node_attributes(data, schema, budget.rho_attributes, degree_class_lows(n), spend=spend)
        card = self._card(spec, spend, budget, n, cap, classes, threshold, spent_deg, deg_scale, spent, scales, attrs,
                          j, degree)
        report(progress, "dpdk2: done", 1.0)
        return DPDK2Model(card=card, spec=spec, n_nodes=n, labels=public_labels(data, schema), jdd=j, cells=est,
                          scales=scales, classes=classes, degree=degree, attributes=attrs)

    def _card(self, spec: GraphSpec, spend: PrivacySpend, budget: Any, n: int, cap: int, classes: Classes,
              threshold: float, spent_deg: float, deg_scale: float, spent_jdd: float, scales: np.ndarray,
              attrs: NodeAttributeModel | None, j: np.ndarray, degree: np.ndarray) -> GeneratorCard:
        k = classes.k
        if self.bins == "soft":
            mech = (f"discrete Laplace on cells counted in parts of 1 / {classes.unit}, scale {float(scales[0]):.6g} "
                    f"edges on every cell: L1 sensitivity {classes.sensitivity() / classes.unit:.6g} edges "
                    f"(= {classes.sensitivity()} parts, about 8E + 3; soft classes, E = {classes.e}: one input edge "
                    f"changes the "
                    f"projected graph by at most 3 edges and 4 nodes' degrees by 1, each node moving its edges' "
                    f"class shares by at most 2E in L1)")
        elif self.weights == "uniform":
            mech = (f"discrete Laplace, scale {float(scales[0]):.6g} on every cell: L1 sensitivity 8D - 5 = "
                    f"{uniform_sensitivity(cap)} (degree-cap projection: one input edge changes the projected "
                    f"graph by at most 3 edges, 4 nodes change degree)")
        else:
            mech = (f"discrete Laplace, scale {WEIGHTED_BOUND} w / epsilon on cell (X, Y) with w the highest degree "
                    f"of the larger class: weighted sensitivity sum |change| / w <= {WEIGHTED_BOUND} (8 for the "
                    f"moved edges of the at most 4 nodes whose degree changes, 3 for the edge and the two "
                    f"displaced by the degree-cap projection)")
        parts = []
        if not spec.public_nodes:
            parts.append(f"node count (distinct edge endpoints, sensitivity 2): discrete Laplace, epsilon "
                         f"{budget.eps_nodes:.6g}")
        parts.append(f"degree sequence capped at D = {cap}, sorted non-increasing, length {n}: L1 sensitivity "
                     f"{DEGREE_SENSITIVITY} (one edge raises two degrees by 1); discrete Laplace scale "
                     f"{deg_scale:.6g}, epsilon {spent_deg:.6g} (OpenDP's map)")
        parts.append(f"JDD over {k} degree classes ({self.bins}) of the graph projected to degree cap D = {cap} "
                     f"({k * (k + 1) // 2} cells): {mech}; epsilon {spent_jdd:.6g} (OpenDP's map)")
        if attrs is not None:
            parts.append(f"node attributes: MST on one row per node (attributes and degree class), rho "
                         f"{attrs.rho_mst:.6g} = {attrs.rho:.6g} / 16 (one edge changes two nodes' degree classes: "
                         f"two substituted rows, 4 add/remove steps, zCDP group privacy 4^2), as (epsilon "
                         f"{budget.eps_attributes:.6g}, delta {budget.delta:g}) by OpenDP's conversion")
        spent = spent_deg + spent_jdd
        eps_used = budget.eps_nodes + spent + budget.eps_attributes
        accounting = ("pure epsilon-DP (OpenDP's discrete Laplace, OS entropy)"
                      + (" and MST's zCDP part converted to (epsilon, delta)" if attrs is not None else "")
                      + f"; composed by basic composition (epsilon {eps_used:.6g}, delta {budget.delta:g}): "
                      + "; ".join(parts) + ".")
        unit = spec.privacy_unit()
        if attrs is not None:
            unit = f"{unit}, or one node's attribute values"
        params: dict[str, Any] = {
            "max_degree": cap,
            "max_degree_source": "option" if self.max_degree is not None else "schema",
            "weights": "uniform" if self.bins == "soft" else self.weights,
            "bins": self.bins,
            "degree_class_lows": classes.lows.tolist(),
            "threshold_scales": threshold,
            "degree_share": self.degree_share,
            "cells": k * (k + 1) // 2,
            "node_count": n,
            "node_count_source": "schema" if spec.public_nodes else "DP estimate",
            "epsilon_parts": {"nodes": budget.eps_nodes, "structure": budget.eps_structure,
                              "attributes": budget.eps_attributes},
            "epsilon_structure_used": spent,
            "epsilon_degree_sequence": spent_deg,
            "epsilon_jdd": spent_jdd,
            "degree_sequence_scale": deg_scale,
            "degree_sequence_l1_sensitivity": DEGREE_SENSITIVITY,
            "edges_expected": int(j.sum()),
            "nodes_with_edges_expected": int((degree > 0).sum()),
        }
        if self.bins == "soft":
            params["soft_exact"] = classes.e
            params["l1_sensitivity"] = classes.sensitivity() / classes.unit
            params["soft_quantum"] = classes.quantum
        elif self.weights == "uniform":
            params["l1_sensitivity"] = uniform_sensitivity(cap)
        else:
            params["weighted_sensitivity"] = WEIGHTED_BOUND
        if attrs is not None:
            params["attributes"] = attrs.describe()
        domain_sources = {
            "degree cap": ("option max_degree" if self.max_degree is not None else "schema: graph max_degree")
            + ", at most node count - 1",
            "node count": "schema (public node set)" if spec.public_nodes
            else "DP measurement (distinct edge endpoints, noisy)",
            "JDD cells": "the degree cap and the bins option (public degree classes of 1..D)",
            "projection order": "a keyed hash of the neighbours' ids (common.label_rank), not the data",
            "degree sequence": "DP measurement (noisy sorted sequence, isotonic post-processing)",
            "joint degree distribution": "DP measurement (noisy JDD, fitted to the degree sequence's class stubs)",
            "noise scales, budget split and threshold": "the degree cap and the options",
        }
        if attrs is not None:
            domain_sources["node attribute domains"] = "schema (columns)"
            domain_sources["degree classes"] = "public: log-spaced from the node count"
            domain_sources["node attributes"] = "DP measurement (MST)"
        notes = (
            "edges beyond the degree cap are dropped by a public rule before counting the JDD (how many is not "
            "reported); the degree sequence is the input's, capped at the degree cap",
            "noise comes from OpenDP's samplers (OS entropy) during fit; the seed only drives sampling",
            f"each noisy cell's departure from the uncorrelated JDD of the degree sequence is shrunk by "
            f"{threshold:.3g} noise scales, then the cells are fitted to the degree sequence's stubs per class "
            f"(public post-processing)",
            "construction: 2K stub matching by degree class; self-loops and repeated edges matched again, "
            "then leftover stubs matched with each other",
        )
        return GeneratorCard(
            name=self.name, parameters=params, library_versions=library_versions(),
            spend=PrivacySpend(epsilon=min(float(spend.epsilon), eps_used), delta=budget.delta),
            accounting=accounting, unit_of_privacy=unit, domain_sources=domain_sources, notes=notes,
        )


class DPDK2Model:
    """A fitted dpdk2 model: the post-processed degree sequence and JDD, and the public node ids.

    Holds numpy arrays, small values and (with node attributes) MST's model; pickles with ``pickle``.
    """

    def __init__(self, *, card: GeneratorCard, spec: GraphSpec, n_nodes: int, labels: tuple[str, ...] | None,
                 jdd: np.ndarray, cells: np.ndarray, scales: np.ndarray, classes: Classes,
                 degree: np.ndarray, attributes: NodeAttributeModel | None) -> None:
        self.card = card
        self.spec = spec
        self.n_nodes = n_nodes
        self.labels = labels
        self.jdd = jdd
        self.cells = cells
        self.scales = scales
        self.classes = classes
        self.degree = degree
        self.attributes = attributes

    @property
    def estimated_rows(self) -> int:
        """The node count: public, or the DP estimate."""
        return self.n_nodes

    def sample(self, n: int, seed: int) -> GraphData:
        """One synthetic graph over ``n`` nodes; the same seed gives the same graph."""
        n = check_sample_n(n, self.n_nodes if self.labels is not None else None, "dpdk2")
        rng = np.random.default_rng(check_seed(seed))
        j, degree = self.jdd, self.degree
        if n != self.n_nodes:  # a bought node set and another size: degrees drawn from the sequence (post-processing)
            degree = np.sort(np.clip(self.degree[rng.integers(0, self.n_nodes, size=n)], 0, n - 1))[::-1]
            if int(degree.sum()) % 2:
                degree = lower_sum(degree, 1)
            k = self.classes.k
            rows, cols = upper_cells(k)
            stubs, nodes = class_stubs(degree, self.classes)
            ratio = float(stubs.sum()) / max(float(2 * self.cells.sum()), 1.0)
            est = fit_jdd(self.cells * ratio, self.scales, stubs, cell_capacity(nodes, rows, cols), rows, cols)
            j = integer_jdd(est, rows, cols, k)
        edges = construct_2k(j, degree, n, self.classes, rng)
        labels = self.labels if self.labels is not None else tuple(str(i) for i in range(n))
        nodes_df: pl.DataFrame | None = None
        if self.attributes is not None:
            deg = np.bincount(edges.ravel(), minlength=n) if edges.size else np.zeros(n, dtype=np.int64)
            nodes_df = self.attributes.sample(deg, int(rng.integers(0, 2**62)))
        return GraphData(n_nodes=n, edges=edges, spec=self.spec, labels=labels, nodes=nodes_df)
