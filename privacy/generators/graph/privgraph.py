"""privgraph: community-based edge-level DP synthetic graphs (PrivGraph).

After Q. Yuan, Z. Zhang, L. Du, M. Chen, P. Cheng and M. Sun, "PrivGraph: Differentially Private
Graph Data Publication by Exploiting Community Information", USENIX Security 2023, and its
reference implementation (github.com/Privacy-Graph/PrivGraph: ``utils.community_init``,
``comm/community_main.__comm_adjust_em``, ``main.main_func``), which we read and re-derived; the
code here is our own. The graph is undirected, the node set public (its ids are kept: only each
node's community and noisy degree drive its edges); the unit of privacy is one edge.

The four phases
---------------
1. **Community initialisation.** The nodes are split at random into groups of ``group_size``
   nodes (the paper's N1, default 20 as the reference code). The split uses OS entropy and the
   public node count only, never the edges. The edge counts between every pair of groups and
   inside every group (``G (G + 1) / 2`` counts for ``G`` groups) are measured with noise: one edge
   changes exactly one count by 1 (L1 = L2 sensitivity 1). The counts at or below
   ``super_threshold`` noise standard deviations (default 3) are dropped, and Louvain
   (``networkx.community.louvain_communities``, resolution ``resolution``, seeded from OS entropy)
   on the remaining noisy weighted super-graph groups the groups into the initial communities:
   post-processing of the released counts (the threshold is public, the noise s.d. follows from
   the plan), so the phase's cost is that of the counts alone. The reference code clips negative
   counts to 0 instead; with ``G (G + 1) / 2`` counts mostly 0, that leaves Louvain a super-graph
   whose weight is mostly noise, and it finds a handful of arbitrary communities. (The reference code counts each intra-group edge twice and noises that count
   with twice the scale; counting it once is the same measurement.)
2. **Community adjustment.** Every node, in a random order, is moved by the exponential mechanism
   to a community, with score ``u_C`` = its number of neighbours currently in community ``C``, over
   the ``K`` initial communities (the paper's criterion: the reference code scores ``u_C - u_own``,
   which selects the same way). Sensitivity: given the current assignment (an earlier output), one
   edge ``(a, b)`` changes node ``a``'s score vector in one coordinate by 1 and node ``b``'s in one
   coordinate by 1 and no other node's scores; the change is *monotone* (adding the edge only
   raises scores). Each selection is OpenDP's Gumbel report-noisy-max (``make_noisy_max``, exactly
   the exponential mechanism) with L-infinity sensitivity 1, monotone. Per pass an edge touches
   two selections, so with ``adjust_passes`` = P passes it touches ``2 P``; every other selection
   has the same distribution on both graphs given the earlier outputs, and adaptive composition
   (zCDP or pure DP) of those ``2 P`` gives the phase's budget. Parallel composition across nodes
   is not available as such (one edge is in two nodes' vectors); it is what limits the count to
   ``2 P`` instead of one per node.
3. **Information extraction.** Per node, its intra-community degree (neighbours in its own final
   community); per pair of distinct non-empty communities, the number of edges between them
   (every pair, zeros included: the communities are public after phases 1-2). An intra-community
   edge changes two degrees by 1 (L1 2, L2 sqrt 2) and no pair count; an inter-community edge
   changes one pair count by 1 and no degree. So the two releases are never both changed by one
   edge: the phase costs the larger of their two costs, not their sum (each gets the phase's whole
   budget, as in the reference code).
4. **Construction** (sampling, no data, the user's seed). The noisy intra-degrees of each
   community are post-processed: their total shrunk toward the overall mean degree times the
   community's size (empirical Bayes: the spread of the true community means is estimated as that
   of the noisy ones minus the public noise variance), rescaled about their mean to the estimated spread of the true
   degrees (noisy variance minus the public noise variance; the order is kept), clipped to
   ``[0, size - 1]`` and rounded keeping the noisy total. Inside each community a configuration
   model on those degrees (as the reference code's degree-sequence construction, but keeping each
   node's degree, so few nodes end up isolated); between each pair of communities its noisy count
   of edges, with endpoints drawn proportionally to (noisy intra-degree + 1) on each side.

Mechanisms and accounting
-------------------------
``mechanism="gaussian"`` (default when delta > 0): zCDP. ``rho`` from the spend (``graph_rho``),
less the node-attribute part when there is one (below), split by the public shares ``init_share``, ``adjust_share``, ``extract_share`` (relative weights,
default 1/3 each, the paper's split of epsilon). Discrete Gaussian (OpenDP's exact sampler, OS
entropy) with ``sigma = 1 / sqrt(2 rho_1)`` on the super-graph counts; per selection
``rho_sel = rho_2 / (2 P)`` and Gumbel scale ``1 / sqrt(8 rho_sel)`` (a monotone
sensitivity-1 noisy max is ``1/scale``-bounded-range, hence ``1 / (8 scale^2)``-zCDP, Cesar &
Rogers 2021; OpenDP's map); ``sigma = 1 / sqrt(rho_3)`` on the degrees (L2 sqrt 2) and
``1 / sqrt(2 rho_3)`` on the pair counts (L2 1). Total ``rho_1 + rho_2 + rho_3`` = the structure's rho.

``mechanism="laplace"`` (the paper's, and the default when delta = 0): pure epsilon-DP with the
same structure: discrete Laplace of scale ``1 / eps_1`` on the super-graph counts, Gumbel
noisy max of scale ``2 P / eps_2`` per selection (monotone: ``eps_2 / (2 P)`` each), discrete
Laplace of scale ``2 / eps_3`` on the degrees (L1 2) and ``1 / eps_3`` on the pair counts (L1 1).
The spend is ``(epsilon, 0)``, at most what was reserved (with node attributes ``(epsilon, delta)``:
below).

Node attributes
---------------
When the schema has node-attribute columns (public node set only), ``attribute_share`` (default
0.2, as dpdegree) of the budget goes to ``common.fit_node_attributes``: MST on one row per node
(its attributes and its public log-spaced degree class) with ``rho_attributes / 16`` (one edge
substitutes two rows: 4 add/remove steps, zCDP group privacy 4^2 = 16; see ``common``). The rest
is the structure's budget, split by the phase shares as above. The unit of privacy becomes "one
edge, or one node's attribute values": the structure phases never read the attributes (a change
of one node's values costs them nothing) and MST's part is ``rho_attributes``-zCDP for either kind
of change (one node's values substitute one row: 2 steps, ``4 rho_mst <= rho_attributes``).
Composition: ``gaussian``: the structure's rho plus ``rho_attributes`` = the spend's rho.
``laplace``: the structure is ``epsilon_structure``-DP (pure), MST runs with the rho that OpenDP
converts to ``(epsilon_attributes, delta)`` (``common.plan_graph_epsilon``; delta > 0 needed), and
basic composition gives ``(epsilon_structure + epsilon_attributes, delta)`` = ``(epsilon, delta)``.
At sampling each node's attributes are drawn from MST's rows of its degree class *in the synthetic
graph* (its realised degree): post-processing. They are synthetic values, not the node's real
ones, even though the node ids are kept.

The model holds the public node ids, each node's final community, the post-processed noisy
intra-degrees and pair counts and (with node attributes) MST's model: no edge of the real graph.
"""

from __future__ import annotations

import importlib.metadata
import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.graph.common import (
    NodeAttributeModel,
    check_sample_n,
    check_seed,
    chung_lu,
    degree_class_lows,
    fit_node_attributes,
    gaussian_measure,
    graph_rho,
    laplace_measure,
    plan_graph_budget,
    plan_graph_epsilon,
)
from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.generators.tabular.marginal import report
from privacy.graphs import GraphData, canonical_edges
from privacy.schema import Schema
from privacy.spend import PrivacySpend

MECHANISMS = ("gaussian", "laplace")
DEFAULT_SHARES = {"init": 1 / 3, "adjust": 1 / 3, "extract": 1 / 3}
#: the budget fraction for node attributes when the schema has them (as dpdegree's)
DEFAULT_ATTRIBUTE_SHARE = 0.2
#: the paper's N1 (nodes per initial group) as in the reference code
DEFAULT_GROUP_SIZE = 20
#: super-graph counts at or below this many noise s.d. are dropped before Louvain (post-processing)
DEFAULT_SUPER_THRESHOLD = 3.0
#: the largest super-graph privgraph measures (OpenDP's exact samplers take ~20 us per count)
MAX_SUPER_COUNTS = 2_000_000
#: above this noise scale the integer samplers saturate: the budget is too small to be useful
MAX_SCALE = 1e12


@dataclass(frozen=True)
class Plan:
    """The budget split and every noise scale: public (spend, options, node count)."""

    mechanism: str
    #: rho (gaussian) or epsilon (laplace) of the whole structure
    budget: float
    shares: dict[str, float]
    group_size: int
    n_groups: int
    passes: int
    #: noise scale on the super-graph counts (sigma or Laplace scale)
    init_scale: float
    #: Gumbel scale of each noisy-max selection
    select_scale: float
    #: noise scale on the intra-community degrees
    degree_scale: float
    #: noise scale on the inter-community pair counts
    pair_scale: float

    @property
    def parts(self) -> dict[str, float]:
        return {k: self.budget * v for k, v in self.shares.items()}

    @property
    def unit(self) -> str:
        return "rho" if self.mechanism == "gaussian" else "epsilon"


@dataclass(frozen=True)
class Budget:
    """The spend split between the structure (the four phases) and node attributes. Public."""

    mechanism: str
    #: rho (gaussian) or epsilon (laplace) of the structure: ``Plan.budget``
    structure: float
    #: the node-attribute part in the same unit (rho or epsilon); 0 without node attributes
    attributes: float
    #: MST's part as zCDP rho (``attributes`` itself for gaussian; OpenDP's conversion of
    #: ``(attributes, delta)`` for laplace); 0 without node attributes
    rho_attributes: float
    #: the delta of the whole guarantee (laplace without node attributes: 0)
    delta: float
    #: the attribute share actually taken (0 without node attributes)
    attribute_share: float

    @property
    def total(self) -> float:
        """The whole budget: rho (gaussian) or epsilon (laplace)."""
        return self.structure + self.attributes


def plan(mechanism: str, budget: float, shares: dict[str, float], n_nodes: int, group_size: int,
         passes: int) -> Plan:
    """Split ``budget`` and derive the noise scales (see the module docstring). All public."""
    total = sum(shares.values())
    norm = {k: v / total for k, v in shares.items()}
    b1, b2, b3 = (budget * norm[k] for k in ("init", "adjust", "extract"))
    n_groups = math.ceil(n_nodes / group_size)
    counts = n_groups * (n_groups + 1) // 2
    if counts > MAX_SUPER_COUNTS:
        raise InputError(f"privgraph: {n_groups:,} initial groups need {counts:,} super-graph counts, more than "
                         f"{MAX_SUPER_COUNTS:,}; raise group_size")
    sel = b2 / (2 * passes)  # an edge touches two selections per pass
    if mechanism == "gaussian":
        init_scale = 1 / math.sqrt(2 * b1)           # L2 sensitivity 1
        select_scale = 1 / math.sqrt(8 * sel)        # monotone, L-inf 1: rho = 1 / (8 scale^2)
        degree_scale = 1 / math.sqrt(b3)             # L2 sqrt(2): rho = 2 / (2 sigma^2)
        pair_scale = 1 / math.sqrt(2 * b3)           # L2 1
    else:
        init_scale = 1 / b1                          # L1 1
        select_scale = 1 / sel                       # monotone, L-inf 1: eps = 1 / scale
        degree_scale = 2 / b3                        # L1 2
        pair_scale = 1 / b3                          # L1 1
    # a hair above: OpenDP's (rounded-up) privacy maps must stay within each part
    up = 1.0 + 1e-9
    p = Plan(mechanism=mechanism, budget=budget, shares=norm, group_size=group_size, n_groups=n_groups,
             passes=passes, init_scale=init_scale * up, select_scale=select_scale * up,
             degree_scale=degree_scale * up, pair_scale=pair_scale * up)
    worst = max(p.init_scale, p.select_scale, p.degree_scale, p.pair_scale)
    if not worst <= MAX_SCALE:
        raise InputError(f"privgraph: the budget ({p.unit} {budget:.3g}) is too small to measure anything "
                         f"(noise scale {worst:.3g}); raise epsilon")
    return p


# -- OpenDP measurements ------------------------------------------------------------------------------


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def noisy_counts(counts: np.ndarray, mechanism: str, sensitivity: float, budget: float
                 ) -> tuple[np.ndarray, float, float]:
    """Counts plus OpenDP's discrete Gaussian (L2 ``sensitivity``, ``budget`` = rho) or discrete Laplace
    (L1 ``sensitivity``, ``budget`` = epsilon); returns the noisy counts, the scale and the charge."""
    arr = np.asarray(counts, dtype=np.int64)
    if arr.size == 0:  # nothing to measure (one community: no pairs); the scale still goes on the card
        scale = sensitivity / (math.sqrt(2 * budget) if mechanism == "gaussian" else budget)
        return np.zeros(arr.shape, dtype=np.float64), scale, 0.0
    if mechanism == "gaussian":
        return gaussian_measure(arr, sensitivity, budget)
    return laplace_measure(arr, int(sensitivity), budget)


def selector(mechanism: str, scale: float, budget: float) -> tuple[Any, float]:
    """OpenDP's Gumbel report-noisy-max over monotone, sensitivity-1 integer scores; and its charge."""
    dp = _dp()
    measure = dp.zero_concentrated_divergence() if mechanism == "gaussian" else dp.max_divergence()
    meas = dp.m.make_noisy_max(dp.vector_domain(dp.atom_domain(T="i64")),
                               dp.linf_distance(T="i64", monotonic=True), measure, float(scale))
    spent = float(meas.map(1))
    if spent > budget:
        raise RuntimeError(f"privgraph selection: OpenDP charges {spent} for a part of {budget}")
    return meas, spent


# -- the sensitive statistics (each only ever released with noise) ------------------------------------


def tri_index(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Index of the unordered pair ``(a, b)``, ``a <= b``, in the row-major upper triangle of k x k."""
    a, b = np.minimum(a, b), np.maximum(a, b)
    return a * k - a * (a - 1) // 2 + (b - a)


def group_counts(edges: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Edges within each group and between each pair of groups (upper triangle, diagonal included).

    One edge adds 1 to exactly one count.
    """
    size = n_groups * (n_groups + 1) // 2
    if edges.shape[0] == 0:
        return np.zeros(size, dtype=np.int64)
    idx = tri_index(groups[edges[:, 0]], groups[edges[:, 1]], n_groups)
    return np.bincount(idx, minlength=size).astype(np.int64)


def intra_degrees(edges: np.ndarray, community: np.ndarray) -> np.ndarray:
    """Per node, its neighbours in its own community: an intra edge adds 1 to both ends' entries."""
    n = community.size
    if edges.shape[0] == 0:
        return np.zeros(n, dtype=np.int64)
    same = community[edges[:, 0]] == community[edges[:, 1]]
    return np.bincount(edges[same].ravel(), minlength=n).astype(np.int64)


def pair_counts(edges: np.ndarray, community: np.ndarray, k: int) -> np.ndarray:
    """Edges between each pair ``a < b`` of the ``k`` communities (strict upper triangle, row-major).

    An inter-community edge adds 1 to exactly one count; an intra one to none.
    """
    size = k * (k - 1) // 2
    if edges.shape[0] == 0 or size == 0:
        return np.zeros(size, dtype=np.int64)
    a, b = community[edges[:, 0]], community[edges[:, 1]]
    inter = a != b
    lo, hi = np.minimum(a[inter], b[inter]), np.maximum(a[inter], b[inter])
    idx = lo * k - lo * (lo + 1) // 2 + (hi - lo - 1)
    return np.bincount(idx, minlength=size).astype(np.int64)


def neighbour_lists(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency (offsets, neighbours) of an undirected canonical edge list."""
    both = np.concatenate([edges, edges[:, ::-1]]) if edges.shape[0] else np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(both[:, 0], kind="stable")
    nbrs = both[order, 1]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(both[:, 0], minlength=n))]).astype(np.int64)
    return offsets, nbrs


# -- post-processing -----------------------------------------------------------------------------------


def norm_sub(y: np.ndarray) -> np.ndarray:
    """Non-negative values with the noisy total kept: ``max(y - t, 0)`` for the ``t >= 0`` that does it.

    (The reference code's "norm-sub" consistency step; a negative total gives all zeros.)
    """
    y = np.asarray(y, dtype=np.float64)
    total = float(y.sum())
    if y.size == 0 or total <= 0:
        return np.zeros_like(y)
    if y.min() >= 0:
        return y
    s = np.sort(y)[::-1]
    cum = np.cumsum(s)
    # largest k with s[k-1] > t_k, where t_k = (cum[k-1] - total) / k
    ks = np.arange(1, s.size + 1)
    t = (cum - total) / ks
    k = int(np.flatnonzero(s > t)[-1]) + 1
    return np.maximum(y - t[k - 1], 0.0)


def shrunk_totals(noisy: np.ndarray, community: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Each community's total intra-degree, its noisy mean shrunk toward the overall noisy mean.

    Post-processing (empirical Bayes): a community of ``s`` nodes has a noisy mean degree with noise
    variance ``sigma^2 / s``; the spread of the true means is estimated as the spread of the noisy
    ones minus the noise, and each noisy mean is pulled toward the overall one by the usual factor
    ``tau^2 / (tau^2 + sigma^2 / s)``. Without it a small community's noisy total is mostly noise.
    """
    sizes = np.bincount(community, minlength=k).astype(np.float64)
    sums = np.bincount(community, weights=np.asarray(noisy, dtype=np.float64), minlength=k)
    live = sizes > 0
    mu = float(sums.sum() / sizes.sum())
    means = np.where(live, sums / np.maximum(sizes, 1), mu)
    noise = sigma * sigma / np.maximum(sizes, 1)
    w = sizes / sizes.sum()
    tau2 = max(float((w * ((means - mu) ** 2 - noise)).sum()), 0.0)
    factor = tau2 / (tau2 + noise) if tau2 > 0 else np.zeros(k)
    return np.maximum((mu + factor * (means - mu)) * sizes, 0.0)


def rescale_degrees(y: np.ndarray, sigma: float, cap: int, total: float | None = None) -> np.ndarray:
    """Integer degrees from one community's noisy degrees ``y`` (noise s.d. ``sigma``): post-processing.

    The noisy values are rescaled about their mean so that their spread is the estimated spread of
    the true degrees (``var(y) - sigma^2``, 0 when negative) and their order is kept, clipped to
    ``[0, cap]`` (``cap`` = community size - 1), shifted to keep the noisy total (or ``total``, a
    post-processed one), rounded keeping it.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return np.zeros(0, dtype=np.int64)
    total = max(float(y.sum()) if total is None else float(total), 0.0)
    mu = total / y.size
    sd = float(y.std())
    true_var = sd * sd - sigma * sigma
    factor = math.sqrt(true_var) / sd if true_var > 0 and sd > 0 else 0.0
    x = np.clip(mu + factor * (y - mu), 0.0, float(cap))
    # keep the noisy total (up to the cap): shift up or down, re-clipping, a few times
    for _ in range(20):
        gap = min(total, cap * y.size) - float(x.sum())
        if abs(gap) < 0.5:
            break
        free = (x < cap) if gap > 0 else (x > 0)
        if not free.any():
            break
        x = np.clip(x + gap / int(free.sum()) * free, 0.0, float(cap))
    return round_keep_total(x)


def configuration_edges(degrees: np.ndarray, rng: np.random.Generator, rounds: int = 8) -> np.ndarray:
    """Distinct edges with node ``i`` in at most ``degrees[i]`` of them (configuration model).

    Stubs are paired at random; self-loops and repeated pairs are dropped and the stubs left over
    are paired again, up to ``rounds`` times. Canonical (u < v) local indices.
    """
    rem = np.asarray(degrees, dtype=np.int64).copy()
    n = rem.size
    keys = np.zeros(0, dtype=np.int64)
    for _ in range(rounds):
        stubs = np.repeat(np.arange(n, dtype=np.int64), np.maximum(rem, 0))
        if stubs.size < 2:
            break
        rng.shuffle(stubs)
        stubs = stubs[: stubs.size - stubs.size % 2]
        u, v = stubs[0::2], stubs[1::2]
        u, v = np.minimum(u, v), np.maximum(u, v)
        new = np.unique(u[u != v] * n + v[u != v])
        new = new[~np.isin(new, keys)]
        if new.size == 0:
            break
        keys = np.concatenate([keys, new])
        rem -= np.bincount(np.concatenate([new // n, new % n]), minlength=n)
    keys.sort()
    return np.stack([keys // n, keys % n], axis=1)


def round_keep_total(x: np.ndarray) -> np.ndarray:
    """Integers near ``x`` (>= 0) with the rounded total: floor, then +1 to the largest remainders."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    base = np.floor(x)
    need = int(round(float(x.sum()))) - int(base.sum())
    out = base.astype(np.int64)
    if need > 0:
        top = np.argsort(-(x - base), kind="stable")[:need]
        out[top] += 1
    return out


# -- the phases ------------------------------------------------------------------------------------------


def random_groups(n: int, group_size: int, rng: np.random.Generator) -> np.ndarray:
    """Group of each node: a random split into groups of ``group_size`` (the last may be smaller).

    Reads only the public node count and ``rng`` (OS entropy in ``fit``): never the edges.
    """
    groups = np.empty(n, dtype=np.int64)
    groups[rng.permutation(n)] = np.arange(n, dtype=np.int64) // group_size
    return groups


def super_weights(noisy: np.ndarray, noise_sd: float, threshold: float) -> np.ndarray:
    """Super-graph weights from the noisy counts: those above ``threshold`` noise s.d., others 0.

    Post-processing. Most group pairs share no edge, so most noisy counts are pure noise; keeping
    only the counts a few s.d. above 0 leaves Louvain the structure instead of the noise mass (with
    ``G (G + 1) / 2`` counts, clipping at 0 adds about ``0.4 sigma`` to each of them).
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    return np.where(noisy > threshold * noise_sd, noisy, 0.0)


def initial_communities(edges: np.ndarray, n: int, p: Plan, resolution: float, rng: np.random.Generator,
                        threshold: float = 3.0) -> tuple[np.ndarray, float, int]:
    """Phase 1: random groups, noisy super-graph, Louvain. Returns labels 0..K-1, rho/eps spent, K."""
    import networkx as nx

    groups = random_groups(n, p.group_size, rng)
    g = p.n_groups
    exact = group_counts(edges, groups, g)
    noisy, _, spent = noisy_counts(exact, p.mechanism, 1, p.parts["init"])
    del exact
    weights = super_weights(noisy, p.init_scale * (1.0 if p.mechanism == "gaussian" else math.sqrt(2)), threshold)
    super_graph = nx.Graph()
    super_graph.add_nodes_from(range(g))
    rows, cols = np.triu_indices(g)
    nz = np.flatnonzero(weights > 0)
    super_graph.add_weighted_edges_from(zip(rows[nz].tolist(), cols[nz].tolist(), weights[nz].tolist()))
    # groups with no count above the threshold carry no evidence of structure: one community together
    alone = [v for v in range(g) if super_graph.degree(v) == 0]
    super_graph.remove_nodes_from(alone)
    parts: list[set[int]] = [set(alone)] if alone else []
    if super_graph.number_of_edges():
        parts += nx.community.louvain_communities(super_graph, weight="weight", resolution=resolution,
                                                  seed=secrets.randbits(62))
    of_group = np.empty(g, dtype=np.int64)
    for c, members in enumerate(sorted(parts, key=min)):
        of_group[list(members)] = c
    return of_group[groups], spent, len(parts)


def adjust_communities(edges: np.ndarray, community: np.ndarray, k: int, p: Plan, rng: np.random.Generator,
                       progress: Progress | None) -> tuple[np.ndarray, float]:
    """Phase 2: each node, in a random order, moves to the noisy-max community of its neighbours."""
    n = community.size
    community = community.copy()
    meas, per_selection = selector(p.mechanism, p.select_scale, p.parts["adjust"] / (2 * p.passes))
    offsets, nbrs = neighbour_lists(edges, n)
    for pass_ in range(p.passes):
        for j, v in enumerate(rng.permutation(n).tolist()):
            # the score vector reads the current assignment (an earlier output) and v's own edges
            scores = np.bincount(community[nbrs[offsets[v]:offsets[v + 1]]], minlength=k)
            community[v] = int(meas(scores.tolist()))
            if progress is not None and j % 256 == 0:
                report(progress, "privgraph: adjusting communities", 0.1 + 0.6 * (pass_ + j / n) / p.passes)
    return community, per_selection * 2 * p.passes


def extract(edges: np.ndarray, community: np.ndarray, k: int, p: Plan
            ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Phase 3: noisy intra-degrees and pair counts. Returns them and each one's charge."""
    b3 = p.parts["extract"]
    # an intra edge changes two degrees by 1: L2 sqrt(2), L1 2; an inter edge one pair count by 1
    sens_deg = math.sqrt(2) if p.mechanism == "gaussian" else 2
    deg, _, spent_deg = noisy_counts(intra_degrees(edges, community), p.mechanism, sens_deg, b3)
    pairs, _, spent_pairs = noisy_counts(pair_counts(edges, community, k), p.mechanism, 1, b3)
    return deg, pairs, spent_deg, spent_pairs


def compact(community: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel non-empty communities 0..K'-1 in order of their smallest node (post-processing)."""
    _, first = np.unique(community, return_index=True)
    order = np.argsort(first)
    remap = np.empty(int(community.max()) + 1, dtype=np.int64)
    remap[np.unique(community)[order]] = np.arange(order.size)
    return remap[community], int(order.size)


# -- the generator ------------------------------------------------------------------------------------


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InputError(f"privgraph: {name} ({v!r}) must be a finite number > 0")
    return float(v)


def _int_in(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise InputError(f"privgraph: {name} ({v!r}) must be an integer in [{lo}, {hi}]")
    return int(v)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a privgraph result depends on."""
    out = {}
    for dist in ("networkx", "numpy", "opendp"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


class PrivGraphGenerator:
    """The ``privgraph`` graph generator (see the module docstring for the DP argument).

    Options (public, validated here): ``mechanism`` ``"gaussian"`` (zCDP) or ``"laplace"`` (pure
    epsilon-DP, the paper's); default None: gaussian when the spend's delta > 0, else laplace.
    ``init_share``, ``adjust_share``, ``extract_share``: relative budget weights of the three phases
    (default 1/3 each, the paper's). ``group_size``: nodes per initial random group (the paper's
    N1, default 20). ``resolution``: Louvain's resolution on the super-graph (the paper's t,
    default 1). ``super_threshold``: super-graph counts at or below this many noise standard
    deviations are dropped before Louvain (default 3; post-processing). ``adjust_passes``: passes of
    the community adjustment over all nodes (default 1). ``attribute_share``: the fraction of the
    budget for node attributes when the schema has them (default 0.2, as dpdegree; MST, see the
    module docstring); the rest is the structure's, split by the phase shares.
    """

    name = "privgraph"

    def __init__(self, *, mechanism: str | None = None, init_share: float = DEFAULT_SHARES["init"],
                 adjust_share: float = DEFAULT_SHARES["adjust"], extract_share: float = DEFAULT_SHARES["extract"],
                 group_size: int = DEFAULT_GROUP_SIZE, resolution: float = 1.0, adjust_passes: int = 1,
                 super_threshold: float = DEFAULT_SUPER_THRESHOLD,
                 attribute_share: float = DEFAULT_ATTRIBUTE_SHARE) -> None:
        if mechanism is not None and (not isinstance(mechanism, str) or mechanism not in MECHANISMS):
            raise InputError(f"privgraph: mechanism ({mechanism!r}) must be one of {', '.join(MECHANISMS)}")
        self.mechanism = mechanism
        self.shares = {"init": _positive("init_share", init_share),
                       "adjust": _positive("adjust_share", adjust_share),
                       "extract": _positive("extract_share", extract_share)}
        self.group_size = _int_in("group_size", group_size, 1, 1_000_000)
        self.resolution = _positive("resolution", resolution)
        self.adjust_passes = _int_in("adjust_passes", adjust_passes, 1, 10)
        if isinstance(super_threshold, bool) or not isinstance(super_threshold, (int, float)) \
                or not 0 <= super_threshold <= 100:
            raise InputError(f"privgraph: super_threshold ({super_threshold!r}) must be a number in [0, 100]")
        self.super_threshold = float(super_threshold)
        if isinstance(attribute_share, bool) or not isinstance(attribute_share, (int, float)) \
                or not (math.isfinite(attribute_share) and 0 < attribute_share < 1):
            raise InputError(f"privgraph: attribute_share ({attribute_share!r}) must be a number in (0, 1)")
        self.attribute_share = float(attribute_share)

    def _budget(self, spend: PrivacySpend, schema: Schema) -> Budget:
        """The mechanism and the public split of ``spend`` (structure, node attributes)."""
        mechanism = self.mechanism or ("gaussian" if spend.delta > 0 else "laplace")
        share = self.attribute_share if schema.columns else 0.0
        if mechanism == "gaussian":
            if spend.delta <= 0:
                raise InputError(f"privgraph: delta ({spend.delta}) must be > 0 for mechanism 'gaussian' (zCDP "
                                 f"gives (epsilon, delta)-DP only for delta > 0); use mechanism 'laplace' for "
                                 f"delta 0")
            if not schema.columns:
                return Budget(mechanism, graph_rho(spend), 0.0, 0.0, float(spend.delta), 0.0)
            rb = plan_graph_budget(spend, schema, attribute_share=self.attribute_share)
            return Budget(mechanism, rb.rho_structure, rb.rho_attributes, rb.rho_attributes, float(spend.delta),
                          share)
        if schema.columns and spend.delta <= 0:
            raise InputError(f"privgraph: delta ({spend.delta}) must be > 0 with node attributes: they are "
                             f"synthesized with MST, whose Gaussian noise is zCDP (mechanism 'laplace' is pure "
                             f"epsilon-DP for the structure only)")
        eb = plan_graph_epsilon(spend, schema, attribute_share=self.attribute_share)
        return Budget(mechanism, eb.eps_structure, eb.eps_attributes, eb.rho_attributes, eb.delta, share)

    def check_schema(self, schema: Schema) -> None:
        """Refuse, from the schema alone (before any budget is charged), what privgraph cannot do yet."""
        if not schema.is_graph:
            raise InputError("privgraph needs a graph schema (kind: graph)")
        spec = schema.gspec
        if spec.node_unit:
            raise InputError("privgraph: unit node is not supported yet (use dpdegree)")
        if spec.directed:
            raise InputError("privgraph: directed graphs are not supported yet (use dpdegree)")
        if not spec.public_nodes:
            raise InputError("privgraph: a bought node set is not supported yet (declare the node set public)")

    def fit(self, data: GraphData, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
            ) -> "PrivGraphModel":
        """Fit on the conformed training graph, spending at most ``spend`` (edge-level DP)."""
        self.check_schema(schema)
        spec = schema.gspec
        if data.spec != spec:
            raise InputError("the graph was conformed with another graph block than the schema's")
        # everything public first: mechanism, budget split, noise scales (node count is public here)
        budget = self._budget(spend, schema)
        n = data.n_nodes
        p = plan(budget.mechanism, budget.structure, self.shares, n, self.group_size, self.adjust_passes)
        rng = np.random.default_rng()  # OS entropy: the groups and the visiting order, never a user seed
        edges = canonical_edges(data.edges, False)

        report(progress, "privgraph: initial communities", 0.0)
        community, spent_init, k0 = initial_communities(edges, n, p, self.resolution, rng,
                                                        self.super_threshold)
        community, spent_adjust = adjust_communities(edges, community, k0, p, rng, progress)
        community, k = compact(community)
        report(progress, "privgraph: measuring degrees and pair counts", 0.75)
        deg_noisy, pairs_noisy, spent_deg, spent_pairs = extract(edges, community, k, p)
        del edges

        # post-processing of noisy values only
        sizes = np.bincount(community, minlength=k)
        degrees = np.zeros(n, dtype=np.int64)
        # the s.d. of the degree noise (discrete Laplace of scale b: about b sqrt(2))
        noise_sd = p.degree_scale * (1.0 if p.mechanism == "gaussian" else math.sqrt(2))
        totals = shrunk_totals(deg_noisy, community, k, noise_sd)
        for c in range(k):
            members = np.flatnonzero(community == c)
            degrees[members] = rescale_degrees(deg_noisy[members], noise_sd, sizes[c] - 1, totals[c])
        pairs = round_keep_total(norm_sub(pairs_noisy))
        spent = {"init": spent_init, "adjust": spent_adjust, "extract": max(spent_deg, spent_pairs)}

        # node attributes: MST on (attributes, degree class), its own part of the budget (see the docstring)
        attrs: NodeAttributeModel | None = None
        if schema.columns:
            report(progress, "privgraph: node attributes through MST", 0.85)
            attrs = fit_node_attributes(data, schema, budget.rho_attributes, degree_class_lows(n), spend=spend)
        card = _card(p, spend, schema, spent, spent_deg, spent_pairs, self.resolution, k0, k, degrees, pairs,
                     self.super_threshold, budget=budget, attrs=attrs)
        report(progress, "privgraph: done", 1.0)
        return PrivGraphModel(card=card, spec=spec, labels=data.labels, community=community, degrees=degrees,
                              pairs=pairs, k=k, attributes=attrs)


def _card(p: Plan, spend: PrivacySpend, schema: Schema, spent: dict[str, float], spent_deg: float,
          spent_pairs: float, resolution: float, k0: int, k: int, degrees: np.ndarray, pairs: np.ndarray,
          super_threshold: float = DEFAULT_SUPER_THRESHOLD, *, budget: Budget | None = None,
          attrs: NodeAttributeModel | None = None) -> GeneratorCard:
    used = sum(spent.values())
    parts = p.parts
    u = p.unit
    if budget is None:  # the structure alone (no node attributes)
        budget = Budget(p.mechanism, p.budget, 0.0, 0.0, float(spend.delta) if p.mechanism == "gaussian" else 0.0,
                        0.0)
    attr_used = attrs.rho if attrs is not None else 0.0  # MST's part as rho (group factor included)
    if p.mechanism == "gaussian":
        if attrs is None:
            head = (f"zero-concentrated DP: rho = {p.budget:.6g} from OpenDP's conversion of (epsilon "
                    f"{spend.epsilon}, delta {spend.delta}); phases composed by adding rho (sum {used:.6g})")
        else:
            head = (f"zero-concentrated DP: rho = {budget.total:.6g} from OpenDP's conversion of (epsilon "
                    f"{spend.epsilon}, delta {spend.delta}), split by the public attribute share "
                    f"{budget.attribute_share:g} into the structure, rho {p.budget:.6g}, and node attributes, rho "
                    f"{budget.attributes:.6g}; the structure's phases and the attribute part composed by adding "
                    f"rho (sum {used + attr_used:.6g})")
        mech = "discrete Gaussian (OpenDP, exact, OS entropy)"
        sens = "L2"
        deg_sens, sel = "sqrt(2)", "bounded range 1/scale, rho = 1/(8 scale^2)"
        out_spend = PrivacySpend(epsilon=spend.epsilon, delta=spend.delta, rho=budget.total)
    else:
        if attrs is None:
            head = (f"pure epsilon-DP: epsilon = {p.budget:.6g}; phases composed by adding epsilon (sum "
                    f"{used:.6g}); delta 0")
        else:
            head = (f"pure epsilon-DP for the structure and, for node attributes, MST's zCDP part converted to "
                    f"(epsilon_attributes, delta) by OpenDP: epsilon {budget.total:.6g} split by the public "
                    f"attribute share {budget.attribute_share:g} into the structure, epsilon {p.budget:.6g} (phases "
                    f"composed by adding epsilon, sum {used:.6g}), and node attributes, epsilon "
                    f"{budget.attributes:.6g} with delta {budget.delta:g} (rho {budget.rho_attributes:.6g}); "
                    f"composed by basic composition (epsilon {used + budget.attributes:.6g}, delta "
                    f"{budget.delta:g})")
        mech = "discrete Laplace (OpenDP, OS entropy)"
        sens = "L1"
        deg_sens, sel = "2", "epsilon = 1/scale"
        out_spend = PrivacySpend(epsilon=spend.epsilon, delta=budget.delta)
    unit_text = "one edge" if attrs is None else "one edge, or one node's attribute values"
    accounting = (
        f"{head}. Unit: {unit_text}. (1) community initialisation, {u} {parts['init']:.6g}: {mech} of scale "
        f"{p.init_scale:.6g} on the {p.n_groups * (p.n_groups + 1) // 2} edge counts within and between "
        f"{p.n_groups} random groups of {p.group_size} nodes ({sens} sensitivity 1: an edge is in one count); "
        f"dropping the counts at or below {super_threshold:g} noise s.d. and Louvain on the rest are "
        f"post-processing. (2) community adjustment, {u} "
        f"{parts['adjust']:.6g}: {p.passes} pass(es), each node's community chosen by OpenDP's Gumbel noisy max "
        f"(the exponential mechanism) of scale {p.select_scale:.6g} over its neighbour counts per community "
        f"(monotone, L-inf sensitivity 1: {sel}, {u} {spent['adjust'] / (2 * p.passes):.6g} each); one edge "
        f"changes the scores of its two end nodes only, so it affects 2 x {p.passes} selections, composed "
        f"adaptively. (3) extraction, {u} {parts['extract']:.6g}: {mech} of scale {p.degree_scale:.6g} on the "
        f"intra-community degrees ({sens} sensitivity {deg_sens}: an intra edge changes two degrees by 1; "
        f"{u} {spent_deg:.6g}) and of scale {p.pair_scale:.6g} on the edge counts of all "
        f"{k * (k - 1) // 2} pairs of communities ({sens} sensitivity 1; {u} {spent_pairs:.6g}); an edge "
        f"changes either the degrees or one pair count, never both, so the phase costs the larger "
        f"({spent['extract']:.6g})."
    )
    if attrs is not None:
        accounting += (
            f" (4) node attributes, rho {attrs.rho:.6g}" + (f" (from epsilon {budget.attributes:.6g}, delta "
                                                            f"{budget.delta:g})" if p.mechanism == "laplace" else "")
            + f": MST on one row per node (attributes and degree class) with rho {attrs.rho_mst:.6g} = "
            f"{attrs.rho:.6g} / 16: one edge changes the degree class of two nodes, two substituted rows = 4 "
            f"add/remove steps, zCDP group privacy 4^2; one node's attribute values substitute one row (cost "
            f"at most the same). Phases (1)-(3) never read the attributes."
        )
    params: dict[str, Any] = {
        "mechanism": p.mechanism,
        "budget_unit": u,
        "budget": p.budget,
        "shares": p.shares,
        "budget_parts": parts,
        "spent_parts": spent,
        "spent_extract_parts": {"degrees": spent_deg, "pairs": spent_pairs},
        "used": used,
        "group_size": p.group_size,
        "initial_groups": p.n_groups,
        "resolution": resolution,
        "super_threshold": super_threshold,
        "adjust_passes": p.passes,
        "noise_scales": {"super_graph": p.init_scale, "selection": p.select_scale, "degrees": p.degree_scale,
                         "pairs": p.pair_scale},
        "sensitivities": {
            "super_graph": {"l1": 1, "l2": 1},
            "selection": {"linf": 1, "monotone": True, "selections_per_edge": 2 * p.passes},
            "degrees": {"l1": 2, "l2": math.sqrt(2)},
            "pairs": {"l1": 1, "l2": 1},
        },
        "initial_communities": k0,
        "communities": k,
        "noisy_edges": float(degrees.sum() / 2 + pairs.sum()),
        "attribute_share": budget.attribute_share,
        "delta": budget.delta,
    }
    # the whole split: the structure (the phases above) and node attributes
    if p.mechanism == "gaussian":
        params.update(rho=budget.total, rho_parts={"structure": p.budget, "attributes": budget.attributes})
    else:
        params.update(epsilon=budget.total, epsilon_parts={"structure": p.budget, "attributes": budget.attributes})
    if attrs is not None:
        params["attributes"] = attrs.describe()
    domain_sources = {
        "node set and ids": "schema (public node set)",
        "initial random groups": "OS entropy and the public node count (no data)",
        "communities": "post-processing (Louvain) of noisy counts, then noisy-max selections",
        "intra-community degrees, pair edge counts": "DP measurement",
        "edge count": "DP estimate: sum of noisy degrees / 2 plus the noisy pair counts",
        "noise scales": "the options (shares, group_size, adjust_passes) and the spend",
    }
    if attrs is not None:
        domain_sources["node attribute domains"] = "schema (columns)"
        domain_sources["degree classes"] = "public: log-spaced from the node count (0, 1, 2-3, 4-7, ...)"
        domain_sources["node attributes"] = ("DP measurement (MST), drawn per node from its degree class in the "
                                             "synthetic graph")
    notes: tuple[str, ...] = (
        "after Yuan et al., PrivGraph (USENIX Security 2023); reference code github.com/Privacy-Graph/PrivGraph",
        "noise, the random groups, the visiting order and Louvain's randomness come from OS entropy during fit, "
        "never from a seed; the seed only drives sampling",
        "the synthetic graph keeps the public node ids; its edges come from each node's community and noisy "
        "intra-degree and the noisy pair counts",
        f"post-processing: Louvain sees only the super-graph counts above {super_threshold:g} noise s.d.; the "
        "noisy intra-degrees of each community get a total shrunk toward the overall mean (empirical Bayes), are "
        "rescaled to their estimated true spread (noisy variance minus the noise variance), clipped to [0, "
        "community size - 1] and rounded keeping that total; the pair "
        "counts are made non-negative keeping their noisy total (norm-sub)",
        "the exponential mechanism (OpenDP's Gumbel noisy max) samples with floating-point Gumbel noise",
    )
    if attrs is not None:
        notes += ("node attributes are synthetic: each node's values are drawn from MST's model given the node's "
                  "degree class in the synthetic graph, not its real values (the node ids are kept)",)
    unit = schema.gspec.privacy_unit()
    if attrs is not None:
        unit = f"{unit}, or one node's attribute values"
    return GeneratorCard(name=PrivGraphGenerator.name, parameters=params, library_versions=library_versions(),
                         spend=out_spend, accounting=accounting, unit_of_privacy=unit,
                         domain_sources=domain_sources, notes=notes)


class PrivGraphModel:
    """A fitted privgraph model: communities, noisy intra-degrees, noisy pair counts. Pickles.

    Holds numpy arrays, public values and (with node attributes) MST's model: no edge of the
    training graph.
    """

    def __init__(self, *, card: GeneratorCard, spec: Any, labels: tuple[str, ...], community: np.ndarray,
                 degrees: np.ndarray, pairs: np.ndarray, k: int,
                 attributes: NodeAttributeModel | None = None) -> None:
        self.card = card
        self.spec = spec
        self.labels = labels
        self.community = community
        self.degrees = degrees
        self.pairs = pairs
        self.k = k
        self.attributes = attributes

    @property
    def estimated_rows(self) -> int:
        """The public node count."""
        return len(self.labels)

    def sample(self, n: int, seed: int) -> GraphData:
        """One synthetic graph over the public nodes (``n`` must be their count); same seed, same graph.

        Inside each community: a configuration model on the post-processed noisy intra-degrees
        (stubs paired at random; self-loops and repeats re-paired a few times, then dropped).
        Between communities ``a < b``: their noisy edge count, endpoints drawn proportionally to
        (noisy intra-degree + 1) on each side (the +1 lets nodes without intra edges take part).
        With node attributes, each node's values are drawn from MST's model given its degree class
        in the graph just built.
        """
        n = check_sample_n(n, len(self.labels), "privgraph")
        rng = np.random.default_rng(check_seed(seed))
        members = [np.flatnonzero(self.community == c) for c in range(self.k)]
        parts: list[np.ndarray] = []
        for nodes in members:
            d = np.minimum(np.asarray(self.degrees[nodes], dtype=np.int64), nodes.size - 1)
            if d.sum() and nodes.size >= 2:
                parts.append(nodes[configuration_edges(d, rng)])
        idx = 0
        for a in range(self.k):
            for b in range(a + 1, self.k):
                m = min(int(self.pairs[idx]), members[a].size * members[b].size)
                idx += 1
                if m:
                    parts.append(self._between(members[a], members[b], m, rng))
        edges = canonical_edges(np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64), False)
        table: pl.DataFrame | None = None
        if self.attributes is not None:
            # post-processing: each node's attributes given its degree class in this synthetic graph
            realised = np.bincount(edges.ravel(), minlength=n) if edges.size else np.zeros(n, dtype=np.int64)
            table = self.attributes.sample(realised, int(rng.integers(0, 2**62)))
        return GraphData(n_nodes=n, edges=edges, spec=self.spec, labels=self.labels, nodes=table)

    def _between(self, left: np.ndarray, right: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` distinct edges left x right: Chung-Lu on the union, directed left -> right."""
        nl = left.size
        w_out = np.concatenate([self.degrees[left] + 1.0, np.zeros(right.size)])
        w_in = np.concatenate([np.zeros(nl), self.degrees[right] + 1.0])
        local = chung_lu(w_out, w_in, m, True, rng)
        both = np.concatenate([left, right])
        return both[local]
