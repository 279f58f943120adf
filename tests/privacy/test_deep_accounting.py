"""Our DP-SGD accountant (opacus RDP) against Google's PLD accountant and closed forms."""

from __future__ import annotations

import math

import pytest

from privacy.errors import InputError
from privacy.generators.tabular.deep.accounting import (
    calibrate_measurement,
    calibrate_sgd,
    gaussian_entry,
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
    assert 1.98 <= full <= 2.0
    assert plan.epsilon_after(plan.planned_steps // 2) < full
    assert plan.epsilon_after(0) == pytest.approx(0.1, rel=1e-3)


def test_measurements_alone_over_budget_are_refused() -> None:
    pre = calibrate_measurement(1.0, 1e-6)
    with pytest.raises(InputError):
        calibrate_sgd(0.5, 1e-6, 0.01, 100, [(pre, 1.0, 1)])


def test_cached_curves_equal_opacus_accountant() -> None:
    from opacus.accountants import RDPAccountant

    from privacy.generators.tabular.deep.accounting import ORDERS

    history = [(7.0, 1.0, 1), (1.3, 0.02, 800), (1.3, 0.02, 400)]
    acc = RDPAccountant()
    acc.history = list(history)
    eps, _ = acc.get_privacy_spent(delta=1e-6, alphas=ORDERS)
    assert rdp_epsilon(history, 1e-6) == pytest.approx(eps, rel=1e-12)
