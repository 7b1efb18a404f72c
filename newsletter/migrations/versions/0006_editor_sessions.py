"""editor sessions: one row per signed-in browser, replacing editors.session_epoch

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 04:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.models.types

UTC_DATETIME = newsletter.models.types.UTCDateTime(timezone=True)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "editor_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["editor_id"],
            ["editors.id"],
            name=op.f("fk_editor_sessions_editor_id_editors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editor_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_editor_sessions_secret_hash")),
    )
    op.create_index("ix_editor_sessions_editor_id", "editor_sessions", ["editor_id"])
    # Cookies signed before this release carry an epoch, not a session: they stop working
    # and their editors sign in again.
    with op.batch_alter_table("editors") as batch_op:
        batch_op.drop_column("session_epoch")


def downgrade() -> None:
    with op.batch_alter_table("editors") as batch_op:
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    op.drop_index("ix_editor_sessions_editor_id", table_name="editor_sessions")
    op.drop_table("editor_sessions")
