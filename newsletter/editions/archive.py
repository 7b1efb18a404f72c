"""The public archive: which editions readers may see on the web, and their RSS feed.

An edition is public once readers have it in their inboxes (``sending`` or ``sent``); a
draft, scheduled, paused, cancelled, skipped or missed edition never is. The web page of an
edition is its stored email with the per-reader placeholders replaced by neutral words, so
the archive never shows an address or carries a working unsubscribe token.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only
from sqlalchemy.sql.elements import ColumnElement

from newsletter.config import Settings
from newsletter.editions.build import archive_url
from newsletter.models import Edition, EditionStatus, Frequency, NewsletterList
from newsletter.rendering.placeholders import Markers

__all__ = [
    "FEED_SIZE",
    "PER_PAGE",
    "PUBLIC_STATUSES",
    "ArchiveEntry",
    "ArchivePage",
    "archive_page",
    "edition_date",
    "feed_entries",
    "public_edition",
    "reader_view",
    "rss",
]

PUBLIC_STATUSES = (EditionStatus.SENDING, EditionStatus.SENT)
PER_PAGE = 30
FEED_SIZE = 30

# Who the footer's "You are receiving this email because ... subscribed" names on the web.
NEUTRAL_ADDRESS = "you"

# The one spelling of a date in archive URLs. date.fromisoformat alone would also take
# "20250516" and "2025-W20-5", giving one edition several addresses.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# Characters XML 1.0 cannot carry at all, escaped or not: ElementTree would write them and
# leave the feed unparseable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("atom", ATOM)


# Only the columns a listing shows: each edition's HTML is tens of kilobytes.
_LISTED = (
    Edition.list_id, Edition.edition_date, Edition.frequency, Edition.subject,
    Edition.preheader, Edition.created_at, Edition.send_started_at, Edition.sent_at,
)  # fmt: skip


@dataclass(frozen=True)
class ArchiveEntry:
    """One public edition as the archive lists it."""

    edition_date: date
    weekly: bool
    subject: str
    preheader: str
    url: str  # the canonical page: the email's "View in your browser" link
    published_at: datetime


@dataclass(frozen=True)
class ArchivePage:
    entries: list[ArchiveEntry]
    page: int
    pages: int  # at least 1, even for a list with nothing sent yet
    total: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def edition_date(text: str) -> date | None:
    """The date in an archive URL, or None when it is not a real YYYY-MM-DD date."""
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2025-02-30 and the like
        return None


def _is_public(nl: NewsletterList) -> tuple[ColumnElement[bool], ...]:
    return Edition.list_id == nl.id, Edition.status.in_(PUBLIC_STATUSES)


def _entries(session: Session, nl: NewsletterList, settings: Settings, *, offset: int,
             limit: int) -> list[ArchiveEntry]:  # fmt: skip
    editions = session.scalars(
        select(Edition)
        .options(load_only(*_LISTED))
        .where(*_is_public(nl))
        .order_by(Edition.edition_date.desc(), Edition.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [
        ArchiveEntry(
            edition_date=edition.edition_date,
            weekly=edition.frequency == Frequency.WEEKLY,
            subject=edition.subject,
            preheader=edition.preheader,
            url=archive_url(edition, settings),
            published_at=edition.sent_at or edition.send_started_at or edition.created_at,
        )
        for edition in editions
    ]


def archive_page(
    session: Session, nl: NewsletterList, page: int, settings: Settings, *, per_page: int = PER_PAGE
) -> ArchivePage:
    """The ``page``-th (from 1) group of ``nl``'s public editions, newest first.

    A page past the last comes back with no entries; the caller decides what to show.
    """
    counted = select(func.count()).select_from(Edition).where(*_is_public(nl))
    total = session.scalar(counted) or 0
    entries = _entries(session, nl, settings, offset=(page - 1) * per_page, limit=per_page)
    return ArchivePage(entries, page, max(1, math.ceil(total / per_page)), total)


def feed_entries(
    session: Session, nl: NewsletterList, settings: Settings, *, limit: int = FEED_SIZE
) -> list[ArchiveEntry]:
    return _entries(session, nl, settings, offset=0, limit=limit)


def public_edition(
    session: Session, nl: NewsletterList, day: date, frequency: Frequency
) -> Edition | None:
    """The edition of ``nl`` for ``day`` if readers have received it, else None."""
    return session.scalar(
        select(Edition).where(
            *_is_public(nl),
            Edition.edition_date == day,
            Edition.frequency == frequency,
        )
    )


def reader_view(edition: Edition, *, manage_url: str) -> str:
    """The edition's stored HTML as anyone may see it on the web.

    The unsubscribe and preferences links lead to ``manage_url``, a page that explains how a
    reader manages a subscription from their own email: a token here would let anyone who
    opens the archive unsubscribe somebody.
    """
    return Markers(edition.marker_key).fill(
        edition.html, email=NEUTRAL_ADDRESS, unsubscribe_url=html.escape(manage_url),
        preferences_url=html.escape(manage_url),
    )  # fmt: skip


def _xml_text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _element(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attributes)
    child.text = _xml_text(text)
    return child


def _rfc822(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def rss(nl: NewsletterList, entries: list[ArchiveEntry], settings: Settings) -> bytes:
    """An RSS 2.0 document of ``entries`` (newest first), UTF-8 encoded.

    Built with ElementTree so that every subject and preheader is escaped, whatever it holds.
    """
    base = settings.base_url.rstrip("/")
    home = f"{base}/archive/{nl.slug}"
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    _element(channel, "title", nl.name)
    _element(channel, "link", home)
    _element(channel, "description", nl.description or f"Past editions of {nl.name}.")
    _element(channel, "language", nl.language)
    ET.SubElement(
        channel,
        f"{{{ATOM}}}link",
        {"href": f"{home}/feed.xml", "rel": "self", "type": "application/rss+xml"},
    )
    if entries:
        _element(channel, "lastBuildDate", _rfc822(max(e.published_at for e in entries)))
    for entry in entries:
        item = ET.SubElement(channel, "item")
        _element(item, "title", entry.subject)
        _element(item, "link", entry.url)
        _element(item, "guid", entry.url, isPermaLink="true")
        _element(item, "pubDate", _rfc822(entry.published_at))
        _element(item, "description", entry.preheader)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document
