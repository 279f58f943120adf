"""A generator for the retraining audits' tests that ignores its data (0-DP); the leaky baselines live
in ``audits.baselines``. Module-level, so that worker processes can unpickle it."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from privacy.schema import Schema


@dataclass(frozen=True)
class IgnoringRefitter:
    """A 0-DP generator: samples from a fixed public table and never looks at its data."""

    public: pl.DataFrame
    name: str = "ignoring"

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        del data
        return self.public.sample(n, with_replacement=True, seed=seed)
