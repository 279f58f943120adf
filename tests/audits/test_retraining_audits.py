"""The audits that refit the generator: the one-run audit and the shadow-model privacy game.

A leaky generator (its training rows, or those with small noise) must be caught with a DP failure
for any small claimed epsilon; a generator that ignores its data must not be.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from refitters import IgnoringRefitter

from audits.baselines import CopyRefitter, NoisyCopyRefitter
from audits.context import AuditContext, Claim
from audits.one_run import run_one_run
from audits.shadow import balanced_inclusion, isolated_rows, target_features
from audits.shadow_game import run_shadow_game
from policies.model import MembershipSettings, Policy

GAME = MembershipSettings(
    domias_candidates=200, bootstrap=100, one_run_canaries=400, one_run_guesses=40,
    game_targets=10, game_isolated_targets=3, game_train_fits=6, game_test_fits=10,
    game_reference_rows=150, workers=1,
)


def _with(base: Policy, settings: MembershipSettings) -> Policy:
    audit = base.audit.model_copy(update={"membership": {"fast": settings, "thorough": settings}})
    return base.model_copy(update={"audit": audit})


@pytest.fixture
def game_policy(make_policy):  # type: ignore[no-untyped-def]
    """The unit-test policy with game settings small enough to run in seconds; call with settings."""
    return lambda settings=GAME: _with(make_policy(), settings)


def _metric(result, name):  # type: ignore[no-untyped-def]
    return next(m for m in result.metrics if m.name == name)


def test_one_run_catches_a_copy_with_a_dp_failure(train, holdout, independent, schema, game_policy):
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=CopyRefitter())
    m = _metric(run_one_run(train, holdout, independent, schema, game_policy(), ctx), "one_run_epsilon_lb")
    assert m.kind == "dp_claim" and m.role == "gate"
    # a copy lets the attack guess (nearly) every canary: far above the claimed epsilon of 1
    assert m.value > 2.0 and m.passed is False
    assert m.details["correct"] >= 0.95 * m.details["guesses"]


def test_one_run_passes_a_generator_that_ignores_its_data(train, holdout, independent, schema, game_policy):
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=IgnoringRefitter(public=independent))
    m = _metric(run_one_run(train, holdout, independent, schema, game_policy(), ctx), "one_run_epsilon_lb")
    assert m.value < 1.0 and m.passed is True
    # the bound it could have shown is reported beside it
    assert m.details["max_resolvable_epsilon"] > 2.0


def test_one_run_without_a_refitter_is_reported_not_run(train, holdout, independent, schema, game_policy):
    r = run_one_run(train, holdout, independent, schema, game_policy(), AuditContext())
    assert r.metrics == () and "not run" in r.notes[0]


@pytest.mark.parametrize("refitter", [CopyRefitter(), NoisyCopyRefitter()], ids=["copy", "noisy-copy"])
def test_game_catches_leaky_generators(train, holdout, independent, schema, refitter, game_policy):
    ctx = AuditContext(claim=Claim(epsilon=0.5, delta=1e-9), refitter=refitter)
    r = run_shadow_game(train, holdout, independent, schema, game_policy(), ctx)
    auc, lb, dp = (_metric(r, n) for n in ("game_auc", "game_epsilon_lb", "game_auc_dp_check"))
    assert auc.value > 0.9 and auc.passed is False
    assert lb.value > 0.5 and lb.passed is False and lb.kind == "dp_claim"
    assert dp.passed is False
    per_target = _metric(r, "game_worst_target_auc").details["per_target"]
    assert len(per_target) == 10 and sum(t["kind"] == "isolated" for t in per_target) == 3


def test_game_passes_a_generator_that_ignores_its_data(train, holdout, independent, schema, game_policy):
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=IgnoringRefitter(public=independent))
    r = run_shadow_game(train, holdout, independent, schema, game_policy(), ctx)
    lb = _metric(r, "game_epsilon_lb")
    assert lb.value < 1.0 and lb.passed is True
    assert _metric(r, "game_auc_dp_check").passed is True
    # 10 targets x 20 test fits: the pooled AUC of a blind attack sits near one half
    assert 0.35 < _metric(r, "game_auc").value < 0.65


def test_game_runs_shadow_fits_in_worker_processes(train, holdout, independent, schema, game_policy):
    settings = GAME.model_copy(update={"game_targets": 4, "game_isolated_targets": 1, "game_train_fits": 2,
                                       "game_test_fits": 2, "workers": 2})
    ctx = AuditContext(claim=Claim(epsilon=1.0, delta=1e-9), refitter=CopyRefitter())
    r1 = run_shadow_game(train, holdout, independent, schema, game_policy(settings), ctx)
    r2 = run_shadow_game(train, holdout, independent, schema, game_policy(settings.model_copy(update={"workers": 1})), ctx)
    # same seed, same fits, same figures, whether in parallel or not
    assert [m.to_dict() for m in r1.metrics] == [m.to_dict() for m in r2.metrics]
    # 4 test fits with fair coins leave some target without members or non-members: still strict JSON
    json.dumps(r1.to_dict(), allow_nan=False)


def test_game_not_run_without_targets_or_refitter(train, holdout, independent, schema, game_policy):
    no_targets = GAME.model_copy(update={"game_targets": 0, "game_isolated_targets": 0})
    r = run_shadow_game(train, holdout, independent, schema, game_policy(no_targets), AuditContext(refitter=CopyRefitter()))
    assert r.metrics == () and "no targets" in r.notes[0]
    r = run_shadow_game(train, holdout, independent, schema, game_policy(), AuditContext())
    assert r.metrics == () and "no generator" in r.notes[0]


def test_balanced_inclusion_puts_each_target_in_half_the_fits():
    import numpy as np

    b = balanced_inclusion(7, 5, np.random.default_rng(0))
    assert b.shape == (14, 5) and (b.sum(axis=0) == 7).all()


def test_isolated_rows_are_the_farthest(holdout, schema):
    import numpy as np

    # an outlier appended to ordinary rows is found first
    rows = holdout.head(200)
    # every numeric at its maximum and every category the one least common among the rows
    rare = {c.name: min(c.categories, key=lambda v: (rows.get_column(c.name) == v).sum())
            for c in schema.columns if not c.is_numeric}
    odd = rows.head(1).with_columns(
        *[pl.lit(c.max).cast(rows.schema[c.name]).alias(c.name) for c in schema.columns if c.is_numeric],
        *[pl.lit(v).cast(rows.schema[k]).alias(k) for k, v in rare.items()],
    )
    df = pl.concat([rows, odd])
    assert isolated_rows(df, schema, 1, np.random.default_rng(0)) == [200]


def test_target_features_see_an_exact_copy(holdout, schema):
    targets = holdout.head(3)
    with_copy = target_features(targets, pl.concat([holdout.slice(10, 100), targets.head(1)]), schema)
    without = target_features(targets, holdout.slice(10, 100), schema)
    # the first distance feature is 0 only where the target itself is among the synthetic rows
    assert with_copy[0, 0] == 0 and without[0, 0] > 0
    assert with_copy.shape == without.shape and with_copy.shape[0] == 3
