"""list story detail: how much of each post with sections a list's digest shows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:00:00

- ``lists.story_detail``: ``dek`` (the dek and opening paragraph, as every list showed
  before), ``first_section`` or ``all_sections``. Existing lists keep ``dek``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STORY_DETAILS = ("dek", "first_section", "all_sections")


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch_op:
        batch_op.add_column(
            sa.Column(
                "story_detail",
                sa.Enum(
                    *STORY_DETAILS,
                    name="story_detail",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=False,
                server_default="dek",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("lists") as batch_op:
        batch_op.drop_constraint(op.f("ck_lists_story_detail"), type_="check")
        batch_op.drop_column("story_detail")
