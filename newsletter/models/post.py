from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base
from newsletter.models.types import UTCDateTime, utcnow


class Post(Base):
    """A published article of the site; its body is sanitised HTML."""

    __tablename__ = "posts"
    __table_args__ = (Index("ix_posts_published_at", "published_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # GUID from the feed or CMS, else the URL: the de-duplication key.
    guid: Mapped[str] = mapped_column(String(500), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(500))
    dek: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    author: Mapped[str] = mapped_column(String(200), default="")
    image_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    image_alt: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Hash of the content fields: an edited post is recognised and updated in place.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
