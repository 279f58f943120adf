"""dpdk2: an edge-level DP joint degree distribution (dK-2, Sala et al. 2011) and a 2K construction.

The joint degree distribution (JDD) of an undirected graph counts, for each unordered pair of
degrees ``x <= y``, the edges whose endpoints have degrees ``x`` and ``y``: ``J(x, y)``. dK-2
keeps the degree distribution (the stubs per degree) and the degree correlations (assortativity).

Privacy argument
----------------
1. **Public first**: the degree cap ``D`` comes from the schema (``graph.max_degree``) or the
   option ``max_degree`` (never from the data; refused without one), lowered to ``N - 1`` where
   the node count ``N`` is public (or bought: ``common.buy_node_count_laplace``, sensitivity 2).
   The cells ``1 <= x <= y <= D``, their noise scales and the threshold are public.
2. **Degree-cap projection** (``common.project_degree_cap``, a public hash order): every node of
   the projected graph ``P`` has degree at most ``D``, and adding one edge ``e = (u, v)`` to the
   input adds at most ``e`` to ``P`` and removes at most one edge ``f1 = (u, x)`` at ``u`` and one
   ``f2 = (v, y)`` at ``v`` (proof in ``common``). Removal is the same change read backwards.
3. **What moves in the JDD of P**: an edge kept in both projections changes cell only if an
   endpoint's degree changed, and only ``u, v, x, y`` (at most 4 distinct nodes: ``x != v`` and
   ``y != u`` because ``e`` is new) can change degree. Write ``c(z)`` for the edges at ``z`` kept in
   both projections; each such edge moves from cell ``(d_z, .)`` to ``(d'_z, .)`` (``d, d'`` the old
   and new degrees of ``z``), which changes two cells by 1. Every changed node loses an edge it had
   (``f1``/``f2``) or gains one it now has (``e``), so ``c(z) <= min(d_z, d'_z) <= D - 1`` (with
   ``u``'s degree changing only if its kept list changed; ``x = y`` only lowers the count of nodes).
   Plus ``e``, ``f1``, ``f2``: one cell each.

   - **Uniform** (``weights="uniform"``): ``||dJ||_1 <= 2 * 4 (D - 1) + 3 = 8D - 5``.
   - **Weighted** (``weights="degree"``, the default): give cell ``(x, y)`` the weight
     ``w = max(x, y)``. A moved edge at ``z`` leaves a cell with ``max >= d_z`` and enters one with
     ``max >= d'_z``, so it adds at most ``1/d_z + 1/d'_z`` to ``sum_c |dJ_c| / w_c``; over its
     ``c(z) <= min(d_z, d'_z)`` moved edges ``z`` adds at most 2, the 4 nodes at most 8, and
     ``e, f1, f2`` at most 1 each (``w >= 1``): **``sum_c |dJ_c| / w_c <= 11``**.
   - **Degree classes** (``bins="log"``, the default: degrees 1..16 each a class, then classes
     growing by a factor 1.25 up to ``D``; ``bins="exact"``: one class per degree). The JDD is
     counted over pairs of classes. An edge moves only if an endpoint changes *class*, so moves
     are a subset of the exact case's: the L1 bound ``8D - 5`` stands. For the weights take
     ``w(X, Y)`` = the highest degree of the larger class: a cell holding ``z``'s class has
     ``w >= d_z``, and the argument above goes through unchanged: ``<= 11``.
4. **Noise** (pure epsilon-DP, OpenDP's discrete Laplace, OS entropy): uniform: one scale
   ``(8D - 5) / epsilon`` on every cell (OpenDP's map at ``d_in = 8D - 5``). Weighted: cell
   ``(X, Y)`` gets scale ``11 w(X, Y) / epsilon``; the privacy loss of independent Laplace noise
   is ``sum_c |dJ_c| / b_c = (epsilon / 11) sum_c |dJ_c| / w_c <= epsilon``. The cells are
   measured in groups of equal larger class (equal ``w``); OpenDP's map of each group's
   measurement at ``d_in = 11 w`` is checked to be at most ``epsilon`` (its map is linear:
   ``d_in / scale``). Compared with Sala et al.'s ``4 dmax + 1`` (which assumes the *input* has
   degree at most dmax), the projection costs the displaced edges, and the weights give
   low-degree cells, where most edges are, a noise scale ``O(degree)`` instead of ``O(D)``.
   Both bounds are checked by enumerating single-edge changes of real graphs in the tests.
5. **Post-processing**: noisy cells under ``threshold`` times their noise scale are set to 0 (a
   public rule: of ``K`` empty cells about ``K exp(-threshold) / 2`` survive; default 2), the rest
   rounded. Each class's stub count ``s_X`` (``J(X, X)`` counts twice) gives its nodes
   ``n_X = max(round(s_X / mid_X), ceil(s_X / high_X))``, scaled down (floor) if they exceed ``N``,
   with degrees splitting ``s_X`` evenly inside the class's range; every cell is then scaled down
   (floor) by the supply factor ``min(1, supply / s_X)`` of its two classes so no class is asked
   for more stubs than it has. Degree-0 nodes fill up to ``N``.
6. **Node attributes** as in ``common`` (MST with the attribute share, rho / 16); with attributes
   the spend is ``(epsilon, delta)`` by basic composition.

Construction (sampling, seeded numpy generator): node ids are permuted uniformly, the first nodes
get the post-processed degrees and classes; each class's stubs (every node its degree times) are
shuffled, and for each cell ``(X, Y)`` its count of stub pairs is taken from the two pools (2K stub matching, Mahadevan et al.
2006 / Stanton & Pinar 2012 without the rewiring); self-loops and multi-edges are erased.
Directed graphs are not supported yet.
"""

from __future__ import annotations

import math
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
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.marginal import library_versions, report
from privacy.graph_spec import GraphSpec
from privacy.graphs import GraphData, canonical_edges
from privacy.schema import Schema
from privacy.spend import PrivacySpend

WEIGHTS = ("degree", "uniform")
BINS = ("log", "exact")
#: with bins "log", degrees up to this have a class each; above, classes grow by LOG_RATIO
EXACT_UP_TO = 16
LOG_RATIO = 1.25
#: noisy cells under this many noise scales are set to zero (about 7% of empty cells survive)
DEFAULT_THRESHOLD = 2.0
#: the weighted bound: sum over cells of |change| / max(x, y) under one input edge (see step 3)
WEIGHTED_BOUND = 11
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


def consistent_jdd(noisy: np.ndarray, lows: np.ndarray, highs: np.ndarray, n_nodes: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A non-negative integer JDD and per-node degrees and classes that fit ``n_nodes`` (post-processing).

    ``noisy`` is the thresholded, non-negative upper-triangular JDD over the classes. Each class's
    stub count ``s_X`` (``J[X, X]`` counts twice) becomes ``n_X`` nodes (``s_X`` over the class's middle
    degree, at least ``s_X / high``), scaled down (floor) if they exceed ``n_nodes``; their degrees
    split ``s_X`` as evenly as possible within the class's range; every cell is then scaled down
    (floor) by the supply factor ``min(1, supply / s_X)`` of its two classes. Returns ``(J, degree,
    class)`` with one entry per node that has edges.
    """
    j = np.clip(np.rint(noisy), 0, None).astype(np.int64)
    stubs = (j.sum(axis=1) + j.sum(axis=0)).astype(np.int64)  # J[X, X] counts twice: row + column
    mid = (lows + highs) / 2.0
    n_x = np.maximum(np.rint(stubs / mid), np.ceil(stubs / highs)).astype(np.int64)
    if int(n_x.sum()) > n_nodes:
        n_x = np.floor(n_x * (n_nodes / float(n_x.sum()))).astype(np.int64)
    degs: list[np.ndarray] = []
    clss: list[np.ndarray] = []
    supply = np.zeros(lows.size, dtype=np.float64)
    for c in np.flatnonzero(n_x):
        k = int(n_x[c])
        base, extra = divmod(int(stubs[c]), k)
        d = np.full(k, base, dtype=np.int64)
        d[:extra] += 1
        d = np.clip(d, lows[c], highs[c])
        degs.append(d)
        clss.append(np.full(k, c, dtype=np.int64))
        supply[c] = float(d.sum())
    f = np.where(stubs > 0, np.minimum(1.0, supply / np.maximum(stubs, 1)), 1.0)
    j = np.floor(j * np.minimum(f[:, None], f[None, :])).astype(np.int64)
    if not degs:
        return np.triu(j), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.triu(j), np.concatenate(degs), np.concatenate(clss)


def construct_2k(j: np.ndarray, degree: np.ndarray, klass: np.ndarray, n_nodes: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Stub matching by degree class: canonical undirected edges over ``0..n_nodes-1``.

    Node ``perm[i]`` gets ``degree[i]`` stubs in class ``klass[i]``; each class's stubs are shuffled
    and each cell ``(X, Y)`` takes its count of stub pairs from the two pools.
    """
    perm = rng.permutation(n_nodes)[: degree.size]
    pools: dict[int, np.ndarray] = {}
    for c in np.unique(klass):
        at = klass == c
        pools[int(c)] = rng.permutation(np.repeat(perm[at], degree[at]))
    used = {k: 0 for k in pools}
    rows, cols = np.nonzero(j)
    parts: list[np.ndarray] = []
    for i in rng.permutation(rows.size):
        xi, yi = int(rows[i]), int(cols[i])
        c = int(j[xi, yi])
        if xi == yi:
            s = pools[xi][used[xi]:used[xi] + 2 * c]
            used[xi] += 2 * c
            parts.append(s[: s.size // 2 * 2].reshape(-1, 2))
        else:
            a = pools[xi][used[xi]:used[xi] + c]
            b = pools[yi][used[yi]:used[yi] + c]
            used[xi] += c
            used[yi] += c
            m = min(a.size, b.size)
            parts.append(np.stack([a[:m], b[:m]], axis=1))
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    return canonical_edges(np.concatenate(parts), False)


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 100_000:
        raise InputError(f"dpdk2: {name} ({v!r}) must be an integer in [1, 100000]")
    return int(v)


class DPDK2Generator:
    """The ``dpdk2`` graph generator (see the module docstring for the DP argument).

    Options: ``max_degree`` (the public degree cap; default: the schema's ``graph.max_degree``),
    ``weights`` (``"degree"``: noise scale ``11 max(x, y) / epsilon`` per cell, default;
    ``"uniform"``: ``(8D - 5) / epsilon`` everywhere), ``bins`` (``"log"``: degrees 1..16 exact, then
    classes growing by 1.25, default; ``"exact"``: one class per degree), ``threshold`` (noisy cells
    under this many noise scales are zero; default 2), ``node_share`` (bought node set) and
    ``attribute_share`` (node attributes). Pure epsilon-DP (discrete Laplace) for the structure.
    """

    name = "dpdk2"

    def __init__(self, *, max_degree: int | None = None, weights: str = "degree", bins: str = "log",
                 threshold: float | None = None, node_share: float = 0.05, attribute_share: float = 0.2) -> None:
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
        for nm, v in (("node_share", node_share), ("attribute_share", attribute_share)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v < 1):
                raise InputError(f"dpdk2: {nm} ({v!r}) must be a number in (0, 1)")
        self.node_share = float(node_share)
        self.attribute_share = float(attribute_share)

    def cap(self, schema: Schema, n_nodes: int) -> int:
        """The public degree cap: the option, else the schema's ``max_degree``; at most ``n_nodes - 1``."""
        d = self.max_degree if self.max_degree is not None else schema.gspec.max_degree
        if d is None:
            raise InputError("dpdk2 needs a public degree cap: set graph max_degree in the schema or the "
                             "max_degree option")
        return max(1, min(int(d), n_nodes - 1))

    def fit(self, data: GraphData, schema: Schema, spend: PrivacySpend, *,
            progress: Progress | None = None) -> "DPDK2Model":
        """Fit on the conformed training graph, spending at most ``spend`` (edge-level DP)."""
        if not schema.is_graph:
            raise InputError("dpdk2 needs a graph schema (kind: graph)")
        spec = schema.gspec
        if spec.directed:
            raise InputError("dpdk2 for directed graphs is not supported yet (use dpdegree)")
        if self.max_degree is None and spec.max_degree is None:
            raise InputError("dpdk2 needs a public degree cap: set graph max_degree in the schema or the "
                             "max_degree option")
        budget = plan_graph_epsilon(spend, schema, node_share=self.node_share, attribute_share=self.attribute_share)
        n = data.n_nodes if spec.public_nodes else buy_node_count_laplace(data, budget.eps_nodes)
        cap = self.cap(schema, n)
        lows = degree_classes(cap, self.bins)
        highs = class_highs(lows, cap)
        k = int(lows.size)
        cells = k * (k + 1) // 2
        if cells > MAX_CELLS:
            raise InputError(f"dpdk2: a degree cap of {cap} gives {cells:,} JDD cells, more than the {MAX_CELLS:,} "
                             f"dpdk2 measures; lower max_degree or use bins 'log'")
        threshold = DEFAULT_THRESHOLD if self.threshold is None else self.threshold
        eps = budget.eps_structure

        report(progress, f"dpdk2: projecting to degree cap {cap} and counting the JDD", 0.05)
        projected, _dropped = project_degree_cap(data, cap)  # the dropped count is sensitive: not reported
        true = jdd(projected, lows)
        del projected
        rows, cols = upper_cells(k)
        values = true[rows, cols]
        del true
        report(progress, f"dpdk2: measuring {cells:,} JDD cells", 0.1)
        noisy_vals = np.zeros(values.size, dtype=np.float64)
        scales = np.zeros(values.size, dtype=np.float64)
        if self.weights == "uniform":
            noisy_vals, scale, spent = laplace_measure(values, uniform_sensitivity(cap), eps)
            scales[:] = scale
        else:
            spent = 0.0
            bounds = np.searchsorted(cols, np.arange(k + 1), side="left")
            for y in range(k):
                lo, hi = int(bounds[y]), int(bounds[y + 1])
                # the cells whose larger class is y: weight w = highs[y] (>= every degree in class y),
                # scale 11 w / eps; OpenDP's map at d_in = 11 w is at most eps
                nv, scale, grp = laplace_measure(values[lo:hi], WEIGHTED_BOUND * int(highs[y]), eps)
                noisy_vals[lo:hi] = nv
                scales[lo:hi] = scale
                spent = max(spent, grp)
        del values

        # post-processing only from here
        kept = np.where(noisy_vals >= threshold * scales, noisy_vals, 0.0)
        noisy = np.zeros((k, k), dtype=np.float64)
        noisy[rows, cols] = kept
        j, degree, klass = consistent_jdd(noisy, lows, highs, n)

        attrs: NodeAttributeModel | None = None
        if schema.columns:
            report(progress, "dpdk2: node attributes through MST", 0.5)
            attrs = fit_node_attributes(data, schema, budget.rho_attributes, degree_class_lows(n), spend=spend)
        card = self._card(spec, spend, budget, n, cap, lows, threshold, spent, scales, attrs, j, degree)
        report(progress, "dpdk2: done", 1.0)
        return DPDK2Model(card=card, spec=spec, n_nodes=n, labels=public_labels(data, schema), jdd=j, lows=lows,
                          highs=highs, degree=degree, klass=klass, attributes=attrs)

    def _card(self, spec: GraphSpec, spend: PrivacySpend, budget: Any, n: int, cap: int, lows: np.ndarray,
              threshold: float, spent: float, scales: np.ndarray, attrs: NodeAttributeModel | None, j: np.ndarray,
              degree: np.ndarray) -> GeneratorCard:
        k = int(lows.size)
        if self.weights == "uniform":
            mech = (f"discrete Laplace, scale {float(scales[0]):.6g} on every cell: L1 sensitivity 8D - 5 = "
                    f"{uniform_sensitivity(cap)} (degree-cap projection: one input edge changes the projected "
                    f"graph by at most 3 edges, 4 nodes change degree)")
        else:
            mech = (f"discrete Laplace, scale {WEIGHTED_BOUND} w / epsilon on cell (X, Y) with w the highest degree "
                    f"of the larger class: weighted sensitivity sum |change| / w <= {WEIGHTED_BOUND} (8 for the "
                    f"moved edges of the "
                    f"at most 4 nodes whose degree changes, 3 for the edge and the two displaced by the "
                    f"degree-cap projection)")
        parts = []
        if not spec.public_nodes:
            parts.append(f"node count (distinct edge endpoints, sensitivity 2): discrete Laplace, epsilon "
                         f"{budget.eps_nodes:.6g}")
        parts.append(f"JDD over {k} degree classes ({self.bins}) of the graph projected to degree cap D = {cap} "
                     f"({k * (k + 1) // 2} cells): {mech}; "
                     f"epsilon {spent:.6g} (OpenDP's map)")
        if attrs is not None:
            parts.append(f"node attributes: MST on one row per node (attributes and degree class), rho "
                         f"{attrs.rho_mst:.6g} = {attrs.rho:.6g} / 16 (one edge changes two nodes' degree classes: "
                         f"two substituted rows, 4 add/remove steps, zCDP group privacy 4^2), as (epsilon "
                         f"{budget.eps_attributes:.6g}, delta {budget.delta:g}) by OpenDP's conversion")
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
            "weights": self.weights,
            "bins": self.bins,
            "degree_class_lows": lows.tolist(),
            "threshold_scales": threshold,
            "cells": k * (k + 1) // 2,
            "node_count": n,
            "node_count_source": "schema" if spec.public_nodes else "DP estimate",
            "epsilon_parts": {"nodes": budget.eps_nodes, "structure": budget.eps_structure,
                              "attributes": budget.eps_attributes},
            "epsilon_structure_used": spent,
            "edges_expected": int(j.sum()),
            "nodes_with_edges_expected": int(degree.size),
        }
        if self.weights == "uniform":
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
            "projection order": "public hash of node indices (splitmix64), not the data",
            "joint degree distribution": "DP measurement (noisy JDD, thresholded, made consistent)",
            "noise scales and threshold": "the degree cap and the options",
        }
        if attrs is not None:
            domain_sources["node attribute domains"] = "schema (columns)"
            domain_sources["degree classes"] = "public: log-spaced from the node count"
            domain_sources["node attributes"] = "DP measurement (MST)"
        notes = (
            "edges beyond the degree cap are dropped by a public rule before counting (how many is not reported)",
            "noise comes from OpenDP's samplers (OS entropy) during fit; the seed only drives sampling",
            f"noisy cells under {threshold:.3g} noise scales are set to zero (public post-processing)",
            "construction: 2K stub matching by degree class; self-loops and multi-edges erased",
        )
        return GeneratorCard(
            name=self.name, parameters=params, library_versions=library_versions(),
            spend=PrivacySpend(epsilon=min(float(spend.epsilon), eps_used), delta=budget.delta),
            accounting=accounting, unit_of_privacy=unit, domain_sources=domain_sources, notes=notes,
        )


class DPDK2Model:
    """A fitted dpdk2 model: the consistent noisy JDD, nodes per degree and the public node ids.

    Holds numpy arrays, small values and (with node attributes) MST's model; pickles with ``pickle``.
    """

    def __init__(self, *, card: GeneratorCard, spec: GraphSpec, n_nodes: int, labels: tuple[str, ...] | None,
                 jdd: np.ndarray, lows: np.ndarray, highs: np.ndarray, degree: np.ndarray, klass: np.ndarray,
                 attributes: NodeAttributeModel | None) -> None:
        self.card = card
        self.spec = spec
        self.n_nodes = n_nodes
        self.labels = labels
        self.jdd = jdd
        self.lows = lows
        self.highs = highs
        self.degree = degree
        self.klass = klass
        self.attributes = attributes

    @property
    def estimated_rows(self) -> int:
        """The node count: public, or the DP estimate."""
        return self.n_nodes

    def sample(self, n: int, seed: int) -> GraphData:
        """One synthetic graph over ``n`` nodes; the same seed gives the same graph."""
        n = check_sample_n(n, self.n_nodes if self.labels is not None else None, "dpdk2")
        rng = np.random.default_rng(check_seed(seed))
        j, degree, klass = self.jdd, self.degree, self.klass
        if n != self.n_nodes:  # a bought node set and another size: scale the counts (post-processing)
            j, degree, klass = consistent_jdd(np.floor(self.jdd * (n / self.n_nodes)), self.lows, self.highs, n)
        edges = construct_2k(j, degree, klass, n, rng)
        labels = self.labels if self.labels is not None else tuple(str(i) for i in range(n))
        nodes: pl.DataFrame | None = None
        if self.attributes is not None:
            deg = np.bincount(edges.ravel(), minlength=n) if edges.size else np.zeros(n, dtype=np.int64)
            nodes = self.attributes.sample(deg, int(rng.integers(0, 2**62)))
        return GraphData(n_nodes=n, edges=edges, spec=self.spec, labels=labels, nodes=nodes)
