"""The graph generator protocol: fit on the training graph (edge-level DP), sample whole graphs."""

from __future__ import annotations

from typing import Protocol

from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.graphs import GraphData
from privacy.schema import Schema
from privacy.spend import PrivacySpend

__all__ = ["FittedGraphGenerator", "GeneratorCard", "GraphGenerator", "Progress"]


class FittedGraphGenerator(Protocol):
    card: GeneratorCard

    #: the number of nodes a sample has: the public node count, or the DP estimate when the
    #: schema's node set is bought (post-processing of a noisy count)
    @property
    def estimated_rows(self) -> int: ...

    def sample(self, n: int, seed: int) -> GraphData:
        """Draw one synthetic graph over ``n`` nodes; same seed, same output. No budget.

        With a public node set ``n`` must be the public node count (anything else is an
        ``InputError``) and the synthetic graph uses the public node ids; with a bought node set the
        ids are fresh ("0".."n-1"). Edges are canonical (``privacy.graphs.canonical_edges``): no
        self-loops, no duplicates. Node attributes, when the schema has them, are in ``nodes``.
        """
        ...


class GraphGenerator(Protocol):
    name: str

    def fit(
        self, data: GraphData, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
    ) -> FittedGraphGenerator:
        """Fit on the conformed training graph, spending at most ``spend`` (edge-level DP)."""
        ...
