"""The workspace schema as of issue 9: ledger, sources and versions, runs, stewards, approvals, event log.

Revision ID: 0001
Revises:
Create Date: issue 9

Workspaces made before Alembic (SQLite only, their tables made by ``create_all``) run this revision
too: a table that exists is kept with its rows (its columns are checked), a missing one (those that
later versions added, e.g. ``external_splits``) is created, and the database is then stamped.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from privacy.errors import InputError

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _tables() -> list[tuple[str, list[sa.schema.SchemaItem]]]:
    """Every table in dependency order, as ``op.create_table`` takes them."""
    return [
        ("sources", [
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False, unique=True),
            sa.Column("policy_name", sa.String(200), nullable=False),
            sa.Column("policy_json", sa.Text(), nullable=False),
            sa.Column("policy_digest", sa.String(64), nullable=False),
            sa.Column("created_at", _tz(), nullable=False),
        ]),
        ("charges", [
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id"), nullable=False),
            sa.Column("run_id", sa.String(64), nullable=False),
            sa.Column("epsilon", sa.Float(), nullable=False),
            sa.Column("delta", sa.Float(), nullable=False),
            sa.Column("mechanism", sa.String(200), nullable=False),
            sa.Column("created_at", _tz(), nullable=False),
        ]),
        ("dataset_versions", [
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id"), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("schema_json", sa.Text(), nullable=False),
            sa.Column("registered_at", _tz(), nullable=False),
        ]),
        ("version_files", [
            sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), primary_key=True),
            sa.Column("role", sa.String(32), primary_key=True),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
        ]),
        ("external_splits", [
            sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), primary_key=True),
            # 62-bit seeds: BIGINT (PostgreSQL's INTEGER has 32 bits; SQLite's has 64 either way)
            sa.Column("split_seed", sa.BigInteger(), nullable=False),
        ]),
        ("runs", [
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("source_id", sa.Integer(), sa.ForeignKey("sources.id"), nullable=False),
            sa.Column("version_id", sa.Integer(), sa.ForeignKey("dataset_versions.id"), nullable=False),
            sa.Column("generator", sa.String(64), nullable=False),
            sa.Column("options_json", sa.Text(), nullable=False),
            sa.Column("epsilon", sa.Float(), nullable=False),
            sa.Column("delta", sa.Float(), nullable=False),
            sa.Column("rows_requested", sa.Integer(), nullable=True),
            sa.Column("seed", sa.BigInteger(), nullable=False),
            sa.Column("split_seed", sa.BigInteger(), nullable=False),
            sa.Column("requester", sa.String(200), nullable=False),
            sa.Column("target", sa.String(200), nullable=True),
            sa.Column("state", sa.String(32), nullable=False),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("card_json", sa.Text(), nullable=True),
            sa.Column("gate_passed", sa.Boolean(), nullable=True),
            sa.Column("statement_digest", sa.String(64), nullable=True),
            sa.Column("created_at", _tz(), nullable=False),
            sa.Column("updated_at", _tz(), nullable=False),
        ]),
        ("stewards", [
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("public_key_pem", sa.Text(), nullable=False),
            sa.Column("keyid", sa.String(64), nullable=False),
            sa.Column("added_at", _tz(), nullable=False),
        ]),
        ("approvals", [
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
            sa.Column("steward", sa.String(200), sa.ForeignKey("stewards.name"), nullable=False),
            sa.Column("decision", sa.String(16), nullable=False),
            sa.Column("record_json", sa.Text(), nullable=False),
            sa.Column("created_at", _tz(), nullable=False),
            sa.UniqueConstraint("run_id", "steward"),
        ]),
        ("events", [
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("at", sa.String(40), nullable=False),
            sa.Column("kind", sa.String(64), nullable=False),
            sa.Column("run_id", sa.String(64), nullable=True),
            sa.Column("detail_json", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        ]),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items in _tables():
        if name not in existing:
            op.create_table(name, *items)
            continue
        # a table from before Alembic: keep it and its rows if it has every column
        have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
        missing = [c.name for c in items if isinstance(c, sa.Column) and c.name not in have]
        if missing:
            raise InputError(f"the workspace database's table {name!r} lacks column(s) {', '.join(missing)}: "
                             "it was made by a synthgate this one cannot upgrade")


def downgrade() -> None:
    for name, _items in reversed(_tables()):
        op.drop_table(name)
