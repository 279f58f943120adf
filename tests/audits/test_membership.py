from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from audits.membership import dcr_share, exact_match_share, gower_matrix, run_membership
from privacy.errors import InputError
from privacy.schema import Column, Schema


def _metric(result, name):
    return next(m for m in result.metrics if m.name == name)


def test_copy_of_train_fails_dcr_and_exact_match(train, holdout, copy_of_train, schema, policy):
    result = run_membership(train, holdout, copy_of_train, schema, policy)
    dcr = _metric(result, "dcr_share")
    exact = _metric(result, "exact_match_train_minus_holdout")
    assert dcr.passed is False
    # 1400:600 cut to 600:600 dilutes a copy to about 0.5 + 0.5 * 600/1400 (protocol rule 7)
    assert dcr.value > 0.65
    assert exact.passed is False
    assert exact.details["share_equal_to_train_row"] == pytest.approx(600 / 1400, abs=0.03)
    assert exact.details["share_equal_to_holdout_row"] < 0.01


def test_independent_sample_passes(train, holdout, independent, schema, policy):
    result = run_membership(train, holdout, independent, schema, policy)
    dcr = _metric(result, "dcr_share")
    exact = _metric(result, "exact_match_train_minus_holdout")
    assert dcr.passed is True, dcr.details
    assert exact.passed is True
    lo, hi = dcr.interval
    assert lo <= dcr.value <= hi


def test_train_is_cut_to_holdout_size_and_worst_subset_is_gated(train, holdout, independent, schema, policy):
    result = run_membership(train, holdout, independent, schema, policy)
    dcr = _metric(result, "dcr_share")
    # exact real row counts are not published in the audit document
    assert "train_rows_used" not in dcr.details and "holdout_rows_used" not in dcr.details
    variants = dcr.details["variants"]
    assert len(variants) == 1 + policy.audit.dcr_subsets
    assert variants[0]["columns"] == schema.names
    assert dcr.value == pytest.approx(max(v["share"] for v in variants), abs=1e-6)
    # seeded: the same call gives the same subsets and shares
    again = _metric(run_membership(train, holdout, independent, schema, policy), "dcr_share")
    assert again.details == dcr.details


def test_ties_count_one_half(holdout, independent, schema):
    # train == holdout: every synthetic row is exactly as close to both sides
    share, (lo, hi) = dcr_share(holdout, holdout, independent, schema, schema.names)
    assert share == 0.5
    assert lo == hi == 0.5


def test_gower_encoding_matches_hand_computed_distance():
    schema = Schema(
        columns=(
            Column(name="age", type="integer", min=0, max=100),
            Column(name="colour", type="categorical", categories=("red", "green", "blue")),
        )
    )
    df = pl.DataFrame({"age": [10, 35], "colour": ["red", "blue"]})
    x = gower_matrix(df, schema, schema.names)
    # |10 - 35| / (100 - 0) + 1 for the category mismatch
    assert np.abs(x[0] - x[1]).sum() == pytest.approx(0.25 + 1.0)


def test_exact_match_counts_duplicates_each_time(holdout):
    syn = pl.concat([holdout.head(3), holdout.head(3)])
    assert exact_match_share(syn, holdout) == 1.0


def test_frames_must_match_the_schema(train, holdout, schema, policy):
    with pytest.raises(InputError, match="synthetic does not match the schema"):
        run_membership(train, holdout, train.drop("age"), schema, policy)
    with pytest.raises(InputError, match="real_holdout has no rows"):
        run_membership(train, holdout.head(0), train, schema, policy)
