"""The public schema and conforming real data to it: bad input gets one clear error."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from privacy.errors import InputError
from privacy.infer import infer_schema
from privacy.schema import Column, Schema
from privacy.table import conform, load_conformed, read_raw


def test_adult_schema_loads_and_conforms(adult_csv: Path, adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    df, report = load_conformed(adult_csv, schema)
    assert df.height == 2000
    assert df.columns == schema.names
    assert df["age"].dtype == pl.Int64 and df["workclass"].dtype == pl.Utf8
    assert report.total_changed == 0


def test_out_of_domain_values_are_clipped_or_mapped_never_widen(adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    raw = pl.read_csv(Path(__file__).parents[1] / "data" / "adult_2000.csv", infer_schema=False).head(10)
    raw = raw.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("150")).otherwise(pl.col("age")).alias("age"),
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("Atlantis")).otherwise(pl.col("native_country")).alias("native_country"),
    )
    df, report = conform(raw, schema)
    assert df["age"].max() == 90
    assert report.clipped == {"age": 1}
    assert report.mapped_to_other == {"native_country": 1}
    assert "Atlantis" not in df["native_country"].to_list()
    assert set(df["native_country"].to_list()) <= set(schema.column("native_country").categories)


def test_unknown_category_without_other_is_an_error_with_counts_not_values(adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    raw = pl.DataFrame({c: ["x"] * 3 for c in schema.names})
    with pytest.raises(InputError, match=r"column 'age': 3 values are not integer numbers") as exc:
        conform(raw, schema)
    assert "x" not in str(exc.value).replace("integer", "")


def test_categorical_outside_domain_reports_count(adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    good = pl.read_csv(Path(__file__).parents[1] / "data" / "adult_2000.csv", infer_schema=False).head(5)
    bad = good.with_columns(pl.lit("SecretSex").alias("sex"))
    with pytest.raises(InputError, match=r"'sex': 5 values outside the schema's categories") as exc:
        conform(bad, schema)
    assert "SecretSex" not in str(exc.value)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"columns": {"a": {"type": "blob"}}}, "unknown type 'blob'"),
        ({"columns": {"a": {"type": "integer", "min": 5, "max": 1}}}, "min < max"),
        ({"columns": {"a": {"type": "integer"}}}, "public 'min' and 'max'"),
        ({"columns": {"a": {"type": "categorical", "categories": []}}}, "non-empty 'categories'"),
        ({"columns": {"a": {"type": "categorical", "categories": ["x", "x"]}}}, "duplicates"),
        ({"columns": {"a": {"type": "categorical", "categories": ["x"], "colour": 1}}}, "unknown keys: colour"),
        ({"columns": {}}, "non-empty mapping"),
        ({"kind": "graph", "columns": {"a": {"type": "categorical", "categories": ["x"]}}}, "needs a 'graph' block"),
        ({"kind": "graph", "graph": {"unit": "node"}}, "unit 'node' needs a public degree bound"),
        ({"kind": "graph", "graph": {"unit": "node", "max_degree": 5}}, "unit 'node' needs nodes: bought"),
        ({"columns": {"a": {"type": "categorical", "categories": ["x"]}}, "target": "b"}, "target 'b'"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_schemas(spec: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Schema.from_dict(spec)


def test_integer_bin_edges_cover_the_domain() -> None:
    col = Column(name="age", type="integer", min=17, max=90, bins=16)
    edges = col.bin_edges()
    assert edges[0] < 17 < edges[1] and edges[-2] < 90 < edges[-1]
    assert len(edges) == 17


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"a,b\n", "no rows"),
        (b"\x00\x01\x02binary", "neither CSV text nor Parquet"),
        (b"PAR1garbage", "as Parquet"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "f.csv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_raw(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_raw(tmp_path / "nope.csv")


def test_wrong_delimiter_is_named(tmp_path: Path, adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    p = tmp_path / "semi.csv"
    p.write_text(";".join(schema.names) + "\n" + ";".join(["1"] * len(schema.names)) + "\n")
    with pytest.raises(InputError, match="';'"):
        load_conformed(p, schema)


def test_missing_and_extra_columns(tmp_path: Path, adult_csv: Path, adult_schema_path: Path) -> None:
    schema = Schema.load(adult_schema_path)
    df = pl.read_csv(adult_csv, infer_schema=False)
    with pytest.raises(InputError, match="missing columns: income"):
        conform(df.drop("income"), schema)
    with pytest.raises(InputError, match="not in the schema: extra"):
        conform(df.with_columns(pl.lit("1").alias("extra")), schema)


def test_infer_marks_draft(adult_csv: Path) -> None:
    schema = infer_schema(adult_csv)
    assert schema.drafted_from_data
    assert schema.column("age").type == "integer"
    assert schema.column("sex").categories == ("Female", "Male")
