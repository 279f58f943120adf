"""Hand-checked values for the audit statistics in ``audits.bounds``."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import optimize, stats

from audits.bounds import (
    EpsilonBound,
    auc_with_interval,
    clopper_pearson,
    dp_auc_bound,
    dp_tpr_bound,
    epsilon_from_rates,
    epsilon_lower_bound,
    max_resolvable_epsilon,
    steinke_one_run_bound,
    tpr_at_fpr,
)
from privacy.errors import InputError

# ------------------------------------------------------------------ Clopper-Pearson


def test_cp_zero_successes_upper_has_closed_form() -> None:
    # P[Bin(n, p) = 0] = (1 - p)^n = alpha  =>  p = 1 - alpha^(1/n)
    assert clopper_pearson(0, 100, 0.95, "upper") == (0.0, pytest.approx(1 - 0.05 ** (1 / 100), rel=1e-12))


def test_cp_all_successes_lower_has_closed_form() -> None:
    lo, hi = clopper_pearson(100, 100, 0.95, "lower")
    assert lo == pytest.approx(0.05 ** (1 / 100), rel=1e-12)
    assert hi == 1.0


def test_cp_two_sided_known_value() -> None:
    lo, hi = clopper_pearson(5, 20, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (0.0866, 0.4910)
    # Independently: the ends are where the binomial tails equal 2.5%.
    assert stats.binom.sf(4, 20, lo) == pytest.approx(0.025, rel=1e-8)
    assert stats.binom.cdf(5, 20, hi) == pytest.approx(0.025, rel=1e-8)


def test_cp_edges() -> None:
    assert clopper_pearson(0, 10)[0] == 0.0
    assert clopper_pearson(10, 10)[1] == 1.0
    assert clopper_pearson(3, 10, side="lower")[1] == 1.0
    assert clopper_pearson(3, 10, side="upper")[0] == 0.0


@pytest.mark.parametrize(
    "args",
    [(-1, 10), (11, 10), (0, 0), (3, 10, 1.0), (3, 10, 0.0), (3, 10, 0.95, "both"), (1.5, 10)],
)
def test_cp_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(InputError):
        clopper_pearson(*args)


# ------------------------------------------------------------------ epsilon from rates


def test_perfect_attack_values_from_policy_page() -> None:
    q = 0.05 ** (1 / 100)
    assert epsilon_from_rates(100, 100, 0, 100, 0) == pytest.approx(math.log(q / (1 - q)), rel=1e-10)
    assert epsilon_from_rates(100, 100, 0, 100, 0) == pytest.approx(3.493, abs=1e-3)
    assert epsilon_from_rates(1000, 1000, 0, 1000, 0) == pytest.approx(5.81, abs=5e-3)
    assert max_resolvable_epsilon(1000, 1000, 0) == epsilon_from_rates(1000, 1000, 0, 1000, 0)


def _cp_upper_by_root(k: int, n: int, alpha: float) -> float:
    # The p at which P[Bin(n, p) <= k] = alpha, found by root search rather than the beta quantile.
    return float(optimize.brentq(lambda p: stats.binom.cdf(k, n, p) - alpha, 1e-12, 1 - 1e-12, xtol=1e-14))


def test_symmetric_form_wins_when_fnr_is_tiny() -> None:
    # Every member flagged (FNR ~ 0) but half the non-members too (TNR modest):
    # TPR/FPR proves little, TNR <= e^eps FNR proves much more.
    fpr_high = _cp_upper_by_root(50, 100, 0.05)
    tpr_low = 0.05 ** (1 / 100)
    direct = math.log(tpr_low / fpr_high)
    symmetric = math.log((1 - fpr_high) / (1 - tpr_low))
    assert symmetric > direct > 0
    assert epsilon_from_rates(100, 100, 50, 100, 0) == pytest.approx(symmetric, rel=1e-8)


def test_direct_form_when_fpr_is_tiny() -> None:
    tpr_low = 1 - _cp_upper_by_root(50, 100, 0.05)  # lower bound on TPR for 50/100 by symmetry
    fpr_high = 1 - 0.05 ** (1 / 100)
    assert epsilon_from_rates(50, 100, 0, 100, 0) == pytest.approx(math.log(tpr_low / fpr_high), rel=1e-8)


def test_delta_reduces_the_bound() -> None:
    base = epsilon_from_rates(90, 100, 5, 100, 0)
    assert 0 < epsilon_from_rates(90, 100, 5, 100, 0.05) < base
    assert epsilon_from_rates(90, 100, 5, 100, 0.99) == 0.0


def test_uninformative_counts_give_zero() -> None:
    assert epsilon_from_rates(50, 100, 50, 100, 0) == 0.0
    assert epsilon_from_rates(0, 100, 0, 100, 0) == 0.0


@pytest.mark.parametrize(
    "args",
    [
        (-1, 10, 0, 10, 0),
        (11, 10, 0, 10, 0),
        (1, 10, 11, 10, 0),
        (1, 0, 0, 10, 0),
        (1, 10, 0, 10, -0.1),
        (1, 10, 0, 10, 0, 1.5),
    ],
)
def test_epsilon_from_rates_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(InputError):
        epsilon_from_rates(*args)


# ------------------------------------------------------------------ max over thresholds


def test_random_attack_gives_zero() -> None:
    zeros = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        bound = epsilon_lower_bound(rng.normal(size=2000), rng.normal(size=2000), 0.0)
        zeros += bound.epsilon == 0.0
    assert zeros >= 19


def test_perfect_separator_reaches_the_resolution_limit() -> None:
    bound = epsilon_lower_bound(np.arange(100) + 1000.0, np.arange(100.0), 0.0)
    assert isinstance(bound, EpsilonBound)
    assert bound.epsilon == pytest.approx(bound.max_resolvable, rel=1e-12)
    assert bound.threshold == 1000.0 and (bound.tp, bound.fp) == (100, 0)
    # Bonferroni over 200 distinct thresholds.
    assert bound.confidence == pytest.approx(1 - 0.05 / 200)
    assert bound.max_resolvable == pytest.approx(max_resolvable_epsilon(100, 100, 0.0, 1 - 0.05 / 200))
    # The correction costs resolution: below the single-threshold 3.49.
    assert bound.epsilon < max_resolvable_epsilon(100, 100, 0.0)
    assert bound.to_dict()["method"] == "Clopper-Pearson, max over thresholds, Bonferroni"


def test_comparisons_tighten_the_correction() -> None:
    members, nonmembers = np.arange(100) + 1000.0, np.arange(100.0)
    one = epsilon_lower_bound(members, nonmembers, 0.0)
    ten = epsilon_lower_bound(members, nonmembers, 0.0, comparisons=10)
    assert ten.confidence == pytest.approx(1 - 0.05 / 2000)
    assert ten.epsilon < one.epsilon


def test_max_over_thresholds_matches_brute_force_with_ties() -> None:
    rng = np.random.default_rng(3)
    members = rng.integers(0, 8, size=60).astype(float) + 4
    nonmembers = rng.integers(0, 8, size=50).astype(float)
    bound = epsilon_lower_bound(members, nonmembers, 1e-3)
    thresholds = np.unique(np.r_[members, nonmembers])
    conf = 1 - 0.05 / thresholds.size
    brute = max(
        epsilon_from_rates(int((members >= t).sum()), 60, int((nonmembers >= t).sum()), 50, 1e-3, conf)
        for t in thresholds
    )
    assert bound.epsilon == pytest.approx(brute, rel=1e-12)
    assert bound.epsilon > 0
    assert bound.threshold is not None
    assert bound.tp == int((members >= bound.threshold).sum())
    assert bound.fp == int((nonmembers >= bound.threshold).sum())


def test_no_bound_reports_no_threshold() -> None:
    bound = epsilon_lower_bound([0.0, 1.0], [0.0, 1.0], 0.0)
    assert bound.epsilon == 0.0 and bound.threshold is None and (bound.tp, bound.fp) == (0, 0)


def test_ten_thousand_scores_are_fast() -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    epsilon_lower_bound(rng.normal(1, 1, 10_000), rng.normal(0, 1, 10_000), 1e-6)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"member_scores": [], "nonmember_scores": [1.0]},
        {"member_scores": [1.0], "nonmember_scores": []},
        {"member_scores": [1.0, float("nan")], "nonmember_scores": [1.0]},
        {"member_scores": [[1.0]], "nonmember_scores": [1.0]},
        {"member_scores": [1.0], "nonmember_scores": [1.0], "comparisons": 0},
        {"member_scores": [1.0], "nonmember_scores": [1.0], "confidence": 1.0},
    ],
)
def test_epsilon_lower_bound_rejects_bad_input(kwargs: dict) -> None:
    with pytest.raises(InputError):
        epsilon_lower_bound(delta=0.0, **kwargs)


# ------------------------------------------------------------------ one-run audit


def test_steinke_all_correct_matches_binomial_tail() -> None:
    # eps-DP null: P[Bin(100, q) >= 100] = q^100 = 0.05  =>  q = 0.05^(1/100), eps = logit(q)
    q = 0.05 ** (1 / 100)
    expected = math.log(q / (1 - q))
    assert stats.binom.sf(99, 100, q) == pytest.approx(0.05)
    assert steinke_one_run_bound(1000, 100, 100, 0.0) == pytest.approx(expected, abs=1e-9)


def test_steinke_nothing_correct_is_zero() -> None:
    assert steinke_one_run_bound(1000, 100, 0, 0.0) == 0.0
    assert steinke_one_run_bound(1000, 100, 50, 0.0) == 0.0  # chance level
    assert steinke_one_run_bound(0, 0, 0, 0.0) == 0.0


def test_steinke_monotone_in_correct() -> None:
    values = [steinke_one_run_bound(1000, 200, v, 1e-5) for v in range(100, 201, 10)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[0] == 0.0 and values[-1] > 2


def test_steinke_delta_matches_the_paper_example() -> None:
    # arXiv:2305.08846 Appendix D: m = 1000, r = 100, v = 75, delta = 1e-4, 95% -> eps 0.673.
    assert steinke_one_run_bound(1000, 100, 75, 1e-4) == pytest.approx(0.673, abs=5e-4)
    # delta only ever weakens the bound, and a large m * delta wipes it out.
    assert steinke_one_run_bound(1000, 100, 75, 1e-4) < steinke_one_run_bound(1000, 100, 75, 0.0)
    assert steinke_one_run_bound(1000, 100, 75, 1e-2) == 0.0


@pytest.mark.parametrize("args", [(10, 11, 0, 0.0), (10, 5, 6, 0.0), (-1, 0, 0, 0.0), (10, 5, 3, 2.0)])
def test_steinke_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(InputError):
        steinke_one_run_bound(*args)


# ------------------------------------------------------------------ AUC and TPR at FPR


def test_auc_separable_is_one() -> None:
    auc, (lo, hi) = auc_with_interval(np.arange(50) + 100.0, np.arange(50.0))
    assert auc == 1.0 and hi == 1.0 and lo == 1.0


def test_auc_identical_distributions_cover_half() -> None:
    rng = np.random.default_rng(1)
    auc, (lo, hi) = auc_with_interval(rng.normal(size=2000), rng.normal(size=2000), seed=5)
    assert auc == pytest.approx(0.5, abs=0.03)
    assert lo < 0.5 < hi


def test_auc_ties_count_half_and_match_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    members = np.array([1.0, 2.0, 2.0, 3.0])
    nonmembers = np.array([0.0, 2.0, 2.0])
    auc, _ = auc_with_interval(members, nonmembers)
    # pairs: 1 beats 0; each 2 beats 0 and ties two 2s; 3 beats all -> (1 + 2*(1 + 1) + 3) / 12
    assert auc == pytest.approx(8 / 12)
    labels = np.r_[np.ones(4), np.zeros(3)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[members, nonmembers]))


def test_auc_bootstrap_is_fast() -> None:
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    auc_with_interval(rng.normal(0.3, 1, 2000), rng.normal(size=2000), n_boot=200)
    assert time.perf_counter() - start < 2.0


def test_tpr_at_fpr_hand_example() -> None:
    nonmembers = np.arange(1.0, 11.0)  # 1..10
    members = np.array([5.5, 9.5, 10.0, 11.0, 12.0])
    tpr, ci, n_neg = tpr_at_fpr(members, nonmembers, 0.1)
    # one false positive allowed: threshold 9 (only the non-member 10 lies above it)
    assert (tpr, n_neg) == (0.8, 10)
    assert ci == clopper_pearson(4, 5, 0.95)
    # fpr * n_neg < 1: TPR at FPR 0, strictly above the largest non-member
    assert tpr_at_fpr(members, nonmembers, 0.05)[0] == 0.4


def test_tpr_at_fpr_ties_never_exceed_fpr() -> None:
    nonmembers = np.array([0.0] * 7 + [3.0] * 3)
    members = np.array([2.0, 3.0, 4.0])
    # two false positives allowed, but the top three non-members tie: only "> 3" keeps FPR <= 0.2
    assert tpr_at_fpr(members, nonmembers, 0.2)[0] == pytest.approx(1 / 3)
    assert tpr_at_fpr(members, nonmembers, 1.0)[0] == 1.0


def test_tpr_at_fpr_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        tpr_at_fpr([1.0], [0.0], 1.5)
    with pytest.raises(InputError):
        tpr_at_fpr([], [0.0], 0.1)


# ------------------------------------------------------------------ what DP allows


def test_dp_auc_bound() -> None:
    assert dp_auc_bound(1, 0) == pytest.approx(math.e / (1 + math.e))
    assert dp_auc_bound(1, 0) == pytest.approx(0.7311, abs=1e-4)
    assert dp_auc_bound(0, 0) == 0.5
    assert dp_auc_bound(50, 0.1) == 1.0
    with pytest.raises(InputError):
        dp_auc_bound(-1, 0)


def test_dp_tpr_bound() -> None:
    assert dp_tpr_bound(1, 0, 0.01) == pytest.approx(math.e * 0.01)
    assert dp_tpr_bound(1, 1e-3, 0.01) == pytest.approx(math.e * 0.01 + 1e-3)
    assert dp_tpr_bound(1000, 0, 0.01) == 1.0
    assert dp_tpr_bound(2, 0.2, 0.0) == 0.2
    with pytest.raises(InputError):
        dp_tpr_bound(1, 0, -0.1)
