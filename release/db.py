"""The workspace database: tables for runs, stewards, approvals and the event log, and the engine.

One SQLAlchemy model set for the embedded SQLite file and for PostgreSQL (``release.database``);
the tables are made by the Alembic revisions in ``release/migrations``, which must follow every
change here. On SQLite every transaction opens with ``BEGIN IMMEDIATE``: it takes the write lock at
once, so two processes charging the same budget are serialised instead of both reading the old
balance (pysqlite's default deferred BEGIN would let both read, then one fail or both write). On
PostgreSQL (READ COMMITTED) an advisory lock plays that part (``lock_workspace``), and the ledger
also locks the source's account row itself (``privacy.ledger.lock_account``), so that a charge is
safe in any transaction, not only in the workspace's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from privacy.errors import IntegrityError
from privacy.ledger import Base, utcnow
from release.bundle import EventLogHead


class DatasetVersion(Base):
    """One registered file of a source: where it is, its fingerprint and its public schema."""

    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    schema_json: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VersionFile(Base):
    """A further file of a source version: for sequences, the static table joined on the entity key.

    A table of its own (not a column of ``dataset_versions``): workspaces created before it gained it
    through ``create_all``, and now through the first Alembic revision, which creates missing tables.
    """

    __tablename__ = "version_files"
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))


class ExternalSplit(Base):
    """The secret split seed of one source version, for data synthesized outside synthgate
    (``release.file_audit``); drawn from OS entropy like a run's, never shown."""

    __tablename__ = "external_splits"
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), primary_key=True)
    split_seed: Mapped[int] = mapped_column(BigInteger)


class Run(Base):
    """One synthesis request and its life: created -> synthesized -> audited -> ... -> released."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"))
    generator: Mapped[str] = mapped_column(String(64))
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    # Float named, not inferred: SQLAlchemy 2.1 infers Double for ``float``, 2.0 Float (the same
    # double precision on both databases), and the migrations must match either
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    rows_requested: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: seed of sampling (post-processing); the user may choose it
    seed: Mapped[int] = mapped_column(BigInteger)
    #: seed of the train/holdout split, from OS entropy and never shown: a known split seed would
    #: turn the Poisson subsample into a fixed function of row positions (see privacy/split.py)
    # (BIGINT: the seeds have up to 63 bits; PostgreSQL's INTEGER has 32, SQLite's any width)
    split_seed: Mapped[int] = mapped_column(BigInteger)
    requester: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    card_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate_passed: Mapped[bool | None] = mapped_column(nullable=True)
    statement_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: refreshed by the process synthesizing or auditing the run (``release.runs``), so that a dead
    #: process on another host can be told from a live one
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Steward(Base):
    __tablename__ = "stewards"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    keyid: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


ROLES = ("admin", "steward", "requester")


class RoleGrant(Base):
    """One member's role: granted by an admin (signed, ``release.members``), revoked by one later.

    A grant is active while ``revoked_at`` is empty. ``grant_event`` and ``revoke_event`` are the
    ids of the event log entries that recorded them, the order a bundle's log head is compared with.
    """

    __tablename__ = "role_grants"
    __table_args__ = (Index("ix_role_grants_name_role", "name", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    keyid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public_key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    granted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    grant_event: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoke_event: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Approval(Base):
    """A steward's signed decision over one run's statement digest."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("run_id", "steward"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    steward: Mapped[str] = mapped_column(ForeignKey("stewards.name"))
    decision: Mapped[str] = mapped_column(String(16))
    record_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    """Append-only log; each entry carries the hash of the one before (a hash chain)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


GENESIS = "0" * 64

#: key of the PostgreSQL advisory lock that stands for SQLite's write lock (``lock_workspace``)
WORKSPACE_LOCK = 0x5359_4E54_4556_0001


def lock_workspace(session: Session) -> None:
    """PostgreSQL: hold the workspace's write lock until the transaction ends (no-op on SQLite).

    A transaction-scoped advisory lock, local to the workspace's database and re-entrant within a
    transaction. ``Workspace.transaction`` takes it first, which gives every state change the one
    writer at a time that SQLite's ``BEGIN IMMEDIATE`` gives (approvals counted, then a state
    set; a name checked, then inserted); ``log_event`` takes it too, so that a session opened
    elsewhere cannot fork the hash chain by appending after the same last entry.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WORKSPACE_LOCK})


def _event_hash(prev: str, kind: str, run_id: str | None, detail_json: str, at: str) -> str:
    body = json.dumps([prev, kind, run_id, detail_json, at], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def log_event(session: Session, kind: str, run_id: str | None = None, **detail: Any) -> Event:
    """Append an event in the caller's transaction, under the workspace's write lock (``lock_workspace``)."""
    lock_workspace(session)
    last = session.scalars(select(Event).order_by(Event.id.desc()).limit(1)).first()
    prev = last.hash if last else GENESIS
    at = utcnow().isoformat()
    detail_json = json.dumps(detail, sort_keys=True, default=str)
    ev = Event(
        at=at, kind=kind, run_id=run_id, detail_json=detail_json, prev_hash=prev,
        hash=_event_hash(prev, kind, run_id, detail_json, at),
    )
    session.add(ev)
    session.flush()
    return ev


def chain_head_entry(session: Session) -> EventLogHead:
    """The newest entry's id and hash, which a bundle records (id 0 and ``GENESIS`` for an empty log)."""
    last = session.scalars(select(Event).order_by(Event.id.desc()).limit(1)).first()
    return EventLogHead(id=last.id, hash=last.hash) if last else EventLogHead(id=0, hash=GENESIS)


@dataclass(frozen=True)
class HeadCheck:
    """What ``check_event_log_head`` found: the log is intact and holds the bundle's head."""

    #: Entries in the whole log.
    entries: int
    #: The id of the entry the bundle's head names (0: the empty log before the first entry).
    head_id: int
    #: Entries appended after it.
    later: int


def check_event_log_head(session: Session, head: EventLogHead) -> HeadCheck:
    """Check that the log's chain is intact and that ``head`` is one of its entries, with that hash.

    ``IntegrityError`` (exit 5) otherwise: a log edited and re-chained since the release, a log
    cut back before the head, or another workspace's log. A head without an id (bundles from
    before issue 9) is looked up by its hash.
    """
    n = verify_chain(session)
    what = f"the bundle's event log head, {head.short()},"
    if head.id == 0:
        # the empty log, before the first entry: every chain starts from it
        if head.hash != GENESIS:
            raise IntegrityError(f"{what} is not the empty log's head ({GENESIS[:16]})")
        return HeadCheck(entries=n, head_id=0, later=n)
    if head.id is None:
        entry = session.scalars(select(Event).where(Event.hash == head.hash).order_by(Event.id).limit(1)).first()
        if entry is None:
            raise IntegrityError(
                f"{what} is not an entry of this workspace's event log ({n} entries): the log was "
                "edited or cut back, or the bundle comes from another workspace"
            )
    else:
        entry = session.get(Event, head.id)
        if entry is None:
            raise IntegrityError(
                f"{what} is not in this workspace's event log ({n} entries): the log was cut back, "
                "or the bundle comes from another workspace"
            )
        if entry.hash != head.hash:
            raise IntegrityError(
                f"{what} does not match entry {head.id} of this workspace's event log (hash "
                f"{entry.hash[:16]}): the log was edited and re-chained, or the bundle comes from "
                "another workspace"
            )
    later = session.scalar(select(func.count()).select_from(Event).where(Event.id > entry.id)) or 0
    return HeadCheck(entries=n, head_id=entry.id, later=later)


def verify_chain(session: Session) -> int:
    """Recompute the chain; return the number of entries or raise IntegrityError at the first break."""
    prev = GENESIS
    n = 0
    for ev in session.scalars(select(Event).order_by(Event.id)):
        if ev.prev_hash != prev or ev.hash != _event_hash(prev, ev.kind, ev.run_id, ev.detail_json, ev.at):
            raise IntegrityError(f"event log broken at entry {ev.id} ({ev.kind})")
        prev = ev.hash
        n += 1
    return n


def make_engine(db_path: Path) -> Engine:
    """A SQLite engine whose transactions take the write lock at BEGIN (see module docstring)."""
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it)
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA busy_timeout=60000")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_all(engine: Engine) -> None:
    """Bring a database to the newest schema through the Alembic revisions (tests and tools use it;
    workspaces go through ``release.database.migrate``)."""
    from release.database import DatabaseConfig, migrate

    migrate(engine, DatabaseConfig())
