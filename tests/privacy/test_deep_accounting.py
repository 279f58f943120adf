"""Our DP-SGD accountant (opacus RDP) against Google's PLD accountant and closed forms."""

from __future__ import annotations

import math

import pytest

from privacy.errors import InputError
from privacy.generators.tabular.deep.accounting import (
    ORDERS,
    calibrate_measurement,
    calibrate_sgd,
    calibrate_sgd_at_order,
    fixed_order,
    gaussian_entry,
    order_epsilon,
    rdp_at,
    rdp_budget,
    rdp_epsilon,
)
from privacy.generators.tabular.deep.dpsgd import Plan

dp_accounting = pytest.importorskip("dp_accounting")


def pld_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """Google dp-accounting's PLD epsilon for the same composition (Poisson-subsampled Gaussians)."""
    from dp_accounting import dp_event, pld

    events = []
    for sigma, q, steps in history:
        ev: object = dp_event.GaussianDpEvent(sigma)
        if q < 1:
            ev = dp_event.PoissonSampledDpEvent(q, ev)
        events.append(dp_event.SelfComposedDpEvent(ev, steps))
    acc = pld.PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(dp_event.ComposedDpEvent(events))
    return float(acc.get_epsilon(delta))


CASES = [
    # (history, delta): DP-SGD settings of the sizes our generators plan, with and without a
    # pre-processing measurement
    ([(1.1, 0.01, 1000)], 1e-5),
    ([(0.8, 0.02, 500)], 1e-6),
    ([(2.0, 0.05, 2000)], 1e-9),
    ([(5.0, 1.0, 1), (1.5, 0.0154, 1950)], 1e-6),
    ([(30.0, 1.0, 1), (0.9, 0.004, 7500)], 1e-5),
]


@pytest.mark.parametrize(("history", "delta"), CASES)
def test_rdp_is_never_tighter_than_pld(history, delta) -> None:
    ours = rdp_epsilon(history, delta)
    theirs = pld_epsilon(history, delta)
    assert ours >= theirs * (1 - 1e-3), (ours, theirs)
    # and not absurdly looser either (RDP is within ~50% of PLD at these settings)
    assert ours <= theirs * 1.5 + 0.05, (ours, theirs)


def test_single_gaussian_matches_the_closed_form_rdp_bound() -> None:
    # one Gaussian with sensitivity 1, noise sigma: RDP(alpha) = alpha / (2 sigma^2); opacus converts with
    # Balle et al. 2020, which is never looser than the classic eps = rdp + log(1/delta)/(alpha-1)
    sigma, delta = 4.0, 1e-6
    classic = min(a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in [1 + x / 10 for x in range(1, 1000)])
    ours = rdp_epsilon([gaussian_entry(sigma * 3.0, 3.0)], delta)
    assert ours <= classic + 1e-9
    assert ours >= pld_epsilon([(sigma, 1.0, 1)], delta) * (1 - 1e-3)


def test_calibration_reaches_the_budget_from_below() -> None:
    pre = calibrate_measurement(0.05, 1e-6)
    assert rdp_epsilon([(pre, 1.0, 1)], 1e-6) == pytest.approx(0.05, rel=1e-3)
    sigma = calibrate_sgd(1.0, 1e-6, 0.02, 1500, [(pre, 1.0, 1)])
    eps = rdp_epsilon([(pre, 1.0, 1), (sigma, 0.02, 1500)], 1e-6)
    assert eps <= 1.0
    assert eps >= 0.99
    # a smaller noise multiplier would pass the budget
    assert rdp_epsilon([(pre, 1.0, 1), (sigma * 0.99, 0.02, 1500)], 1e-6) > 1.0


def test_plan_spends_at_most_the_budget_and_less_when_stopped_early() -> None:
    pre = calibrate_measurement(0.1, 1e-6)
    plan = Plan.make(epsilon=2.0, delta=1e-6, noisy_rows=26_000.0, batch_size=500, epochs=10, max_grad_norm=1.0,
                     fixed_history=[(pre, 1.0, 1)])
    assert plan.sample_rate == pytest.approx(500 / 26_000)
    assert plan.planned_steps == math.ceil(10 / plan.sample_rate)
    full = plan.epsilon_after(plan.planned_steps)
    assert 1.98 <= full <= plan.epsilon_guarantee <= 2.0
    assert plan.epsilon_guarantee == pytest.approx(2.0, rel=1e-12)
    assert plan.epsilon_after(plan.planned_steps // 2) < full
    # the measurement alone: 0.1 at its own optimal order (information), more at the plan's fixed
    # order alpha0, which was chosen for the whole run (was: epsilon_after(0) == 0.1, when
    # epsilon_after optimised the order per history)
    assert plan.epsilon_optimised_order(0) == pytest.approx(0.1, rel=1e-3)
    assert 0.1 < plan.epsilon_after(0) < full


def test_measurements_alone_over_budget_are_refused() -> None:
    pre = calibrate_measurement(1.0, 1e-6)
    with pytest.raises(InputError):
        calibrate_sgd(0.5, 1e-6, 0.01, 100, [(pre, 1.0, 1)])
    with pytest.raises(InputError):
        Plan.make(epsilon=0.5, delta=1e-6, noisy_rows=1e4, batch_size=100, epochs=1, max_grad_norm=1.0,
                  fixed_history=[(pre, 1.0, 1)])
    with pytest.raises(InputError):
        calibrate_sgd_at_order(8.0, rdp_budget(0.5, 1e-6, 8.0), 0.01, 100, [(pre, 1.0, 1)])
    for bad in (math.inf, math.nan, 0.0):
        with pytest.raises(InputError, match="must be a finite number"):
            Plan.make(epsilon=bad, delta=1e-6, noisy_rows=1e4, batch_size=100, epochs=1, max_grad_norm=1.0,
                      fixed_history=[])


def test_cached_curves_equal_opacus_accountant() -> None:
    from opacus.accountants import RDPAccountant

    from privacy.generators.tabular.deep.accounting import ORDERS

    history = [(7.0, 1.0, 1), (1.3, 0.02, 800), (1.3, 0.02, 400)]
    acc = RDPAccountant()
    acc.history = list(history)
    eps, _ = acc.get_privacy_spent(delta=1e-6, alphas=ORDERS)
    assert rdp_epsilon(history, 1e-6) == pytest.approx(eps, rel=1e-12)


# --- the guarantee at a fixed Renyi order (adaptive composition over the noisy count) --------------


def test_order_conversion_and_budget_match_the_closed_forms() -> None:
    # one unsampled Gaussian: RDP(alpha) = alpha / (2 sigma^2) exactly
    for sigma, order in [(4.0, 7.5), (0.9, 22.0), (30.0, 156.0)]:
        assert rdp_at([(sigma, 1.0, 1)], order) == pytest.approx(order / (2 * sigma**2), rel=1e-12)
    # opacus' conversion at one order (Balle et al. 2020, Thm. 21) and its inverse
    for rdp, order, delta in [(1.3, 6.0, 1e-6), (0.2, 22.0, 1e-5), (5.1, 3.4, 1e-9)]:
        closed = rdp + math.log((order - 1) / order) - (math.log(delta) + math.log(order)) / (order - 1)
        assert order_epsilon(rdp, order, delta) == pytest.approx(closed, rel=1e-12)
        budget = rdp_budget(closed, delta, order)
        assert budget == pytest.approx(rdp, rel=1e-12)
        assert order_epsilon(budget, order, delta) <= closed
    # rdp_epsilon is the minimum over ORDERS of the one-order conversion
    history = [(5.0, 1.0, 1), (1.5, 0.0154, 1950)]
    assert rdp_epsilon(history, 1e-6) == pytest.approx(
        min(order_epsilon(rdp_at(history, a), a, 1e-6) for a in ORDERS), rel=1e-12)
    with pytest.raises(InputError):
        rdp_budget(0.01, 1e-9, 1.5)  # no RDP at order 1.5 converts to 0.01 at this delta


def _entry(share: float, epsilon: float, delta: float) -> tuple[float, float, int]:
    return gaussian_entry(calibrate_measurement(share * epsilon, delta) * 3.0, 3.0)


# (epsilon, delta, batch size, epochs, measurement share): dpctgan in its tests, dpdiffusion's
# defaults, dpar's defaults. With each plan calibrated at its own optimal order (the calibration
# before the fixed order), these envelopes were 3.5511, 10.7509 and 4.5804 over ENVELOPE_COUNTS
# (3.2186, 10.1305 and 4.1193 over counts 150 .. 30,000 alone): this test failed on that code
ENVELOPE_CASES = [(3.0, 1e-6, 200, 8, 0.05), (10.0, 1e-6, 500, 30, 0.02), (4.0, 1e-5, 64, 30, 0.2)]


@pytest.mark.parametrize(("epsilon", "delta", "batch", "epochs", "share"), ENVELOPE_CASES)
def test_the_envelope_over_noisy_counts_meets_the_target(envelope_epsilon, epsilon, delta, batch, epochs,
                                                         share) -> None:
    """The claim the card makes: (epsilon, delta)-DP for measurement + a plan chosen from the noisy count.

    Adaptive RDP composition bounds the pair by the per-order maximum, over the plans the count can
    select, of the total RDP: that envelope, converted, must meet the target. It does not when each
    plan is calibrated at its own optimal order."""
    fixed = [_entry(share, epsilon, delta)]

    def plan_for(count: float) -> Plan:
        return Plan.make(epsilon=epsilon, delta=delta, noisy_rows=count, batch_size=batch, epochs=epochs,
                         max_grad_norm=1.0, fixed_history=fixed)

    eps, plans = envelope_epsilon(plan_for, delta)
    assert eps <= epsilon + 1e-9, eps
    # and the budget is used, not wasted: the envelope is the target within the bisection's tolerance
    assert eps >= epsilon * (1 - 1e-5)


def test_the_order_is_chosen_from_public_inputs_only() -> None:
    fixed = [_entry(0.05, 3.0, 1e-6)]
    plans = [Plan.make(epsilon=3.0, delta=1e-6, noisy_rows=n, batch_size=b, epochs=8, max_grad_norm=1.0,
                       fixed_history=fixed) for n in (-5.0, 50.0, 1_300.0, 30_000.0, 1e6) for b in (64, 200, 500)]
    alpha0 = fixed_order(3.0, 1e-6, 8, fixed)
    assert alpha0 in ORDERS
    assert {p.order for p in plans} == {alpha0}
    assert Plan.public_order(epsilon=3.0, delta=1e-6, epochs=8, fixed_history=fixed) == alpha0
    # every plan stays within the same budget at that order; their noise differs with the count
    budget = rdp_budget(3.0, 1e-6, alpha0)
    assert all(p.rdp_budget == budget and p.rdp_at_order(p.planned_steps) <= budget for p in plans)
    assert all(p.epsilon_guarantee == pytest.approx(3.0, rel=1e-12) and p.epsilon_guarantee <= 3.0 for p in plans)
    assert len({p.noise_multiplier for p in plans}) > 5
    # the order follows the public inputs it is a function of
    assert fixed_order(10.0, 1e-6, 8, [_entry(0.05, 10.0, 1e-6)]) < alpha0 < fixed_order(1.0, 1e-6, 8,
                                                                                          [_entry(0.05, 1.0, 1e-6)])


def test_the_order_is_the_optimal_order_of_the_reference_plan() -> None:
    """alpha0 is where the reference plan (rate 1/10, 10 x epochs steps) converts best: at that
    plan, the fixed-order calibration costs nothing against the per-plan optimised one."""
    fixed = [_entry(0.05, 4.0, 1e-6)]
    alpha0 = fixed_order(4.0, 1e-6, 8, fixed)
    sigma = calibrate_sgd_at_order(alpha0, rdp_budget(4.0, 1e-6, alpha0), 0.1, 80, fixed)
    history = [*fixed, (sigma, 0.1, 80)]
    # opacus' optimised conversion of the reference history meets the target at alpha0 and no order
    # does better, so the per-plan optimised calibration (calibrate_sgd) picks the same noise
    assert rdp_epsilon(history, 1e-6) == pytest.approx(4.0, rel=1e-5)
    assert min(ORDERS, key=lambda a: order_epsilon(rdp_at(history, a), a, 1e-6)) == alpha0
    assert rdp_epsilon([*fixed, (sigma * (1 - 1e-4), 0.1, 80)], 1e-6) > 4.0


def test_fewer_steps_stay_within_the_budget_at_the_fixed_order() -> None:
    """A time limit re-plans with fewer steps at the same order: RDP at alpha0 is monotone in the
    steps and in the noise, so any step count keeps the guarantee."""
    fixed = [_entry(0.05, 3.0, 1e-6)]
    plan = Plan.make(epsilon=3.0, delta=1e-6, noisy_rows=2_000.0, batch_size=200, epochs=8, max_grad_norm=1.0,
                     fixed_history=fixed)
    rdps = [plan.rdp_at_order(k) for k in (0, 1, 10, plan.planned_steps // 2, plan.planned_steps)]
    assert rdps == sorted(rdps) and rdps[-1] <= plan.rdp_budget
    assert rdps[-1] >= plan.rdp_budget * (1 - 1e-5)  # calibrated to the budget, not under it
    short = Plan.make(epsilon=3.0, delta=1e-6, noisy_rows=2_000.0, batch_size=200, epochs=8, max_grad_norm=1.0,
                      fixed_history=fixed, steps=plan.planned_steps // 3, order=plan.order)
    assert short.order == plan.order and short.rdp_budget == plan.rdp_budget
    assert short.noise_multiplier < plan.noise_multiplier
    assert short.rdp_at_order(short.planned_steps) <= short.rdp_budget
    assert short.epsilon_guarantee == plan.epsilon_guarantee  # the card charges the same guarantee
    # the run's own optimised-order figure is information only, and never above the guarantee here
    assert plan.epsilon_optimised_order(plan.planned_steps) <= plan.epsilon_guarantee


@pytest.mark.parametrize("count", [300.0, 26_000.0])
def test_fixed_order_guarantee_is_never_tighter_than_pld(count) -> None:
    """Each count's plan, taken alone, is a non-adaptive mechanism that PLD accounts tightly: the
    guarantee of the adaptive one can only be above it (and stays within RDP's usual slack)."""
    fixed = [_entry(0.05, 2.0, 1e-6)]
    plan = Plan.make(epsilon=2.0, delta=1e-6, noisy_rows=count, batch_size=64 if count < 1000 else 500, epochs=10,
                     max_grad_norm=1.0, fixed_history=fixed)
    theirs = pld_epsilon(plan.history(plan.planned_steps), 1e-6)
    assert plan.epsilon_guarantee >= theirs * (1 - 1e-3), (plan.epsilon_guarantee, theirs)
    assert plan.epsilon_guarantee <= theirs * 1.5 + 0.05


def test_calibration_at_the_fixed_order_is_fast() -> None:
    """One order per bisection step: a plan is calibrated in milliseconds (the order is cached)."""
    import time

    fixed = [_entry(0.05, 3.0, 1e-6)]
    Plan.make(epsilon=3.0, delta=1e-6, noisy_rows=1.0, batch_size=200, epochs=8, max_grad_norm=1.0,
              fixed_history=fixed)
    started = time.perf_counter()
    for n in range(1_000, 31_000, 3_000):
        Plan.make(epsilon=3.0, delta=1e-6, noisy_rows=float(n), batch_size=200, epochs=8, max_grad_norm=1.0,
                  fixed_history=fixed)
    assert time.perf_counter() - started < 2.0
