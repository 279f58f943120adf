"""Explicit public cut points for numeric columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from privacy.errors import InputError
from privacy.generators.tabular.discretize import ColumnCodec
from privacy.schema import Column, Schema


def test_integer_cuts_give_zero_a_bin_of_its_own() -> None:
    col = Column(name="gain", type="integer", min=0, max=99999, cuts=(1, 1000, 99999))
    codec = ColumnCodec.from_column(col)
    assert codec.encode(pl.Series([0, 1, 999, 1000, 99998, 99999])).tolist() == [0, 1, 1, 2, 2, 3]
    decoded = codec.decode(np.array([0] * 50 + [3] * 5), np.random.default_rng(0)).to_list()
    assert decoded == [0] * 50 + [99999] * 5


@pytest.mark.parametrize(
    "cuts, msg",
    [((5, 3), "strictly increasing"), ((0,), r"lie in \(min, max\]"), ((1.5,), "must be integers"),
     ((1, 200000), r"lie in \(min, max\]")],
)
def test_bad_cuts(cuts: tuple[float, ...], msg: str) -> None:
    with pytest.raises(InputError, match=msg):
        Column(name="g", type="integer", min=0, max=100000, cuts=cuts)


def test_cuts_round_trip_through_yaml() -> None:
    raw = {"columns": {"g": {"type": "integer", "min": 0, "max": 10, "cuts": [1, 5]}}}
    schema = Schema.from_dict(raw)
    assert Schema.from_dict(schema.to_dict()) == schema
    assert schema.to_dict()["columns"]["g"]["cuts"] == [1, 5]
