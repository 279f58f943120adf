"""Density-ratio membership attack in the DOMIAS design.

van Breugel, Sun, Qian and van der Schaar, "Membership Inference Attacks against Synthetic Data
through Overfitting Detection" (AISTATS 2023). A generator that overfits puts extra probability
mass at its training records. The attacker estimates the synthetic data's density ``p_syn`` and the
density ``p_ref`` of real records the generator never saw, and scores a candidate record ``x`` by

    score(x) = log p_syn(x) - log p_ref(x)

Dividing by ``p_ref`` separates "the generator made x likely because it memorised it" from "x is
likely because it is a typical record". Members of the training data should score higher than
unseen real records; the audit reports how well the score separates them (ROC AUC with a bootstrap
interval, and TPR at FPR 1% and 10%).

Protocol (:func:`run_domias`). The holdout is permuted (seeded) and split into two disjoint parts:
``n`` non-member candidates, and the reference set, every other holdout row (at most
``MAX_REFERENCE_ROWS``, seeded), on which ``p_ref`` is fitted. ``n`` members are a seeded sample of
the training split, with ``n = min(candidates, holdout rows // 2, training rows)``, so the two
sides are balanced and the reference set is never smaller than the non-member side. ``p_syn`` is
fitted on the synthetic rows (a seeded sample of at most ``MAX_SYNTHETIC_ROWS``). Which row plays
which part depends only on the audit seed and the sizes, never on scores.

Encoding. Numeric columns are scaled to [0, 1] by the schema's public bounds (never the data's;
values outside are clipped, DESIGN rule 2) and categorical columns are one-hot over the schema's
categories (an out-of-domain value is an input error, as in ``audits.membership.gower_matrix``,
which does the encoding). Nothing in the encoding is read from the data.

Densities. The authors fit a normalising flow (BNAF) or scipy's Gaussian KDE. Here both densities
are the same mixed-type product-kernel density estimate, evaluated exactly (BLAS distances in
chunks; sklearn's tree-based ``KernelDensity`` is no faster than brute force at about 100 encoded
dimensions, and its Gaussian normalisation would treat the one-hot dimensions as continuous):

- numeric column j: a Gaussian kernel of width ``h * sigma_j``, with ``sigma_j`` the column's
  standard deviation in the fitted set (on the public [0, 1] scale) and one factor ``h`` for all
  numeric columns: the per-column scaling of scipy's ``gaussian_kde`` (which DOMIAS uses), kept
  diagonal because one-hot columns make a full covariance singular;
- categorical column c with K_c categories: weight 1 for the record's own category and ``mu`` for
  each other one, normalised to sum to one over the schema's categories (an Aitchison-Aitken-type
  kernel); on the one-hot encoding this is a Gaussian kernel with one-hot entries
  ``sqrt(-log mu)``, so one distance computation serves both kinds of column.

Bandwidth. ``(h, mu)`` is chosen separately for each density by maximum held-out likelihood on the
fitted set only (never the candidates): a seeded part of the fitted set (at most
``_CV_HELD_OUT`` rows) is scored under the estimate built on all its other rows, over a fixed grid
(coordinate ascent in h and mu), with the exact normalising constant of the mixed kernel (the
Gaussian constant on the numeric columns, the categorical kernel's sum over categories), so that
the one-hot dimensions do not drive the bandwidth to zero as a Gaussian on them would. The chosen
``h`` is rescaled from the selection's fit size to the full fitted size by Scott's rate
``n^(-1/(p+4))`` (p numeric columns; a factor close to 1). Because the synthetic density's
bandwidth is fitted to the synthetic rows, it shrinks when a generator clusters its output around
memorised records. The score is invariant to any constant, so the normalising constants matter
only for the choice of bandwidth.

Validity does not depend on the bandwidth: members and non-members are exchangeable unless the
generator's output depends on the members, and the densities never see a candidate, so an
independent generator gives AUC 0.5 in expectation whatever the estimator. The bandwidth decides
the attack's power only. A verbatim copy of the training data is a hard case for any smoothed
density (a copied row adds one kernel among many similar ones); the DCR audit's exact-match check
catches that case outright.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from audits.bounds import auc_with_interval, dp_auc_bound, null_auc_half_width, roc_points, tpr_at_fpr
from audits.context import AuditContext
from audits.membership import check_frames, gower_matrix
from audits.result import AuditResult, Metric
from policies.model import Policy
from privacy.errors import InputError
from privacy.schema import Schema

#: Members and non-members each, unless the policy's membership profile says otherwise.
DEFAULT_CANDIDATES = 1000
#: Bootstrap resamples for the AUC interval, unless the policy says otherwise.
DEFAULT_BOOTSTRAP = 200
#: Gate threshold on the AUC's upper bound, unless the policy sets ``domias_auc_max``.
DEFAULT_AUC_MAX = 0.6
#: Above this many synthetic rows ``p_syn`` is fitted on a seeded sample.
MAX_SYNTHETIC_ROWS = 20_000
#: Above this many reference rows ``p_ref`` is fitted on a seeded sample.
MAX_REFERENCE_ROWS = 20_000
#: The false-positive rates at which TPR is reported.
FPRS = (0.01, 0.10)
_CONFIDENCE = 0.95

# Bandwidth selection: held-out rows scored against the other rows of the fitted set.
_CV_HELD_OUT = 500
_CV_FIT = max(MAX_SYNTHETIC_ROWS, MAX_REFERENCE_ROWS)
#: numeric bandwidth factor h, in units of each column's standard deviation in the fitted set
_H_GRID = tuple(float(x) for x in np.geomspace(0.05, 2.0, 14))
#: weight of a different category relative to the record's own (1.0: categories ignored)
_MU_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0)
#: where the coordinate ascent over (h, mu) starts
_START_MU = 1e-2
#: used when the fitted set is too small to hold any row out (a single row)
_FALLBACK = (1.0, 0.1)
#: lower bound on a numeric column's spread (public [0, 1] scale), e.g. a constant synthetic column
_SIGMA_FLOOR = 1e-3
#: query rows per block of the distance computation (block x fitted rows float64 in memory)
_CHUNK = 256


# --------------------------------------------------------------------------------------------
# encoding


@dataclass(frozen=True)
class Encoded:
    """A table encoded for the density estimate: numeric columns on the public [0, 1] scale and
    categorical columns one-hot, with the number of categories of each categorical column."""

    numeric: np.ndarray
    onehot: np.ndarray
    categories: tuple[int, ...]

    @property
    def rows(self) -> int:
        return int(self.numeric.shape[0])


def encode(df: pl.DataFrame, schema: Schema) -> Encoded:
    """Encode ``df`` with the schema's public domain only (see the module docstring)."""
    numeric = [c.name for c in schema.columns if c.is_numeric]
    categorical = [c.name for c in schema.columns if not c.is_numeric]
    if numeric:
        x = gower_matrix(df, schema, numeric)
        if np.isnan(x).any():
            raise InputError("numeric columns hold missing values; conform the table to its schema first")
        x = np.clip(x, 0.0, 1.0)
    else:
        x = np.zeros((df.height, 0))
    # gower_matrix one-hot entries are 1/2 (so that L1 distances are Gower's): scale back to 1.
    onehot = 2.0 * gower_matrix(df, schema, categorical) if categorical else np.zeros((df.height, 0))
    return Encoded(x, onehot, tuple(len(schema.column(c).categories) for c in categorical))


def _take(enc: Encoded, rows: np.ndarray) -> Encoded:
    return Encoded(enc.numeric[rows], enc.onehot[rows], enc.categories)


# --------------------------------------------------------------------------------------------
# the mixed-type kernel density estimate


def _sq_dist(q: np.ndarray, f: np.ndarray, f_sq: np.ndarray) -> np.ndarray:
    d = np.einsum("ij,ij->i", q, q)[:, None] + f_sq[None, :] - 2.0 * (q @ f.T)
    return np.maximum(d, 0.0, out=d)


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp, in place (``a`` is overwritten)."""
    m = a.max(axis=1)
    np.subtract(a, m[:, None], out=a)
    np.exp(a, out=a)
    return np.asarray(m + np.log(a.sum(axis=1)))


@dataclass(frozen=True)
class MixedKDE:
    """Product-kernel density on mixed data: Gaussian per numeric column (width ``h * sigma_j``),
    categorical kernel with weight ``mu`` for a different category (module docstring)."""

    h: float
    mu: float
    sigma: np.ndarray
    categories: tuple[int, ...]
    #: the fitted rows in the kernel's coordinates, where the kernel is exp(-|z - z'|^2 / 2)
    z: np.ndarray
    z_sq: np.ndarray
    #: the bandwidth selection's held-out and fit sizes (0, 0 when it fell back to the default)
    cv_rows: tuple[int, int]

    @classmethod
    def fit(cls, data: Encoded, rng: np.random.Generator) -> MixedKDE:
        """Choose ``(h, mu)`` by held-out likelihood on ``data`` and keep ``data`` as the kernel centres."""
        n = data.rows
        if n < 1:
            raise InputError("a density needs at least one row to be fitted on")
        sigma = np.maximum(data.numeric.std(axis=0), _SIGMA_FLOOR) if n > 1 else np.full(
            data.numeric.shape[1], _SIGMA_FLOOR
        )
        h, mu, cv_rows = _select_bandwidth(data, sigma, rng)
        z = _coordinates(data, sigma, h, mu)
        return cls(h=h, mu=mu, sigma=sigma, categories=data.categories, z=z,
                   z_sq=np.einsum("ij,ij->i", z, z), cv_rows=cv_rows)

    @property
    def rows(self) -> int:
        return int(self.z.shape[0])

    def log_norm(self) -> float:
        """Log of the kernel's normalising constant (the Gaussian part and the categorical sums)."""
        return _log_norm(self.h, self.mu, self.sigma, self.categories)

    def logpdf(self, queries: Encoded) -> np.ndarray:
        """Log density at each query row."""
        q = _coordinates(queries, self.sigma, self.h, self.mu)
        out = np.empty(queries.rows)
        for start in range(0, queries.rows, _CHUNK):
            block = q[start : start + _CHUNK]
            out[start : start + _CHUNK] = _logsumexp_rows(-0.5 * _sq_dist(block, self.z, self.z_sq))
        return np.asarray(out - math.log(self.rows) + self.log_norm())

    def describe(self) -> dict[str, Any]:
        """The bandwidth as published in the audit document (no per-column data statistics)."""
        return {
            "numeric_bandwidth_in_column_sd": round(self.h, 6),
            "other_category_weight": self.mu,
            "fitted_rows": self.rows,
            "selection_rows": {"held_out": self.cv_rows[0], "fit": self.cv_rows[1]},
        }


def _coordinates(data: Encoded, sigma: np.ndarray, h: float, mu: float) -> np.ndarray:
    # exp(-|z - z'|^2 / 2): numeric (x - x')^2 / (2 h^2 sigma^2); a category mismatch moves two
    # one-hot entries by sqrt(-log mu) each, i.e. a factor mu.
    num = data.numeric / (sigma * h) if data.numeric.shape[1] else data.numeric
    cat = data.onehot * math.sqrt(-math.log(mu)) if mu < 1.0 else np.zeros((data.rows, 0))
    return np.hstack([num, cat])


def _log_norm(h: float, mu: float, sigma: np.ndarray, categories: tuple[int, ...]) -> float:
    p = sigma.shape[0]
    gauss = -float(np.log(h * sigma).sum()) - 0.5 * p * math.log(2.0 * math.pi)
    cat = -sum(math.log1p((k - 1) * mu) for k in categories)
    return gauss + cat


def _select_bandwidth(
    data: Encoded, sigma: np.ndarray, rng: np.random.Generator
) -> tuple[float, float, tuple[int, int]]:
    """Maximum held-out likelihood over the (h, mu) grid; h rescaled to the full size (Scott's rate)."""
    n = data.rows
    if n < 2:
        return _FALLBACK[0], _FALLBACK[1], (0, 0)
    order = rng.permutation(n)
    n_held = max(1, min(_CV_HELD_OUT, n // 5))
    held, fit = order[:n_held], order[n_held : n_held + _CV_FIT]
    num_h, num_f = data.numeric[held] / sigma, data.numeric[fit] / sigma
    # squared numeric distances in sd units, and category mismatch counts, held-out x fit
    dist = _sq_dist(num_h, num_f, np.einsum("ij,ij->i", num_f, num_f))
    mismatch = len(data.categories) - data.onehot[held] @ data.onehot[fit].T
    p = sigma.shape[0]
    h_grid = _H_GRID if p else (1.0,)
    mu_grid = _MU_GRID if data.categories else (1.0,)
    n_fit = len(fit)
    cache: dict[tuple[float, float], float] = {}

    def loglik(h: float, mu: float) -> float:
        if (h, mu) not in cache:
            a = dist / (-2.0 * h * h) + mismatch * math.log(mu)
            cache[(h, mu)] = (
                float(_logsumexp_rows(a).mean()) - math.log(n_fit) + _log_norm(h, mu, sigma, data.categories)
            )
        return cache[(h, mu)]

    # Coordinate ascent on the grid (h, then mu, until neither moves): the held-out likelihood is
    # smooth in both, and this needs a third of the evaluations of the full grid.
    h, mu = h_grid[len(h_grid) // 2], _START_MU if _START_MU in mu_grid else mu_grid[0]
    for _ in range(10):
        new_h = max(h_grid, key=lambda x: loglik(x, mu))
        new_mu = max(mu_grid, key=lambda x: loglik(new_h, x))
        if (new_h, new_mu) == (h, mu):
            break
        h, mu = new_h, new_mu
    if p:
        h *= (n_fit / n) ** (1.0 / (p + 4))
    return h, mu, (int(n_held), int(len(fit)))


# --------------------------------------------------------------------------------------------
# scores


@dataclass(frozen=True)
class _Fitted:
    synthetic: MixedKDE
    reference: MixedKDE


def _fit_densities(reference: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema, seed: int) -> _Fitted:
    rng = np.random.default_rng([seed, 202, 1])
    if synthetic.height > MAX_SYNTHETIC_ROWS:
        synthetic = synthetic[np.sort(rng.choice(synthetic.height, MAX_SYNTHETIC_ROWS, replace=False)).tolist()]
    if reference.height > MAX_REFERENCE_ROWS:
        reference = reference[np.sort(rng.choice(reference.height, MAX_REFERENCE_ROWS, replace=False)).tolist()]
    syn = MixedKDE.fit(encode(synthetic, schema), np.random.default_rng([seed, 202, 2]))
    ref = MixedKDE.fit(encode(reference, schema), np.random.default_rng([seed, 202, 3]))
    return _Fitted(synthetic=syn, reference=ref)


def _score(fitted: _Fitted, candidates: pl.DataFrame, schema: Schema) -> np.ndarray:
    x = encode(candidates, schema)
    return np.asarray(fitted.synthetic.logpdf(x) - fitted.reference.logpdf(x))


def density_ratio_scores(
    candidates: pl.DataFrame, reference: pl.DataFrame, synthetic: pl.DataFrame, schema: Schema, *, seed: int
) -> np.ndarray:
    """``log p_syn(x) - log p_ref(x)`` for each candidate row (higher: more likely a training member).

    ``p_syn`` is fitted on ``synthetic`` and ``p_ref`` on ``reference``; neither sees a candidate.
    Deterministic for a given ``seed``.
    """
    return _score(_fit_densities(reference, synthetic, schema, seed), candidates, schema)


def domias_scores(
    members: pl.DataFrame,
    nonmembers: pl.DataFrame,
    reference: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Density-ratio scores of the member and the non-member candidates, from one pair of densities."""
    both = density_ratio_scores(pl.concat([members, nonmembers], how="vertical"), reference, synthetic, schema,
                                seed=seed)
    return both[: members.height], both[members.height :]


@dataclass(frozen=True)
class CandidateSplit:
    """Row indices of the members (into the training split), and of the non-member candidates and
    the reference set (disjoint, into the holdout)."""

    members: np.ndarray
    nonmembers: np.ndarray
    reference: np.ndarray


def draw_candidates(n_train: int, n_holdout: int, candidates: int, rng: np.random.Generator) -> CandidateSplit:
    """Seeded balanced candidates: ``n = min(candidates, n_holdout // 2, n_train)`` per side.

    The holdout is permuted; its first ``n`` rows are the non-member candidates and the rest the
    reference set (at most ``MAX_REFERENCE_ROWS``, then a seeded sample when fitted). Members are
    ``n`` training rows drawn without replacement.
    """
    n = min(int(candidates), n_holdout // 2, n_train)
    if n < 1:
        raise InputError("the density-ratio audit needs at least 2 holdout rows and 1 training row")
    order = rng.permutation(n_holdout)
    members = np.sort(rng.choice(n_train, n, replace=False))
    return CandidateSplit(members=members, nonmembers=np.sort(order[:n]), reference=np.sort(order[n:]))


# --------------------------------------------------------------------------------------------
# the audit


def _settings(policy: Policy, profile: str) -> tuple[int, int]:
    membership = getattr(policy.audit, "membership", None)
    chosen = membership.get(profile) if isinstance(membership, Mapping) else None
    return (
        int(getattr(chosen, "domias_candidates", DEFAULT_CANDIDATES)),
        int(getattr(chosen, "bootstrap", DEFAULT_BOOTSTRAP)),
    )


def run_domias(
    real_train: pl.DataFrame,
    real_holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: Schema,
    policy: Policy,
    ctx: AuditContext | None = None,
    *,
    candidates: int | None = None,
    bootstrap: int | None = None,
) -> AuditResult:
    """The density-ratio (DOMIAS) membership attack: AUC with a bootstrap interval, TPR at FPR 1%
    and 10%, and, when ``ctx.claim`` is set, the check that the AUC is possible under the claim.

    ``candidates`` and ``bootstrap`` default to the policy's membership profile ``ctx.profile``.
    """
    ctx = ctx or AuditContext()
    check_frames(real_train, real_holdout, synthetic, schema)
    policy_candidates, policy_bootstrap = _settings(policy, ctx.profile)
    candidates = policy_candidates if candidates is None else int(candidates)
    bootstrap = policy_bootstrap if bootstrap is None else int(bootstrap)
    if candidates < 1 or bootstrap < 1:
        raise InputError("candidates and bootstrap must be positive")
    seed = int(policy.audit.seed)

    split = draw_candidates(real_train.height, real_holdout.height, candidates, np.random.default_rng([seed, 202]))
    n = int(split.members.size)
    members = real_train[split.members.tolist()]
    nonmembers = real_holdout[split.nonmembers.tolist()]
    reference = real_holdout[split.reference.tolist()]
    synthetic_used = min(synthetic.height, MAX_SYNTHETIC_ROWS)

    if ctx.progress is not None:
        ctx.progress(f"domias: fitting densities on {synthetic_used} synthetic rows and the reference set")
    fitted = _fit_densities(reference, synthetic, schema, seed)
    if ctx.progress is not None:
        ctx.progress(f"domias: scoring {n} members and {n} non-members")
    scores = _score(fitted, pl.concat([members, nonmembers], how="vertical"), schema)
    member_scores, nonmember_scores = scores[:n], scores[n:]

    boot_seed = int(np.random.default_rng([seed, 202, 4]).integers(0, 2**31 - 1))
    auc, (lo, hi) = auc_with_interval(
        member_scores, nonmember_scores, n_boot=bootstrap, confidence=_CONFIDENCE, seed=boot_seed
    )
    details = {
        "attack": "density ratio log p_syn(x) - log p_ref(x) (DOMIAS, van Breugel et al. 2023)",
        "candidates_per_side": n,
        "members": "seeded sample of the training split",
        "nonmembers": "seeded sample of the holdout",
        # exact real row counts stay out of the (released) audit document: DESIGN rule 1
        "reference": f"the other holdout rows (disjoint from the non-members), at most {MAX_REFERENCE_ROWS}",
        "synthetic_rows_used": synthetic_used,
        "encoding": "numeric scaled to [0, 1] by the schema's public bounds; categorical one-hot over the "
                    "schema's categories",
        "densities": "product-kernel density estimates: Gaussian per numeric column (width h x the column's "
                     "sd in the fitted set), categorical kernel giving weight mu to another category",
        "bandwidth_selection": "maximum held-out likelihood on a seeded part of each fitted set (never the "
                               "candidates); h rescaled to the full fitted size by Scott's rate",
        "bandwidths": {"synthetic": fitted.synthetic.describe(), "reference": fitted.reference.describe()},
        "bootstrap": bootstrap,
        "confidence": _CONFIDENCE,
        "roc": roc_points(member_scores, nonmember_scores),
    }
    threshold = float(getattr(policy.thresholds, "domias_auc_max", DEFAULT_AUC_MAX))
    # Under no leakage the AUC's 95% half-width is about 1.96 * sqrt((2n + 1) / (12 n^2)) (Mann-Whitney).
    # When it is half the distance from 0.5 to the threshold or more, a generator that leaks nothing
    # fails whenever chance lifts its AUC by one standard error: say so, and keep gating (the policy
    # chose the upper end; a small holdout cannot show that the release is safe)
    null_half_width = null_auc_half_width(n, n)
    auc_flags: tuple[str, ...] = ()
    if null_half_width >= (threshold - 0.5) / 2:
        auc_flags = (f"underpowered: {n} candidates per side; even a non-leaking generator's interval reaches "
                     f"about {0.5 + null_half_width:.2f}",)
    metrics = [
        Metric(
            name="domias_auc",
            value=auc,
            goal="minimize",
            threshold=threshold,
            interval=(lo, hi),
            gated_on="upper",
            flags=auc_flags,
            meaning=(
                "How well a density-ratio attack tells training rows from unseen real rows, as ROC AUC "
                "(0.5 is ideal: no better than a coin flip)."
            ),
            details=details,
        )
    ]
    for fpr in FPRS:
        tpr, (t_lo, t_hi), n_neg = tpr_at_fpr(member_scores, nonmember_scores, fpr, _CONFIDENCE)
        flags = []
        if fpr * n_neg < 1:
            flags.append(f"underpowered: fewer than {math.ceil(1 / fpr)} non-members")
        pct = round(fpr * 100)
        metrics.append(
            Metric(
                name=f"domias_tpr_at_fpr_{pct}pct",
                value=tpr,
                goal="minimize",
                interval=(t_lo, t_hi),
                role="info",
                meaning=(
                    f"Share of training rows the density-ratio attack flags while flagging at most {pct}% "
                    f"of unseen real rows (about {pct}% is ideal)."
                ),
                flags=tuple(flags),
                details={"fpr": fpr, "nonmembers": n_neg, "members": n, "interval": "Clopper-Pearson"},
            )
        )
    if ctx.claim is not None:
        bound = dp_auc_bound(ctx.claim.epsilon, ctx.claim.delta)
        metrics.append(
            Metric(
                name="domias_auc_dp_check",
                value=auc,
                goal="minimize",
                threshold=bound,
                interval=(lo, hi),
                gated_on="lower",
                kind="dp_claim",
                meaning=(
                    "No mechanism with the claimed epsilon and delta allows an attack AUC above "
                    "e^eps/(1+e^eps)+delta; a lower confidence bound above it proves the DP claim false."
                ),
                details={"epsilon": ctx.claim.epsilon, "delta": ctx.claim.delta, "bound": round(bound, 6),
                         "candidates_per_side": n, "bootstrap": bootstrap},
            )
        )
    return AuditResult(audit="domias", metrics=tuple(metrics))
