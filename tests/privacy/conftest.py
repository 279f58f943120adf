"""Fixtures shared by the privacy tests: the real Adult slice, conformed to its public schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from privacy.schema import Schema
from privacy.table import load_conformed

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def adult() -> tuple[pl.DataFrame, Schema]:
    schema = Schema.load(DATA / "adult_schema.yaml")
    df, _ = load_conformed(DATA / "adult_2000.csv", schema)
    return df, schema
