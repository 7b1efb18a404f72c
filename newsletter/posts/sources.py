"""Read posts from an RSS/Atom feed, a JSON document or a Shortlysts article in plain text.

Each reader returns the posts it could validate and a message per item it could not, so one
bad item never stops the good ones.
"""

from __future__ import annotations

import calendar
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from pydantic import ValidationError

from newsletter.posts.sanitise import clean_text
from newsletter.posts.schema import PostIn


class SourceError(ValueError):
    """The whole source is unreadable (not a feed, not JSON); nothing was imported."""


@dataclass
class Parsed:
    posts: list[PostIn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # GUIDs of posts the source gave no date: dated now, but only when first seen.
    undated: set[str] = field(default_factory=set)


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'post'}: {e['msg']}" for e in error.errors()
    )


def _validate(parsed: Parsed, label: str, data: dict[str, Any], *, dated: bool = True) -> None:
    notes: list[str] = []  # what validation dropped from a post it kept (an unusable image)
    try:
        post = PostIn.model_validate(data, context={"warnings": notes})
    except ValidationError as error:
        parsed.errors.append(f"{label}: {_describe(error)}")
        return
    parsed.posts.append(post)
    parsed.warnings.extend(f"{label}: {note}" for note in notes)
    if not dated:
        parsed.undated.add(post.guid)


# --- RSS / Atom --------------------------------------------------------------------------


def _entry_date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None


def _entry_body(entry: Any) -> str:
    """The HTML article body: feedparser also files <media:description> under ``content``,
    as text/plain, so the longest HTML entry is taken."""
    contents = entry.get("content") or []
    html_parts = [c.get("value", "") for c in contents if "html" in c.get("type", "text/html")]
    return max(html_parts, key=len, default="")


def _media_description(entry: Any) -> str:
    contents = entry.get("content") or []
    return next((c.get("value", "") for c in contents if c.get("type") == "text/plain"), "")


def _entry_image(entry: Any) -> tuple[str | None, str]:
    for media in entry.get("media_content", []):
        if media.get("url") and media.get("medium", "image") == "image":
            return media["url"], _media_description(entry)
    for enclosure in entry.get("enclosures", []):
        if enclosure.get("type", "").startswith("image/") and enclosure.get("href"):
            return enclosure["href"], ""
    return None, ""


def parse_feed(content: bytes, *, now: datetime, base_url: str = "") -> Parsed:
    """The items of an RSS or Atom document. Relative links are resolved against
    ``base_url``, the URL the feed was fetched from, as feed readers do."""
    headers = {"content-location": base_url} if base_url else {}
    feed = feedparser.parse(content, response_headers=headers)
    parsed = Parsed()
    if not feed.entries:
        reason = feed.get("bozo_exception") or "it holds no items"
        raise SourceError(f"not a readable RSS or Atom feed: {reason}")
    if feed.bozo:
        parsed.warnings.append(
            f"the feed is not well-formed ({feed.bozo_exception}); read what could be"
        )
    for index, entry in enumerate(feed.entries, start=1):
        label = f"item {index} ({clean_text(entry.get('title', ''))[:60] or 'untitled'})"
        body = _entry_body(entry)
        summary = entry.get("summary", "")
        dek = summary if body and summary != body else ""
        if not body:
            body = summary
        published = _entry_date(entry)
        if published is None:
            parsed.warnings.append(f"{label}: no date; using the time it is first seen")
        image_url, image_alt = _entry_image(entry)
        if image_url and base_url:
            image_url = urljoin(base_url, image_url)
        tags = entry.get("tags") or []
        _validate(
            parsed,
            label,
            {
                "guid": entry.get("id") or entry.get("link") or "",
                "url": entry.get("link", ""),
                "title": entry.get("title", ""),
                "dek": dek,
                "body_html": body,
                "category": tags[0].get("term", "") if tags else "",
                "author": entry.get("author", ""),
                "image_url": image_url,
                "image_alt": image_alt,
                "published_at": published or now,
            },
            dated=published is not None,
        )
    if feed.bozo and not parsed.posts:
        # A truncated document yields a stub entry or two; that is a broken feed, not items.
        raise SourceError(f"not a readable RSS or Atom feed: {feed.bozo_exception}")
    return parsed


# --- JSON ----------------------------------------------------------------------------------


def parse_json(content: bytes) -> Parsed:
    """A list of post objects, or ``{"posts": [...]}``; fields as in :class:`PostIn`."""
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"not valid JSON: {error}") from None
    items = document.get("posts") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise SourceError('expected a JSON list of posts or an object with a "posts" list')
    parsed = Parsed()
    for index, item in enumerate(items, start=1):
        label = f"post {index}"
        if not isinstance(item, dict):
            parsed.errors.append(f"{label}: expected an object, got {type(item).__name__}")
            continue
        if "body_html" not in item and "body" in item:
            item = {**item, "body_html": item["body"]}
        _validate(parsed, f"{label} ({str(item.get('title', ''))[:60]})", item)
    return parsed


# --- Plain-text article --------------------------------------------------------------------

_HEADING_MAX_WORDS = 8


def _is_heading(line: str) -> bool:
    return len(line.split()) <= _HEADING_MAX_WORDS and not line.endswith((".", "”", '"', ":"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def parse_article_text(text: str, *, site_url: str, now: datetime) -> Parsed:
    """A Shortlysts article saved as text: breadcrumb lines ("- ..."), title, dek, then
    sections, each a short heading line followed by one paragraph per line."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    while lines and lines[0].startswith("- "):
        lines.pop(0)
    if len(lines) < 3:
        raise SourceError("an article needs a title line, a dek line and a body")
    title, dek, body_lines = lines[0], lines[1], lines[2:]
    body = []
    for line in body_lines:
        tag = "h2" if _is_heading(line) else "p"
        body.append(f"<{tag}>{html.escape(line, quote=False)}</{tag}>")
    slug = _slug(title)
    parsed = Parsed()
    _validate(
        parsed,
        title[:60],
        {
            "guid": f"text:{slug}",
            "url": f"{site_url.rstrip('/')}/posts/{slug}",
            "title": title,
            "dek": dek,
            "body_html": "".join(body),
            "published_at": now,
        },
        dated=False,
    )
    return parsed
