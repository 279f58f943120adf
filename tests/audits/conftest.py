"""Shared data for the audit tests: the Adult sample split into train/holdout, and two "synthetic" tables.

- ``copy_of_train``: the worst generator imaginable, a verbatim copy of the training split.
- ``independent``: each column drawn on its own from the holdout's marginals; no row of it is
  derived from a training row, and no relation between columns survives.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from policies import load_policy
from policies.model import Policy
from privacy.schema import Schema
from privacy.table import load_conformed

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def schema() -> Schema:
    return Schema.load(DATA / "adult_schema.yaml")


@pytest.fixture(scope="session")
def adult(schema: Schema) -> pl.DataFrame:
    df, _ = load_conformed(DATA / "adult_2000.csv", schema)
    return df


@pytest.fixture(scope="session")
def split(adult: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    shuffled = adult.sample(fraction=1.0, shuffle=True, seed=11)
    return shuffled[:1400], shuffled[1400:]


@pytest.fixture(scope="session")
def train(split: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    return split[0]


@pytest.fixture(scope="session")
def holdout(split: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    return split[1]


@pytest.fixture(scope="session")
def copy_of_train(train: pl.DataFrame) -> pl.DataFrame:
    return train.clone()


@pytest.fixture(scope="session")
def independent(holdout: pl.DataFrame, train: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(
        {
            c: holdout.get_column(c).sample(train.height, with_replacement=True, seed=100 + i)
            for i, c in enumerate(holdout.columns)
        }
    )


def small_policy(**audit: object) -> Policy:
    """The default policy with attack counts small enough for unit tests."""
    base = load_policy("default")
    settings = {
        "anonymeter_rows": 400,
        "singling_out_attacks": 150,
        "linkability_attacks": 200,
        "inference_attacks": 100,
        "linkability_splits": 2,
        "dcr_subsets": 3,
        **audit,
    }
    return base.model_copy(update={"audit": base.audit.model_copy(update=settings)})


@pytest.fixture(scope="session")
def make_policy():
    """``small_policy`` as a fixture: test modules are not a package and cannot import conftest."""
    return small_policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return small_policy()
