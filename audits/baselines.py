"""Non-private reference generators that calibrate the membership audits (tests and benchmarks).

They are not in the generator registry, no policy can allow them, and they claim no guarantee:
they exist so that the audits can be shown to catch what they must catch.

- ``CopyRefitter``: the leakiest generator, its training rows;
- ``NoisyCopyRefitter``: training rows with small noise on numeric columns (memorisation that
  defeats exact-match checks);
- ``GaussianCopulaRefitter``: the sdv family's Gaussian copula (the ``copulas`` library) with
  kernel-density marginals, fitted without DP: an ordinary generator that overfits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from privacy.schema import Schema


@dataclass(frozen=True)
class CopyRefitter:
    """Returns its training rows (resampled to ``n``)."""

    name: str = "copy"

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        """The training rows themselves."""
        return data if n == data.height else data.sample(n, with_replacement=n > data.height, seed=seed)


@dataclass(frozen=True)
class NoisyCopyRefitter:
    """Training rows with Gaussian noise of ``scale`` x the schema's range on the numeric columns."""

    name: str = "noisy-copy"
    scale: float = 0.02

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        """Copies with noise, clipped to the schema's bounds."""
        rng = np.random.default_rng(seed)
        out = CopyRefitter().fit_sample(data, schema, n, seed)
        cols = []
        for c in schema.columns:
            s = out.get_column(c.name)
            if c.is_numeric:
                assert c.min is not None and c.max is not None
                x = s.cast(pl.Float64).to_numpy() + rng.normal(0, self.scale * (c.max - c.min), len(s))
                x = np.clip(x, c.min, c.max)
                s = pl.Series(c.name, np.round(x) if c.type == "integer" else x).cast(s.dtype)
            cols.append(s)
        return pl.DataFrame(cols)


@dataclass(frozen=True)
class GaussianCopulaRefitter:
    """A Gaussian copula (``copulas.multivariate.GaussianMultivariate``) with kernel-density marginals,
    no DP. Categorical columns enter as their category codes and are rounded back."""

    name: str = "gaussian-copula (no DP)"

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        """Fit on ``data`` and sample ``n`` rows."""
        from copulas.multivariate import GaussianMultivariate
        from copulas.univariate import GaussianKDE

        frame = {}
        for c in schema.columns:
            s = data.get_column(c.name)
            if c.is_numeric:
                frame[c.name] = s.cast(pl.Float64).to_numpy()
            else:
                index = {v: i for i, v in enumerate(c.categories)}
                frame[c.name] = np.array([index[v] for v in s.cast(pl.Utf8).to_list()], dtype=np.float64)
        import pandas as pd

        model = GaussianMultivariate(distribution=GaussianKDE, random_state=seed)
        model.fit(pd.DataFrame(frame))
        sampled = model.sample(n)
        cols = []
        for c in schema.columns:
            x = sampled[c.name].to_numpy(dtype=np.float64)
            if c.is_numeric:
                assert c.min is not None and c.max is not None
                x = np.clip(x, c.min, c.max)
                dtype = data.schema[c.name]
                cols.append(pl.Series(c.name, np.round(x) if c.type == "integer" else x).cast(dtype))
            else:
                codes = np.clip(np.round(x), 0, len(c.categories) - 1).astype(int)
                cols.append(pl.Series(c.name, [c.categories[i] for i in codes]).cast(data.schema[c.name]))
        return pl.DataFrame(cols)
