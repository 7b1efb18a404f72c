"""Everything that enters from a feed or the CMS passes through here first."""

from __future__ import annotations

import html
import re

import nh3

from newsletter.text import strip_unsafe

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "em", "h2", "h3", "h4", "i", "li", "ol", "p", "strong", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}

_WHITESPACE = re.compile(r"\s+")


def clean_html(fragment: str) -> str:
    """Article HTML reduced to text structure: no scripts, handlers, styles or images."""
    return nh3.clean(
        strip_unsafe(fragment),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def clean_text(value: str, max_length: int | None = None) -> str:
    """One line of plain text: tags dropped, entities decoded, CR/LF and runs of space folded.

    Folding line breaks here is what keeps a post title from injecting headers into a subject.
    """
    # Stripped before and after decoding: "&#1;" is a control character too.
    text = strip_unsafe(html.unescape(nh3.clean(strip_unsafe(value), tags=set())))
    text = _WHITESPACE.sub(" ", text).strip()
    if max_length is not None and len(text) > max_length:
        head = text[: max_length - 1]
        if text[max_length - 1] != " ":  # cut inside a word: drop the partial word
            head = head.rsplit(" ", 1)[0]
        text = head.rstrip(" ,;:.") + "…"
    return text


def html_to_paragraphs(fragment: str) -> list[str]:
    """The plain text of each block element, for summaries and the text part."""
    blocks = re.split(r"(?i)</?(?:p|h[1-6]|li|blockquote|br)\b[^>]*>", fragment)
    return [t for t in (clean_text(b) for b in blocks) if t]
