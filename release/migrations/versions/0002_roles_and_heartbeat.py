"""Roles and revocation; a heartbeat on runs.

Revision ID: 0002
Revises: 0001
Create Date: issue 9

``role_grants`` records who holds which role (admin, steward, requester), who granted it and, once
revoked, when, by whom and why; the event log entry of each grant and revocation is named by id,
so a bundle's recorded log head says whether a revocation came before or after its release.
Every steward registered before this revision gets a steward grant (granted by nobody: the
workspace had no admins then), so existing approvals and bundles keep verifying.

``runs.heartbeat_at`` is refreshed by the process working on a run, so that a process on another
host that died (with a team database) can be told from one that is still working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("keyid", sa.String(64), nullable=True),
        sa.Column("public_key_pem", sa.Text(), nullable=True),
        sa.Column("granted_at", _tz(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=True),
        sa.Column("grant_event", sa.Integer(), nullable=True),
        sa.Column("revoked_at", _tz(), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("revoke_event", sa.Integer(), nullable=True),
    )
    op.create_index("ix_role_grants_name_role", "role_grants", ["name", "role"])
    op.add_column("runs", sa.Column("heartbeat_at", _tz(), nullable=True))
    op.execute(
        "INSERT INTO role_grants (name, role, keyid, public_key_pem, granted_at) "
        "SELECT name, 'steward', keyid, public_key_pem, added_at FROM stewards ORDER BY added_at, name"
    )

def downgrade() -> None:
    op.drop_column("runs", "heartbeat_at")
    op.drop_index("ix_role_grants_name_role", "role_grants")
    op.drop_table("role_grants")
