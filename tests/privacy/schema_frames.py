"""One check shared by the generator tests: a synthetic frame is exactly what the schema says."""

from __future__ import annotations

import polars as pl

from privacy.schema import Schema


def assert_schema_frame(out: pl.DataFrame, schema: Schema, n: int) -> None:
    """``n`` rows, the schema's columns in order, its dtypes, categories and bounds."""
    assert out.height == n
    assert out.columns == schema.names
    for col in schema.columns:
        s = out.get_column(col.name)
        if col.type == "categorical":
            assert s.dtype == pl.Utf8
            assert set(s.unique().to_list()) <= set(col.categories)
        else:
            assert s.dtype == (pl.Int64 if col.type == "integer" else pl.Float64)
            if n:
                assert col.min is not None and col.max is not None
                assert float(s.min()) >= col.min and float(s.max()) <= col.max  # type: ignore[arg-type]
