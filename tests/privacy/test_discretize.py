"""The schema-only discretisation: codes, bins and their decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from privacy.errors import InputError
from privacy.generators.tabular.discretize import ColumnCodec, Discretizer
from privacy.schema import Column, Schema
from privacy.table import load_conformed

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def adult() -> tuple[pl.DataFrame, Schema]:
    schema = Schema.load(DATA / "adult_schema.yaml")
    df, _ = load_conformed(DATA / "adult_2000.csv", schema)
    return df, schema


def test_cardinalities_are_the_schemas(adult):
    _, schema = adult
    disc = Discretizer.from_schema(schema)
    expected = [len(c.categories) if c.type == "categorical" else len(c.bin_edges()) - 1 for c in schema.columns]
    assert disc.cardinalities == expected
    assert disc.names == schema.names


def test_categorical_codes_are_schema_indices(adult):
    df, schema = adult
    codes = Discretizer.from_schema(schema).encode(df)
    for j, col in enumerate(schema.columns):
        if col.type == "categorical":
            decoded = [col.categories[k] for k in codes[:, j]]
            assert decoded == df.get_column(col.name).to_list()


def test_numeric_codes_are_bins_of_the_schema_edges(adult):
    df, schema = adult
    codes = Discretizer.from_schema(schema).encode(df)
    for j, col in enumerate(schema.columns):
        if col.is_numeric:
            edges = col.bin_edges()
            vals = df.get_column(col.name).to_numpy()
            lo = np.asarray(edges)[codes[:, j]]
            hi = np.asarray(edges)[codes[:, j] + 1]
            assert np.all(lo <= vals) and np.all(vals < hi)


def test_decode_stays_in_the_bin_and_round_trips(adult):
    _, schema = adult
    disc = Discretizer.from_schema(schema)
    rng = np.random.default_rng(0)
    # every bin of every column, many times
    codes = np.column_stack([rng.integers(0, k, 5000) for k in disc.cardinalities])
    out = disc.decode(codes, rng)
    assert out.columns == schema.names
    np.testing.assert_array_equal(disc.encode(out), codes)
    for col in schema.columns:
        s = out.get_column(col.name)
        if col.is_numeric:
            assert s.dtype == pl.Int64
            assert s.min() >= col.min and s.max() <= col.max
        else:
            assert s.dtype == pl.Utf8
            assert set(s.unique()) <= set(col.categories)


def test_integer_bins_draw_every_integer_of_the_bin():
    codec = ColumnCodec.from_column(Column(name="x", type="integer", min=0, max=9, bins=2))
    assert codec.int_lows == (0, 5) and codec.int_highs == (4, 9)
    rng = np.random.default_rng(1)
    vals = codec.decode(np.zeros(2000, dtype=np.int64), rng).to_numpy()
    assert set(vals.tolist()) == {0, 1, 2, 3, 4}
    # roughly uniform: each integer about a fifth
    assert np.all(np.abs(np.bincount(vals, minlength=5) / 2000 - 0.2) < 0.05)


def test_float_column_bins_and_max_value():
    col = Column(name="f", type="float", min=0.0, max=1.0, bins=4)
    codec = ColumnCodec.from_column(col)
    codes = codec.encode(pl.Series("f", [0.0, 0.24, 0.25, 0.99, 1.0]))
    assert codes.tolist() == [0, 0, 1, 3, 3]
    vals = codec.decode(np.array([0, 3, 3]), np.random.default_rng(2))
    assert vals.dtype == pl.Float64
    assert 0.0 <= vals[0] < 0.25 and 0.75 <= vals[1] <= 1.0


def test_value_outside_the_categories_is_refused_not_added():
    codec = ColumnCodec.from_column(Column(name="c", type="categorical", categories=("a", "b")))
    with pytest.raises(InputError, match=r"column 'c': 1 values outside the schema's categories"):
        codec.encode(pl.Series("c", ["a", "zzz", "b"]))
    assert codec.cardinality == 2


def test_value_outside_the_bounds_is_refused():
    codec = ColumnCodec.from_column(Column(name="n", type="integer", min=0, max=10))
    with pytest.raises(InputError, match=r"column 'n': 2 values missing or outside the schema bounds"):
        codec.encode(pl.Series("n", [0, 11, -1, 5]))


def test_decode_is_reproducible(adult):
    _, schema = adult
    disc = Discretizer.from_schema(schema)
    codes = np.zeros((50, len(schema.columns)), dtype=np.int64)
    a = disc.decode(codes, np.random.default_rng(5))
    b = disc.decode(codes, np.random.default_rng(5))
    c = disc.decode(codes, np.random.default_rng(6))
    assert a.equals(b)
    assert not a.equals(c)
