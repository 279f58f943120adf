"""Privacy accounting of DP-SGD training and its DP pre-processing, in one RDP accountant.

Accountant: opacus' ``RDPAccountant`` (Renyi DP of the Poisson-subsampled Gaussian mechanism,
Mironov et al. 2019, converted to (epsilon, delta) with the conversion of Balle et al. 2020 over
opacus' default orders). Why RDP and not opacus' PRV accountant: RDP gives an analytic upper
bound with no discretisation error to manage, composes exactly with the other Gaussian
measurements a generator makes (noisy counts, below) in the same history, and is the accountant
every DP-SGD result we compare with reports. It is looser than a privacy-loss-distribution
accountant by a few percent; ``tests/privacy/test_deep_accounting.py`` checks it against Google's
``dp-accounting`` PLD accountant: ours may be looser, never tighter.

A *history* is a list of ``(noise_multiplier, sample_rate, steps)``, opacus' own format:

- DP-SGD: noise multiplier sigma (noise std / clipping norm), Poisson rate q, steps;
- a Gaussian measurement of a vector with L2 sensitivity ``s`` and noise std ``std`` is the entry
  ``(std / s, 1.0, 1)`` (no subsampling, one release).

Composition over the whole history is RDP composition (orders add), which is sound for adaptive
mechanisms; the ledger then composes the run's (epsilon, delta) with other runs by basic
composition.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np

from privacy.errors import InputError

History = list[tuple[float, float, int]]

ACCOUNTANT = "opacus RDPAccountant (Renyi DP of the Poisson-subsampled Gaussian, Balle et al. 2020 conversion)"

#: Renyi orders: opacus' defaults (1.1 .. 63) extended to 10^4, which small-epsilon measurements need
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [int(round(64 * 1.25**k)) for k in range(23)]

#: the smallest noise multiplier we calibrate to (opacus' RDP bound is loose below it)
MIN_SIGMA = 0.3
MAX_SIGMA = 5000.0


@functools.lru_cache(maxsize=4096)
def _one_step_rdp(sigma: float, q: float) -> tuple[float, ...]:
    """opacus' RDP curve of one Poisson-subsampled Gaussian step over ``ORDERS``."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return tuple(float(x) for x in compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=ORDERS))


def rdp_epsilon(history: Sequence[tuple[float, float, int]], delta: float) -> float:
    """The (epsilon at ``delta``) opacus' RDP accountant reports for the composed history.

    Exactly what ``opacus.accountants.RDPAccountant(history).get_privacy_spent(delta, ORDERS)``
    computes (RDP adds over steps and over the history's entries, then opacus' conversion), with
    each entry's one-step curve cached: calibration evaluates many histories.
    """
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not history:
        return 0.0
    total = np.zeros(len(ORDERS))
    for s, q, n in history:
        total += np.asarray(_one_step_rdp(float(s), float(q))) * int(n)
    with warnings.catch_warnings():
        # opacus warns when the optimum sits at the end of the orders; ORDERS reach 8,674 for that
        warnings.simplefilter("ignore", UserWarning)
        eps, _alpha = get_privacy_spent(orders=ORDERS, rdp=total.tolist(), delta=delta)
    return float(eps)


def gaussian_entry(std: float, l2_sensitivity: float) -> tuple[float, float, int]:
    """One Gaussian measurement (no subsampling) as a history entry."""
    return (std / l2_sensitivity, 1.0, 1)


def calibrate_measurement(epsilon: float, delta: float) -> float:
    """The noise multiplier of one unsampled Gaussian measurement that spends ``epsilon`` alone."""
    return _bisect(lambda s: rdp_epsilon([(s, 1.0, 1)], delta), epsilon)


def calibrate_sgd(epsilon: float, delta: float, sample_rate: float, steps: int, fixed: History) -> float:
    """The smallest DP-SGD noise multiplier with which ``fixed`` + the training spends <= ``epsilon``.

    Raises ``InputError`` when the fixed measurements alone already spend the budget.
    """
    if not 0 < sample_rate <= 1:
        raise InputError(f"sample rate {sample_rate:g} must be in (0, 1]")
    if steps < 1:
        raise InputError("training needs at least one step")
    if fixed and rdp_epsilon(fixed, delta) >= epsilon:
        raise InputError(f"the pre-processing measurements alone spend epsilon >= {epsilon:g}")
    return _bisect(lambda s: rdp_epsilon([*fixed, (s, sample_rate, steps)], delta), epsilon)


def _bisect(eps_of_sigma, target: float) -> float:  # type: ignore[no-untyped-def]
    """The smallest sigma in [MIN_SIGMA, MAX_SIGMA] with eps_of_sigma(sigma) <= target."""
    if not (math.isfinite(target) and target > 0):
        raise InputError(f"epsilon ({target}) must be a finite number > 0")
    lo, hi = MIN_SIGMA, MAX_SIGMA
    if eps_of_sigma(lo) <= target:
        return lo
    if eps_of_sigma(hi) > target:
        raise InputError(f"epsilon {target:g} is too small to train with (noise multiplier > {MAX_SIGMA:g})")
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if eps_of_sigma(mid) <= target:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1 + 1e-4:
            break
    return hi
