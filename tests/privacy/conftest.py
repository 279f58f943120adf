"""Fixtures shared by the privacy tests: the real Adult slice, conformed to its public schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from privacy.schema import Schema
from privacy.table import load_conformed

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def adult() -> tuple[pl.DataFrame, Schema]:
    schema = Schema.load(DATA / "adult_schema.yaml")
    df, _ = load_conformed(DATA / "adult_2000.csv", schema)
    return df, schema


def _envelope_epsilon(plans, delta: float) -> float:  # type: ignore[no-untyped-def]
    """The (epsilon, delta) that adaptive RDP composition certifies when the plan depends on a noisy count.

    RDP composes adaptively order by order, so the mechanism "measure, then train with the plan the
    measurement chose" has, at each order, at most the largest total RDP (measurements + all the
    plan's steps) over the plans it can choose. This takes that per-order maximum (the envelope)
    over ``plans`` (each ``dpsgd.Plan``-like: ``history(steps)`` and ``planned_steps``), with curves
    computed afresh by opacus' ``compute_rdp`` (not synthgate's cache), and converts it with opacus'
    ``get_privacy_spent`` over ``accounting.ORDERS``: the conversion ``rdp_epsilon`` uses.
    """
    import numpy as np
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    from privacy.generators.tabular.deep.accounting import ORDERS

    env = np.zeros(len(ORDERS))
    for plan in plans:
        total = np.zeros(len(ORDERS))
        for s, q, n in plan.history(plan.planned_steps):
            total += np.asarray(compute_rdp(q=q, noise_multiplier=s, steps=n, orders=ORDERS), dtype=float)
        env = np.maximum(env, np.where(np.isnan(total), np.inf, total))
    eps, _ = get_privacy_spent(orders=ORDERS, rdp=env.tolist(), delta=delta)
    return float(eps)


#: noisy counts a DP-SGD plan can be set from: plausible sizes and extreme ones (a negative or tiny
#: noisy count gives rate 1; a huge one a tiny rate and many steps)
ENVELOPE_COUNTS = (-40.0, 1.0, 50.0, 150.0, 600.0, 2_000.0, 8_000.0, 30_000.0, 50_000.0, 1_000_000.0)


@pytest.fixture(scope="session")
def envelope_epsilon():  # type: ignore[no-untyped-def]
    """``run(plan_for_count, delta)``: builds the plan every count of ``ENVELOPE_COUNTS`` would get
    (``plan_for_count(count)``, the generator's own planning) and returns the epsilon of their
    per-order envelope (``_envelope_epsilon``) and the plans."""
    import warnings

    def run(plan_for_count, delta: float, counts=ENVELOPE_COUNTS):  # type: ignore[no-untyped-def]
        plans = [plan_for_count(c) for c in counts]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # opacus' "optimal order is the largest alpha"
            return _envelope_epsilon(plans, delta), plans

    return run
