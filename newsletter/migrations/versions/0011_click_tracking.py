"""click tracking: tracked links, click and open counts, per-reader clicks where chosen

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:30:00

- ``lists.click_tracking`` (off | anonymous | individual, default anonymous),
  ``lists.track_opens`` (default off), ``lists.utm_tags`` (default on).
- ``editions.click_tracking`` and ``editions.track_opens``: what the rendered links carry.
  Existing editions were rendered without tracking: ``off``.
- ``tracked_links``, ``edition_engagement``, ``click_hours``, ``engaged_messages``,
  ``reader_clicks``, ``click_flushes``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACKING = ("off", "anonymous", "individual")


def _tracking(default: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "click_tracking",
        sa.Enum(
            *TRACKING, name="click_tracking", native_enum=False, create_constraint=True, length=16
        ),
        nullable=False,
        server_default=default,
    )


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch_op:
        batch_op.add_column(_tracking("anonymous"))
        batch_op.add_column(
            sa.Column("track_opens", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("utm_tags", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("editions") as batch_op:
        batch_op.add_column(_tracking("off"))
        batch_op.add_column(
            sa.Column("track_opens", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    def edition_fk() -> sa.ForeignKey:
        return sa.ForeignKey("editions.id", ondelete="CASCADE")

    op.create_table(
        "tracked_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("edition_id", sa.Integer(), edition_fk(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("posts.id", ondelete="SET NULL")),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("human_clicks", sa.Integer(), nullable=False),
        sa.Column("machine_clicks", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("edition_id", "number"),
    )
    op.create_table(
        "edition_engagement",
        sa.Column("edition_id", sa.Integer(), edition_fk(), primary_key=True),
        sa.Column("human_opens", sa.Integer(), nullable=False),
        sa.Column("machine_opens", sa.Integer(), nullable=False),
        sa.Column("unique_clickers", sa.Integer(), nullable=False),
        sa.Column("unique_openers", sa.Integer(), nullable=False),
    )
    op.create_table(
        "click_hours",
        sa.Column("edition_id", sa.Integer(), edition_fk(), primary_key=True),
        sa.Column("hour", sa.Integer(), primary_key=True),
        sa.Column("human", sa.Integer(), nullable=False),
        sa.Column("machine", sa.Integer(), nullable=False),
    )
    op.create_table(
        "engaged_messages",
        sa.Column("edition_id", sa.Integer(), edition_fk(), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("ref", sa.String(40), primary_key=True),
        sa.Column(
            "subscriber_id", sa.Integer(), sa.ForeignKey("subscribers.id", ondelete="CASCADE")
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "reader_clicks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("edition_id", sa.Integer(), edition_fk(), nullable=False),
        sa.Column("link_id", sa.Integer(), sa.ForeignKey("tracked_links.id", ondelete="CASCADE")),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
    )
    op.create_index("ix_reader_clicks_subscriber", "reader_clicks", ["subscriber_id"])
    op.create_index("ix_reader_clicks_clicked_at", "reader_clicks", ["clicked_at"])
    op.create_table(
        "click_flushes",
        sa.Column("batch", sa.String(64), primary_key=True),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("flushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "click_flushes",
        "reader_clicks",
        "engaged_messages",
        "click_hours",
        "edition_engagement",
        "tracked_links",
    ):
        op.drop_table(table)
    with op.batch_alter_table("editions") as batch_op:
        batch_op.drop_constraint(op.f("ck_editions_click_tracking"), type_="check")
        batch_op.drop_column("track_opens")
        batch_op.drop_column("click_tracking")
    with op.batch_alter_table("lists") as batch_op:
        batch_op.drop_constraint(op.f("ck_lists_click_tracking"), type_="check")
        batch_op.drop_column("utm_tags")
        batch_op.drop_column("track_opens")
        batch_op.drop_column("click_tracking")
