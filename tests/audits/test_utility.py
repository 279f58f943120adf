from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from audits.context import AuditContext
from audits.utility import macro_auc, resolve_target, run_utility
from privacy.errors import InputError
from privacy.schema import Schema


def _ratio(result):
    (metric,) = result.metrics
    assert metric.name == "utility_auc_ratio"
    return metric


def test_copy_keeps_utility(train, holdout, copy_of_train, schema, policy):
    m = _ratio(run_utility(train, holdout, copy_of_train, schema, policy))
    assert m.details["target"] == "income"
    assert m.value == pytest.approx(1.0)
    assert m.passed is True
    assert 0.8 < m.details["auc_trtr"] <= 1.0


def test_independent_columns_have_low_utility(train, holdout, independent, schema, policy):
    m = _ratio(run_utility(train, holdout, independent, schema, policy))
    assert m.details["auc_tstr"] < 0.65
    assert m.value < policy.thresholds.utility_ratio_min
    assert m.passed is False


def test_no_target_is_reported_not_gated(train, holdout, independent, schema, policy):
    no_target = Schema(columns=schema.columns, name=schema.name)
    m = _ratio(run_utility(train, holdout, independent, no_target, policy))
    assert m.role == "info"
    assert math.isnan(m.value)
    assert m.flags == ("no target column",)
    assert m.passed is None


def test_single_class_synthetic_gives_auc_one_half(train, holdout, schema, policy):
    one_class = train.filter(pl.col("income") == "<=50K")
    m = _ratio(run_utility(train, holdout, one_class, schema, policy))
    assert m.details["auc_tstr"] == 0.5
    assert m.details["synthetic_model"] == ["one class of the target only: constant predictor"]
    assert m.value == pytest.approx(0.5 / m.details["auc_trtr"])


def test_target_argument_overrides_schema_and_multiclass_uses_macro_auc(
    train, holdout, copy_of_train, schema, policy
):
    m = _ratio(run_utility(train, holdout, copy_of_train, schema, policy, AuditContext(target="relationship")))
    assert m.details["target"] == "relationship"
    assert m.details["auc"] == "macro one-vs-rest ROC AUC"
    assert 0.5 < m.details["auc_trtr"] <= 1.0


def test_target_must_be_a_categorical_column(schema):
    with pytest.raises(InputError, match="'age' must be a categorical column"):
        resolve_target(schema, "age")
    with pytest.raises(InputError, match="'salary' is not a column"):
        resolve_target(schema, "salary")
    assert resolve_target(schema, None) == "income"


def test_macro_auc():
    y = np.array([0, 0, 1, 1, 2])
    perfect = np.eye(3)[y]
    assert macro_auc(y, perfect) == 1.0
    assert macro_auc(y, np.full((5, 3), 1 / 3)) == 0.5
    assert math.isnan(macro_auc(np.array([1, 1]), np.ones((2, 2))))


def test_seeded(train, holdout, independent, schema, policy):
    a = run_utility(train, holdout, independent, schema, policy)
    b = run_utility(train, holdout, independent, schema, policy)
    assert a.to_dict() == b.to_dict()
