"""uncertain deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 00:52:02.617945
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD = ("queued", "sending", "sent", "failed", "skipped")
NEW = (*OLD, "uncertain")


def _allow(statuses: tuple[str, ...]) -> None:
    # The enum is a VARCHAR with a CHECK constraint (portable); widen or narrow the check.
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_deliveries_delivery_status"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_deliveries_delivery_status"),
            sa.column("status").in_(statuses),
        )


def upgrade() -> None:
    _allow(NEW)


def downgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'sending' WHERE status = 'uncertain'")
    _allow(OLD)
