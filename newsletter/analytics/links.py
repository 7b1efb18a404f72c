"""Tracked links: made once per render, signed, so the redirect leads only where the
edition's own stories lead.

A story's link in an email is ``BASE/r/<edition>.<number>.<signature>/<reader>``: the first
part names one :class:`~newsletter.models.TrackedLink` and is the same for every reader; the
reader part is one slot filled at personalisation (:mod:`newsletter.analytics.readers`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Edition, NewsletterList, TrackedLink

_LINK_SIG_CHARS = 16  # 96 bits


def _signature(secret_key: str, message: str, length: int) -> str:
    digest = hmac.digest(secret_key.encode(), message.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest).decode("ascii")[:length]


def link_token(secret_key: str, edition_id: int, number: int) -> str:
    """The signed name of link ``number`` of edition ``edition_id``."""
    signature = _signature(secret_key, f"link:{edition_id}.{number}", _LINK_SIG_CHARS)
    return f"{edition_id}.{number}.{signature}"


def read_link_token(secret_key: str, token: str) -> tuple[int, int] | None:
    """(edition id, link number) if ``token`` is one we signed, else None."""
    parts = token.split(".")
    if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    if len(parts[0]) > 12 or len(parts[1]) > 6:
        return None
    edition_id, number = int(parts[0]), int(parts[1])
    expected = _signature(secret_key, f"link:{edition_id}.{number}", _LINK_SIG_CHARS)
    if not hmac.compare_digest(expected.encode(), parts[2].encode("utf-8", "replace")):
        return None
    return edition_id, number


def open_token(secret_key: str, edition_id: int) -> str:
    """The signed name of an edition's open pixel."""
    return f"{edition_id}.{_signature(secret_key, f'open:{edition_id}', _LINK_SIG_CHARS)}"


def read_open_token(secret_key: str, token: str) -> int | None:
    edition, _, signature = token.partition(".")
    if not edition.isdigit() or len(edition) > 12:
        return None
    expected = _signature(secret_key, f"open:{edition}", _LINK_SIG_CHARS)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return None
    return int(edition)


def with_utm(url: str, *, source: str, campaign: str) -> str:
    """``url`` with ``utm_source``, ``utm_medium=email`` and ``utm_campaign``, except those
    the site's URL already sets: the site's own tagging wins."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    wanted = {"utm_source": source, "utm_medium": "email", "utm_campaign": campaign}
    extra = [(name, value) for name, value in wanted.items() if name not in present]
    if not extra:
        return url
    joined = (parts.query + "&" if parts.query else "") + urlencode(extra)
    return urlunsplit(parts._replace(query=joined))


def campaign(list_slug: str, day: date) -> str:
    return f"{list_slug}-{day.isoformat()}"


@dataclass(frozen=True)
class StoryLink:
    post_id: int | None
    url: str  # where the reader ends up (UTM tags included)


def track(edition: Edition, stories: Sequence[StoryLink]) -> dict[str, int]:
    """Give each story's destination a link of ``edition`` and return url -> link number.

    A link keeps its number across re-renders, so a test copy sent before an editor's change
    still leads where it did; ``position`` follows the story's place in the email now.
    """
    links = {link.url: link for link in edition.links}
    for link in links.values():
        link.position = 0
    numbers: dict[str, int] = {}
    next_number = max((link.number for link in links.values()), default=0) + 1
    for position, story in enumerate(stories, start=1):
        if story.url not in links:
            links[story.url] = TrackedLink(number=next_number, url=story.url, post_id=story.post_id)
            edition.links.append(links[story.url])
            next_number += 1
        link = links[story.url]
        if not link.position:
            link.position = position
        numbers[story.url] = link.number
    return numbers


def destination(session: Session, edition_id: int, number: int) -> tuple[str, str] | None:
    """Where link ``number`` of ``edition_id`` leads, and its list's slug; None if no such link."""
    row = session.execute(
        select(TrackedLink.url, NewsletterList.slug)
        .join(Edition, Edition.id == TrackedLink.edition_id)
        .join(NewsletterList, NewsletterList.id == Edition.list_id)
        .where(TrackedLink.edition_id == edition_id, TrackedLink.number == number)
    ).first()
    return None if row is None else (row.url, row.slug)


def list_of_edition(session: Session, edition_id: int) -> str | None:
    """The slug of the list an edition belongs to (for a page that leads to its archive)."""
    return session.scalar(select(NewsletterList.slug).join(Edition).where(Edition.id == edition_id))
