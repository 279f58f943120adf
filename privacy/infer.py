"""Drafting a schema from data: a convenience that reads the sensitive data for free.

A drafted domain is NOT public: the categories and bounds are read from the sensitive data without
any privacy budget. The drafted file says so loudly and is marked ``drafted_from_data: true``; a
steward must review it (widen bounds to public values, add categories from documentation) and
remove the mark before use. ``register`` refuses a schema that still carries it unless the steward
explicitly accepts it.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import polars as pl
import yaml

from privacy.schema import Column, Schema
from privacy.table import read_raw

DRAFT_WARNING = (
    "WARNING: this schema was drafted from the sensitive data. Its category lists and numeric "
    "bounds were read from the data without any privacy budget and are NOT public: a rare category "
    "or an extreme value can identify a person. Review every domain (replace bounds by public "
    "values, categories by documented lists) and remove 'drafted_from_data' before registering."
)

_MAX_CATEGORIES = 200


def infer_schema(path: str | Path, *, name: str = "") -> Schema:
    """Draft a schema from a CSV or Parquet file (see the module docstring: not private)."""
    raw = read_raw(path)
    cols = []
    for c in raw.columns:
        s = raw.get_column(c)
        txt = s.cast(pl.Utf8, strict=False).str.strip_chars() if s.dtype != pl.Utf8 else s.str.strip_chars()
        non_null = txt.drop_nulls().filter(txt.drop_nulls() != "")
        as_float = non_null.cast(pl.Float64, strict=False)
        numeric = non_null.len() > 0 and as_float.null_count() == 0 and non_null.n_unique() > 20
        if numeric:
            is_int = bool((as_float.round(0) == as_float).all())
            lo, hi = float(as_float.min()), float(as_float.max())  # type: ignore[arg-type]
            if lo == hi:
                hi = lo + 1
            if is_int:
                cols.append(Column(name=c, type="integer", min=math.floor(lo), max=math.ceil(hi)))
            else:
                cols.append(Column(name=c, type="float", min=lo, max=hi))
        else:
            cats = sorted(txt.fill_null("").unique().to_list(), key=str)
            cats = cats[:_MAX_CATEGORIES]
            cols.append(Column(name=c, type="categorical", categories=tuple(str(x) for x in cats)))
    return Schema(columns=tuple(cols), name=name, drafted_from_data=True)


def draft_yaml(schema: Schema) -> str:
    """The drafted schema as YAML, with the warning as a comment block and as a key."""
    banner = "\n".join("# " + line for line in _wrap(DRAFT_WARNING))
    body = schema.to_dict()
    body = {"warning": DRAFT_WARNING, **body}
    return banner + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def _wrap(text: str, width: int = 96) -> list[str]:
    return textwrap.wrap(text, width)
