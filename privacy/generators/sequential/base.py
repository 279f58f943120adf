"""The sequential generator protocol: fit on entities' sequences, sample whole entities."""

from __future__ import annotations

from typing import Protocol

from privacy.generators.tabular.base import GeneratorCard, Progress
from privacy.schema import Schema
from privacy.sequences import SequenceData
from privacy.spend import PrivacySpend

__all__ = ["FittedSequenceGenerator", "GeneratorCard", "Progress", "SequenceGenerator"]


class FittedSequenceGenerator(Protocol):
    card: GeneratorCard

    #: the model's DP estimate of the number of training entities (post-processing of noisy counts)
    @property
    def estimated_rows(self) -> int: ...

    def sample(self, n: int, seed: int) -> SequenceData:
        """Draw ``n`` synthetic entities with their events; same seed, same output. No budget.

        Entity keys are fresh ("1".."n" as text), never real keys; order values are integers in the
        schema's bounds (days since 1970-01-01 for dates), at most ``max_events`` events each, gaps
        within [gap_min, gap_max]; every column in its public domain (nulls only where nullable).
        """
        ...


class SequenceGenerator(Protocol):
    name: str

    def fit(
        self, data: SequenceData, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
    ) -> FittedSequenceGenerator:
        """Fit on the conformed training entities, spending at most ``spend`` (entity-level DP)."""
        ...
