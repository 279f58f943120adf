"""Reading sensitive tables (polars) and conforming them to the public schema.

Reading: CSV or Parquet through polars, every CSV column read as text first so that a bad value
becomes a counted error, never a parser message that echoes it. Conforming: numeric values are
clipped to the schema's bounds, out-of-domain categories mapped to the column's ``other`` category;
each is counted, and the domain is never widened (DESIGN.md section 4, rule 2).
"""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from privacy.errors import InputError
from privacy.schema import Column, Schema

if TYPE_CHECKING:
    import polars as pl

_PARQUET_MAGIC = b"PAR1"


def fingerprint(path: str | Path) -> str:
    """SHA-256 of the file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_raw(path: str | Path) -> pl.DataFrame:
    """Read a CSV (all columns as text) or Parquet file; one clear error for anything else."""
    return read_raw_fingerprinted(path)[0]


def read_raw_fingerprinted(path: str | Path) -> tuple[pl.DataFrame, str]:
    """Read a file once: parse exactly the bytes whose SHA-256 is returned."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"data file not found: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read data file {p}") from exc
    return parse_table(data, str(p)), hashlib.sha256(data).hexdigest()


def parse_table(data: bytes, hint: str = "data") -> pl.DataFrame:
    """Parse CSV (every column as text) or Parquet bytes.

    Refused with one line (counts and column names, never values): an empty file, NUL bytes or
    invalid UTF-8 in CSV text, a CSV polars cannot parse (ragged rows, a quote left open), corrupt
    Parquet, no rows, duplicate or empty column names, and columns of nested values (lists, structs).
    """
    import polars as pl

    if len(data) == 0:
        raise InputError(f"data file is empty: {hint}")
    if data[:4] == _PARQUET_MAGIC:
        try:
            df = pl.read_parquet(io.BytesIO(data))
        except Exception as exc:  # polars raises several unrelated types for corrupt files
            raise InputError(f"cannot read {hint} as Parquet") from exc
        names = list(df.columns)
    else:
        if b"\x00" in data:
            raise InputError(f"{hint} is neither CSV text nor Parquet (it holds NUL bytes)")
        if not _is_utf8(data):
            raise InputError(f"{hint} is not UTF-8 CSV text")
        try:
            df = pl.read_csv(io.BytesIO(data), infer_schema=False, has_header=True)
            # polars renames a repeated header ("a", "a_duplicated_0"): read the header row as it is
            header = pl.read_csv(io.BytesIO(data), infer_schema=False, has_header=False, n_rows=1)
        except Exception as exc:
            raise InputError(f"cannot parse {hint} as CSV") from exc
        names = ["" if v is None else str(v) for v in header.row(0)] if header.height else list(df.columns)
    # blank lines after a header read as rows of nothing but missing values: no rows either
    if df.height == 0 or (df.width and int(df.null_count().sum_horizontal()[0]) == df.height * df.width):
        raise InputError(f"data file has a header but no rows: {hint}")
    stripped = [c.strip() for c in names]
    unnamed = sum(1 for c in stripped if not c)
    if unnamed:
        raise InputError(f"{hint}: {unnamed} columns have no name in the header")
    if len(set(stripped)) != len(stripped):
        raise InputError(f"{hint}: duplicate column names")
    nested = [c for c, t in zip(df.columns, df.dtypes) if t.is_nested() or t == pl.Object]
    if nested:
        raise InputError(f"{hint}: columns {', '.join(c.strip() for c in nested)} hold nested values (lists or "
                         "structs); every column must hold one value per row")
    return df.rename({c: c.strip() for c in df.columns})


def _is_utf8(data: bytes) -> bool:
    """Whether the bytes are valid UTF-8, checked in chunks (no second copy of a large file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), 1 << 20):
            decoder.decode(data[start:start + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class ConformReport:
    """What conforming changed, as counts per column (never the values)."""

    rows: int
    clipped: dict[str, int]
    mapped_to_other: dict[str, int]

    @property
    def total_changed(self) -> int:
        return sum(self.clipped.values()) + sum(self.mapped_to_other.values())


def _check_columns(df: pl.DataFrame, schema: Schema, path_hint: str) -> None:
    have = list(df.columns)
    missing = [c for c in schema.names if c not in have]
    extra = [c for c in have if c not in schema.names]
    if missing and len(have) == 1:
        for sep in (";", "\t", "|"):
            if sep in have[0]:
                raise InputError(
                    f"{path_hint}: found one column whose header contains {sep!r}; "
                    f"the file must be comma-separated"
                )
    if missing:
        raise InputError(f"{path_hint}: missing columns: {', '.join(missing)}")
    if extra:
        raise InputError(f"{path_hint}: columns not in the schema: {', '.join(extra)}")


def conform(df: pl.DataFrame, schema: Schema, *, path_hint: str = "data") -> tuple[pl.DataFrame, ConformReport]:
    """Type every column by the schema, clip and map into the public domain, count what changed.

    Raises ``InputError`` (with counts, not values) for missing/extra columns, values that do not
    parse as the column's type, missing values, and categories outside a domain with no ``other``.
    """
    import polars as pl

    _check_columns(df, schema, path_hint)
    clipped: dict[str, int] = {}
    mapped: dict[str, int] = {}
    out = []
    for col in schema.columns:
        s = df.get_column(col.name)
        out.append(conform_column(s, col, path_hint, clipped, mapped))
    result = pl.DataFrame(out)
    return result, ConformReport(rows=result.height, clipped=clipped, mapped_to_other=mapped)


def conform_column(
    s: pl.Series, col: Column, path_hint: str, clipped: dict[str, int], mapped: dict[str, int]
) -> pl.Series:
    import polars as pl

    where = f"{path_hint}: column {col.name!r}"
    if col.type == "categorical":
        txt = s.cast(pl.Utf8, strict=False).str.strip_chars()
        n_null = txt.null_count()
        if n_null and not col.nullable:
            raise InputError(f"{where}: {n_null} missing values (declare a category for them)")
        # a missing value of a nullable column stays missing: it is neither in nor out of the domain
        inside = txt.is_in(list(col.categories)).fill_null(False) | txt.is_null()
        n_out = int((~inside).sum())
        if n_out:
            if col.other is None:
                raise InputError(
                    f"{where}: {n_out} values outside the schema's categories "
                    f"(add them to the schema or declare an 'other' category)"
                )
            mapped[col.name] = n_out
            txt = pl.select(pl.when(inside).then(txt).otherwise(pl.lit(col.other))).to_series()
        return txt.alias(col.name)
    if s.dtype == pl.Categorical or isinstance(s.dtype, pl.Enum):
        s = s.cast(pl.Utf8)
    if s.dtype == pl.Utf8:
        raw = s.str.strip_chars()
        n_null_in = raw.null_count() + int((raw == "").sum())
        vals = raw.cast(pl.Float64, strict=False)
    elif s.dtype.is_numeric() or s.dtype == pl.Null:
        n_null_in = s.null_count()
        vals = s.cast(pl.Float64, strict=False)
    else:
        # a Parquet column of booleans, dates or bytes: casting would invent numbers (true -> 1)
        raise InputError(f"{where}: the file stores {s.dtype} values, not {col.type} numbers")
    if col.type == "integer":
        # accept "12" and "12.0" but not "12.5"; NaN and infinities are not integers at all
        bad_int = int(((vals.round(0) != vals) & vals.is_finite()).fill_null(False).sum())
        if bad_int:
            raise InputError(f"{where}: {bad_int} values are not integers")
        not_finite = int((~vals.is_finite()).fill_null(False).sum())
    else:
        not_finite = 0
    n_null = vals.null_count()
    if n_null + not_finite > n_null_in:
        raise InputError(f"{where}: {n_null + not_finite - n_null_in} values are not {col.type} numbers")
    if n_null and not col.nullable:
        raise InputError(f"{where}: {n_null} missing values (numeric columns must be complete, or declared nullable)")
    if col.type == "float":
        n_nan = int(vals.is_nan().fill_null(False).sum())
        if n_nan:
            raise InputError(f"{where}: {n_nan} values are NaN")
    assert col.min is not None and col.max is not None
    # clipped as floats: the bounds are exact there (integer bounds lie within 2**53), and a value
    # too large for an int64 is clipped like any other out-of-bounds value
    n_clip = int(((vals < col.min) | (vals > col.max)).fill_null(False).sum())
    if n_clip:
        clipped[col.name] = n_clip
        vals = vals.clip(col.min, col.max)
    return vals.cast(pl.Int64 if col.type == "integer" else pl.Float64).alias(col.name)


def load_conformed(path: str | Path, schema: Schema) -> tuple[pl.DataFrame, ConformReport]:
    """Read a file and conform it to the schema."""
    return conform(read_raw(path), schema, path_hint=str(path))


def load_verified(path: str | Path, schema: Schema, expected_fingerprint: str) -> pl.DataFrame:
    """Read a registered file, refusing it if its bytes changed since registration."""
    from privacy.errors import IntegrityError

    raw, fp = read_raw_fingerprinted(path)
    if fp != expected_fingerprint:
        raise IntegrityError(f"{path} changed since it was registered (SHA-256 differs); register the new version")
    return conform(raw, schema, path_hint=str(path))[0]
