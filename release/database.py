"""Which database a workspace keeps its ledger, runs and event log in, how to open it, and migrations.

The embedded SQLite file ``WORKSPACE/synthgate.db`` by default; a PostgreSQL server for a team
(``synthgate init --database postgresql://user@host/db``). A PostgreSQL workspace records the URL in
``workspace.yaml`` so that every later command opens the same database. The URL never carries a
password: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass`` (``PGPASSFILE``), or synthgate reads it
from the environment variable the workspace names (``--database-password-env``), at every connection.

Both databases get their tables from the Alembic revisions in ``release/migrations``; ``migrate``
brings a database to the newest revision (at init, and on every open, so that a workspace made by an
older synthgate, SQLite ones from before Alembic included, gains what later versions add).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, exc, inspect, text
from sqlalchemy.engine import URL, make_url

from privacy.errors import InputError

MIGRATIONS = Path(__file__).parent / "migrations"

#: key of the PostgreSQL advisory lock that serialises migrations of one database
MIGRATION_LOCK = 0x5359_4E54_4D49_4701  # "SYNTMIG" + 1

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DatabaseConfig:
    """Where a workspace's tables live: ``url`` None is the embedded SQLite file."""

    #: a ``postgresql://`` URL without a password, or None for ``WORKSPACE/synthgate.db``
    url: str | None = None
    #: the environment variable that holds the password (None: libpq's PGPASSWORD / ~/.pgpass)
    password_env: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None

    def describe(self) -> str:
        """What to print: the URL (it holds no password), or ``sqlite``."""
        return self.url or "sqlite"

    def to_dict(self) -> dict[str, str]:
        """The ``database`` entry of ``workspace.yaml`` (empty for SQLite)."""
        out: dict[str, str] = {}
        if self.url is not None:
            out["url"] = self.url
        if self.password_env is not None:
            out["password_env"] = self.password_env
        return out

    @classmethod
    def from_workspace(cls, entry: Any, where: Path) -> DatabaseConfig:
        """Read (and re-check) the ``database`` entry of a workspace's ``workspace.yaml``."""
        if entry is None or entry == {}:
            return cls()
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or \
                not set(entry) <= {"url", "password_env"}:
            raise InputError(f"{where}: 'database' must be a mapping with 'url' (and 'password_env')")
        return parse_database(entry["url"], entry.get("password_env"))

    def engine(self) -> Engine:
        """A PostgreSQL engine (the SQLite one is ``release.db.make_engine``); connects lazily."""
        if self.url is None:
            raise ValueError("the SQLite engine is made from the workspace's file")
        connect_args: dict[str, Any] = {
            "connect_timeout": 10,
            # timestamps come back in UTC, as SQLite's do (written by utcnow)
            "options": "-c timezone=UTC",
            "application_name": "synthgate",
        }
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
            if password is None:
                raise InputError(f"the workspace database's password is read from ${self.password_env}, "
                                 "which is not set")
            connect_args["password"] = password
        try:
            return create_engine(make_url(self.url).set(drivername="postgresql+psycopg"),
                                 connect_args=connect_args)
        except ImportError as e:  # pragma: no cover - psycopg is a dependency
            raise InputError(f"PostgreSQL needs the psycopg package ({e})") from None


def parse_database(url: str | None, password_env: str | None = None) -> DatabaseConfig:
    """Check a ``--database`` URL: PostgreSQL only, no password in it; the default is SQLite."""
    if password_env is not None and not _ENV_NAME.match(password_env):
        raise InputError(f"--database-password-env {password_env!r} is not an environment variable name")
    if url is None or url == "" or url == "sqlite":
        if password_env is not None:
            raise InputError("--database-password-env needs a PostgreSQL --database URL")
        return DatabaseConfig()
    try:
        parsed: URL = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://")
                               else url)
    except (exc.ArgumentError, ValueError):
        raise InputError(f"--database {_redact(url)!r} is not a database URL (expected "
                         "postgresql://USER@HOST[:PORT]/DATABASE)") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        raise InputError("the SQLite database is always WORKSPACE/synthgate.db: leave out --database")
    if backend != "postgresql" or driver not in ("", "psycopg"):
        raise InputError(f"--database {parsed.drivername}:// is not supported: use postgresql://USER@HOST/DATABASE "
                         "(or leave it out for the workspace's own SQLite file)")
    if parsed.password is not None or "password" in parsed.query:
        raise InputError("the --database URL holds a password, which would be stored in clear in the workspace: "
                         "leave it out and set PGPASSWORD, ~/.pgpass or --database-password-env NAME")
    if not parsed.database:
        raise InputError("the --database URL names no database: postgresql://USER@HOST[:PORT]/DATABASE")
    return DatabaseConfig(url=parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                          password_env=password_env)


def _redact(url: str) -> str:
    # an unparsable URL may still hold "user:secret@": never echo what could be a password
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


def connection_error(cfg: DatabaseConfig, err: Exception) -> InputError:
    """A failed connection (unreachable server, wrong credentials, no such database) as one line."""
    orig = getattr(err, "orig", None) or err
    msg = " ".join(str(orig).split()) or type(orig).__name__
    hint = ""
    if "password" in msg and cfg.password_env is None:
        hint = " (the password comes from PGPASSWORD, ~/.pgpass or --database-password-env)"
    return InputError(f"cannot use the workspace database {cfg.describe()}: {msg}{hint}")


def check_unused(cfg: DatabaseConfig, engine: Engine) -> None:
    """Connect (one-line errors) and refuse a database that already holds synthgate's tables."""
    from release.db import Base

    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
    except exc.DBAPIError as e:
        raise connection_error(cfg, e) from None
    used = sorted(names & (set(Base.metadata.tables) | {"alembic_version"}))
    if used:
        raise InputError(f"the database {cfg.describe()} already holds a synthgate workspace (tables "
                         f"{', '.join(used)}): give each workspace its own database")


# -- migrations ---------------------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision this synthgate knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision a database is at (None: empty, or made before Alembic)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade_in(conn: Connection) -> None:
    """Bring the database behind ``conn`` to the head revision, inside the caller's transaction.

    On PostgreSQL an advisory lock keeps two processes from migrating at once (DDL is
    transactional there, and on SQLite, whose ``BEGIN IMMEDIATE`` already serialises writers).
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    current = current_revision(conn)
    if current == head_revision():
        return
    if current is not None:
        try:
            ScriptDirectory.from_config(_alembic_config()).get_revision(current)
        except Exception:
            raise InputError(f"the workspace database is at schema revision {current}, which this synthgate "
                             f"does not know (newest: {head_revision()}): upgrade synthgate") from None
    command.upgrade(_alembic_config(conn), "head")


def migrate(engine: Engine, cfg: DatabaseConfig) -> None:
    """Open the database and bring it to the head revision; connection failures are one line (exit 2)."""
    try:
        with engine.connect() as conn:
            if current_revision(conn) == head_revision():
                return
        with engine.begin() as conn:
            upgrade_in(conn)
    except exc.DBAPIError as e:
        if cfg.is_postgres and isinstance(e, exc.OperationalError | exc.InterfaceError):
            raise connection_error(cfg, e) from None
        raise
