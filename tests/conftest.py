"""Shared fixtures: paths to the real test data copied into tests/data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

#: the passphrase every test's private keys are encrypted with (tests that need none unset it)
TEST_PASSPHRASE = "test passphrase: correct horse battery staple"


@pytest.fixture(autouse=True, scope="session")
def _passphrase() -> Iterator[None]:
    """Private keys are encrypted: give every test a passphrase in $SYNTHGATE_PASSPHRASE.

    Session-scoped (and so set before the session fixtures that write keys, such as the CLI tests'
    audited workspace); a test may still change or delete it with its own ``monkeypatch``.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SYNTHGATE_PASSPHRASE", TEST_PASSPHRASE)
        yield


@pytest.fixture
def adult_csv() -> Path:
    return DATA / "adult_2000.csv"


@pytest.fixture
def adult_schema_path() -> Path:
    return DATA / "adult_schema.yaml"
