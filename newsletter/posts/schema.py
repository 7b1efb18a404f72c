"""The validated shape of an incoming post, whatever its source."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from newsletter.posts.sanitise import clean_html, clean_text, html_to_paragraphs
from newsletter.text import strip_unsafe

SUMMARY_CHARS = 320
GUID_MAX = 500
URL_MAX = 2000

log = logging.getLogger(__name__)


def _http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value[:80]!r}")
    # NUL too: PostgreSQL refuses it in text, which would fail the whole import.
    if any(c in value for c in "\r\n\t ") or strip_unsafe(value) != value:
        raise ValueError("must not contain spaces, line breaks, NUL or other control characters")
    return value


def _image_url(value: str) -> str:
    """An image's http(s) URL with its spaces percent-encoded, as browsers request it (CMS
    uploads keep the file's name: "Putin at the table.jpg"); ValueError if it is no URL."""
    value = value.strip()
    if " " in urlsplit(value).netloc:
        raise ValueError(f"must be an http(s) URL, got {value[:80]!r}")
    url = _http_url(value.replace(" ", "%20"))
    if len(url) > URL_MAX:
        raise ValueError(f"must be at most {URL_MAX} characters")
    return url


class PostIn(BaseModel):
    """A post as a feed, the CMS or a file hands it over, cleaned on validation."""

    guid: str = Field(default="", max_length=2000)
    url: str = Field(max_length=2000)
    title: str = Field(max_length=2000)
    dek: str = Field(default="", max_length=5000)
    body_html: str = Field(default="", max_length=500_000)
    category: str = Field(default="", max_length=100)
    author: str = Field(default="", max_length=200)
    # Not a reason to refuse the post: an unusable image URL drops only the image.
    image_url: str | None = None
    image_alt: str = Field(default="", max_length=500)
    published_at: datetime

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("image_url", mode="before")
    @classmethod
    def _image(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value  # None, or a wrong type refused as such
        if not value.strip():
            return None
        try:
            return _image_url(value)
        except ValueError as error:
            post = info.data.get("guid") or info.data.get("url") or info.data.get("title", "")
            warning = f"image dropped, its URL {error}"
            log.warning("post %r: %s", str(post)[:200], warning)
            if isinstance(info.context, dict) and isinstance(info.context.get("warnings"), list):
                info.context["warnings"].append(warning)
            return None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        title = clean_text(value, max_length=300)
        if not title:
            raise ValueError("a post needs a title")
        return title

    @field_validator("dek", "category", "author", "image_alt", "guid")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return clean_text(value)

    @field_validator("body_html")
    @classmethod
    def _body(cls, value: str) -> str:
        return clean_html(value)

    @field_validator("published_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        try:
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC; a ValueError is a 422
            raise ValueError("the date is out of range") from None

    @model_validator(mode="after")
    def _defaults(self) -> PostIn:
        if not self.guid:
            # The URL stands in for a missing GUID; a very long one is hashed to fit the column.
            self.guid = (
                self.url
                if len(self.url) <= GUID_MAX
                else ("url-sha256:" + hashlib.sha256(self.url.encode()).hexdigest())
            )
        elif len(self.guid) > GUID_MAX:
            self.guid = "guid-sha256:" + hashlib.sha256(self.guid.encode()).hexdigest()
        if not self.dek:
            paragraphs = html_to_paragraphs(self.body_html)
            self.dek = clean_text(paragraphs[0], max_length=200) if paragraphs else ""
        return self

    @property
    def summary(self) -> str:
        """The opening paragraph of the body: what the digest shows under the dek."""
        paragraphs = [p for p in html_to_paragraphs(self.body_html) if p != self.dek]
        # Skip a leading section heading such as "What Happened?".
        for paragraph in paragraphs:
            if len(paragraph.split()) > 8:
                return clean_text(paragraph, max_length=SUMMARY_CHARS)
        return ""

    @property
    def content_hash(self) -> str:
        fields = (
            self.url, self.title, self.dek, self.body_html, self.category, self.author,
            self.image_url or "", self.image_alt, self.published_at.isoformat(),
        )  # fmt: skip
        return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()
