"""Reading sensitive tables (polars) and conforming them to the public schema.

Reading: CSV or Parquet through polars, every CSV column read as text first so that a bad value
becomes a counted error, never a parser message that echoes it. Conforming: numeric values are
clipped to the schema's bounds, out-of-domain categories mapped to the column's ``other`` category;
each is counted, and the domain is never widened (DESIGN.md section 4, rule 2).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from privacy.errors import InputError
from privacy.schema import Column, Schema

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
    """Parse CSV (every column as text) or Parquet bytes."""
    if len(data) == 0:
        raise InputError(f"data file is empty: {hint}")
    head = data[:4096]
    if head[:4] == _PARQUET_MAGIC:
        try:
            df = pl.read_parquet(io.BytesIO(data))
        except Exception as exc:  # polars raises several unrelated types for corrupt files
            raise InputError(f"cannot read {hint} as Parquet") from exc
    else:
        if b"\x00" in head:
            raise InputError(f"{hint} is neither CSV text nor Parquet")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(head) < 4096 or _bad_utf8_not_cut(head):
                raise InputError(f"{hint} is not UTF-8 CSV text") from exc
        try:
            df = pl.read_csv(io.BytesIO(data), infer_schema=False, has_header=True)
        except Exception as exc:
            raise InputError(f"cannot parse {hint} as CSV") from exc
    if df.height == 0:
        raise InputError(f"data file has a header but no rows: {hint}")
    if len(set(c.strip() for c in df.columns)) != len(df.columns):
        raise InputError(f"{hint}: duplicate column names")
    return df.rename({c: c.strip() for c in df.columns})


def _bad_utf8_not_cut(head: bytes) -> bool:
    try:
        head[:-4].decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


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
    dtype = pl.Int64 if col.type == "integer" else pl.Float64
    if s.dtype == pl.Utf8:
        raw = s.str.strip_chars()
        n_null_in = raw.null_count() + int((raw == "").sum())
        if col.type == "integer":
            # accept "12" and "12.0" but not "12.5"
            as_float = raw.cast(pl.Float64, strict=False)
            bad_int = int(((as_float.round(0) != as_float) & as_float.is_not_null()).sum())
            if bad_int:
                raise InputError(f"{where}: {bad_int} values are not integers")
            vals = as_float.cast(pl.Int64, strict=False)
        else:
            vals = raw.cast(pl.Float64, strict=False)
    else:
        n_null_in = s.null_count()
        if col.type == "integer" and s.dtype.is_float():
            bad_int = int(((s.round(0) != s) & s.is_not_null() & ~s.is_nan()).sum())
            if bad_int:
                raise InputError(f"{where}: {bad_int} values are not integers")
        vals = s.cast(dtype, strict=False)
    n_null = vals.null_count()
    if n_null > n_null_in:
        raise InputError(f"{where}: {n_null - n_null_in} values are not {col.type} numbers")
    if n_null and not col.nullable:
        raise InputError(f"{where}: {n_null} missing values (numeric columns must be complete, or declared nullable)")
    if col.type == "float":
        n_nan = int(vals.is_nan().fill_null(False).sum())
        if n_nan:
            raise InputError(f"{where}: {n_nan} values are NaN")
    assert col.min is not None and col.max is not None
    lo = int(col.min) if col.type == "integer" else col.min
    hi = int(col.max) if col.type == "integer" else col.max
    n_clip = int(((vals < lo) | (vals > hi)).fill_null(False).sum())
    if n_clip:
        clipped[col.name] = n_clip
        vals = vals.clip(lo, hi)
    return vals.cast(dtype).alias(col.name)


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
