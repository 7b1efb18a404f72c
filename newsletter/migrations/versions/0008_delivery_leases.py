"""delivery leases: a claim holds its rows until lease_until; maybe-duplicate retries

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00

- ``deliveries.lease_until``: until when the claim on a ``sending`` row holds. Its worker
  renews it and stops sending once it lapses; the reconciler revokes only expired leases,
  and a retry of an uncertain row waits until its lease and the SMTP timeout have passed.
- ``deliveries.maybe_duplicate``: the row was queued again while uncertain, so its reader
  may hold the first attempt too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.models.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(
            sa.Column(
                "lease_until", newsletter.models.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("maybe_duplicate", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("maybe_duplicate")
        batch_op.drop_column("lease_until")
