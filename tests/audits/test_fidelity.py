from __future__ import annotations

import math

import pytest

import audits.fidelity as fidelity
from audits.fidelity import run_fidelity, sdmetrics_metadata
from privacy.errors import InputError


def _metric(result, name):
    return next(m for m in result.metrics if m.name == name)


def test_copy_scores_perfectly(train, holdout, copy_of_train, schema, policy):
    result = run_fidelity(train, holdout, copy_of_train, schema, policy)
    quality = _metric(result, "quality_score")
    diagnostic = _metric(result, "diagnostic_score")
    assert quality.value == pytest.approx(1.0)
    assert diagnostic.value == pytest.approx(1.0)
    assert quality.passed is True and diagnostic.passed is True
    assert quality.goal == diagnostic.goal == "maximize"


def test_independent_columns_lose_pair_trends(train, holdout, independent, schema, policy):
    quality = _metric(run_fidelity(train, holdout, independent, schema, policy), "quality_score")
    details = quality.details
    assert details["column_pair_trends"] < details["column_shapes"]
    assert quality.value < 0.95
    worst = details["worst_columns"]
    assert len(worst) == 5
    assert [w["score"] for w in worst] == sorted(w["score"] for w in worst)
    assert {"column", "metric", "score"} == set(worst[0])


def test_real_holdout_falls_short_of_a_perfect_diagnostic(train, holdout, schema, policy):
    # SDMetrics checks synthetic values against the real data's observed ranges, not the schema:
    # even unseen real rows fall outside them now and then.
    diagnostic = _metric(run_fidelity(train, holdout, holdout, schema, policy), "diagnostic_score")
    assert diagnostic.value < 1.0
    # which is why the policies hold it to 0.95, not 1.0: unseen real rows pass
    assert diagnostic.threshold == 0.95 and diagnostic.passed is True
    assert diagnostic.details["columns_below_1"]
    assert diagnostic.details["data_structure"] == 1.0


def test_sdmetrics_failure_becomes_a_failing_nan_metric(
    train, holdout, independent, schema, policy, monkeypatch
):
    class Broken:
        def generate(self, *args, **kwargs):
            raise ValueError("metadata rejected\nmore")

    monkeypatch.setattr(fidelity, "QualityReport", Broken)
    quality = _metric(run_fidelity(train, holdout, independent, schema, policy), "quality_score")
    assert math.isnan(quality.value)
    assert quality.flags == ("error: ValueError: metadata rejected",)
    assert quality.passed is False


def test_metadata_from_schema(schema):
    md = sdmetrics_metadata(schema)
    cols = md["tables"]["table"]["columns"]
    assert cols["age"] == {"sdtype": "numerical"}
    assert cols["income"] == {"sdtype": "categorical"}


def test_frames_must_match_the_schema(train, holdout, schema, policy):
    with pytest.raises(InputError, match="missing: income"):
        run_fidelity(train, holdout, train.drop("income"), schema, policy)
