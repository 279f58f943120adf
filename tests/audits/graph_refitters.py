"""Graph "generators" for the graph audits' tests: a leaky one that returns its training graph and 0-DP
ones that never look at individual edges. Module-level, so that worker processes can unpickle them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privacy.graphs import GraphData, canonical_edges
from privacy.schema import Schema


def configuration_model(g: GraphData, seed: int) -> GraphData:
    """A random graph over ``g``'s nodes with (about) ``g``'s degree sequence: the edge ends (stubs;
    for directed graphs out-stubs and in-stubs) are paired at random, then self-loops and repeated
    pairs are dropped (a few, on sparse graphs). No edge of ``g`` is kept on purpose."""
    rng = np.random.default_rng(seed)
    if g.directed:
        src = np.repeat(np.arange(g.n_nodes), g.out_degrees())
        dst = rng.permutation(np.repeat(np.arange(g.n_nodes), g.in_degrees()))
        pairs = np.stack([src, dst], axis=1)
    else:
        stubs = rng.permutation(np.repeat(np.arange(g.n_nodes), g.degrees()))
        pairs = stubs[: len(stubs) // 2 * 2].reshape(-1, 2)
    return g.with_edges(pairs)


def erdos_renyi(g: GraphData, m: int, seed: int) -> GraphData:
    """``m`` uniform random edges (fewer after removing repeats) over ``g``'s nodes."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, g.n_nodes, size=(int(m * 1.05) + 8, 2))
    edges = canonical_edges(pairs, g.directed)
    edges = edges[rng.permutation(len(edges))[:m]]
    return g.with_edges(edges)


@dataclass(frozen=True)
class GraphCopyRefitter:
    """The leakiest graph generator: its training graph, unchanged."""

    name: str = "copy (graph)"

    def fit_sample(self, data: GraphData, schema: Schema, n: int, seed: int) -> GraphData:
        del schema, seed
        assert n == data.n_nodes
        return data.with_edges(data.edges.copy())


@dataclass(frozen=True)
class IgnoringGraphRefitter:
    """A 0-DP graph generator: a configuration model of a fixed public graph, never its training edges."""

    public: GraphData
    name: str = "ignoring (graph)"

    def fit_sample(self, data: GraphData, schema: Schema, n: int, seed: int) -> GraphData:
        del schema
        assert n == data.n_nodes == self.public.n_nodes
        return configuration_model(self.public, seed)


@dataclass(frozen=True)
class ErdosRenyiRefitter:
    """A generator that reads only the number of edges (sensitivity 1) and draws an Erdos-Renyi graph."""

    name: str = "erdos-renyi (graph)"

    def fit_sample(self, data: GraphData, schema: Schema, n: int, seed: int) -> GraphData:
        del schema
        assert n == data.n_nodes
        return erdos_renyi(data, data.n_edges, seed)
