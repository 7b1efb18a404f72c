"""Mail that comes back: each message as received, and what it meant for a reader."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, str_enum


class InboundStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, not yet processed (a crash here loses nothing)
    PROCESSED = "processed"  # its events are recorded and their effects applied
    FAILED = "failed"  # could not be processed; kept with the error for an operator


class InboundMessage(Base):
    """One message (or provider event) as it arrived, stored before it is acknowledged.

    Processing it records its events and sets ``processed`` in one transaction, so a crash
    between storing and processing loses nothing, and a second run processes nothing twice.
    The raw bytes are purged after ``inbound_retention_days``; the row and its events stay.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        # A provider's event id, or an IMAP mailbox's UIDVALIDITY:UID: stored once.
        UniqueConstraint("source", "external_id", name="uq_inbound_messages_source_external"),
        Index("ix_inbound_messages_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # smtp, lmtp, imap, ses, sendgrid, ...
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    # The envelope recipients it was accepted for, one per line.
    recipients: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    size: Mapped[int] = mapped_column(default=0)
    status: Mapped[InboundStatus] = mapped_column(
        str_enum(InboundStatus, "inbound_status"), default=InboundStatus.RECEIVED
    )
    kind: Mapped[str] = mapped_column(String(32), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    # Always the writer's clock (intake.store): no wall-clock default.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class MailEventKind(enum.StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"  # a reader's request by email
    AUTO_REPLY = "auto_reply"
    DELIVERY_REPORT = "delivery_report"
    OTHER = "other"


class MailEvent(Base):
    """What one returned message said about one address, and what was done about it.

    ``outcome`` is the action taken: blocked, scored, unsubscribed, suppressed, counted (a
    sender-side refusal, counted against our own mail, never the reader), recorded (nothing
    to do), or ignored (no verified reader: a forged or unknown tag, an address on no list).
    """

    __tablename__ = "mail_events"
    __table_args__ = (
        Index("ix_mail_events_subscriber", "subscriber_id"),
        Index("ix_mail_events_edition", "edition_id"),
        Index("ix_mail_events_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL"), default=None
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), default=None
    )
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("editions.id", ondelete="SET NULL"), default=None
    )
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lists.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[MailEventKind] = mapped_column(str_enum(MailEventKind, "mail_event_kind"))
    category: Mapped[str] = mapped_column(String(16), default="")  # hard, soft, sender
    status: Mapped[str] = mapped_column(String(16), default="")  # enhanced status, 5.1.1
    reason: Mapped[str] = mapped_column(String(64), default="")
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(320), default="")
    # The receiving domain: sender-side refusals are counted per domain for operators.
    domain: Mapped[str] = mapped_column(String(255), default="")
    source: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # policy.apply's clock
