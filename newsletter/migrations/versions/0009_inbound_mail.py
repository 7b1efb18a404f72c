"""inbound mail: returned messages, their events, bounce scores, self-paused editions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00

- ``inbound_messages``: each bounce, complaint or email unsubscribe as received, stored
  before it is acknowledged, processed once.
- ``mail_events``: what each said about an address and what was done about it.
- ``subscribers.bounce_score``/``bounce_scored_at``/``blocked_at``/``blocked_reason``.
- ``editions.pause_reason``: an edition that paused itself says why.
- ``consent_events.action`` allows complaint, block and unblock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from newsletter.models.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = UTCDateTime(timezone=True)
OLD_ACTIONS = ("signup", "confirm", "import", "preferences", "unsubscribe", "erase")
NEW_ACTIONS = (*OLD_ACTIONS, "complaint", "block", "unblock")
EVENT_KINDS = ("bounce", "complaint", "unsubscribe", "auto_reply", "delivery_report", "other")


def _enum(name: str, values: Sequence[str]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("envelope_from", sa.String(length=320), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column(
            "status", _enum("inbound_status", ("received", "processed", "failed")), nullable=False
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("processed_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("source", "external_id", name="uq_inbound_messages_source_external"),
    )
    op.create_index("ix_inbound_messages_status", "inbound_messages", ["status"])
    op.create_table(
        "mail_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inbound_message_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("edition_id", sa.Integer(), nullable=True),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("kind", _enum("mail_event_kind", EVENT_KINDS), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_mail_events_inbound_message_id_inbound_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_mail_events_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_mail_events_edition_id_editions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_mail_events_list_id_lists"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_events")),
    )
    op.create_index("ix_mail_events_subscriber", "mail_events", ["subscriber_id"])
    op.create_index("ix_mail_events_edition", "mail_events", ["edition_id"])
    op.create_index("ix_mail_events_kind_created", "mail_events", ["kind", "created_at"])
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.add_column(
            sa.Column("bounce_score", sa.Double(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("bounce_scored_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("blocked_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(
            sa.Column("blocked_reason", sa.Text(), nullable=False, server_default="")
        )
    with op.batch_alter_table("editions") as batch_op:
        batch_op.add_column(sa.Column("pause_reason", sa.Text(), nullable=False, server_default=""))
    _allow_actions(NEW_ACTIONS)


def _allow_actions(actions: tuple[str, ...]) -> None:
    # The enum is a VARCHAR with a CHECK constraint (portable): replace the check.
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.drop_constraint(op.f("ck_consent_events_consent_action"), type_="check")
    with op.batch_alter_table("consent_events") as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_consent_events_consent_action"), sa.column("action").in_(actions)
        )


def downgrade() -> None:
    op.execute("DELETE FROM consent_events WHERE action IN ('complaint', 'block', 'unblock')")
    _allow_actions(OLD_ACTIONS)
    with op.batch_alter_table("editions") as batch_op:
        batch_op.drop_column("pause_reason")
    with op.batch_alter_table("subscribers") as batch_op:
        for name in ("blocked_reason", "blocked_at", "bounce_scored_at", "bounce_score"):
            batch_op.drop_column(name)
    op.drop_table("mail_events")
    op.drop_table("inbound_messages")
