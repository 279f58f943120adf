"""The tabular generator protocol and its card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from privacy.schema import Schema
from privacy.spend import PrivacySpend

#: progress callback: (message, fraction done or None)
Progress = Callable[[str, float | None], None]


@dataclass(frozen=True, kw_only=True)
class GeneratorCard:
    """What a fitted generator is and what it spent, recorded in the run and the bundle."""

    name: str
    parameters: dict[str, Any]
    library_versions: dict[str, str]
    spend: PrivacySpend
    #: how the spend was accounted, e.g. "zCDP (rho) converted to (eps, delta) by OpenDP"
    accounting: str
    #: unit of privacy, e.g. "one row of the training split (add/remove)"
    unit_of_privacy: str
    #: every data-dependent quantity and where it came from ("schema" or "DP measurement")
    domain_sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameters": self.parameters,
            "library_versions": self.library_versions,
            "spend": self.spend.as_dict(),
            "accounting": self.accounting,
            "unit_of_privacy": self.unit_of_privacy,
            "domain_sources": self.domain_sources,
            "notes": list(self.notes),
        }


class FittedGenerator(Protocol):
    card: GeneratorCard

    #: the model's DP estimate of the number of training rows (post-processing of noisy counts)
    @property
    def estimated_rows(self) -> int: ...

    def sample(self, n: int, seed: int) -> pl.DataFrame:
        """Draw ``n`` synthetic rows; columns and dtypes as the schema says. No budget."""
        ...


class TabularGenerator(Protocol):
    name: str

    def fit(
        self, data: pl.DataFrame, schema: Schema, spend: PrivacySpend, *, progress: Progress | None = None
    ) -> FittedGenerator:
        """Fit on the (conformed) training split, spending exactly ``spend``."""
        ...
