"""Store incoming posts: insert new ones, update edited ones, leave the rest alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.request import Request, urlopen

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Post
from newsletter.posts.schema import PostIn
from newsletter.posts.sources import (
    Parsed,
    SourceError,
    parse_article_text,
    parse_feed,
    parse_json,
)

USER_AGENT = "newsletter-digest/0.1 (+https://github.com/)"


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


def upsert_posts(session: Session, posts: Iterable[PostIn]) -> ImportReport:
    """De-duplicate by GUID (the URL when there is none); an edited post updates its row."""
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


def read_source(source: str, *, max_bytes: int, timeout: float = 20) -> tuple[bytes, str]:
    """The bytes of a path or http(s) URL, and a name to guess the format from."""
    if source.startswith(("http://", "https://")):
        request = Request(source, headers={"User-Agent": USER_AGENT})  # noqa: S310
        with urlopen(request, timeout=timeout) as response:  # noqa: S310
            content: bytes = response.read(max_bytes + 1)
            kind = response.headers.get_content_type()
    else:
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"no such file: {source}")
        with path.open("rb") as handle:
            content = handle.read(max_bytes + 1)
        kind = path.suffix.lower()
    if len(content) > max_bytes:
        raise SourceError(f"{source} is larger than the {max_bytes:,}-byte import limit")
    return content, kind


def parse_source(content: bytes, kind: str, *, site_url: str, now: datetime) -> Parsed:
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
    return parse_feed(content, now=now)


def import_posts(
    session: Session, source: str, *, site_url: str, now: datetime, max_bytes: int
) -> ImportReport:
    """Import every valid post of ``source``; raises :class:`SourceError` if it is unreadable."""
    content, kind = read_source(source, max_bytes=max_bytes)
    parsed = parse_source(content, kind, site_url=site_url, now=now)
    report = upsert_posts(session, parsed.posts)
    report.errors.extend(parsed.errors)
    report.warnings.extend(parsed.warnings)
    return report
