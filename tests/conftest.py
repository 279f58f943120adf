"""Shared fixtures: paths to the real test data copied into tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def adult_csv() -> Path:
    return DATA / "adult_2000.csv"


@pytest.fixture
def adult_schema_path() -> Path:
    return DATA / "adult_schema.yaml"
