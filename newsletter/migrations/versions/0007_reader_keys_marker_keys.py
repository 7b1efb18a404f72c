"""reader links bound to a per-reader key; ids never reused; keyed markers per render

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 04:40:00

- ``subscribers.token_key``: signed into every reader link (see subscriptions/tokens.py).
  Readers already here keep "" and their old links; every new reader gets a random key.
- ``subscribers`` and ``lists`` become AUTOINCREMENT tables on SQLite, so an erased reader's
  (or deleted list's) id is never handed out again. PostgreSQL sequences never reuse ids.
- ``editions.marker_key``: the key of the per-reader markers in the stored email
  (rendering/placeholders.py); "" for editions rendered before keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _autoincrement(table: str, *, on: bool) -> None:
    """Rebuild ``table`` on SQLite with or without AUTOINCREMENT; its rows and ids stay.

    SQLite then starts the table's sequence at the largest id in use.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": on}
    ) as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), autoincrement=True)


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.add_column(
            sa.Column("token_key", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("editions") as batch_op:
        batch_op.add_column(
            sa.Column("marker_key", sa.String(length=32), nullable=False, server_default="")
        )
    _autoincrement("subscribers", on=True)
    _autoincrement("lists", on=True)


def downgrade() -> None:
    _autoincrement("lists", on=False)
    _autoincrement("subscribers", on=False)
    with op.batch_alter_table("editions") as batch_op:
        batch_op.drop_column("marker_key")
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.drop_column("token_key")
