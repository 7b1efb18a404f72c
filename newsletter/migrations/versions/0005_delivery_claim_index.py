"""delivery claim index: (edition_id, status, id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 05:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A batch claims "queued rows of this edition between these ids": with the id in the
    # index that is a range scan; without it, 150 ms per claim at a million rows.
    op.create_index("ix_deliveries_edition_status_id", "deliveries", ["edition_id", "status", "id"])
    op.drop_index("ix_deliveries_edition_status", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_edition_status", "deliveries", ["edition_id", "status"])
    op.drop_index("ix_deliveries_edition_status_id", table_name="deliveries")
