"""Alembic's environment: synthgate passes its own connection (``release.database.upgrade_in``).

For a developer's ``alembic`` command line (``alembic -c ... revision --autogenerate``) it falls back
to ``sqlalchemy.url`` from the configuration.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from release.db import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later revisions copy-and-move tables in batch mode
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
