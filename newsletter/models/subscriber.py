from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from newsletter.db import Base
from newsletter.models.newsletter_list import NewsletterList
from newsletter.models.types import UTCDateTime, str_enum, utcnow


class SubscriberStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # bounced hard or complained: never mailed


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for double opt-in
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


def new_token_key() -> str:
    return secrets.token_urlsafe(12)


class Subscriber(Base):
    __tablename__ = "subscribers"
    # Ids appear in readers' links: SQLite must never hand an erased reader's id to another.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised address (email-validator): unique per install.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # The address case-folded in Python (SQL lower() folds ASCII only): how readers are found,
    # so Élodie@ and élodie@ are one reader.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[SubscriberStatus] = mapped_column(
        str_enum(SubscriberStatus, "subscriber_status"), default=SubscriberStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Signed into every link made for this reader, and gone with them (see tokens.py);
    # "" for readers who signed up before links carried a key.
    token_key: Mapped[str] = mapped_column(String(32), default=new_token_key, server_default="")

    # Soft bounces add to the score (at most once a day); it halves every
    # bounce_score_half_life_days, and the reader is blocked at bounce_score_threshold.
    bounce_score: Mapped[float] = mapped_column(default=0.0, server_default="0")
    bounce_scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Why the reader is blocked, in words an operator reads ("hard bounce 5.1.1 ...").
    blocked_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="subscriber")

    @validates("email")
    def _keep_key(self, _key: str, email: str) -> str:
        self.email_key = email_key(email)
        return email


def email_key(email: str) -> str:
    return email.casefold()


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "list_id"),
        Index("ix_subscriptions_list_status", "list_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        str_enum(SubscriptionStatus, "subscription_status"), default=SubscriptionStatus.PENDING
    )
    frequency: Mapped[Frequency] = mapped_column(
        str_enum(Frequency, "frequency"), default=Frequency.DAILY
    )
    source: Mapped[str] = mapped_column(String(32), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A paused reader stays subscribed but receives nothing until they resume.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    newsletter_list: Mapped[NewsletterList] = relationship()
