"""Store incoming posts: insert new ones, update edited ones, leave the rest alone."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Post
from newsletter.posts.fetch import FetchError, FetchRules, fetch
from newsletter.posts.schema import PostIn
from newsletter.posts.sources import (
    Parsed,
    SourceError,
    parse_article_text,
    parse_feed,
    parse_json,
)

# "scheme://": a URL, not a path, whatever its scheme.
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    post_ids: list[int] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged


def upsert_posts(
    session: Session, posts: Iterable[PostIn], *, undated: Collection[str] = ()
) -> ImportReport:
    """De-duplicate by GUID (the URL when there is none); an edited post updates its row.

    ``undated`` names (by GUID) the posts whose source gave no date, dated at this import:
    a stored one keeps the date it was first seen with, however often it is imported again.
    """
    report = ImportReport()
    by_guid: dict[str, PostIn] = {}
    for post in posts:
        by_guid[post.guid] = post  # the last copy in one source wins
    existing = (
        {row.guid: row for row in session.scalars(select(Post).where(Post.guid.in_(list(by_guid))))}
        if by_guid
        else {}
    )
    for guid, post in by_guid.items():
        row = existing.get(guid)
        if row is not None and guid in undated:
            post = post.model_copy(update={"published_at": row.published_at})
        values = {
            "url": post.url,
            "title": post.title,
            "dek": post.dek,
            "body_html": post.body_html,
            "summary": post.summary,
            "category": post.category,
            "author": post.author,
            "image_url": post.image_url,
            "image_alt": post.image_alt,
            "published_at": post.published_at,
            "content_hash": post.content_hash,
        }
        if row is None:
            row = Post(guid=guid, **values)
            session.add(row)
            report.created += 1
        elif row.content_hash != post.content_hash:
            for key, value in values.items():
                setattr(row, key, value)
            report.updated += 1
        else:
            report.unchanged += 1
        session.flush()
        report.post_ids.append(row.id)
    return report


def read_source(
    source: str, *, max_bytes: int, deadline: float = 20, allow_private: bool = False
) -> tuple[bytes, str, str]:
    """The bytes of a path or http(s) URL, a name to guess the format from, and the URL that
    relative links in it are relative to (empty for a file).

    A URL is fetched by :func:`newsletter.posts.fetch.fetch`, with its address checks and
    deadline; any failure is a :class:`SourceError` naming the URL and what went wrong.
    """
    if _URL.match(source):
        rules = FetchRules(deadline=deadline, max_bytes=max_bytes, allow_private=allow_private)
        try:
            fetched = fetch(source, rules)
        except FetchError as error:
            raise SourceError(f"could not import {source}: {error}") from None
        return fetched.content, fetched.content_type, fetched.url
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"no such file: {source}")
    with path.open("rb") as handle:
        content = handle.read(max_bytes + 1)
    kind = path.suffix.lower()
    if len(content) > max_bytes:
        raise SourceError(f"{source} is larger than the {max_bytes:,}-byte import limit")
    return content, kind, ""


def parse_source(
    content: bytes, kind: str, *, site_url: str, now: datetime, base_url: str = ""
) -> Parsed:
    """Pick the reader by file suffix or content type, else by sniffing the first bytes."""
    head = content.lstrip()[:1]
    if kind in (".json", "application/json") or head in (b"[", b"{"):
        return parse_json(content)
    if kind in (".txt", "text/plain"):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SourceError(f"the text file is not UTF-8: {error}") from None
        return parse_article_text(text, site_url=site_url, now=now)
    return parse_feed(content, now=now, base_url=base_url)


def import_posts(
    session: Session, source: str, *, site_url: str, now: datetime, max_bytes: int,
    deadline: float = 20, allow_private: bool = False,
) -> ImportReport:  # fmt: skip
    """Import every valid post of ``source``; raises :class:`SourceError` if it is unreadable.

    A URL is fetched within ``deadline`` seconds, and from a private or loopback address
    only if ``allow_private``.
    """
    content, kind, base_url = read_source(
        source, max_bytes=max_bytes, deadline=deadline, allow_private=allow_private
    )
    parsed = parse_source(content, kind, site_url=site_url, now=now, base_url=base_url)
    report = upsert_posts(session, parsed.posts, undated=parsed.undated)
    report.errors.extend(parsed.errors)
    report.warnings.extend(parsed.warnings)
    return report
