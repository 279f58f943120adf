"""Membership audit by distance to closest record (DCR) and exact matches.

A synthetic table that memorised its training rows sits closer to the training split than to an
equally large holdout split that the generator never saw. Two gate checks follow from that
(policy-thresholds.md, protocol rules 1, 4, 6 and 7):

- ``dcr_share``: the share of synthetic rows whose nearest real row is a training row rather than a
  holdout row (ties count one half). 0.5 is ideal; the gate takes the worst of the full column set
  and ``policy.audit.dcr_subsets`` random column subsets.
- ``exact_match_train_minus_holdout``: the share of synthetic rows identical to a training row minus
  the share identical to a holdout row. A copy of the training data cannot pass it, even where
  subsampling dilutes the DCR share.

The distance is Gower's: numeric columns scaled by the schema's public range (never the data's),
categorical columns 0 when equal and 1 otherwise, summed over columns. DCR is a necessary
overfitting check, not proof of privacy (protocol rule 6).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from sklearn.neighbors import NearestNeighbors

from audits.context import AuditContext
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema

#: Above this many synthetic rows DCR uses a seeded sample: the share's standard error is then at
#: most 0.005 (a tenth of the policies' margins), and on Adult (22,764 synthetic rows, 110 encoded
#: dimensions, 4 column sets) the search takes about 25 s instead of 118 s on 2 cores
#: (bench/membership.py).
MAX_SYNTHETIC_ROWS = 10_000
#: Distances within this of each other count as a tie (floating-point sums of scaled columns).
_TIE_TOLERANCE = 1e-9
_Z95 = 1.959963984540054


def run_membership(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
) -> AuditResult:
    """Distance-to-closest-record share and exact-match margin of ``synthetic`` against train/holdout.

    The training split is subsampled (seeded) to the holdout's size, so that a synthetic row with
    no memorised neighbour is equally likely to land nearer either side. ``ctx`` is unused; it is
    accepted so that every audit has the same signature.
    """
    del ctx
    check_frames(real_train, real_holdout, synthetic, schema)
    rng = np.random.default_rng([policy.audit.seed, 101])
    train, holdout = equal_size_pair(real_train, real_holdout, rng)
    syn = synthetic
    notes: list[str] = []
    if syn.height > MAX_SYNTHETIC_ROWS:
        syn = syn.sample(MAX_SYNTHETIC_ROWS, seed=_seed(rng))
        notes.append(f"DCR used a seeded sample of {MAX_SYNTHETIC_ROWS} of {synthetic.height} synthetic rows")

    names = schema.names
    variants: list[tuple[str, list[str]]] = [("all columns", names)]
    # Subsets of half the columns each, from their own stream so that they do not depend on sizes.
    subset_rng = np.random.default_rng([policy.audit.seed, 101, 1])
    size = max(1, math.ceil(len(names) / 2))
    for i in range(policy.audit.dcr_subsets):
        picked = sorted(subset_rng.choice(len(names), size=size, replace=False).tolist())
        variants.append((f"subset {i + 1}", [names[j] for j in picked]))

    rows: list[dict[str, Any]] = []
    for label, cols in variants:
        share, interval = dcr_share(train, holdout, syn, schema, cols)
        rows.append({"variant": label, "columns": cols, "share": share, "interval": list(interval)})
    worst = max(rows, key=lambda r: r["share"])
    dcr = Metric(
        name="dcr_share",
        value=worst["share"],
        goal="minimize",
        threshold=policy.thresholds.dcr_share_max,
        interval=(worst["interval"][0], worst["interval"][1]),
        gated_on="value",
        meaning=(
            "Share of synthetic rows closer to a training row than to any row of an equally large "
            "held-out set (0.5 is ideal; worst of the column sets tried)."
        ),
        details={
            "worst_variant": worst["variant"],
            "variants": [
                {**r, "share": round(r["share"], 6), "interval": [round(x, 6) for x in r["interval"]]}
                for r in rows
            ],
            # exact real row counts stay out of the (released) audit document: DESIGN rule 1
            "synthetic_rows_used": syn.height,
            "distance": "Gower: numeric |a-b|/(schema max-min), categorical 0/1, summed",
            "ties": "count 0.5",
        },
    )

    in_train = exact_match_share(syn, train)
    in_holdout = exact_match_share(syn, holdout)
    exact = Metric(
        name="exact_match_train_minus_holdout",
        value=in_train - in_holdout,
        goal="minimize",
        threshold=policy.thresholds.exact_match_margin,
        meaning=(
            "Share of synthetic rows identical to a training row minus the share identical to a "
            "held-out row (0 or below is ideal)."
        ),
        details={
            "share_equal_to_train_row": round(in_train, 6),
            "share_equal_to_holdout_row": round(in_holdout, 6),
            # exact real row counts stay out of the (released) audit document: DESIGN rule 1
            "synthetic_rows_used": syn.height,
        },
    )
    return AuditResult(audit="membership", metrics=(dcr, exact), notes=tuple(notes))


def check_frames(
    real_train: pl.DataFrame, real_holdout: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema
) -> None:
    """Raise ``InputError`` unless all three frames are non-empty and have exactly the schema's columns."""
    for label, df in (("real_train", real_train), ("real_holdout", real_holdout), ("synthetic", synthetic)):
        if not isinstance(df, pl.DataFrame):
            raise InputError(f"{label} must be a polars DataFrame, got {type(df).__name__}")
        if df.height == 0:
            raise InputError(f"{label} has no rows")
        if sorted(df.columns) != sorted(schema.names):
            missing = [c for c in schema.names if c not in df.columns]
            extra = [c for c in df.columns if c not in schema.names]
            raise InputError(
                f"{label} does not match the schema (missing: {', '.join(missing) or '-'}; "
                f"extra: {', '.join(extra) or '-'})"
            )


def equal_size_pair(
    real_train: pl.DataFrame, real_holdout: pl.DataFrame, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Subsample the larger real split (normally train) to the other's size, seeded (protocol rule 1)."""
    n = min(real_train.height, real_holdout.height)
    train = real_train if real_train.height == n else real_train.sample(n, seed=_seed(rng))
    holdout = real_holdout if real_holdout.height == n else real_holdout.sample(n, seed=_seed(rng))
    return train, holdout


def gower_matrix(df: pl.DataFrame, schema: Schema, columns: list[str]) -> np.ndarray:
    """Encode ``columns`` so that the L1 (Manhattan) distance between two rows is their Gower distance.

    Numeric columns become ``(x - min) / (max - min)`` with the schema's public bounds; categorical
    columns become one-hot vectors over the schema's categories scaled by 1/2, so that two different
    categories are at L1 distance 1 and equal ones at 0.
    """
    parts = []
    for name in columns:
        col = schema.column(name)
        s = df.get_column(name)
        if col.is_numeric:
            assert col.min is not None and col.max is not None  # Column validates numeric bounds
            x = (s.cast(pl.Float64).to_numpy() - col.min) / (col.max - col.min)
            parts.append(x.reshape(-1, 1))
        else:
            index = {c: i for i, c in enumerate(col.categories)}
            codes = np.array([index.get(v, -1) for v in s.cast(pl.Utf8).to_list()], dtype=np.int64)
            if (codes < 0).any():
                raise InputError(f"column {name!r} holds values outside the schema's categories")
            onehot = np.zeros((len(codes), len(col.categories)), dtype=np.float64)
            onehot[np.arange(len(codes)), codes] = 0.5
            parts.append(onehot)
    return np.hstack(parts)


def dcr_share(
    train: pl.DataFrame, holdout: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema, columns: list[str]
) -> tuple[float, tuple[float, float]]:
    """Share of synthetic rows nearer a train row than a holdout row (ties 0.5), with a 95% interval.

    The interval is the normal approximation over the per-row scores (0, 0.5 or 1).
    """
    x_train = gower_matrix(train, schema, columns)
    x_hold = gower_matrix(holdout, schema, columns)
    x_syn = gower_matrix(synthetic, schema, columns)
    d_train = _nearest_distance(x_train, x_syn)
    d_hold = _nearest_distance(x_hold, x_syn)
    score = np.where(np.abs(d_train - d_hold) <= _TIE_TOLERANCE, 0.5, (d_train < d_hold).astype(float))
    share = float(score.mean())
    if len(score) > 1:
        half = _Z95 * float(score.std(ddof=1)) / math.sqrt(len(score))
    else:
        half = 0.5
    return share, (max(0.0, share - half), min(1.0, share + half))


def _nearest_distance(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    # A tree/brute search per query row, never the full pairwise matrix in memory.
    nn = NearestNeighbors(n_neighbors=1, metric="manhattan").fit(reference)
    dist, _ = nn.kneighbors(queries)
    return dist[:, 0]


def exact_match_share(synthetic: pl.DataFrame, real: pl.DataFrame) -> float:
    """Share of synthetic rows (duplicates counted each time) equal in every column to some real row."""
    cols = list(synthetic.columns)
    matched = synthetic.join(real.select(cols).unique(), on=cols, how="semi", nulls_equal=True)
    return matched.height / synthetic.height


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))
