"""Shadow fits for the audits that retrain: the generator refitted on holdout rows, in parallel.

A shadow fit reads real holdout rows (never the training split) and is never released; like every
audit it charges no budget (DESIGN section 3) and its outcome is evidence, not a guarantee.

Each fit is summarised, inside its worker, by features of the synthetic rows relative to each
target record, so that only small arrays cross process boundaries:

- Gower (L1) distances from the target to its 1st, 2nd and 5th nearest synthetic rows, and the
  number of synthetic rows within distance 0 (exact copies), 0.5 and 1.5 of it;
- the share of synthetic rows in the target's cell of every 1-way and 2-way marginal, and of the
  full joint cell (the schema's public discretisation: what marginal-based generators preserve).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, TypeVar

import numpy as np
import polars as pl
from joblib import Parallel, delayed
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from audits.context import Refitter
from audits.membership import gower_matrix
from privacy.generators.tabular.discretize import Discretizer
from privacy.schema import Schema

T = TypeVar("T")

#: radii (Gower distance, summed over columns) whose synthetic-neighbour counts are features
_RADII = (1e-9, 0.5, 1.5)
_KNN = 5


@dataclass(frozen=True)
class ShadowFit:
    """One shadow fit to run: its training rows, how many rows to sample, and the sample seed."""

    data: pl.DataFrame
    n: int
    seed: int


def workers_for(setting: int) -> int:
    """Worker processes for shadow fits: the policy's number, or one per core when it is 0."""
    return setting if setting > 0 else max(1, os.cpu_count() or 1)


def run_shadow_fits(
    refitter: Refitter,
    fits: Sequence[ShadowFit],
    targets: pl.DataFrame,
    schema: Schema,
    *,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Fit and sample every shadow fit (in ``workers`` processes); features of shape (fits, targets, F).

    ``progress(done, total)`` is called as fits complete, in order.
    """
    return np.stack(in_workers(_fit_and_featurize, [(refitter, f, targets, schema) for f in fits],
                               workers=workers, progress=progress))


def in_workers(fn: Callable[..., T], calls: Sequence[tuple[Any, ...]], *, workers: int,
               progress: Callable[[int, int], None] | None = None) -> list[T]:
    """``[fn(*args) for args in calls]``, in ``workers`` loky processes when there are several.

    Results come back in order; ``progress(done, total)`` is called as they do. The worker pool is
    shut down before returning: idle loky workers otherwise linger for minutes, and a process that
    exits (a CLI command, a benchmark's child) waits for them.
    """
    total = len(calls)
    if workers <= 1 or total <= 1:
        results: Iterator[T] = (fn(*args) for args in calls)
    else:
        results = Parallel(n_jobs=min(workers, total), backend="loky", return_as="generator")(
            delayed(fn)(*args) for args in calls)
    out = []
    try:
        for i, value in enumerate(results):
            out.append(value)
            if progress is not None:
                progress(i + 1, total)
    finally:
        if workers > 1 and total > 1:
            from joblib.externals.loky import reusable_executor

            executor = getattr(reusable_executor, "_executor", None)
            if executor is not None:
                executor.shutdown(wait=True)
    return out


def _fit_and_featurize(refitter: Refitter, fit: ShadowFit, targets: pl.DataFrame, schema: Schema) -> np.ndarray:
    # one BLAS thread per worker: the workers already use every core
    with threadpool_limits(1):
        synthetic = refitter.fit_sample(fit.data, schema, fit.n, fit.seed)
    return target_features(targets, synthetic, schema)


def target_features(targets: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema) -> np.ndarray:
    """Features of ``synthetic`` relative to each target row: shape (targets, F), see the module doc."""
    names = schema.names
    syn = synthetic.select(names)
    x_syn = gower_matrix(syn, schema, names)
    x_tgt = gower_matrix(targets.select(names), schema, names)
    k = min(_KNN, x_syn.shape[0])
    nn = NearestNeighbors(n_neighbors=k, metric="manhattan").fit(x_syn)
    dist, _ = nn.kneighbors(x_tgt)
    pick = [0, min(1, k - 1), k - 1]
    dist_feats = dist[:, pick]
    counts = np.stack(
        [np.array([len(r) for r in nn.radius_neighbors(x_tgt, radius=rad, return_distance=False)]) for rad in _RADII],
        axis=1,
    ) / max(1, x_syn.shape[0])

    disc = Discretizer.from_schema(schema)
    c_syn = disc.encode(syn)
    c_tgt = disc.encode(targets.select(names))
    eq = c_syn[None, :, :] == c_tgt[:, None, :]  # (targets, rows, columns)
    one_way = eq.mean(axis=1)
    pairs = list(combinations(range(len(names)), 2))
    two_way = np.stack([(eq[:, :, i] & eq[:, :, j]).mean(axis=1) for i, j in pairs], axis=1) if pairs else np.zeros(
        (len(c_tgt), 0)
    )
    joint = eq.all(axis=2).mean(axis=1, keepdims=True)
    return np.hstack([dist_feats, counts, one_way, two_way, joint]).astype(np.float64)


def isolated_rows(df: pl.DataFrame, schema: Schema, count: int, rng: np.random.Generator, *, pool: int = 5000) -> list[int]:
    """Indices of the ``count`` rows of ``df`` farthest (Gower, public-schema scaling) from any other row.

    Only the schema's public bounds scale the distance. Above ``pool`` rows a seeded sample is searched.
    """
    if count <= 0 or df.height < 2:
        return []
    idx = np.arange(df.height)
    if df.height > pool:
        idx = np.sort(rng.choice(df.height, size=pool, replace=False))
    x = gower_matrix(df[idx.tolist()], schema, schema.names)
    nn = NearestNeighbors(n_neighbors=2, metric="manhattan").fit(x)
    dist, _ = nn.kneighbors(x)
    # the first neighbour is the row itself (or an identical row: then the second distance is 0)
    order = np.argsort(-dist[:, 1], kind="stable")
    return [int(idx[i]) for i in order[:count]]


def balanced_inclusion(fits: int, targets: int, rng: np.random.Generator) -> np.ndarray:
    """A (2*fits, targets) 0/1 matrix: each target is in exactly ``fits`` of the rows, independently."""
    base = np.array([1] * fits + [0] * fits, dtype=np.int8)
    return np.stack([rng.permutation(base) for _ in range(targets)], axis=1) if targets else np.zeros(
        (2 * fits, 0), dtype=np.int8
    )
