"""Statistics behind membership-inference audits: exact intervals and empirical epsilon lower bounds.

A membership attack is a hypothesis test between "record x was in the training data" and "it was
not". If the mechanism is (eps, delta)-DP, every such test obeys (hypothesis-testing view of DP,
Kairouz, Oh & Viswanath 2015, "The Composition Theorem for Differential Privacy", ICML)::

    TPR <= e^eps * FPR + delta        and, symmetrically,        TNR <= e^eps * FNR + delta

so an attack that reaches a high TPR at a low FPR proves that eps is at least
``log((TPR - delta) / FPR)``. Because TPR and FPR are only estimated from finitely many trials, the
audit replaces them with one-sided Clopper-Pearson bounds (a lower bound on TPR, an upper bound on
FPR); the result is then a lower bound on eps that holds with the stated confidence (Jagielski,
Ullman & Oprea 2020, "Auditing Differentially Private Machine Learning: How Private is Private
SGD?", NeurIPS; Nasr, Hayes, Steinke, Balle, Tramer, Jagielski, Carlini & Terzis 2023, "Tight
Auditing of Differentially Private Machine Learning", USENIX Security).

Conventions used throughout (and in ``policies/``, see policy-thresholds.md):

- ``confidence`` in :func:`epsilon_from_rates` is per rate: TPR and FPR are each bounded one-sided
  at ``confidence``, so the bound holds jointly with probability at least
  ``1 - 2 * (1 - confidence)``. With this convention a perfect attack on 100 members and 100
  non-members gives about 3.49 (delta 0), on 1,000 + 1,000 about 5.81.
- A bound is limited by the number of trials whatever the attack: :func:`max_resolvable_epsilon`
  gives that limit, and every reported bound should carry it.
- Choosing the best of many decision thresholds after looking at the scores is a multiple
  comparison; :func:`epsilon_lower_bound` pays for it with a Bonferroni correction.

A lower bound above the claimed epsilon means a bug in the generator or in its accounting
(DESIGN.md section 4, rule 6). A bound below it proves nothing about privacy: it is a correctness
check, not a risk certificate.

:func:`steinke_one_run_bound` implements the one-run audit of Steinke, Nasr & Jagielski 2023,
"Privacy Auditing with One (1) Training Run", NeurIPS (arXiv:2305.08846), which needs one training
run with many canaries instead of many runs with one. :func:`auc_with_interval` and
:func:`tpr_at_fpr` give the attack's ROC AUC and TPR at a fixed low FPR (Carlini, Chien, Nasr,
Song, Terzis & Tramer 2022, "Membership Inference Attacks From First Principles", IEEE S&P), and
:func:`dp_auc_bound` / :func:`dp_tpr_bound` give the most any attack can reach against a given
(eps, delta), to compare them with.
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy import special, stats

from privacy.errors import InputError

Side = Literal["two-sided", "lower", "upper"]

#: The search range of :func:`steinke_one_run_bound`; a bound at the top means "at least 50".
_STEINKE_EPS_MAX = 50.0
#: Bisection steps: 2^-60 of the range is far below any epsilon worth reporting.
_BISECTION_STEPS = 60

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------------
# argument checks


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise InputError(f"{name} must be non-negative, got {value}")
    return int(value)


def _check_trials(name: str, value: object) -> int:
    n = _check_count(name, value)
    if n == 0:
        raise InputError(f"{name} must be at least 1: a rate over no trials has no interval")
    return n


def _check_confidence(confidence: object) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, Real):
        raise InputError(f"confidence must be a number in (0, 1), got {confidence!r}")
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    return c


def _check_unit(name: str, value: object, *, upper_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    x = float(value)
    if not (0.0 <= x < 1.0 if upper_open else 0.0 <= x <= 1.0):
        raise InputError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {value}")
    return x


def _check_epsilon(epsilon: object) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real):
        raise InputError(f"epsilon must be a non-negative number, got {epsilon!r}")
    e = float(epsilon)
    if math.isnan(e) or e < 0:
        raise InputError(f"epsilon must be non-negative, got {epsilon}")
    return e


def _scores(name: str, values: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric scores: {exc}") from exc
    if arr.ndim != 1:
        raise InputError(f"{name} must be a one-dimensional array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty: an audit needs at least one score on each side")
    # NaN has no place in an ordering, so every threshold rule would silently mis-count it.
    if np.isnan(arr).any():
        raise InputError(f"{name} contains NaN scores")
    return arr


# --------------------------------------------------------------------------------------------
# Clopper-Pearson, vectorised


def _cp_lower(k: ArrayLike, n: int, alpha: float) -> FloatArray:
    """One-sided lower Clopper-Pearson bounds at level ``1 - alpha`` for ``k`` successes of ``n``."""
    k_arr = np.asarray(k, dtype=np.float64)
    # Beta(0, .) is undefined; k = 0 has the exact lower bound 0, filled in below.
    raw = stats.beta.ppf(alpha, np.maximum(k_arr, 1.0), n - k_arr + 1.0)
    return np.asarray(np.where(k_arr <= 0, 0.0, raw), dtype=np.float64)


def _cp_upper(k: ArrayLike, n: int, alpha: float) -> FloatArray:
    """One-sided upper Clopper-Pearson bounds at level ``1 - alpha`` for ``k`` successes of ``n``."""
    k_arr = np.asarray(k, dtype=np.float64)
    # isf rather than ppf(1 - alpha): after a Bonferroni correction alpha can be tiny, and
    # 1 - alpha would lose its digits. Beta(., 0) is undefined; k = n has the exact bound 1.
    raw = stats.beta.isf(alpha, k_arr + 1.0, np.maximum(n - k_arr, 1.0))
    return np.asarray(np.where(k_arr >= n, 1.0, raw), dtype=np.float64)


def clopper_pearson(
    k: int, n: int, confidence: float = 0.95, side: Side = "two-sided"
) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial confidence interval for ``k`` successes in ``n`` trials.

    ``"two-sided"`` puts ``(1 - confidence) / 2`` in each tail; ``"lower"`` is the one-sided lower
    bound at ``confidence`` and returns ``(lo, 1.0)``; ``"upper"`` the one-sided upper bound,
    returned as ``(0.0, hi)``. ``k = 0`` gives a lower end of exactly 0 and ``k = n`` an upper end
    of exactly 1. The interval is conservative: its coverage is at least ``confidence`` for every
    true proportion.
    """
    k = _check_count("k", k)
    n = _check_trials("n", n)
    if k > n:
        raise InputError(f"k ({k}) cannot exceed n ({n})")
    c = _check_confidence(confidence)
    alpha = 1.0 - c
    if side == "two-sided":
        return float(_cp_lower(k, n, alpha / 2)), float(_cp_upper(k, n, alpha / 2))
    if side == "lower":
        return float(_cp_lower(k, n, alpha)), 1.0
    if side == "upper":
        return 0.0, float(_cp_upper(k, n, alpha))
    raise InputError(f"side must be 'two-sided', 'lower' or 'upper', got {side!r}")


# --------------------------------------------------------------------------------------------
# epsilon from TPR / FPR


def _epsilon_from_bounds(
    tpr_low: FloatArray, fnr_high: FloatArray, fpr_high: FloatArray, tnr_low: FloatArray, delta: float
) -> FloatArray:
    """max(0, log((TPR_low - delta) / FPR_high), log((TNR_low - delta) / FNR_high)), elementwise.

    ``fnr_high`` is ``1 - tpr_low`` and ``tnr_low`` is ``1 - fpr_high`` (Clopper-Pearson is
    symmetric in successes and failures); they are passed computed directly so that a bound near 1
    keeps its precision in the complement.
    """
    out = np.zeros(np.broadcast(tpr_low, fpr_high).shape, dtype=np.float64)
    for num, den in ((tpr_low - delta, fpr_high), (tnr_low - delta, fnr_high)):
        # A non-positive numerator proves nothing. A zero denominator cannot occur for n >= 1 and
        # confidence < 1 (one-sided bounds lie strictly inside (0, 1)), but could after underflow;
        # a lower bound must never be inflated by a numerical artefact, so it counts as 0 too.
        ok = (num > 0) & (den > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = np.where(ok, np.log(np.where(ok, num, 1.0)) - np.log(np.where(ok, den, 1.0)), 0.0)
        out = np.maximum(out, vals)
    return out


def _epsilon_at_counts(
    tp: ArrayLike, n_pos: int, fp: ArrayLike, n_neg: int, delta: float, alpha: float
) -> FloatArray:
    tp_arr = np.asarray(tp, dtype=np.float64)
    fp_arr = np.asarray(fp, dtype=np.float64)
    return _epsilon_from_bounds(
        _cp_lower(tp_arr, n_pos, alpha),
        _cp_upper(n_pos - tp_arr, n_pos, alpha),
        _cp_upper(fp_arr, n_neg, alpha),
        _cp_lower(n_neg - fp_arr, n_neg, alpha),
        delta,
    )


def epsilon_from_rates(
    tp: int, n_pos: int, fp: int, n_neg: int, delta: float, confidence: float = 0.95
) -> float:
    """Empirical epsilon lower bound from one decision threshold's counts.

    ``tp`` of ``n_pos`` members and ``fp`` of ``n_neg`` non-members were flagged as members.
    TPR is replaced by its one-sided lower Clopper-Pearson bound at ``confidence`` and FPR by its
    one-sided upper bound at ``confidence``; the result is::

        max(0, log((TPR_low - delta) / FPR_high), log((1 - FPR_high - delta) / (1 - TPR_low)))

    The second term is the symmetric constraint of (eps, delta)-DP, TNR <= e^eps * FNR + delta,
    which uses the same two bounds. Each rate is bounded at ``confidence`` separately, so the bound
    holds with probability at least ``1 - 2 * (1 - confidence)`` (90% at the default); this is
    the convention of policy-thresholds.md (Jagielski et al. 2020; Nasr et al. 2023).
    """
    tp = _check_count("tp", tp)
    fp = _check_count("fp", fp)
    n_pos = _check_trials("n_pos", n_pos)
    n_neg = _check_trials("n_neg", n_neg)
    if tp > n_pos:
        raise InputError(f"tp ({tp}) cannot exceed n_pos ({n_pos})")
    if fp > n_neg:
        raise InputError(f"fp ({fp}) cannot exceed n_neg ({n_neg})")
    d = _check_unit("delta", delta)
    c = _check_confidence(confidence)
    return float(_epsilon_at_counts(tp, n_pos, fp, n_neg, d, 1.0 - c))


def max_resolvable_epsilon(n_pos: int, n_neg: int, delta: float, confidence: float = 0.95) -> float:
    """The bound a perfect attack (every member flagged, no non-member) would give.

    No attack on ``n_pos`` members and ``n_neg`` non-members can prove more than this, however
    leaky the mechanism: report it next to every bound, so that "0.8 of at most 3.5" is not read
    as "the mechanism leaks 0.8".
    """
    return epsilon_from_rates(n_pos, n_pos, 0, n_neg, delta, confidence)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EpsilonBound:
    """An empirical epsilon lower bound with the counts and the threshold that gave it.

    ``threshold`` is the decision threshold (score >= threshold means "member"), or None when no
    threshold gave a positive bound (then ``tp`` and ``fp`` are 0: the rule that flags nobody).
    ``confidence`` is the per-rate confidence actually used, after the Bonferroni correction, and
    ``max_resolvable`` the bound a perfect attack would have reached at that confidence.
    """

    epsilon: float
    threshold: float | None
    tp: int
    n_pos: int
    fp: int
    n_neg: int
    confidence: float
    max_resolvable: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


def epsilon_lower_bound(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    delta: float,
    confidence: float = 0.95,
    *,
    comparisons: int = 1,
) -> EpsilonBound:
    """The best empirical epsilon lower bound over every decision threshold of an attack's scores.

    Higher scores mean "more likely a member". Every distinct score value ``t`` is tried as a
    threshold (score >= t means "member") and the largest :func:`epsilon_from_rates` is kept.
    Picking the best of ``T`` thresholds after seeing the data is a multiple comparison, so each
    rate is bounded at the Bonferroni-corrected confidence::

        1 - (1 - confidence) / (T * comparisons)

    where ``comparisons`` lets the caller also correct for several targets or attacks whose best
    bound it will report. With the per-rate convention of :func:`epsilon_from_rates`, the reported
    bound holds with probability at least ``1 - 2 * (1 - confidence)`` across all thresholds and
    comparisons. (For continuous scores ``T = n_pos + n_neg``; for discrete scores the family is
    the observed support, which is exact when every possible score value occurs.)
    ``max_resolvable`` is computed at the same corrected confidence, so it is the most this
    procedure could have shown on these sample sizes.
    """
    members = _scores("member_scores", member_scores)
    nonmembers = _scores("nonmember_scores", nonmember_scores)
    d = _check_unit("delta", delta)
    c = _check_confidence(confidence)
    if isinstance(comparisons, bool) or not isinstance(comparisons, Integral) or comparisons < 1:
        raise InputError(f"comparisons must be a positive integer, got {comparisons!r}")

    n_pos, n_neg = members.size, nonmembers.size
    thresholds = np.unique(np.concatenate([members, nonmembers]))
    alpha = (1.0 - c) / (thresholds.size * int(comparisons))
    # Counts of scores >= t for every threshold at once: n minus those strictly below t.
    tp = n_pos - np.searchsorted(np.sort(members), thresholds, side="left")
    fp = n_neg - np.searchsorted(np.sort(nonmembers), thresholds, side="left")
    eps = _epsilon_at_counts(tp, n_pos, fp, n_neg, d, alpha)

    best = int(np.argmax(eps))
    found = bool(eps[best] > 0.0)
    return EpsilonBound(
        epsilon=float(eps[best]) if found else 0.0,
        threshold=float(thresholds[best]) if found else None,
        tp=int(tp[best]) if found else 0,
        n_pos=n_pos,
        fp=int(fp[best]) if found else 0,
        n_neg=n_neg,
        confidence=1.0 - alpha,
        max_resolvable=float(_epsilon_at_counts(n_pos, n_pos, 0, n_neg, d, alpha)),
        method="Clopper-Pearson, max over thresholds, Bonferroni",
    )


# --------------------------------------------------------------------------------------------
# one-run audit (Steinke, Nasr & Jagielski 2023)


def _one_run_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P-value of ``v`` or more correct guesses out of ``r`` under the (eps, delta)-DP null."""
    # Accuracy of randomized response at eps: under pure eps-DP the number of correct guesses is
    # stochastically dominated by Binomial(r, q).
    q = float(special.expit(eps))
    tail = float(stats.binom.sf(v - 1, r, q))
    if delta == 0.0 or v == 0:
        return min(tail, 1.0)
    # The paper's delta term: 2 m delta times max_{1<=i<=v} P[v - i <= Binomial(r, q) < v] / i.
    # Cumulative pmf sums (rather than differences of cdfs) keep small masses accurate.
    below = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    spread = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(tail + spread * 2.0 * m * delta, 1.0)


def steinke_one_run_bound(
    canaries: int, guesses: int, correct: int, delta: float, confidence: float = 0.95
) -> float:
    """Empirical epsilon lower bound from one training run (Steinke, Nasr & Jagielski 2023).

    Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run", NeurIPS 2023
    (arXiv:2305.08846). ``canaries`` (m) records are each included in the training data
    independently with probability 1/2; after one run the auditor guesses membership for
    ``guesses`` (r) of them, abstaining on the rest, and ``correct`` (v) guesses are right.

    Under pure eps-DP (``delta = 0``) the number of correct guesses is stochastically dominated by
    Binomial(r, e^eps / (1 + e^eps)), so the p-value of eps is ``P[Binomial(r, q) >= v]``. For
    ``delta > 0`` the p-value gains the paper's term ``2 m delta * max_{1<=i<=v} P[v - i <=
    Binomial(r, q) < v] / i`` (their main theorem, computed as in the paper's Appendix D code,
    ``p_value_DP_audit``; capped at 1). The bound is the largest eps in [0, 50] whose p-value is
    below ``1 - confidence``, found by bisection and returned from the rejected side, so the
    returned eps is itself rejected; 0 when even eps = 0 is not rejected, 50 when the search range
    is exhausted. Unlike :func:`epsilon_from_rates`, ``confidence`` here is the confidence of the
    whole statement.
    """
    m = _check_count("canaries", canaries)
    r = _check_count("guesses", guesses)
    v = _check_count("correct", correct)
    if r > m:
        raise InputError(f"guesses ({r}) cannot exceed canaries ({m})")
    if v > r:
        raise InputError(f"correct ({v}) cannot exceed guesses ({r})")
    d = _check_unit("delta", delta)
    c = _check_confidence(confidence)
    significance = 1.0 - c

    if _one_run_p_value(m, r, v, 0.0, d) >= significance:
        return 0.0
    if _one_run_p_value(m, r, v, _STEINKE_EPS_MAX, d) < significance:
        return _STEINKE_EPS_MAX
    lo, hi = 0.0, _STEINKE_EPS_MAX  # invariant: lo is rejected, hi is not
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if _one_run_p_value(m, r, v, mid, d) < significance:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------------------------
# ROC summaries


def _rank_auc(members: FloatArray, nonmembers: FloatArray) -> float:
    # Mann-Whitney: the average rank assigns ties one half, as AUC's definition asks.
    ranks = stats.rankdata(np.concatenate([members, nonmembers]))
    n_pos, n_neg = members.size, nonmembers.size
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc(member_scores: ArrayLike, nonmember_scores: ArrayLike) -> float:
    """ROC AUC of scores where higher means "member" (Mann-Whitney; ties count one half)."""
    return _rank_auc(_scores("member_scores", member_scores), _scores("nonmember_scores", nonmember_scores))


def roc_points(member_scores: ArrayLike, nonmember_scores: ArrayLike, *, points: int = 120) -> dict[str, list[float]]:
    """The attack's ROC curve on a fixed grid of false positive rates, for plotting.

    At each grid FPR ``f`` the TPR is the best the attack reaches with a threshold whose FPR is at most
    ``f`` (the empirical ROC's step function, never interpolated upwards). The grid is geometric from
    one non-member (``1 / n_neg``) to 1, so that the low-FPR region, where a membership attack hurts,
    keeps its resolution, plus a linear part for the rest of the curve. Figures only: ranks and rates
    of the attack, not scores or records.
    """
    members = _scores("member_scores", member_scores)
    nonmembers = _scores("nonmember_scores", nonmember_scores)
    n_pos, n_neg = members.size, nonmembers.size
    thresholds = np.unique(np.concatenate([members, nonmembers]))[::-1]
    pos_sorted, neg_sorted = np.sort(members), np.sort(nonmembers)
    # score >= threshold is "member"
    tpr = (n_pos - np.searchsorted(pos_sorted, thresholds, side="left")) / n_pos
    fpr = (n_neg - np.searchsorted(neg_sorted, thresholds, side="left")) / n_neg
    fpr = np.concatenate([[0.0], fpr, [1.0]])
    tpr = np.concatenate([[0.0], tpr, [1.0]])
    grid = np.unique(np.round(np.concatenate([
        [0.0, 0.001, 0.01, 0.05, 0.1], np.geomspace(1.0 / n_neg, 1.0, max(2, points // 2)),
        np.linspace(0.0, 1.0, 51),
    ]), 8))
    grid = grid[(grid == 0) | (grid >= 1.0 / n_neg - 1e-12)]  # no finer than one non-member
    # best TPR among operating points with FPR <= f (fpr is non-decreasing along the thresholds)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    best = np.maximum.accumulate(tpr)[idx]
    return {"fpr": [round(float(x), 6) for x in grid], "tpr": [round(float(x), 6) for x in best]}


def null_auc_half_width(n_pos: int, n_neg: int) -> float:
    """Half-width of the 95% interval of the AUC of an attack that knows nothing (Mann-Whitney
    variance (n_pos + n_neg + 1) / (12 n_pos n_neg)): what chance alone adds to 0.5."""
    return 1.959963984540054 * math.sqrt((n_pos + n_neg + 1) / (12 * max(1, n_pos) * max(1, n_neg)))


def bound_flags(bound: float, resolvable: float, claimed: float | None, warn_fraction: float | None) -> tuple[str, ...]:
    """Flags of an empirical epsilon lower bound: above the policy's warning share of the claim, and
    a trial count too small to show even the claimed epsilon (1 when nothing is claimed)."""
    flags = []
    if claimed is not None and warn_fraction is not None and bound > warn_fraction * claimed:
        flags.append(f"warning: bound above {warn_fraction:g} x the claimed epsilon")
    if resolvable < (claimed if claimed is not None else 1.0):
        flags.append(f"low resolution: even a perfect attack could show only {resolvable:.2f}")
    return tuple(flags)


def auc_with_interval(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """ROC AUC of an attack (ties count one half) and a percentile bootstrap interval.

    Members and non-members are resampled separately (stratified), so every resample keeps the
    original class sizes. Each resample is scored without re-ranking: a resample is a pair of
    multinomial weight vectors over the original scores, and its AUC is the weighted share of
    (member, non-member) pairs in the right order, computed for all resamples at once.
    """
    members = _scores("member_scores", member_scores)
    nonmembers = _scores("nonmember_scores", nonmember_scores)
    c = _check_confidence(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, Integral) or n_boot < 1:
        raise InputError(f"n_boot must be a positive integer, got {n_boot!r}")
    n_pos, n_neg = members.size, nonmembers.size
    auc = _rank_auc(members, nonmembers)

    rng = np.random.default_rng(seed)
    w_pos = rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=int(n_boot)).astype(np.float64)
    w_neg = rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=int(n_boot)).astype(np.float64)

    order = np.argsort(nonmembers, kind="stable")
    sorted_neg = nonmembers[order]
    # cum[b, j] = resample b's weight on the j smallest non-member scores.
    cum = np.zeros((int(n_boot), n_neg + 1))
    np.cumsum(w_neg[:, order], axis=1, out=cum[:, 1:])
    below = np.searchsorted(sorted_neg, members, side="left")
    through = np.searchsorted(sorted_neg, members, side="right")
    # Per resample and member: weight of non-members strictly below, plus half of those tied.
    wins = 0.5 * (cum[:, below] + cum[:, through])
    boot = np.einsum("bi,bi->b", w_pos, wins) / (n_pos * n_neg)

    tail = (1.0 - c) / 2
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    return auc, (float(lo), float(hi))


def tpr_at_fpr(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    fpr: float,
    confidence: float = 0.95,
) -> tuple[float, tuple[float, float], int]:
    """The highest TPR with empirical FPR <= ``fpr``, its two-sided Clopper-Pearson interval, and n_neg.

    The rule is "score > t" with ``t`` the ``(k + 1)``-th largest non-member score, where
    ``k = floor(fpr * n_neg)``: at most ``k`` non-members lie strictly above it (fewer when scores
    tie there), and any lower ``t`` would flag more than ``k``. When ``fpr * n_neg < 1`` (k = 0)
    the figure is TPR at FPR 0, members strictly above every non-member; the returned ``n_neg``
    lets the caller flag that case as unresolvable (Carlini et al. 2022 report TPR at low FPR only
    with enough non-members).
    """
    members = _scores("member_scores", member_scores)
    nonmembers = _scores("nonmember_scores", nonmember_scores)
    f = _check_unit("fpr", fpr)
    c = _check_confidence(confidence)
    n_pos, n_neg = members.size, nonmembers.size

    # The tolerance keeps fpr = 0.01 with n_neg = 300 at k = 3 despite 0.01 * 300 = 2.9999...
    k = math.floor(f * n_neg + 1e-9)
    if k >= n_neg:
        tp = n_pos
    else:
        cut = np.sort(nonmembers)[::-1][k]
        tp = int(np.count_nonzero(members > cut))
    return tp / n_pos, clopper_pearson(tp, n_pos, c, "two-sided"), n_neg


# --------------------------------------------------------------------------------------------
# what (eps, delta)-DP allows


def dp_auc_bound(epsilon: float, delta: float) -> float:
    """The largest ROC AUC any membership attack can reach against an (epsilon, delta)-DP mechanism.

    Under pure eps-DP the trade-off curve is TPR <= min(e^eps FPR, 1 - e^-eps (1 - FPR)), whose
    area is exactly e^eps / (1 + e^eps) (Kairouz, Oh & Viswanath 2015). delta lifts the curve by
    at most delta pointwise, so ``+ delta`` is a conservative allowance; capped at 1.
    """
    e = _check_epsilon(epsilon)
    d = _check_unit("delta", delta)
    return min(1.0, float(special.expit(e)) + d)


def dp_tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """The largest TPR any attack can reach at false-positive rate ``fpr``: min(1, e^eps fpr + delta)."""
    e = _check_epsilon(epsilon)
    d = _check_unit("delta", delta)
    f = _check_unit("fpr", fpr)
    if f == 0.0:
        return min(1.0, d)
    # In logs, so that a large epsilon caps at 1 instead of overflowing.
    log_term = e + math.log(f)
    if log_term >= 0.0:
        return 1.0
    return min(1.0, math.exp(log_term) + d)
