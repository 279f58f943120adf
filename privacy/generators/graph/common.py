"""Pieces shared by the graph generators: budget, node count, Chung-Lu, degree caps, node attributes.

Accounting
----------
Graph generators measure under **edge-level DP**: two graphs are neighbours when they differ in
one edge, over the same public node set (``GraphSpec.privacy_unit``). Two accounting paths:

- **zCDP** (``graph_rho``, ``plan_graph_budget``): ``rho`` from OpenDP's conversion of
  ``(epsilon, delta)`` (``delta > 0`` required: Gaussian noise gives no pure DP); parts compose by
  adding their rho. Gaussian noise is OpenDP's exact discrete Gaussian (OS entropy).
- **pure epsilon** (``plan_graph_epsilon``): discrete Laplace parts compose by adding epsilon; a
  node-attribute part through MST (zCDP only) then gets its own ``(epsilon_attr, delta)`` converted
  to rho, and the whole is ``(sum of epsilons, delta)`` by basic composition (``delta`` is 0 when
  nothing zCDP runs).

Budget shares are public parameters: the node share is taken only when the node set is bought
(``nodes: bought``), the attribute share only when the schema has node-attribute columns; the rest
goes to the structure.

Node count
----------
A public node set is free (``node_count``). A bought one is estimated from the number of distinct
edge endpoints: adding or removing one edge adds or removes at most two endpoints, so the count has
sensitivity 2 (L1 and L2); ``buy_node_count`` (discrete Gaussian) or ``buy_node_count_laplace``.

Degree-cap projection
---------------------
``project_degree_cap(graph, cap)`` keeps edge ``(u, v)`` iff it is among the first ``cap`` edges
of ``u``'s incidence list *and* among the first ``cap`` of ``v``'s, where each node's list is
ordered by a fixed public hash of the other endpoint's *id* (``label_rank``: a keyed BLAKE2b of
the id's text, never its index, which with a bought node set is a position among the data's
endpoints, nor anything else from the data). **Claim**: if ``G' = G + e`` then
``proj(G') \\ proj(G) ⊆ {e}`` and ``proj(G) \\ proj(G')`` holds at most one edge at each
endpoint of ``e``: at most 3 edges change. *Proof*: inserting ``e = (u, v)`` changes only the lists
of ``u`` and ``v``; in each it shifts the items ranked after ``e`` one place down, so at most one
item (the one at position ``cap - 1``) leaves that list's first ``cap`` and none enters. An edge
``f != e`` is kept iff it is in the first ``cap`` at both its endpoints, so ``f`` can only go from
kept to dropped, and only if it is that displaced item at ``u`` or at ``v``. Every projected graph
has maximum degree at most ``cap``. A mechanism measured on the projected graph therefore sees
a change of up to 3 edges (one added, up to two removed) per input edge, and must pay for that.

Node attributes
---------------
``fit_node_attributes``: a table with one row per node, its attribute columns plus its degree
class (public log-spaced classes 0, 1, 2-3, 4-7, ... from the public node count), through MST.
Under the unit "one edge, or one node's attribute values": one edge changes the degree of two
nodes, so up to two rows change, each a *substitution* (the node set is public and fixed); one
node's attribute values change one row. A substitution is a removal plus an addition, so two
substituted rows are 4 add/remove steps apart; MST is ``rho_mst``-zCDP for add/remove one row, so
by zCDP group privacy (Bun & Steinke 2016, Prop. 27: ``k`` steps cost ``k^2 rho``) it is
``16 rho_mst``-zCDP for our unit. MST therefore runs with ``rho_mst = rho_attributes / 16``.
At sampling, each synthetic node's attributes are drawn from MST's rows of the node's degree
class (falling back to all rows where a class has none): post-processing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from privacy.errors import InputError
from privacy.generators.tabular.base import Progress
from privacy.generators.tabular.marginal import MarginalModel, zcdp_rho
from privacy.graphs import GraphData, canonical_edges
from privacy.schema import Column, Schema
from privacy.spend import PrivacySpend

#: zCDP group-privacy factor for the node-attribute table (2 substituted rows = 4 add/remove steps)
ATTRIBUTE_GROUP = 4
#: the name of the degree-class column in the node-attribute table (not a schema column name)
DEGREE_CLASS_COLUMN = "__degree_class__"


# -- budget ----------------------------------------------------------------------------------------


def graph_rho(spend: PrivacySpend) -> float:
    """The zCDP rho for ``spend`` (OpenDP's conversion); ``InputError`` when ``delta`` is 0."""
    if spend.delta <= 0:
        raise InputError(
            f"delta ({spend.delta}) must be > 0 for Gaussian (zCDP) graph measurements; "
            f"zCDP gives (epsilon, delta)-DP only for delta > 0"
        )
    return zcdp_rho(spend)


def _share(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 < v < 1):
        raise InputError(f"{name} ({v!r}) must be a number in (0, 1)")
    return float(v)


def _shares(schema: Schema, node_share: float, attribute_share: float) -> tuple[float, float, float]:
    """Normalised (nodes, attributes, structure) fractions; public (schema and options only)."""
    f_nodes = _share("node_share", node_share) if not schema.gspec.public_nodes else 0.0
    f_attr = _share("attribute_share", attribute_share) if schema.columns else 0.0
    if f_nodes + f_attr >= 1.0:
        raise InputError(f"node_share + attribute_share ({f_nodes + f_attr:g}) must leave budget for the structure")
    return f_nodes, f_attr, 1.0 - f_nodes - f_attr


@dataclass(frozen=True)
class GraphBudget:
    """A zCDP budget split: node count (bought node set only), node attributes, structure."""

    rho_nodes: float
    rho_attributes: float
    rho_structure: float

    @property
    def total(self) -> float:
        return self.rho_nodes + self.rho_attributes + self.rho_structure


def plan_graph_budget(spend: PrivacySpend, schema: Schema, *, node_share: float = 0.05,
                      attribute_share: float = 0.2) -> GraphBudget:
    """Split ``graph_rho(spend)`` by the public shares (see the module docstring)."""
    f_nodes, f_attr, f_struct = _shares(schema, node_share, attribute_share)
    rho = graph_rho(spend)
    return GraphBudget(rho_nodes=f_nodes * rho, rho_attributes=f_attr * rho, rho_structure=f_struct * rho)


@dataclass(frozen=True)
class GraphEpsilonBudget:
    """A pure-epsilon split; the attribute part (MST, zCDP) is ``(eps_attributes, delta)`` as rho."""

    eps_nodes: float
    eps_attributes: float
    eps_structure: float
    #: the delta of the whole guarantee: the spend's delta when node attributes run, else 0
    delta: float
    #: MST's part as zCDP rho (from ``(eps_attributes, delta)``); 0 without attributes
    rho_attributes: float

    @property
    def epsilon(self) -> float:
        return self.eps_nodes + self.eps_attributes + self.eps_structure


def plan_graph_epsilon(spend: PrivacySpend, schema: Schema, *, node_share: float = 0.05,
                       attribute_share: float = 0.2) -> GraphEpsilonBudget:
    """Split ``spend.epsilon`` by the public shares for pure-epsilon (Laplace) measurements."""
    f_nodes, f_attr, f_struct = _shares(schema, node_share, attribute_share)
    eps = float(spend.epsilon)
    rho_attr = 0.0
    delta = 0.0
    if f_attr > 0:
        if spend.delta <= 0:
            raise InputError(
                f"delta ({spend.delta}) must be > 0: node attributes are synthesized with MST, whose Gaussian "
                f"noise is zCDP"
            )
        delta = float(spend.delta)
        rho_attr = zcdp_rho(PrivacySpend(epsilon=f_attr * eps, delta=delta))
    return GraphEpsilonBudget(eps_nodes=f_nodes * eps, eps_attributes=f_attr * eps, eps_structure=f_struct * eps,
                              delta=delta, rho_attributes=rho_attr)


# -- OpenDP noise ----------------------------------------------------------------------------------


def gaussian_measure(values: np.ndarray, l2_sensitivity: float, rho: float) -> tuple[np.ndarray, float, float]:
    """Integers plus OpenDP's discrete Gaussian calibrated to ``rho`` at ``l2_sensitivity``.

    Returns the noisy values (float64, same shape), sigma, and OpenDP's rho for the measurement
    (never above ``rho``).
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    if not (rho > 0 and math.isfinite(rho)):
        raise InputError(f"rho ({rho}) must be a finite number > 0")
    sigma = l2_sensitivity / math.sqrt(2.0 * rho) * (1.0 + 1e-9)
    while True:
        meas = dp.m.make_gaussian(dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), float(sigma))
        if float(l2_sensitivity).is_integer():
            spent = float(meas.map(int(l2_sensitivity)))
        else:
            # OpenDP's integer L2 metric takes integer distances; its map is d^2 / (2 sigma^2)
            # (rounded up), so the map at 1 times d^2 is the map at a non-integer d
            spent = float(meas.map(1)) * float(l2_sensitivity) ** 2 * (1.0 + 1e-12)
        if spent <= rho:
            break
        sigma *= 1.0 + 1e-9  # OpenDP's map rounds up: widen a hair
    arr = np.asarray(values, dtype=np.int64)
    noisy = meas([int(x) for x in arr.ravel()])
    return np.asarray(noisy, dtype=np.float64).reshape(arr.shape), sigma, spent


def laplace_measure(values: np.ndarray, l1_sensitivity: int, epsilon: float) -> tuple[np.ndarray, float, float]:
    """Integers plus OpenDP's discrete Laplace calibrated to ``epsilon`` at ``l1_sensitivity``.

    Returns the noisy values, the scale and OpenDP's epsilon for the measurement (at most ``epsilon``).
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise InputError(f"epsilon ({epsilon}) must be a finite number > 0")
    scale = l1_sensitivity / epsilon
    while True:
        meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), float(scale))
        spent = float(meas.map(int(l1_sensitivity)))
        if spent <= epsilon:
            break
        scale *= 1.0 + 1e-9
    arr = np.asarray(values, dtype=np.int64)
    noisy = meas([int(x) for x in arr.ravel()])
    return np.asarray(noisy, dtype=np.float64).reshape(arr.shape), scale, spent


# -- node count ------------------------------------------------------------------------------------


#: the L1 and L2 sensitivity of the number of distinct edge endpoints under one edge added/removed
NODE_COUNT_SENSITIVITY = 2


def endpoint_count(graph: GraphData) -> int:
    """The number of distinct edge endpoints (a function of the edge set alone). Sensitive."""
    return int(np.unique(graph.edges).size) if graph.n_edges else 0


def buy_node_count(graph: GraphData, rho: float) -> int:
    """DP estimate (discrete Gaussian, ``rho``-zCDP, sensitivity 2) of the node count; at least 2."""
    noisy, _, _ = gaussian_measure(np.array([endpoint_count(graph)]), NODE_COUNT_SENSITIVITY, rho)
    return max(2, int(round(float(noisy[0]))))


def buy_node_count_laplace(graph: GraphData, epsilon: float) -> int:
    """DP estimate (discrete Laplace, ``epsilon``-DP, sensitivity 2) of the node count; at least 2."""
    noisy, _, _ = laplace_measure(np.array([endpoint_count(graph)]), NODE_COUNT_SENSITIVITY, epsilon)
    return max(2, int(round(float(noisy[0]))))


def node_count(graph: GraphData, schema: Schema) -> int | None:
    """The public node count (``graph.n_nodes``) when the node set is public, else None (buy it)."""
    return graph.n_nodes if schema.gspec.public_nodes else None


def public_labels(graph: GraphData, schema: Schema) -> tuple[str, ...] | None:
    """The public node ids when the node set is public, else None (fresh ids at sampling)."""
    return tuple(graph.labels) if schema.gspec.public_nodes else None


def check_sample_n(n: Any, n_public: int | None, name: str) -> int:
    """Validate ``sample``'s ``n``: with a public node set it must be the public node count."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"{name}: n ({n!r}) must be an integer >= 2 (the number of nodes)")
    if n_public is not None and int(n) != n_public:
        raise InputError(f"{name}: the node set is public: n must be {n_public}, not {n}")
    return int(n)


def check_seed(seed: Any) -> int:
    """A sampling seed must be an integer >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed ({seed!r}) must be an integer >= 0")
    return int(seed)


# -- Chung-Lu ----------------------------------------------------------------------------------------


def chung_lu(weights_out: np.ndarray, weights_in: np.ndarray | None, n_edges: int, directed: bool,
             rng: np.random.Generator, *, max_rounds: int = 30) -> np.ndarray:
    """About ``n_edges`` distinct edges with endpoints drawn proportionally to the weights.

    Endpoint pairs are drawn in vectorised batches (``u ~ weights_out``, ``v ~ weights_in`` or
    ``weights_out`` when None), canonicalised (no self-loops, no duplicates) and topped up until
    ``n_edges`` distinct edges exist, or ``max_rounds`` batches added nothing (very concentrated
    weights): then fewer are returned. Never O(n^2). Canonical (``canonical_edges``) output.
    """
    w_out = np.clip(np.asarray(weights_out, dtype=np.float64), 0.0, None)
    n = int(w_out.size)
    w_in = w_out if weights_in is None else np.clip(np.asarray(weights_in, dtype=np.float64), 0.0, None)
    if w_in.size != n:
        raise ValueError("weights_out and weights_in must have one weight per node")
    possible = n * (n - 1) if directed else n * (n - 1) // 2
    target = min(int(n_edges), possible)
    if target <= 0 or w_out.sum() <= 0 or w_in.sum() <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    p_out = np.cumsum(w_out / w_out.sum())
    p_in = np.cumsum(w_in / w_in.sum())
    keys = np.zeros(0, dtype=np.int64)
    stalled = 0
    while keys.size < target and stalled < max_rounds:
        need = target - keys.size
        k = int(need * 1.3) + 16
        u = np.minimum(np.searchsorted(p_out, rng.random(k), side="right"), n - 1)
        v = np.minimum(np.searchsorted(p_in, rng.random(k), side="right"), n - 1)
        if not directed:
            u, v = np.minimum(u, v), np.maximum(u, v)
        ok = u != v
        new = u[ok].astype(np.int64) * n + v[ok].astype(np.int64)
        before = keys.size
        allk = np.concatenate([keys, new])
        # keep the first occurrence of each edge, in draw order, so trimming to target is uniform
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)]
        stalled = stalled + 1 if keys.size == before else 0
    keys = keys[:target]
    return canonical_edges(np.stack([keys // n, keys % n], axis=1), directed)


def configuration_model(degrees: np.ndarray, in_degrees: np.ndarray | None, directed: bool,
                        rng: np.random.Generator) -> np.ndarray:
    """Erased configuration model: stubs matched uniformly, self-loops and multi-edges erased.

    Undirected: ``degrees`` (sum made even by the caller; an odd stub is dropped). Directed: out-stubs
    ``degrees`` matched to in-stubs ``in_degrees`` (the longer list is cut to the shorter).
    """
    d = np.clip(np.asarray(degrees, dtype=np.int64), 0, None)
    n = d.size
    if directed:
        assert in_degrees is not None
        di = np.clip(np.asarray(in_degrees, dtype=np.int64), 0, None)
        out_stubs = rng.permutation(np.repeat(np.arange(n, dtype=np.int64), d))
        in_stubs = rng.permutation(np.repeat(np.arange(n, dtype=np.int64), di))
        k = min(out_stubs.size, in_stubs.size)
        return canonical_edges(np.stack([out_stubs[:k], in_stubs[:k]], axis=1), True)
    stubs = rng.permutation(np.repeat(np.arange(n, dtype=np.int64), d))
    k = stubs.size // 2
    return canonical_edges(stubs[: 2 * k].reshape(k, 2), False)


# -- degree-cap projection ---------------------------------------------------------------------------


_RANK_KEY = b"synthgate-degree-cap-v1"


def label_rank(labels: tuple[str, ...]) -> np.ndarray:
    """A fixed public order key per node id: the first 8 bytes of a salted BLAKE2b of the id's text.

    Depends on the id alone (not on which other nodes exist); two ids collide with probability
    about 2^-64 per pair, and a collision only changes which of two neighbours a cap keeps.
    """
    out = np.empty(len(labels), dtype=np.uint64)
    for i, lab in enumerate(labels):
        h = hashlib.blake2b(lab.encode("utf-8"), digest_size=8, key=_RANK_KEY).digest()
        out[i] = int.from_bytes(h, "big")
    return out


def project_degree_cap(graph: GraphData, cap: int) -> tuple[GraphData, int]:
    """The graph with every node's degree at most ``cap`` by the public-rank rule; edges dropped.

    See the module docstring: adding or removing one input edge changes the projection by at most
    3 edges (the edge itself, and one displaced edge at each of its endpoints).
    """
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise InputError(f"degree cap ({cap!r}) must be an integer >= 1")
    e = graph.edges
    m = e.shape[0]
    if m == 0:
        return graph, 0
    # rank neighbours by their ids, never their indices: with a bought node set the index of a node is
    # its position among the data's endpoints, which one added edge to a new node shifts for every
    # later node (a cascade that broke the 3-edge bound; found in review)
    rank = label_rank(graph.labels)
    # each edge appears in the incidence list of both endpoints; in a directed graph the flag
    # separates (u, v) from (v, u) in u's list (the same other endpoint, a distinct edge)
    owner = np.concatenate([e[:, 0], e[:, 1]])
    other = np.concatenate([e[:, 1], e[:, 0]])
    flag = np.concatenate([np.zeros(m, dtype=np.int64), np.ones(m, dtype=np.int64)]) if graph.directed \
        else np.zeros(2 * m, dtype=np.int64)
    edge_id = np.concatenate([np.arange(m), np.arange(m)])
    order = np.lexsort((flag, rank[other], owner))
    owner_sorted = owner[order]
    starts = np.searchsorted(owner_sorted, owner_sorted, side="left")
    pos = np.empty(2 * m, dtype=np.int64)
    pos[order] = np.arange(2 * m) - starts
    kept_here = pos < int(cap)
    kept = np.zeros(m, dtype=np.int64)
    np.add.at(kept, edge_id[kept_here], 1)
    keep = kept == 2
    projected = GraphData(n_nodes=graph.n_nodes, edges=e[keep], spec=graph.spec, labels=graph.labels,
                          nodes=graph.nodes)
    return projected, int(m - keep.sum())


# -- node attributes ---------------------------------------------------------------------------------


def degree_class_lows(n_nodes: int) -> np.ndarray:
    """Public log-spaced degree classes up to ``n_nodes - 1``: lower bounds 0, 1, 2, 4, 8, ..."""
    lows = [0, 1]
    while lows[-1] * 2 <= max(1, n_nodes - 1):
        lows.append(lows[-1] * 2)
    return np.asarray(lows, dtype=np.int64)


def degree_class(degrees: np.ndarray, lows: np.ndarray) -> np.ndarray:
    """Each degree's class index (``lows`` are the classes' lower bounds, ascending, from 0)."""
    return (np.searchsorted(lows, np.asarray(degrees, dtype=np.int64), side="right") - 1).astype(np.int64)


class NodeAttributeModel:
    """MST's model of (node attributes, degree class); draws attributes for a synthetic degree sequence."""

    def __init__(self, *, model: MarginalModel, columns: tuple[Column, ...], lows: np.ndarray, rho: float,
                 rho_mst: float) -> None:
        self.model = model
        self.columns = columns
        self.lows = lows
        self.rho = rho
        self.rho_mst = rho_mst

    def describe(self) -> dict[str, Any]:
        """What the card says about the attribute part."""
        return {
            "generator": "mst",
            "columns": [c.name for c in self.columns],
            "degree_class_lows": self.lows.tolist(),
            "rho": self.rho,
            "group_factor": ATTRIBUTE_GROUP ** 2,
            "rho_mst": self.rho_mst,
            "rho_used": float(self.model.card.parameters.get("rho_used", self.rho_mst)),
            "mst_edges": self.model.card.parameters.get("edges"),
        }

    def sample(self, degrees: np.ndarray, seed: int) -> pl.DataFrame:
        """One attribute row per node, drawn from MST's rows of the node's degree class (post-processing)."""
        rng = np.random.default_rng(check_seed(seed))
        n = int(np.asarray(degrees).size)
        names = [c.name for c in self.columns]
        pool = self.model.sample(max(4 * n, 2000), int(rng.integers(0, 2**62)))
        pool_class = pool.get_column(DEGREE_CLASS_COLUMN).cast(pl.Int64).to_numpy()
        want = degree_class(np.asarray(degrees), self.lows)
        pick = np.empty(n, dtype=np.int64)
        for c in np.unique(want):
            at = np.flatnonzero(want == c)
            rows = np.flatnonzero(pool_class == c)
            if rows.size == 0:
                rows = np.arange(pool.height)  # no row of this class: fall back to the marginal
            pick[at] = rows[rng.integers(0, rows.size, size=at.size)]
        return pool.select(names)[pick.tolist()] if n else pool.select(names).head(0)


def attribute_schema(schema: Schema, lows: np.ndarray) -> Schema:
    """The node-attribute table's schema: the attribute columns and the public degree classes."""
    dc = Column(name=DEGREE_CLASS_COLUMN, type="categorical", categories=tuple(str(i) for i in range(lows.size)))
    return Schema(kind="tabular", name="graph node-attribute table", columns=(*schema.columns, dc))


def fit_node_attributes(graph: GraphData, schema: Schema, rho: float, degree_classes: np.ndarray,
                        *, spend: PrivacySpend, progress: Progress | None = None) -> NodeAttributeModel:
    """MST on one row per node (attributes + degree class) with ``rho / 16`` (group privacy, see above).

    ``degree_classes`` are the public class lower bounds (``degree_class_lows``); ``spend`` is what
    MST's own card reports (the caller's card states the real accounting).
    """
    from privacy.generators.tabular.mst import MSTGenerator

    if graph.nodes is None or not schema.columns:
        raise InputError("node attributes need a node table and attribute columns in the schema")
    if not schema.gspec.public_nodes:
        raise InputError("node attributes with nodes: bought are not supported yet (declare the node set public)")
    lows = np.asarray(degree_classes, dtype=np.int64)
    cls = degree_class(graph.degrees(), lows)
    table = graph.nodes.with_columns(pl.Series(DEGREE_CLASS_COLUMN, [str(int(c)) for c in cls], dtype=pl.Utf8))
    rho_mst = float(rho) / ATTRIBUTE_GROUP ** 2
    model = MSTGenerator().fit(table, attribute_schema(schema, lows), spend, rho=rho_mst, progress=progress)
    return NodeAttributeModel(model=model, columns=tuple(schema.columns), lows=lows, rho=float(rho), rho_mst=rho_mst)
