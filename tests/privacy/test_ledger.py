"""The ledger: caps are checked before anything is written, sums compose by basic composition."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from privacy.errors import BudgetError, InputError
from privacy.ledger import Base, Caps, Charge, Source, balance, charge
from privacy.spend import PrivacySpend, compose

CAPS = Caps(total_epsilon=3.0, total_delta=1e-8, per_release_epsilon=1.0, per_release_delta=1e-9)


@pytest.fixture
def session() -> Session:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    s = Session(engine)
    s.add(Source(name="adult", policy_name="health", policy_json="{}", policy_digest="0" * 64))
    s.commit()
    return s


def _src(s: Session) -> Source:
    return s.scalars(select(Source)).one()


def test_charges_compose_and_stop_at_the_cap(session: Session) -> None:
    src = _src(session)
    for i in range(3):
        charge(session, src, PrivacySpend(epsilon=1.0, delta=1e-9), CAPS, run_id=f"r{i}", mechanism="mst")
    bal = balance(session, src, CAPS)
    assert bal.spent_epsilon == pytest.approx(3.0) and bal.remaining_epsilon == pytest.approx(0.0)
    with pytest.raises(BudgetError, match="0 epsilon left of 3"):
        charge(session, src, PrivacySpend(epsilon=0.01, delta=1e-9), CAPS, run_id="r3", mechanism="mst")
    assert session.scalar(select(func.count()).select_from(Charge)) == 3


def test_per_release_caps(session: Session) -> None:
    src = _src(session)
    with pytest.raises(BudgetError, match="per-release cap 1"):
        charge(session, src, PrivacySpend(epsilon=1.5, delta=1e-9), CAPS, run_id="r", mechanism="mst")
    with pytest.raises(BudgetError, match="delta 1e-06 exceeds"):
        charge(session, src, PrivacySpend(epsilon=0.5, delta=1e-6), CAPS, run_id="r", mechanism="mst")
    assert session.scalar(select(func.count()).select_from(Charge)) == 0


def test_float_sums_reach_the_cap_exactly(session: Session) -> None:
    src = _src(session)
    for i in range(30):  # 30 x 0.1 is 3.0000000000000004 in floating point
        charge(session, src, PrivacySpend(epsilon=0.1, delta=1e-10), CAPS, run_id=f"r{i}", mechanism="mst")
    assert balance(session, src, CAPS).spent_epsilon == pytest.approx(3.0)


@pytest.mark.parametrize("eps, delta, msg", [(0, 0, "epsilon"), (-1, 0, "epsilon"), (float("nan"), 0, "epsilon"),
                                             (1, -1e-9, "delta"), (1, 1.0, "delta"), (float("inf"), 0, "epsilon")])
def test_spend_validation(eps: float, delta: float, msg: str) -> None:
    with pytest.raises(InputError, match=msg):
        PrivacySpend(epsilon=eps, delta=delta)


def test_basic_composition() -> None:
    assert compose([(1.0, 1e-9), (0.5, 2e-9)]) == (1.5, pytest.approx(3e-9))
