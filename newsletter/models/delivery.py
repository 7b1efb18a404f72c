from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, str_enum, utcnow


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its batch (again, after a temporary failure)
    SENDING = "sending"  # claimed by a running batch
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # permanent failure, or attempts exhausted: never retried
    SKIPPED = "skipped"  # the reader left or was blocked before their turn
    # Its worker died while handing it over: the server may have it. Not sent again unless
    # an operator asks (``newsletter digest retry-uncertain``), so no reader gets two.
    UNCERTAIN = "uncertain"


FINAL_STATUSES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNCERTAIN,
)


class Delivery(Base):
    """The ledger: one row per (edition, subscriber), the source of truth for sending."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        # With id last, a batch's claim ("queued rows of this edition in this id range, in
        # order") is one short index range scan, not a walk over every queued row.
        Index("ix_deliveries_edition_status_id", "edition_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # Which task run holds the row while SENDING; stops two runs sending the same row.
    claim: Mapped[str | None] = mapped_column(String(64), default=None)
    # Until when that claim holds: its worker renews it while it works and stops sending
    # once it lapses; the reconciler revokes only a claim whose lease has expired. Kept after
    # a revocation, so a retry can wait until the first attempt can no longer complete.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Queued again while uncertain: the reader may have the first attempt too.
    maybe_duplicate: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
