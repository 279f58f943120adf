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
mechanisms *order by order*; the ledger then composes the run's (epsilon, delta) with other runs by
basic composition.

**The guarantee is taken at one fixed Renyi order, chosen before the data is read.** Our
generators buy a noisy count first and set the DP-SGD plan from it (Poisson rate
``batch / noisy count``, steps, noise multiplier): the training is chosen adaptively. Adaptive RDP
composition holds per order ``alpha``: the pair (count, training) satisfies
``eps_meas(alpha) + sup_over_counts eps_sgd(alpha; plan(count))`` at each ``alpha``, and the
(epsilon, delta) claim is the conversion of that envelope. Calibrating each count's plan so that
``rdp_epsilon`` (which optimises ``alpha`` for *that* history) meets the target is therefore not
enough: each count's curve touches the target at its own optimal order, and their envelope passes
it (e.g. 3.55 for a target of 3 over counts -40 .. 10^6 with batch 200 and 8 epochs; 4.0003 for
dpar's defaults at 4 over 150 .. 2,000 entities). Instead
(``fixed_order``, ``calibrate_sgd_at_order``):

1. the order ``alpha0`` is a function of public inputs only (the target epsilon, delta, the epochs
   and the pre-processing measurements' noise, all fixed before any data is read; never the noisy
   count): the optimal order, as opacus' accountant reports it, of a *reference* plan with Poisson
   rate ``1 / REFERENCE_BATCHES`` and ``REFERENCE_BATCHES * epochs`` steps (a nominal count of
   ``REFERENCE_BATCHES`` batches), calibrated to the target. It is one of ``ORDERS``;
2. ``B = rdp_budget(epsilon, delta, alpha0)`` is the RDP at ``alpha0`` whose conversion (opacus'
   ``get_privacy_spent`` at that one order, Balle et al. 2020) is the target epsilon at delta;
3. every plan, whatever the noisy count and however many steps a time limit allows, takes the
   smallest noise multiplier with which measurements + DP-SGD have RDP at ``alpha0`` at most ``B``.

So the envelope over all counts is at most ``B`` at ``alpha0`` and the release is
``(order_epsilon(B, alpha0, delta) <= epsilon, delta)``-DP: that figure is the guarantee a card
reports. ``rdp_epsilon`` of one run's history (optimised order) may be reported as information, but
it is not a guarantee of the adaptive mechanism. The utility cost of fixing the order is a noise
multiplier at most 0.3% larger at the sizes we train (generator defaults; Adult, 1,300-30,000 rows;
pbcseq/Berka, 300-1,000 entities; epsilon 1, 3, 4, 10), at most 1.3% at 50 or 50,000 rows, and up
to 7% for dpar at 50,000 entities (780 batches, far from the reference's 10). The calibration is
also faster: one order per bisection step (milliseconds) plus ``fixed_order`` once per spend.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from privacy.errors import InputError

History = list[tuple[float, float, int]]

ACCOUNTANT = "opacus RDPAccountant (Renyi DP of the Poisson-subsampled Gaussian, Balle et al. 2020 conversion)"

#: Renyi orders: opacus' defaults (1.1 .. 63) extended to 10^4, which small-epsilon measurements need
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [int(round(64 * 1.25**k)) for k in range(23)]

#: the smallest noise multiplier we calibrate to (opacus' RDP bound is loose below it)
MIN_SIGMA = 0.3
MAX_SIGMA = 5000.0

#: the reference plan that fixes the Renyi order (``fixed_order``): a nominal count of this many
#: batches, i.e. Poisson rate ``1 / REFERENCE_BATCHES`` and ``REFERENCE_BATCHES * epochs`` steps. Ten
#: batches sits in the middle of the counts we train (Adult: 2.6 to 60 batches of 500; pbcseq and
#: Berka: 5 to 16 batches of 64). The worst noise cost over those sizes at epsilon 1-10 was 1.0029x
#: with 10 (1.0097x with 3, 1.0059x with 5, 1.0029x with 20, 1.0140x with 50)
REFERENCE_BATCHES = 10

#: relative tolerance of the noise multiplier's bisection at a fixed order (one order is cheap)
ORDER_SIGMA_RTOL = 1e-6


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

    The order is optimised for this one history, so this is a valid calibration only for a plan
    whose rate and steps are data-independent. The generators' plans are set from a noisy count
    and use ``calibrate_sgd_at_order`` (module docstring); this stays as the reference the tests
    compare with. Raises ``InputError`` when the fixed measurements alone already spend the budget.
    """
    if not 0 < sample_rate <= 1:
        raise InputError(f"sample rate {sample_rate:g} must be in (0, 1]")
    if steps < 1:
        raise InputError("training needs at least one step")
    if fixed and rdp_epsilon(fixed, delta) >= epsilon:
        raise InputError(f"the pre-processing measurements alone spend epsilon >= {epsilon:g}")
    return _bisect(lambda s: rdp_epsilon([*fixed, (s, sample_rate, steps)], delta), epsilon)


# --- the guarantee at one fixed order, chosen from public inputs -----------------------------------


@functools.lru_cache(maxsize=65536)
def _one_step_rdp_at(sigma: float, q: float, order: float) -> float:
    """opacus' RDP of one Poisson-subsampled Gaussian step at one order (the same function as ``ORDERS``' curve)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return float(compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=float(order)))


def rdp_at(history: Sequence[tuple[float, float, int]], order: float) -> float:
    """The composed history's RDP at one order (entries add; NaN, opacus' overflow, counts as infinite)."""
    total = 0.0
    for s, q, n in history:
        total += _one_step_rdp_at(float(s), float(q), float(order)) * int(n)
    return total if math.isfinite(total) else math.inf


def order_epsilon(rdp: float, order: float, delta: float) -> float:
    """Epsilon at ``delta`` from the RDP ``rdp`` at the single order ``order``.

    opacus' ``get_privacy_spent`` (Balle et al. 2020, Thm. 21) called with that one order: the same
    conversion ``rdp_epsilon`` applies at every order before taking the minimum.
    """
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not math.isfinite(rdp):
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "optimal order is the smallest alpha": it is the only one
        eps, _alpha = get_privacy_spent(orders=[float(order)], rdp=[float(rdp)], delta=delta)
    return float(eps)


def rdp_budget(epsilon: float, delta: float, order: float) -> float:
    """The largest RDP at ``order`` whose conversion (``order_epsilon``) is at most ``epsilon`` at ``delta``.

    Closed form of opacus' conversion, ``B = epsilon + (log delta + log a) / (a - 1) - log((a - 1) / a)``,
    then stepped down by a few ulps if rounding put its conversion above ``epsilon``. Raises
    ``InputError`` when no RDP at that order reaches ``epsilon`` (``B <= 0``).
    """
    a = float(order)
    if not a > 1:
        raise InputError(f"Renyi order {order} must be > 1")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InputError(f"epsilon ({epsilon}) must be a finite number > 0")
    if not 0 < delta < 1:
        raise InputError(f"delta ({delta}) must be in (0, 1)")
    budget = epsilon + (math.log(delta) + math.log(a)) / (a - 1) - math.log((a - 1) / a)
    while budget > 0 and order_epsilon(budget, a, delta) > epsilon:
        budget = math.nextafter(budget, -math.inf)
    if not budget > 0:
        raise InputError(f"epsilon {epsilon:g} at delta {delta:g} cannot be certified at Renyi order {a:g}")
    return budget


def calibrate_sgd_at_order(order: float, budget: float, sample_rate: float, steps: int, fixed: History) -> float:
    """The smallest DP-SGD noise multiplier with which ``fixed`` + the training has RDP <= ``budget`` at ``order``.

    The guarantee's calibration (module docstring): ``order`` and ``budget`` come from public inputs
    only, so every plan calibrated this way, whatever count set its rate and steps, keeps the
    adaptive composition's RDP at ``order`` within ``budget``. Raises ``InputError`` when the fixed
    measurements alone reach the budget, or when no multiplier up to ``MAX_SIGMA`` does.
    """
    if not 0 < sample_rate <= 1:
        raise InputError(f"sample rate {sample_rate:g} must be in (0, 1]")
    if steps < 1:
        raise InputError("training needs at least one step")
    if not rdp_at(fixed, order) < budget:
        raise InputError(f"the pre-processing measurements alone spend the budget at Renyi order {order:g}")
    history = list(fixed)

    def within(sigma: float) -> bool:
        return rdp_at([*history, (sigma, sample_rate, steps)], order) <= budget

    sigma = _smallest_sigma(within, MIN_SIGMA, MAX_SIGMA)
    if sigma is None:
        raise InputError(f"the budget is too small to train with (noise multiplier > {MAX_SIGMA:g})")
    return sigma


@functools.lru_cache(maxsize=1024)
def _fixed_order(epsilon: float, delta: float, epochs: int, fixed: tuple[tuple[float, float, int], ...]) -> float:
    q, steps = 1.0 / REFERENCE_BATCHES, REFERENCE_BATCHES * int(epochs)
    # the reference plan's calibrated noise, sigma_ref = min over orders of sigma(order): an order's
    # bisection only runs where the best multiplier so far already meets that order's budget
    best: float | None = None
    for order in ORDERS:
        a = float(order)
        try:
            budget = rdp_budget(epsilon, delta, a)
        except InputError:
            continue
        rest = budget - rdp_at(list(fixed), a)
        if not rest > 0:
            continue

        def within(sigma: float, a: float = a, rest: float = rest) -> bool:
            return steps * _one_step_rdp_at(sigma, q, a) <= rest

        if best is not None and not within(best):
            continue
        found = _smallest_sigma(within, MIN_SIGMA, best if best is not None else MAX_SIGMA)
        if found is not None and (best is None or found < best):
            best = found
    if best is None:
        raise InputError(f"epsilon {epsilon:g} is too small to train with (noise multiplier > {MAX_SIGMA:g})")
    # alpha0: the order at which opacus' accountant converts the reference history (at sigma_ref)
    from opacus.accountants.analysis.rdp import get_privacy_spent

    total = np.zeros(len(ORDERS))
    for s, qq, n in [*fixed, (best, q, steps)]:
        total += np.asarray(_one_step_rdp(float(s), float(qq))) * int(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _eps, alpha = get_privacy_spent(orders=ORDERS, rdp=total.tolist(), delta=delta)
    return float(alpha)


def fixed_order(epsilon: float, delta: float, epochs: int, fixed: Sequence[tuple[float, float, int]]) -> float:
    """The Renyi order ``alpha0`` at which a DP-SGD run's guarantee is taken; public inputs only.

    The optimal order (opacus' ``get_privacy_spent`` over ``ORDERS``) of the reference plan: the
    pre-processing measurements ``fixed`` (their noise is set by the spend and the share, never by
    the data) followed by DP-SGD at Poisson rate ``1 / REFERENCE_BATCHES`` for
    ``REFERENCE_BATCHES * epochs`` steps, with the smallest noise multiplier that meets ``epsilon``
    (computed as the minimum over orders of the fixed-order calibration: the same number as
    ``calibrate_sgd``'s, 3-10x faster). It takes no count, no batch of data, nothing
    measured: calling it with the same spend, epochs and measurement noise gives the same order for
    every data set. Cached.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InputError(f"epsilon ({epsilon}) must be a finite number > 0")
    if not 0 < delta < 1:
        raise InputError(f"delta ({delta}) must be in (0, 1)")
    if epochs < 1:
        raise InputError("training needs at least one epoch")
    key = tuple((float(s), float(q), int(n)) for s, q, n in fixed)
    return _fixed_order(float(epsilon), float(delta), int(epochs), key)


def _smallest_sigma(within: Callable[[float], bool], lo: float, hi: float,
                    rel_tol: float = ORDER_SIGMA_RTOL) -> float | None:
    """The smallest sigma in ``[lo, hi]`` (to ``rel_tol``) with ``within(sigma)``; None if ``hi`` fails.

    ``within`` must be monotone (RDP of the subsampled Gaussian decreases with the noise multiplier).
    The answer always satisfies ``within``.
    """
    if within(lo):
        return lo
    if not within(hi):
        return None
    for _ in range(200):
        if hi / lo <= 1 + rel_tol:
            break
        mid = math.sqrt(lo * hi)
        if within(mid):
            hi = mid
        else:
            lo = mid
    return hi


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
