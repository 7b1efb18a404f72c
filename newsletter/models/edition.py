from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.db import Base
from newsletter.models.analytics import ClickTracking, TrackedLink
from newsletter.models.newsletter_list import NewsletterList
from newsletter.models.post import Post
from newsletter.models.subscriber import Frequency
from newsletter.models.types import UTCDateTime, str_enum, utcnow


class EditionStatus(enum.StrEnum):
    """Where an edition is in its life; :mod:`newsletter.editions.lifecycle` makes every
    change and draws the diagram. Skipped and missed editions are recorded so the
    dispatcher does not try again that day."""

    DRAFT = "draft"  # rendered; waits for an editor (lists that need approval, or edits)
    SCHEDULED = "scheduled"  # approved: goes out at ``scheduled_at``
    SENDING = "sending"  # delivery rows exist, batches queued
    PAUSED = "paused"  # an editor stopped it; Resume carries on where it stopped
    SENT = "sent"  # every delivery reached a final state
    CANCELLED = "cancelled"  # an editor called it off; what was not sent never will be
    SKIPPED = "skipped"  # nothing to send; ``skip_reason`` says why
    MISSED = "missed"  # not sent within the grace window after its scheduled time


# An editor may still change what these editions hold.
EDITABLE_STATUSES = (EditionStatus.DRAFT, EditionStatus.SCHEDULED)


class Edition(Base):
    """One list's issue for one date in the list's timezone; rendered once, sent once."""

    __tablename__ = "editions"
    __table_args__ = (UniqueConstraint("list_id", "edition_date", "frequency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    edition_date: Mapped[date] = mapped_column(Date)
    # Daily editions go to daily readers; the weekly one (the week's posts) to weekly readers.
    frequency: Mapped[Frequency] = mapped_column(
        str_enum(Frequency, "edition_frequency"), default=Frequency.DAILY
    )
    # Posts published in (window_start, cutoff] are this edition's candidates.
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[EditionStatus] = mapped_column(
        str_enum(EditionStatus, "edition_status"), default=EditionStatus.DRAFT
    )
    skip_reason: Mapped[str] = mapped_column(Text, default="")
    # When it goes out (scheduled), or was due to (draft, missed).
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    subject: Mapped[str] = mapped_column(String(300), default="")
    preheader: Mapped[str] = mapped_column(String(300), default="")
    # The editor's touches, applied at every (re-)render: empty means "as generated".
    intro: Mapped[str] = mapped_column(Text, default="")
    subject_override: Mapped[str] = mapped_column(String(300), default="")
    preheader_override: Mapped[str] = mapped_column(String(300), default="")
    # Rendered once, with placeholders for the per-recipient parts.
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # The key of the markers in html and text (rendering.placeholders); "" before keys.
    marker_key: Mapped[str] = mapped_column(String(32), default="", server_default="")
    render_ms: Mapped[int] = mapped_column(default=0)
    # The list's tracking when the edition was last rendered: what its links carry.
    click_tracking: Mapped[ClickTracking] = mapped_column(
        str_enum(ClickTracking, "click_tracking"), default=ClickTracking.OFF
    )
    track_opens: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Why a paused edition stopped, when it paused itself (the bounce circuit breaker).
    pause_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    newsletter_list: Mapped[NewsletterList] = relationship()
    # Its stories' tracked links (newsletter.analytics.links), numbered once, kept on re-render.
    links: Mapped[list[TrackedLink]] = relationship(
        order_by="TrackedLink.number", cascade="all, delete-orphan"
    )
    # The posts it carries; not the ones an editor removed (see EditionItem.position).
    items: Mapped[list[EditionItem]] = relationship(
        primaryjoin="and_(Edition.id == EditionItem.edition_id, EditionItem.position > 0)",
        back_populates="edition",
        order_by="EditionItem.position",
        cascade="all, delete-orphan",
    )


class EditionItem(Base):
    """A post in an edition, at ``position`` 1, 2, ... of its order.

    A post an editor removed keeps its row with ``position`` at minus its post ID, outside
    ``Edition.items``: it was this edition's to take, so neither a refresh nor a later
    edition of the list takes it again (``editions.build.taken_posts``).
    """

    __tablename__ = "edition_items"
    __table_args__ = (
        UniqueConstraint("edition_id", "post_id"),
        UniqueConstraint("edition_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="RESTRICT"))
    position: Mapped[int]
    # A pinned post stays at the top, in pin order, whatever the reordering below it.
    pinned: Mapped[bool] = mapped_column(default=False)

    edition: Mapped[Edition] = relationship(back_populates="items")
    post: Mapped[Post] = relationship()
