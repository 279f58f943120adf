from __future__ import annotations

import math

import numpy as np
import pytest

import audits.anonymeter_risks as ar
from audits.anonymeter_risks import run_anonymeter
from privacy.errors import InputError

# Three secrets keep the inference attack fast; the every-column default is exercised in
# test_inference_defaults_to_every_column.
SECRETS = ["income", "marital_status", "age"]


@pytest.fixture(scope="module")
def secret_policy(make_policy):
    """A small policy whose inference attack targets ``SECRETS``; keyword arguments adjust audit settings."""

    def build(**audit):
        return make_policy(**audit).model_copy(update={"sensitive_columns": SECRETS})

    return build


def _metric(result, name):
    return next(m for m in result.metrics if m.name == name)


@pytest.fixture(scope="module")
def copy_result(train, holdout, copy_of_train, schema, secret_policy):
    return run_anonymeter(train, holdout, copy_of_train, schema, secret_policy())


@pytest.fixture(scope="module")
def independent_result(train, holdout, independent, schema, secret_policy):
    return run_anonymeter(train, holdout, independent, schema, secret_policy())


def test_metric_names_roles_and_gating(copy_result):
    names = [m.name for m in copy_result.metrics]
    assert names == [
        "singling_out_univariate",
        "singling_out_multivariate",
        "linkability",
        "inference",
        "anonymeter_sanity",
    ]
    gated = {m.name: m.gated_on for m in copy_result.metrics}
    assert gated["singling_out_univariate"] == gated["singling_out_multivariate"] == "upper"
    assert gated["linkability"] == "upper"
    assert gated["inference"] == "value"
    # default policy: anonymeter_sanity: warn -> reported, not gated
    assert _metric(copy_result, "anonymeter_sanity").role == "info"


def test_copy_of_train_shows_high_risk_and_fails(copy_result, independent_result):
    for name in ("singling_out_multivariate", "linkability", "inference"):
        copy_m, indep_m = _metric(copy_result, name), _metric(independent_result, name)
        assert copy_m.value > indep_m.value, name
        assert copy_m.passed is False, name
    assert _metric(copy_result, "linkability").value > 0.2


def test_independent_sample_shows_little_risk(independent_result):
    # with the small test attack counts the intervals are wide; the point estimates must be low
    for name in ("singling_out_univariate", "singling_out_multivariate", "linkability"):
        m = _metric(independent_result, name)
        assert m.value < 0.05, (name, m.interval, m.details)
    assert _metric(independent_result, "linkability").passed is True


def test_details_record_queries_rates_and_sizes(copy_result):
    so = _metric(copy_result, "singling_out_multivariate")
    assert so.details["queries_requested"] == 150
    assert 0 < so.details["queries_evaluated"] <= 150
    for key in ("main_rate", "baseline_rate", "control_rate", "main_successes"):
        assert key in so.details
    link = _metric(copy_result, "linkability")
    assert len(link.details["splits"]) == 2
    assert link.interval[1] == max(s["interval"][1] for s in link.details["splits"])
    inf = _metric(copy_result, "inference")
    assert [c["secret"] for c in inf.details["columns"]] == SECRETS
    # powered columns count with their point estimate, underpowered ones with their lower bound
    assert inf.value == max(
        c["interval"][0] if c["underpowered"] else c["risk"] for c in inf.details["columns"]
    )
    # equal-size samples (protocol rule 1): min(anonymeter_rows, holdout, train, synthetic)
    assert copy_result.notes == (
        "anonymeter used equal-size samples of train (ori), holdout (control) and synthetic data, "
        "at most 400 rows each",
    )


def test_underpowered_singling_out_is_flagged_but_judged_by_value(
    train, holdout, independent, schema, secret_policy
):
    policy = secret_policy()
    policy = policy.model_copy(
        update={"thresholds": policy.thresholds.model_copy(update={"anonymeter_min_queries": 10_000})}
    )
    result = run_anonymeter(train, holdout, independent, schema, policy)
    for name in ("singling_out_univariate", "singling_out_multivariate"):
        m = _metric(result, name)
        n = m.details["queries_evaluated"]
        assert f"underpowered: {n} queries" in m.flags
        # the flag is reported; the value still decides
        assert m.passed is (m.gated_value <= m.threshold)


def test_sanity_is_a_gate_when_the_policy_says_fail(train, holdout, copy_of_train, schema, secret_policy):
    policy = secret_policy()
    policy = policy.model_copy(
        update={"thresholds": policy.thresholds.model_copy(update={"anonymeter_sanity": "fail"})}
    )
    result = run_anonymeter(train, holdout, copy_of_train, schema, policy)
    sanity = _metric(result, "anonymeter_sanity")
    assert sanity.role == "gate"
    assert sanity.value == 1.0 and sanity.passed is True
    assert all(a["beats_baseline"] for a in sanity.details["attacks"])
    assert not any(a["significantly_worse"] for a in sanity.details["attacks"])


def test_anonymeter_failure_becomes_a_failing_nan_metric(
    train, holdout, independent, schema, monkeypatch, secret_policy
):
    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("cannot build queries\nsecond line")

    monkeypatch.setattr(ar, "SinglingOutEvaluator", Broken)
    result = run_anonymeter(train, holdout, independent, schema, secret_policy(linkability_splits=1))
    for name in ("singling_out_univariate", "singling_out_multivariate"):
        m = _metric(result, name)
        assert math.isnan(m.value)
        assert m.flags == ("error: RuntimeError: cannot build queries",)
        assert m.passed is False
    assert _metric(result, "linkability").passed is not None  # the others still ran


def test_seeded_and_leaves_global_numpy_state_alone(train, holdout, independent, schema, secret_policy):
    policy = secret_policy(linkability_splits=1, singling_out_attacks=50)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = run_anonymeter(train, holdout, independent, schema, policy)
    assert np.array_equal(np.random.get_state()[1], before)
    second = run_anonymeter(train, holdout, independent, schema, policy)
    assert first.to_dict() == second.to_dict()


def test_inference_defaults_to_every_column(train, holdout, independent, schema, make_policy):
    policy = make_policy(
        inference_attacks=30, singling_out_attacks=20, linkability_attacks=30, linkability_splits=1
    )
    assert policy.sensitive_columns is None
    inf = _metric(run_anonymeter(train, holdout, independent, schema, policy), "inference")
    assert [c["secret"] for c in inf.details["columns"]] == schema.names
    # numeric secrets use anonymeter's 5% tolerance, categorical ones exact match
    match = {c["secret"]: c["match"] for c in inf.details["columns"]}
    assert match["age"].startswith("within") and match["income"] == "exact"
    worst = next(c for c in inf.details["columns"] if c["secret"] == inf.details["worst_column"])
    assert worst["gated_figure"] == inf.value
    thr = policy.thresholds.inference_max
    assert all(
        c["underpowered"] == (c["interval"][1] > 0.20 or (c["interval"][1] - c["interval"][0]) / 2 > thr)
        for c in inf.details["columns"]
    )
    weak = [c["secret"] for c in inf.details["columns"] if c["underpowered"]]
    assert any(f.startswith("underpowered columns") for f in inf.flags) == bool(weak)
    for c in inf.details["columns"]:
        assert c["gated_figure"] == (c["interval"][0] if c["underpowered"] else c["risk"])


def test_unknown_sensitive_column_is_an_input_error(train, holdout, independent, schema, make_policy):
    policy = make_policy().model_copy(update={"sensitive_columns": ["salary"]})
    with pytest.raises(InputError, match="sensitive columns not in the schema: salary"):
        run_anonymeter(train, holdout, independent, schema, policy)


def test_sanity_fails_only_when_an_attack_is_significantly_worse_than_guessing() -> None:
    from anonymeter.stats.confidence import EvaluationResults

    from audits.anonymeter_risks import _significantly_worse

    # a tie with guessing is what a leak-free release looks like: not a failure
    assert not _significantly_worse(EvaluationResults(n_attacks=500, n_success=20, n_baseline=21, n_control=20))
    # far below guessing means the attack is broken
    assert _significantly_worse(EvaluationResults(n_attacks=500, n_success=5, n_baseline=60, n_control=20))
