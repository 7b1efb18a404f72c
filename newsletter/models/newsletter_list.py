from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.analytics import ClickTracking
from newsletter.models.types import UTCDateTime, str_enum, utcnow


class StoryDetail(enum.StrEnum):
    """How much of each post a digest shows in full, where the post has sections."""

    DEK = "dek"  # the dek and the opening paragraph, as before sections were read
    FIRST_SECTION = "first_section"
    ALL_SECTIONS = "all_sections"


class NewsletterList(Base):
    """A mailing list with its own schedule, sender and choice of post categories."""

    __tablename__ = "lists"
    # List ids appear in readers' links: a deleted list's id is never given to a new one.
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Standard five-field cron expression, read in ``timezone``.
    schedule: Mapped[str] = mapped_column(String(100), default="0 7 * * *")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    from_name: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320), default=None)
    # Empty list: every category.
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_posts: Mapped[int] = mapped_column(default=25)
    # Day of the weekly edition for weekly readers, 0 = Monday ... 6 = Sunday; it goes out at
    # the daily schedule's time on that day.
    weekly_day: Mapped[int] = mapped_column(default=6)
    language: Mapped[str] = mapped_column(String(16), default="en")
    # True: each edition waits as a draft until an editor sends or schedules it.
    requires_approval: Mapped[bool] = mapped_column(default=False)
    story_detail: Mapped[StoryDetail] = mapped_column(
        str_enum(StoryDetail, "story_detail"), default=StoryDetail.DEK
    )
    # What its links tell us (newsletter.analytics): counts per link by default.
    click_tracking: Mapped[ClickTracking] = mapped_column(
        str_enum(ClickTracking, "click_tracking"), default=ClickTracking.ANONYMOUS
    )
    # An open pixel: off unless asked for; opens are an estimate at best.
    track_opens: Mapped[bool] = mapped_column(default=False)
    # utm_source, utm_medium=email and utm_campaign=<slug>-<date> on story links.
    utm_tags: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
