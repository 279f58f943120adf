"""The privacy budget ledger: one account per source, every charge recorded before data is read.

The ledger composes spends per source by basic composition (epsilons add, deltas add) and refuses a
charge that would pass the policy's per-release or total cap. A charge is checked and written in one
transaction that holds the source's account locked before it reads the balance (SQLite: the database
write lock from ``BEGIN IMMEDIATE``, see ``release.db``; PostgreSQL: the account row, see
``lock_account``), so two concurrent charges cannot both read the old balance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from privacy.errors import BudgetError, InputError
from privacy.spend import PrivacySpend

#: slack for float sums: a charge that reaches the cap exactly must pass
_EPS_SLACK = 1e-12


class Base(DeclarativeBase):
    """Declarative base shared by every table of the workspace database."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Source(Base):
    """A named sensitive dataset (all its versions) and its budget account under a policy."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    policy_name: Mapped[str] = mapped_column(String(200))
    policy_json: Mapped[str] = mapped_column(Text)
    policy_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Charge(Base):
    """One spend against a source's account; never updated or deleted."""

    __tablename__ = "charges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    run_id: Mapped[str] = mapped_column(String(64))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    mechanism: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class Caps:
    """The budget caps a charge is checked against (from the source's policy)."""

    total_epsilon: float
    total_delta: float
    per_release_epsilon: float
    per_release_delta: float


@dataclass(frozen=True)
class Balance:
    spent_epsilon: float
    spent_delta: float
    remaining_epsilon: float
    remaining_delta: float
    charges: list[dict[str, object]]


def balance(session: Session, source: Source, caps: Caps) -> Balance:
    """What the source has spent and has left, with every charge."""
    rows = session.scalars(select(Charge).where(Charge.source_id == source.id).order_by(Charge.id)).all()
    eps = math.fsum(c.epsilon for c in rows)
    delta = math.fsum(c.delta for c in rows)
    return Balance(
        spent_epsilon=eps,
        spent_delta=delta,
        remaining_epsilon=max(0.0, caps.total_epsilon - eps),
        remaining_delta=max(0.0, caps.total_delta - delta),
        charges=[
            {
                "run_id": c.run_id,
                "epsilon": c.epsilon,
                "delta": c.delta,
                "mechanism": c.mechanism,
                "at": c.created_at.isoformat() if c.created_at else None,
            }
            for c in rows
        ],
    )


def lock_account(session: Session, source: Source) -> None:
    """Hold the source's account until the caller's transaction ends; call before reading the balance.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` on the source's row. A second charger waits here,
    and under READ COMMITTED its next statement sees the first one's committed charge. We chose the
    row lock over SERIALIZABLE isolation because a serialisation failure can surface at any
    statement or at commit and the whole charge transaction (policy checks, the run row, the event
    log) would have to be retried in a loop; the lock makes chargers of one source queue instead, and
    it is taken before anything reads the data, so the charge still precedes the read. ``NO KEY``:
    rows that merely reference the source (a new version, another table's foreign key) are not
    blocked. The workspace's own transactions also hold its advisory write lock
    (``release.db.lock_workspace``); this lock keeps the ledger sound in any other transaction too.
    SQLite: a no-op, since ``BEGIN IMMEDIATE`` already holds the whole database.
    """
    session.execute(select(Source.id).where(Source.id == source.id).with_for_update(key_share=True))


def check_charge(session: Session, source: Source, spend: PrivacySpend, caps: Caps) -> None:
    """Raise ``BudgetError`` if the spend would pass a cap; changes nothing (locks the account)."""
    if spend.epsilon > caps.per_release_epsilon + _EPS_SLACK:
        raise BudgetError(
            f"epsilon {spend.epsilon:g} exceeds the policy's per-release cap {caps.per_release_epsilon:g}"
        )
    if spend.delta > caps.per_release_delta * (1 + 1e-9):
        raise BudgetError(f"delta {spend.delta:g} exceeds the policy's per-release cap {caps.per_release_delta:g}")
    lock_account(session, source)
    spent_eps, spent_delta = session.execute(
        select(func.coalesce(func.sum(Charge.epsilon), 0.0), func.coalesce(func.sum(Charge.delta), 0.0)).where(
            Charge.source_id == source.id
        )
    ).one()
    if spent_eps + spend.epsilon > caps.total_epsilon + _EPS_SLACK:
        raise BudgetError(
            f"source {source.name!r} has {max(0.0, caps.total_epsilon - spent_eps):g} epsilon left "
            f"of {caps.total_epsilon:g}; the charge of {spend.epsilon:g} is refused"
        )
    if spent_delta + spend.delta > caps.total_delta * (1 + 1e-9):
        raise BudgetError(
            f"source {source.name!r} has {max(0.0, caps.total_delta - spent_delta):g} delta left; "
            f"the charge of {spend.delta:g} is refused"
        )


def charge(session: Session, source: Source, spend: PrivacySpend, caps: Caps, *, run_id: str, mechanism: str) -> Charge:
    """Check then record a charge inside the caller's (write-locked) transaction."""
    if not run_id:
        raise InputError("a charge needs a run id")
    check_charge(session, source, spend, caps)
    row = Charge(source_id=source.id, run_id=run_id, epsilon=spend.epsilon, delta=spend.delta, mechanism=mechanism)
    session.add(row)
    session.flush()
    return row
