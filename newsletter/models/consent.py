from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, str_enum, utcnow


class ConsentAction(enum.StrEnum):
    SIGNUP = "signup"  # asked to join (double opt-in pending)
    CONFIRM = "confirm"  # clicked the confirmation link
    IMPORT = "import"  # added by an operator who holds consent from elsewhere
    PREFERENCES = "preferences"  # changed lists, frequency or pause
    UNSUBSCRIBE = "unsubscribe"  # withdrew consent for a list
    ERASE = "erase"  # asked for their data to be deleted
    COMPLAINT = "complaint"  # marked a message as spam: unsubscribed from every list
    BLOCK = "block"  # the address is dead (hard bounces): mail stops, consent stands
    UNBLOCK = "unblock"  # an operator lifted a block


class ConsentEvent(Base):
    """Append-only record of consent given and withdrawn: who, when, where from, what text.

    Rows are never updated or deleted. When a reader erases their data the address is
    replaced by its SHA-256 here, so the record of the withdrawal survives without it.
    """

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_subscriber", "subscriber_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), default=None
    )
    email: Mapped[str] = mapped_column(String(320))
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lists.id", ondelete="SET NULL"), default=None
    )
    action: Mapped[ConsentAction] = mapped_column(str_enum(ConsentAction, "consent_action"))
    source: Mapped[str] = mapped_column(String(32))  # form, api, import, one-click, link, cli
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    # The words the reader was shown when they acted (signup form text, button label).
    wording: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
