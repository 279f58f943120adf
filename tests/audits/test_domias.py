"""The density-ratio (DOMIAS) membership attack on real Adult rows.

A leaky generator (its training rows, or those with small noise) must score a high AUC and fail the
gate and, with a small claimed epsilon, the DP check; real rows the generator never saw, posing as
synthetic data, must score about 0.5 and pass.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from audits.baselines import NoisyCopyRefitter
from audits.context import AuditContext, Claim
from audits.domias import (
    DEFAULT_AUC_MAX,
    MixedKDE,
    density_ratio_scores,
    domias_scores,
    draw_candidates,
    encode,
    run_domias,
)
from privacy.errors import InputError
from privacy.schema import Column, Schema

TINY_EPS = Claim(epsilon=0.1, delta=1e-9)


def _metric(result, name):  # type: ignore[no-untyped-def]
    return next(m for m in result.metrics if m.name == name)


@pytest.fixture(scope="module")
def unseen(train: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(audit train split, real rows never in it): 1000 training rows and 400 other real rows."""
    return train[:1000], train[1000:]


@pytest.fixture(scope="module")
def copy_result(train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    return run_domias(train, holdout, copy_of_train, schema, policy, AuditContext(claim=TINY_EPS))


@pytest.fixture(scope="module")
def unseen_result(unseen, holdout, schema, policy):  # type: ignore[no-untyped-def]
    audit_train, rows = unseen
    return run_domias(audit_train, holdout, rows, schema, policy, AuditContext(claim=TINY_EPS))


def test_copy_of_train_is_caught(copy_result, policy):  # type: ignore[no-untyped-def]
    auc = _metric(copy_result, "domias_auc")
    assert auc.value > 0.85 and auc.interval[0] > 0.8
    assert auc.passed is False and auc.gated_on == "upper" and auc.role == "gate"
    assert auc.threshold == getattr(policy.thresholds, "domias_auc_max", DEFAULT_AUC_MAX)
    assert _metric(copy_result, "domias_tpr_at_fpr_10pct").value > 0.5


def test_noisy_copy_is_caught(train, holdout, schema, policy):  # type: ignore[no-untyped-def]
    noisy = NoisyCopyRefitter().fit_sample(train, schema, train.height, seed=5)
    assert noisy.join(train, on=train.columns, how="semi").height < 0.05 * train.height  # no exact copies
    auc = _metric(run_domias(train, holdout, noisy, schema, policy), "domias_auc")
    assert auc.value > 0.75 and auc.passed is False


def test_unseen_real_rows_score_about_one_half_and_pass(unseen_result):  # type: ignore[no-untyped-def]
    auc = _metric(unseen_result, "domias_auc")
    lo, hi = auc.interval
    assert lo <= auc.value <= hi
    assert lo <= 0.5 <= hi or auc.value < 0.6
    assert auc.passed is True
    assert _metric(unseen_result, "domias_tpr_at_fpr_10pct").value < 0.25


def test_dp_check_fails_a_copy_and_passes_unseen_rows(copy_result, unseen_result):  # type: ignore[no-untyped-def]
    bound = np.exp(0.1) / (1 + np.exp(0.1)) + 1e-9
    leaky = _metric(copy_result, "domias_auc_dp_check")
    assert leaky.kind == "dp_claim" and leaky.gated_on == "lower" and leaky.role == "gate"
    assert leaky.threshold == pytest.approx(bound)
    assert leaky.interval[0] > bound and leaky.passed is False
    fine = _metric(unseen_result, "domias_auc_dp_check")
    assert fine.passed is True


def test_metrics_without_a_claim(copy_result, train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    names = [m.name for m in copy_result.metrics]
    assert names == ["domias_auc", "domias_tpr_at_fpr_1pct", "domias_tpr_at_fpr_10pct", "domias_auc_dp_check"]
    plain = run_domias(train, holdout, copy_of_train, schema, policy)
    assert [m.name for m in plain.metrics] == names[:3]
    for m in copy_result.metrics[1:3]:
        assert m.role == "info" and m.passed is None and m.interval is not None
    # 300 non-members per side here: TPR at FPR 1% is resolvable, but only just
    assert _metric(copy_result, "domias_tpr_at_fpr_1pct").flags == ()
    details = _metric(copy_result, "domias_auc").details
    assert details["candidates_per_side"] == holdout.height // 2
    assert set(details["bandwidths"]) == {"synthetic", "reference"}
    # no per-record data and no exact real row counts besides the candidates
    assert "reference_rows" not in details and "train_rows_used" not in details


def test_small_candidate_sets_are_flagged_underpowered(train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    result = run_domias(train, holdout, copy_of_train, schema, policy, candidates=50, bootstrap=50)
    assert _metric(result, "domias_auc").details["candidates_per_side"] == 50
    assert _metric(result, "domias_tpr_at_fpr_1pct").flags == ("underpowered: fewer than 100 non-members",)
    assert _metric(result, "domias_tpr_at_fpr_10pct").flags == ()
    # 50 per side: a non-leaking generator's interval alone reaches about 0.61 > the 0.60 gate
    assert _metric(result, "domias_auc").flags[0].startswith("underpowered: 50 candidates per side")
    # 300 per side (the default profile's 1,000 capped by this holdout) is enough to pass honestly
    assert _metric(run_domias(train, holdout, copy_of_train, schema, policy), "domias_auc").flags == ()


def test_deterministic_for_a_fixed_seed(train, holdout, schema, policy, copy_result, copy_of_train):  # type: ignore[no-untyped-def]
    progress: list[str] = []
    again = run_domias(train, holdout, copy_of_train, schema, policy,
                       AuditContext(claim=TINY_EPS, progress=progress.append))
    assert [m.to_dict() for m in again.metrics] == [m.to_dict() for m in copy_result.metrics]
    assert 1 <= len(progress) <= 3 and all(p.startswith("domias: ") for p in progress)
    other_seed = policy.model_copy(update={"audit": policy.audit.model_copy(update={"seed": 7})})
    moved = run_domias(train, holdout, copy_of_train, schema, other_seed, AuditContext(claim=TINY_EPS))
    assert _metric(moved, "domias_auc").value != _metric(copy_result, "domias_auc").value


def test_candidates_are_balanced_and_disjoint():
    rng = np.random.default_rng([0, 202])
    split = draw_candidates(1400, 600, 1000, rng)
    assert split.members.size == split.nonmembers.size == 300
    # non-members and the reference set partition the holdout; members index the training split
    assert np.intersect1d(split.nonmembers, split.reference).size == 0
    assert np.union1d(split.nonmembers, split.reference).tolist() == list(range(600))
    assert np.unique(split.members).size == 300 and split.members.max() < 1400
    again = draw_candidates(1400, 600, 1000, np.random.default_rng([0, 202]))
    assert all(np.array_equal(a, b) for a, b in zip(vars(split).values(), vars(again).values()))
    assert draw_candidates(20_000, 10_000, 1000, rng).nonmembers.size == 1000


def test_no_candidate_is_both_member_and_nonmember(train, holdout, schema, policy):  # type: ignore[no-untyped-def]
    # the rows the audit uses, identified by an id column the audit never sees
    tr = train.with_row_index("id")
    ho = holdout.with_row_index("id", offset=train.height)
    split = draw_candidates(tr.height, ho.height, 1000, np.random.default_rng([policy.audit.seed, 202]))
    members = set(tr["id"].gather(split.members).to_list())
    nonmembers = set(ho["id"].gather(split.nonmembers).to_list())
    reference = set(ho["id"].gather(split.reference).to_list())
    assert not members & nonmembers
    assert not reference & nonmembers and not reference & members


def test_scores_do_not_depend_on_the_other_candidates(train, holdout, copy_of_train, schema):  # type: ignore[no-untyped-def]
    members, nonmembers, reference = train[:40], holdout[:40], holdout[300:]
    m, n = domias_scores(members, nonmembers, reference, copy_of_train, schema, seed=3)
    assert m.shape == n.shape == (40,)
    alone = density_ratio_scores(members[:10], reference, copy_of_train, schema, seed=3)
    np.testing.assert_allclose(alone, m[:10])
    # a copied training row sits on a synthetic row: the ratio favours members
    assert np.median(m) > np.median(n)


def test_kernel_density_is_normalised():
    # one numeric column and one categorical column with 3 categories: sum over categories and
    # integrate over the numeric axis (public [0, 1] scale) numerically
    schema = Schema(columns=(Column(name="x", type="float", min=0.0, max=1.0),
                             Column(name="c", type="categorical", categories=("a", "b", "z"))))
    rng = np.random.default_rng(0)
    data = pl.DataFrame({"x": rng.uniform(0.3, 0.7, 200), "c": rng.choice(["a", "b"], 200).tolist()})
    kde = MixedKDE.fit(encode(data, schema), np.random.default_rng(1))
    grid = np.linspace(-1.0, 2.0, 3001)
    total = 0.0
    for cat in ("a", "b", "z"):
        q = encode(pl.DataFrame({"x": np.full(grid.size, 0.5), "c": [cat] * grid.size}), schema)
        q = type(q)(grid.reshape(-1, 1), q.onehot, q.categories)  # unclipped grid
        total += float(np.trapz(np.exp(kde.logpdf(q)), grid))
    assert total == pytest.approx(1.0, abs=1e-3)


def test_synthetic_missing_a_column_is_an_input_error(train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="synthetic"):
        run_domias(train, holdout, copy_of_train.drop("age"), schema, policy)


def test_out_of_domain_category_is_an_input_error(train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    bad = copy_of_train.with_columns(pl.lit("Martian").alias("race"))
    with pytest.raises(InputError, match="race"):
        run_domias(train, holdout, bad, schema, policy)


def test_tiny_holdout_is_an_input_error(train, holdout, copy_of_train, schema, policy):  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="holdout"):
        run_domias(train, holdout[:1], copy_of_train, schema, policy)


@pytest.mark.parametrize("keep", [["age", "hours_per_week"], ["sex", "race", "income"]], ids=["numeric", "categorical"])
def test_single_kind_schemas(keep, train, holdout, schema):  # type: ignore[no-untyped-def]
    sub = Schema(columns=tuple(schema.column(c) for c in keep))
    tr, ho = train.select(keep), holdout.select(keep)
    m, n = domias_scores(tr[:50], ho[:50], ho[50:], tr, sub, seed=0)
    assert np.isfinite(m).all() and np.isfinite(n).all()
    # a single reference row cannot hold a row out for the bandwidth: the fallback is used
    assert np.isfinite(density_ratio_scores(tr[:5], ho[:1], tr, sub, seed=0)).all()
