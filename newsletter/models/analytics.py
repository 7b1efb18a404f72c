"""What readers did with an edition: tracked links, and clicks and opens counted from them.

Counts are aggregates written by the flush (:mod:`newsletter.analytics.flush`), never by the
redirect itself. Only a list that tracks readers individually gets rows naming a reader
(:class:`ReaderClick`); they are erased with the reader and expire after a retention period.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, utcnow


class ClickTracking(enum.StrEnum):
    """A list's choice of how much its links tell us."""

    OFF = "off"  # links go straight to the site
    ANONYMOUS = "anonymous"  # counts per link; who clicked is never stored
    INDIVIDUAL = "individual"  # counts, and each reader's clicks (stated at signup)


class TrackedLink(Base):
    """A story's link in one edition: ``/r/<edition>.<number>.<signature>`` leads to ``url``.

    ``number`` is the link's own, stable across re-renders of the edition; ``position`` is
    where its story stands in the email now (1 = lead; 0 once an editor removed it).
    """

    __tablename__ = "tracked_links"
    __table_args__ = (UniqueConstraint("edition_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    number: Mapped[int]
    url: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int | None] = mapped_column(
        ForeignKey("posts.id", ondelete="SET NULL"), default=None
    )
    position: Mapped[int] = mapped_column(default=0)
    human_clicks: Mapped[int] = mapped_column(default=0)
    machine_clicks: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EditionEngagement(Base):
    """An edition's opens and unique readers, kept up by the flush."""

    __tablename__ = "edition_engagement"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    human_opens: Mapped[int] = mapped_column(default=0)
    machine_opens: Mapped[int] = mapped_column(default=0)
    unique_clickers: Mapped[int] = mapped_column(default=0)
    unique_openers: Mapped[int] = mapped_column(default=0)


class ClickHour(Base):
    """Clicks in one hour after the edition started sending (hour 0 = the first hour)."""

    __tablename__ = "click_hours"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[int] = mapped_column(primary_key=True)
    human: Mapped[int] = mapped_column(default=0)
    machine: Mapped[int] = mapped_column(default=0)


class EngagedMessage(Base):
    """One message of an edition that a person clicked in (or opened), counted once.

    ``ref`` is a random number carried by that message's links when the list is anonymous
    (it names no one), or the reader's delivery when the list tracks individuals, in which
    case ``subscriber_id`` says whose it was and the row goes with the reader's data.
    """

    __tablename__ = "engaged_messages"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # click | open
    ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReaderClick(Base):
    """One click by a known reader: lists with individual tracking only."""

    __tablename__ = "reader_clicks"
    __table_args__ = (
        Index("ix_reader_clicks_subscriber", "subscriber_id"),
        Index("ix_reader_clicks_clicked_at", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracked_links.id", ondelete="CASCADE"), default=None
    )  # None: an open
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    machine: Mapped[bool] = mapped_column(default=False)
    # Why it was counted as a machine's: head, scanner, too-soon, burst, proxy; "" if a person's.
    reason: Mapped[str] = mapped_column(String(16), default="")


class ClickFlush(Base):
    """A batch of buffered clicks written to the database: a batch is written only once."""

    __tablename__ = "click_flushes"

    batch: Mapped[str] = mapped_column(String(64), primary_key=True)
    events: Mapped[int] = mapped_column(default=0)
    flushed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
