"""Structural fidelity of a synthetic graph against the real training graph (audit "fidelity").

Each component compares one structural property of the synthetic graph with the real *training*
graph (what the generator saw); each is reported as an info metric with its similarity in [0, 1]
in ``details``, and ``graph_fidelity_score``, the mean of those similarities, is gated against
``policy.thresholds.graph_fidelity_min``:

==============================  ===============================================  ==========================
metric                          measures                                         similarity
==============================  ===============================================  ==========================
degree_ks                       KS statistic of the degree distributions         1 - KS
                                (directed: mean of the in- and out-degree KS)
degree_emd                      earth mover's distance of the degree             not in the score
                                distributions / the real mean degree
clustering_rel_error            average clustering coefficient (every node,      1 - min(1, error)
                                0 below degree 2), relative error
triangle_rel_error              triangle count, relative error                   1 - min(1, error)
assortativity_abs_diff          degree assortativity, absolute difference        1 - min(1, difference)
path_length_ks                  KS statistic of the shortest-path lengths from   1 - KS
                                seeded sources, unreachable pairs as "infinite"
modularity_rel_error            modularity of the Louvain partition (fixed       1 - min(1, error)
                                seed), relative error
spectrum_distance               top-k adjacency eigenvalues: ||l_s - l_r|| /     1 - min(1, distance)
                                ||l_r||
component_count_rel_error       number of connected components, relative error   1 - min(1, error)
largest_component_share_diff    share of nodes in the largest component,         1 - difference
                                absolute difference
node_<attr>_tvd                 node attribute marginal, total variation dist.   1 - TVD
node_<attr>_degree_tvd          attribute x public degree class, joint TVD       1 - TVD
graph_fidelity_score            mean of the similarities (gate)                  ``graph_fidelity_min``
==============================  ===============================================  ==========================

Directed graphs: the degree components use in- and out-degrees, assortativity is the out-degree of
an edge's source against the in-degree of its target (networkx's default for directed graphs), and
clustering, triangles, paths, modularity, the spectrum and (weak) components use the undirected
view (``u -> v`` and ``v -> u`` are one undirected edge).

Relative errors are ``|s - r| / |r|`` (0 when both are 0, 1 when only the real value is 0). A
synthetic graph over a different node count (a bought node set) is compared by the same
distributions and shares. The figures are statistics of the real training graph (not DP): the
document carries the comparisons only, never the real values themselves. Everything is seeded by
the policy's audit seed; a library failure in one component makes it NaN and fails the score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.sparse import csgraph
from scipy.sparse.linalg import eigsh

from audits.context import AuditContext
from audits.graph.membership import check_graphs, undirected_adjacency
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.generators.graph.common import degree_class_lows
from privacy.graphs import GraphData
from privacy.schema import Schema

#: BFS sources per graph for the path-length distribution
PATH_SOURCES = 64
#: top adjacency eigenvalues compared
SPECTRUM_K = 32
#: below this many nodes the spectrum is computed densely
_DENSE_SPECTRUM = 1500


@dataclass(frozen=True)
class Component:
    """One compared property: its reported value, the similarity it adds to the score (None: not in
    the score), the meaning, and synthetic-side details."""

    name: str
    value: float
    similarity: float | None
    meaning: str
    details: dict[str, Any]


def run_graph_fidelity(
    real_train: GraphData,
    real_holdout: GraphData,
    synthetic: GraphData,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Compare ``synthetic`` with ``real_train`` (see the module docstring)."""
    check_graphs(real_train, real_holdout, synthetic, schema)
    if ctx is not None and ctx.progress is not None:
        ctx.progress("graph fidelity: degrees, clustering, paths, communities, spectrum, components")
    components = compare_graphs(real_train, synthetic, seed=policy.audit.seed)
    components += attribute_components(real_train, synthetic, schema)
    metrics = [Metric(name=c.name, value=c.value, goal="minimize", role="info", meaning=c.meaning,
                      details={**c.details, "similarity": None if c.similarity is None else _r(c.similarity)})
               for c in components]
    sims = [c.similarity for c in components if c.similarity is not None]
    score = float(np.mean(sims)) if sims and not any(math.isnan(s) for s in sims) else math.nan
    notes: tuple[str, ...] = ()
    if synthetic.directed:
        notes = ("directed graph: degrees use in- and out-degrees; clustering, triangles, paths, modularity, spectrum "
                 "and components use the undirected view",)
    metrics.append(Metric(
        name="graph_fidelity_score", value=score, goal="maximize", threshold=policy.thresholds.graph_fidelity_min,
        meaning="How closely the synthetic graph's structure (degrees, clustering, triangles, assortativity, path "
                "lengths, communities, spectrum, components) matches the real training graph: the mean of the "
                "components' similarities, 1 is identical, 0 nothing alike.",
        details={"components": {c.name: None if c.similarity is None else _r(c.similarity)
                                for c in components if c.similarity is not None}}))
    return AuditResult(audit="fidelity", metrics=tuple(metrics), notes=notes)


def attribute_components(real: GraphData, syn: GraphData, schema: Schema) -> list[Component]:
    """Node attributes, when the schema has them: per attribute ``1 - TVD`` of its marginal, and of
    its joint distribution with the public log-spaced degree class (do hubs carry the right values?).

    Categories come from the schema; numeric attributes are binned on the schema's public edges.
    """
    if not schema.columns or real.nodes is None or syn.nodes is None:
        return []
    # the generators' own public degree classes, so the audit measures what they model
    edges_ = degree_class_lows(max(real.n_nodes, syn.n_nodes))

    def cells(g: GraphData, name: str) -> tuple[np.ndarray, int]:
        col = schema.column(name)
        assert g.nodes is not None
        values = g.nodes.get_column(name)
        if col.is_numeric:
            bins = np.asarray(col.bin_edges())
            x = np.clip(values.cast(float).to_numpy(), bins[0], bins[-1])
            return np.clip(np.searchsorted(bins, x, side="right") - 1, 0, len(bins) - 2), len(bins) - 1
        index = {c: i for i, c in enumerate(col.categories)}
        return np.asarray([index.get(str(v), 0) for v in values.to_list()], dtype=np.int64), len(col.categories)

    def tvd(a: np.ndarray, b: np.ndarray, size: int) -> float:
        pa = np.bincount(a, minlength=size) / max(len(a), 1)
        pb = np.bincount(b, minlength=size) / max(len(b), 1)
        return float(0.5 * np.abs(pa - pb).sum())

    out = []
    cls_r = np.searchsorted(edges_, real.degrees(), side="right") - 1
    cls_s = np.searchsorted(edges_, syn.degrees(), side="right") - 1
    for c in schema.columns:
        def one(c: Any = c) -> list[Component]:
            r, size = cells(real, c.name)
            s_, _ = cells(syn, c.name)
            marg = tvd(r, s_, size)
            joint = tvd(r * len(edges_) + cls_r, s_ * len(edges_) + cls_s, size * len(edges_))
            return [
                Component(f"node_{c.name}_tvd", marg, 1.0 - marg,
                          f"Total variation distance between the real and synthetic distributions of the node "
                          f"attribute {c.name!r}; 0 is identical, 1 disjoint.", {}),
                Component(f"node_{c.name}_degree_tvd", joint, 1.0 - joint,
                          f"Total variation distance between the joint distributions of {c.name!r} and the "
                          "node's degree class (1, 2-3, 4-7, ...): whether well-connected nodes carry the right "
                          "values; 0 is identical.", {}),
            ]
        try:
            out += one()
        except Exception as exc:  # a failure becomes a NaN component that fails the score
            out.append(Component(f"node_{c.name}_tvd", math.nan, math.nan, "node attribute comparison failed",
                                 {"error": f"{type(exc).__name__}: {exc}"}))
    return out


# --------------------------------------------------------------------------------------------
# the statistics


def _r(x: float) -> float:
    return round(float(x), 6)


def rel_error(real: float, syn: float) -> float:
    """``|s - r| / |r|``; 0 when both are 0, 1 when only the real value is 0."""
    if real == 0:
        return 0.0 if syn == 0 else 1.0
    return abs(syn - real) / abs(real)


def triangles_per_node(a: sp.csr_matrix) -> np.ndarray:
    """Triangles through each node of the undirected 0/1 adjacency ``a``."""
    return np.asarray((a @ a).multiply(a).sum(axis=1)).ravel() / 2.0


def average_clustering(a: sp.csr_matrix) -> float:
    """Mean local clustering coefficient over every node (0 below degree 2), as networkx's."""
    if a.shape[0] == 0:
        return 0.0
    deg = np.asarray(a.sum(axis=1)).ravel()
    tri = triangles_per_node(a)
    pairs = deg * (deg - 1) / 2.0
    local = np.divide(tri, pairs, out=np.zeros_like(tri), where=pairs > 0)
    return float(local.mean())


def triangle_count(a: sp.csr_matrix) -> float:
    return float(triangles_per_node(a).sum() / 3.0)


def degree_assortativity(g: GraphData) -> float:
    """Pearson correlation of the degrees at the two ends of the edges (NaN when undefined: no edges
    or all degrees equal). Undirected: each edge counted in both orientations with total degrees;
    directed: out-degree of the source against in-degree of the target."""
    e = g.edges
    if len(e) == 0:
        return math.nan
    if g.directed:
        x, y = g.out_degrees()[e[:, 0]], g.in_degrees()[e[:, 1]]
    else:
        d = g.degrees()
        x = np.concatenate([d[e[:, 0]], d[e[:, 1]]])
        y = np.concatenate([d[e[:, 1]], d[e[:, 0]]])
    x, y = x.astype(np.float64), y.astype(np.float64)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return math.nan
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def path_lengths(a: sp.csr_matrix, sources: np.ndarray) -> np.ndarray:
    """Shortest-path lengths (hops) from each source to every other node; ``inf`` where unreachable."""
    if len(sources) == 0:
        return np.zeros(0)
    dist = csgraph.shortest_path(a, method="D", unweighted=True, indices=sources)
    mask = np.ones(dist.shape, dtype=bool)
    mask[np.arange(len(sources)), sources] = False
    return dist[mask]


def path_ks(real: np.ndarray, syn: np.ndarray) -> float:
    """KS distance of two path-length samples with ``inf`` (unreachable) as a value above every length."""
    if real.size == 0 or syn.size == 0:
        return 0.0 if real.size == syn.size else 1.0
    big = max(np.nanmax(np.where(np.isinf(real), 0, real)), np.nanmax(np.where(np.isinf(syn), 0, syn))) + 1
    return float(stats.ks_2samp(np.where(np.isinf(real), big, real), np.where(np.isinf(syn), big, syn)).statistic)


def louvain_modularity(a: sp.csr_matrix, seed: int) -> float:
    """Modularity of the Louvain partition (networkx, fixed seed) of the undirected graph; 0 without edges."""
    import networkx as nx

    if a.nnz == 0:
        return 0.0
    g = nx.from_scipy_sparse_array(a)
    parts = nx.community.louvain_communities(g, seed=seed)
    return float(nx.community.modularity(g, parts))


def top_eigenvalues(a: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    """The ``k`` largest eigenvalues of the symmetric adjacency ``a``, descending (zero-padded when the
    graph has fewer nodes)."""
    n = a.shape[0]
    if n <= _DENSE_SPECTRUM or k >= n - 1:
        vals = np.linalg.eigvalsh(a.toarray())[::-1][:k]
    else:
        v0 = np.random.default_rng(seed).random(n)
        vals = np.sort(eigsh(a.astype(np.float64), k=k, which="LA", v0=v0, return_eigenvectors=False))[::-1]
    out = np.zeros(k)
    out[: len(vals)] = vals
    return out


def components(a: sp.csr_matrix) -> tuple[int, float]:
    """Number of connected components (isolated nodes count) and the largest one's share of nodes."""
    n = a.shape[0]
    count, labels = csgraph.connected_components(a, directed=False)
    return int(count), float(np.bincount(labels).max() / n) if n else 0.0


def _guard(fn: Callable[[], Component], name: str, meaning: str) -> Component:
    try:
        return fn()
    except Exception as exc:  # a library failure becomes a NaN component that fails the score
        return Component(name, math.nan, math.nan, meaning, {"error": f"{type(exc).__name__}: {exc}"})


_MEANINGS = {
    "degree_ks": "Largest gap between the real and synthetic degree distributions (cumulative, Kolmogorov-Smirnov; "
                 "for directed graphs the mean of in- and out-degrees); 0 is identical, 1 disjoint.",
    "degree_emd": "Average number of edges a node's degree must move to turn one degree distribution into the "
                  "other (earth mover's distance), divided by the real mean degree; 0 is identical.",
    "clustering_rel_error": "Relative error of the average clustering coefficient (how often two neighbours of a "
                            "node are linked themselves); 0 is identical.",
    "triangle_rel_error": "Relative error of the number of triangles (three mutually linked nodes); 0 is identical.",
    "assortativity_abs_diff": "Absolute difference of degree assortativity (whether hubs link to hubs, in [-1, 1]); "
                              "0 is identical.",
    "path_length_ks": "Largest gap between the distributions of shortest-path lengths (hops from a sample of nodes, "
                      "unreachable pairs counted as infinitely far); 0 is identical.",
    "modularity_rel_error": "Relative error of modularity (how strongly the graph splits into communities, Louvain "
                            "partition with a fixed seed); 0 is identical.",
    "spectrum_distance": "Distance between the largest adjacency eigenvalues (hubs, core density and community "
                         "structure), relative to the real ones' size; 0 is identical.",
    "component_count_rel_error": "Relative error of the number of connected pieces (isolated nodes count as "
                                 "pieces); 0 is identical.",
    "largest_component_share_diff": "Difference in the share of nodes in the largest connected piece; 0 is "
                                    "identical.",
}


def compare_graphs(real: GraphData, syn: GraphData, *, seed: int = 0) -> list[Component]:
    """Every component of the module docstring, ``real`` against ``syn``."""
    a_r, a_s = undirected_adjacency(real), undirected_adjacency(syn)
    out: list[Component] = []

    def degrees() -> Component:
        kinds = [("in", real.in_degrees(), syn.in_degrees()), ("out", real.out_degrees(), syn.out_degrees())] \
            if real.directed else [("total", real.degrees(), syn.degrees())]
        ks = [float(stats.ks_2samp(r, s).statistic) for _, r, s in kinds]
        value = float(np.mean(ks))
        return Component("degree_ks", value, 1.0 - value, _MEANINGS["degree_ks"],
                         {"per_kind": {k: _r(v) for (k, _, _), v in zip(kinds, ks, strict=True)},
                          "synthetic_mean_degree": _r(syn.degrees().mean())})

    def emd() -> Component:
        kinds = [(real.in_degrees(), syn.in_degrees()), (real.out_degrees(), syn.out_degrees())] \
            if real.directed else [(real.degrees(), syn.degrees())]
        vals = []
        for r, s in kinds:
            scale = max(float(r.mean()), 1e-12)
            vals.append(float(stats.wasserstein_distance(r, s)) / scale)
        return Component("degree_emd", float(np.mean(vals)), None, _MEANINGS["degree_emd"], {})

    def clustering() -> Component:
        s = average_clustering(a_s)
        err = rel_error(average_clustering(a_r), s)
        return Component("clustering_rel_error", err, 1.0 - min(1.0, err), _MEANINGS["clustering_rel_error"],
                         {"synthetic": _r(s)})

    def triangles() -> Component:
        s = triangle_count(a_s)
        err = rel_error(triangle_count(a_r), s)
        return Component("triangle_rel_error", err, 1.0 - min(1.0, err), _MEANINGS["triangle_rel_error"],
                         {"synthetic": int(s)})

    def assortativity() -> Component:
        r, s = degree_assortativity(real), degree_assortativity(syn)
        # undefined (no edges, or every end has the same degree): no correlation, 0
        diff = abs((0.0 if math.isnan(s) else s) - (0.0 if math.isnan(r) else r))
        return Component("assortativity_abs_diff", diff, 1.0 - min(1.0, diff), _MEANINGS["assortativity_abs_diff"],
                         {"synthetic": None if math.isnan(s) else _r(s)})

    def paths() -> Component:
        rng = np.random.default_rng([seed, 701])
        src_r = np.sort(rng.choice(real.n_nodes, size=min(PATH_SOURCES, real.n_nodes), replace=False))
        # the same sources when the node sets agree (so a copy compares exactly); else a seeded draw
        src_s = src_r if syn.n_nodes == real.n_nodes else np.sort(
            rng.choice(syn.n_nodes, size=min(PATH_SOURCES, syn.n_nodes), replace=False))
        d_r, d_s = path_lengths(a_r, src_r), path_lengths(a_s, src_s)
        ks = path_ks(d_r, d_s)
        finite = d_s[np.isfinite(d_s)]
        return Component("path_length_ks", ks, 1.0 - ks, _MEANINGS["path_length_ks"],
                         {"sources": int(len(src_s)),
                          "synthetic_unreachable_share": _r(float(np.isinf(d_s).mean())) if d_s.size else None,
                          "synthetic_mean_finite_length": _r(float(finite.mean())) if finite.size else None})

    def modularity() -> Component:
        s = louvain_modularity(a_s, seed)
        err = rel_error(louvain_modularity(a_r, seed), s)
        return Component("modularity_rel_error", err, 1.0 - min(1.0, err), _MEANINGS["modularity_rel_error"],
                         {"synthetic": _r(s), "partition": f"Louvain, networkx, seed {seed}"})

    def spectrum() -> Component:
        k = max(1, min(SPECTRUM_K, real.n_nodes - 2, syn.n_nodes - 2))
        l_r, l_s = top_eigenvalues(a_r, k, seed), top_eigenvalues(a_s, k, seed)
        norm = float(np.linalg.norm(l_r))
        dist = float(np.linalg.norm(l_s - l_r)) / norm if norm > 0 else (0.0 if not l_s.any() else 1.0)
        return Component("spectrum_distance", dist, 1.0 - min(1.0, dist), _MEANINGS["spectrum_distance"],
                         {"eigenvalues": k, "matrix": "adjacency of the undirected view",
                          "synthetic_largest": _r(float(l_s[0]))})

    c_r, c_s = components(a_r), components(a_s)

    def count() -> Component:
        err = rel_error(c_r[0], c_s[0])
        return Component("component_count_rel_error", err, 1.0 - min(1.0, err),
                         _MEANINGS["component_count_rel_error"], {"synthetic": c_s[0]})

    def largest() -> Component:
        diff = abs(c_s[1] - c_r[1])
        return Component("largest_component_share_diff", diff, 1.0 - min(1.0, diff),
                         _MEANINGS["largest_component_share_diff"], {"synthetic": _r(c_s[1])})

    for name, fn in (("degree_ks", degrees), ("degree_emd", emd), ("clustering_rel_error", clustering),
                     ("triangle_rel_error", triangles), ("assortativity_abs_diff", assortativity),
                     ("path_length_ks", paths), ("modularity_rel_error", modularity),
                     ("spectrum_distance", spectrum), ("component_count_rel_error", count),
                     ("largest_component_share_diff", largest)):
        out.append(_guard(fn, name, _MEANINGS[name]))
    return out
