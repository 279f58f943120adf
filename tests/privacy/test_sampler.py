"""Our sampler against mbi 1.1's: conditional independence of siblings, fidelity, seeds."""

from __future__ import annotations

import pickle

import jax.numpy as jnp
import numpy as np
import pytest
from mbi import CliqueVector, Domain, Factor, MarkovRandomField, marginal_oracles
from scipy import stats

from privacy.generators.tabular.sampler import SamplingPlan, randomized_round, sample_model

N = 20000
P_A = np.array([0.3, 0.4, 0.3])
P_B_GIVEN_A = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
P_C_GIVEN_A = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.4, 0.4, 0.1]])


@pytest.fixture(scope="module")
def star() -> MarkovRandomField:
    """A star A-B, A-C: B and C independent given A (the ground truth is built with numpy)."""
    dom = Domain(["A", "B", "C"], [3, 4, 4])
    potentials = CliqueVector(
        dom,
        [("A", "B"), ("A", "C")],
        {
            ("A", "B"): Factor(dom.project(("A", "B")), jnp.asarray(np.log(P_A[:, None] * P_B_GIVEN_A))),
            ("A", "C"): Factor(dom.project(("A", "C")), jnp.asarray(np.log(P_C_GIVEN_A))),
        },
    )
    marginals = marginal_oracles.message_passing_stable(potentials, N)
    return MarkovRandomField(potentials=potentials, marginals=marginals, total=N)


def conditional_independence_p(x: np.ndarray) -> float:
    """p-value of a chi-square test that columns 1 and 2 are independent given column 0."""
    chi2, dof = 0.0, 0
    for a in np.unique(x[:, 0]):
        sub = x[x[:, 0] == a]
        table = np.zeros((4, 4))
        np.add.at(table, (sub[:, 1], sub[:, 2]), 1)
        res = stats.chi2_contingency(table, correction=False)
        chi2 += res.statistic
        dof += res.dof
    return float(stats.chi2.sf(chi2, dof))


def test_siblings_are_conditionally_independent_with_our_sampler(star):
    x = sample_model(star, N, np.random.default_rng(11))
    assert x.shape == (N, 3)
    assert conditional_independence_p(x) > 1e-3


def test_mbi_1_1_sampler_makes_siblings_co_monotone(star):
    """Documents why we do not use mbi 1.1's ``synthetic_data``.

    It ranks the rows of each parent group in row order and maps rank to value through each
    child's conditional CDF, so B and C move together inside every group of A: the chi-square
    test rejects conditional independence overwhelmingly, although the model has none.
    """
    state = np.random.get_state()
    try:
        np.random.seed(0)
        data = star.synthetic_data(rows=N).to_dict()
    finally:
        np.random.set_state(state)
    y = np.column_stack([data["A"], data["B"], data["C"]])
    assert conditional_independence_p(y) < 1e-12


def test_our_sampler_reproduces_the_model(star):
    x = sample_model(star, N, np.random.default_rng(12))
    # randomized rounding: the root marginal is exact up to one row per cell
    assert np.all(np.abs(np.bincount(x[:, 0], minlength=3) - P_A * N) <= 1)
    for a in range(3):
        sub = x[x[:, 0] == a]
        for col, cond in ((1, P_B_GIVEN_A), (2, P_C_GIVEN_A)):
            freq = np.bincount(sub[:, col], minlength=4) / len(sub)
            assert np.abs(freq - cond[a]).max() < 0.01


def test_same_seed_same_rows_different_seed_different_rows(star):
    plan = SamplingPlan.from_model(star)
    a = plan.sample(1000, np.random.default_rng(3))
    b = plan.sample(1000, np.random.default_rng(3))
    c = plan.sample(1000, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sampler_does_not_touch_numpy_global_state(star):
    before = np.random.get_state()
    sample_model(star, 500, np.random.default_rng(0))
    after = np.random.get_state()
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]


def test_plan_is_plain_numpy_and_pickles(star):
    plan = SamplingPlan.from_model(star)
    again = pickle.loads(pickle.dumps(plan))
    np.testing.assert_array_equal(plan.sample(200, np.random.default_rng(9)), again.sample(200, np.random.default_rng(9)))
    assert all(isinstance(step.table, np.ndarray) for step in plan.steps)


def test_zero_rows(star):
    assert SamplingPlan.from_model(star).sample(0, np.random.default_rng(0)).shape == (0, 3)


@pytest.mark.parametrize("total", [0, 1, 7, 1000])
def test_randomized_round_sums_to_total_and_stays_within_one(total):
    rng = np.random.default_rng(total)
    probs = rng.dirichlet(np.ones(6))
    counts = randomized_round(probs, total, rng)
    assert counts.sum() == total
    assert np.all(np.abs(counts - probs * total) < 1)


def test_numpy_projection_matches_mbi(star):
    from privacy.generators.tabular.marginal import project_many

    queries = [("A", "B"), ("B", "C"), ("C", "B", "A"), ("C",), ()]
    ours = project_many(star, queries)
    for q in queries:
        np.testing.assert_allclose(ours[q], np.asarray(star.project(q).datavector()), rtol=1e-5, atol=1e-6)
