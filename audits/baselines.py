"""Non-private reference generators that calibrate the membership audits (tests and benchmarks).

They are not in the generator registry, no policy can allow them, and they claim no guarantee:
they exist so that the audits can be shown to catch what they must catch.

- ``CopyRefitter``: the leakiest generator, its training rows;
- ``NoisyCopyRefitter``: training rows with small noise on numeric columns (memorisation that
  defeats exact-match checks);
- ``GaussianCopulaRefitter``: the sdv family's Gaussian copula (the ``copulas`` library) with
  kernel-density marginals, fitted without DP. It overfits less than one might think: its
  marginal smoothing and single correlation matrix leave little of any one record (measured in
  bench/membership.py), and its sampler is slow beyond a few thousand rows;
- ``CARTRefitter``: sequential CART synthesis as synthpop does it by default (Nowok et al. 2016):
  each column drawn from the training values in the leaf of a tree fitted on the columns before
  it (minimum leaf size 5), without DP: the widely used non-private method, and one that overfits.
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


@dataclass(frozen=True)
class CARTRefitter:
    """Sequential CART synthesis (synthpop's default method), no DP.

    Column 1 is a bootstrap of its training values; column j is drawn, for each synthetic row, from
    the training rows in the same leaf of a tree (classification for categorical columns,
    regression for numeric ones, ``min_samples_leaf`` rows at least) fitted on columns 1..j-1.
    """

    name: str = "cart (no DP)"
    min_samples_leaf: int = 5

    def fit_sample(self, data: pl.DataFrame, schema: Schema, n: int, seed: int) -> pl.DataFrame:
        """Fit the trees on ``data`` and draw ``n`` rows."""
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        rng = np.random.default_rng(seed)
        cols = list(schema.columns)
        encoded = []
        for c in cols:
            s = data.get_column(c.name)
            if c.is_numeric:
                encoded.append(s.cast(pl.Float64).to_numpy())
            else:
                index = {v: i for i, v in enumerate(c.categories)}
                encoded.append(np.array([index[v] for v in s.cast(pl.Utf8).to_list()], dtype=np.float64))
        train = np.column_stack(encoded)
        syn = np.empty((n, len(cols)))
        syn[:, 0] = train[rng.integers(0, len(train), n), 0]
        for j in range(1, len(cols)):
            model = DecisionTreeRegressor if cols[j].is_numeric else DecisionTreeClassifier
            tree = model(min_samples_leaf=self.min_samples_leaf, random_state=seed).fit(train[:, :j], train[:, j])
            leaf_train, leaf_syn = tree.apply(train[:, :j]), tree.apply(syn[:, :j])
            order = np.argsort(leaf_train, kind="stable")
            leaves, starts, counts = np.unique(leaf_train[order], return_index=True, return_counts=True)
            pos = np.searchsorted(leaves, leaf_syn)
            # a synthetic row always lands in a leaf that holds training rows: the tree is the same
            donor = order[starts[pos] + (rng.random(n) * counts[pos]).astype(int)]
            syn[:, j] = train[donor, j]
        out = []
        for k, c in enumerate(cols):
            x = syn[:, k]
            if c.is_numeric:
                out.append(pl.Series(c.name, x).cast(data.schema[c.name]))
            else:
                out.append(pl.Series(c.name, [c.categories[int(i)] for i in x]).cast(data.schema[c.name]))
        return pl.DataFrame(out)
