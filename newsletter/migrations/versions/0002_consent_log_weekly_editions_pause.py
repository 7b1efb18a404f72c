"""consent log, weekly editions, pause

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:59:27.842185
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import newsletter.models.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "signup",
                "confirm",
                "import",
                "preferences",
                "unsubscribe",
                "erase",
                name="consent_action",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=False),
        sa.Column("wording", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", newsletter.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_consent_events_list_id_lists"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_consent_events_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index("ix_consent_events_subscriber", ["subscriber_id"], unique=False)

    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "frequency",
                sa.Enum(
                    "daily",
                    "weekly",
                    name="edition_frequency",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=False,
                server_default="daily",
            )
        )
        batch_op.drop_constraint(batch_op.f("uq_editions_list_id_edition_date"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_editions_list_id_edition_date_frequency"),
            ["list_id", "edition_date", "frequency"],
        )

    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("weekly_day", sa.Integer(), nullable=False, server_default="6")
        )

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "paused_at", newsletter.models.types.UTCDateTime(timezone=True), nullable=True
            )
        )

    # Readers are found by their case-folded address; SQL lower() folds ASCII only, so the
    # key is computed here in Python for existing rows.
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
    connection = op.get_bind()
    subscribers = sa.table(
        "subscribers", sa.column("id", sa.Integer), sa.column("email", sa.String),
        sa.column("email_key", sa.String),
    )  # fmt: skip
    for row_id, email in connection.execute(sa.select(subscribers.c.id, subscribers.c.email)).all():
        connection.execute(
            subscribers.update()
            .where(subscribers.c.id == row_id)
            .values(email_key=email.casefold())
        )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.alter_column("email_key", existing_type=sa.String(length=320), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_subscribers_email_key"), ["email_key"])


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_subscribers_email_key"), type_="unique")
        batch_op.drop_column("email_key")

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("paused_at")

    with op.batch_alter_table("lists", schema=None) as batch_op:
        batch_op.drop_column("weekly_day")

    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_editions_list_id_edition_date_frequency"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_editions_list_id_edition_date"), ["list_id", "edition_date"]
        )
        batch_op.drop_constraint(op.f("ck_editions_edition_frequency"), type_="check")
        batch_op.drop_column("frequency")

    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_events_subscriber")

    op.drop_table("consent_events")
