"""Emoji and invisible characters reach the reader as characters, in every field.

mjml-python writes some characters inside attributes with Rust's debug escaping
(``\\u{fe0f}``); the boundary into MJML turns them into numeric references first.
"""

from __future__ import annotations

import html
import re
from datetime import date

import pytest

from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.rendering.render import mjml_safe, render_email

# Variation selector, joiners, no-break and zero-width spaces, bidi override, a combining
# accent, an emoji tag sequence, a skin tone, a keycap, the halfwidth sound mark.
TRICKY = [
    "⚠️ Storm warning ❤️",
    "👨\u200d👩\u200d👧 family",
    "no\u00a0break",
    "zero\u200bwidth",
    "\u202eevil\u202c",
    "cafe\u0301",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f flag",
    "👍🏽 thumbs",
    "1\ufe0f\u20e3 keycap",
    "ｶﾟ",
    "\u200cnon-joiner\u2028line\u2029para\u3000ideographic",
]
_REFERENCE = re.compile(r"&#x([0-9a-f]+);")


def _decoded(text: str) -> str:
    return html.unescape(text)


def _context(value: str) -> DigestContext:
    return DigestContext(
        list_name=f"Daily {value}",
        language="en",
        edition_date=date(2025, 5, 16),
        site_name=f"Site {value}",
        site_url="https://www.example.com",
        postal_address=f"1 Street {value}",
        intro=f"Intro {value}",
        subject_override=f"Subject {value}",
        preheader_override=f"Preheader {value}",
        archive_url="https://www.example.com/archive/1",
    )


def _story(value: str) -> Story:
    return Story(
        title=f"Title {value}",
        url=f"https://www.example.com/{value}",
        dek=f"Dek {value}",
        summary=f"Summary {value}",
        category=f"Category {value}",
        image_url=f"https://www.example.com/{value}.jpg",
        image_alt=f"Alt {value}",
    )


@pytest.mark.parametrize("value", TRICKY)
def test_no_rust_escapes_in_a_digest(value: str) -> None:
    email, _ = render_digest(
        _context(value), [_story(value), _story(value + " 2")], budget_bytes=10**6
    )

    assert "\\u{" not in email.html


@pytest.mark.parametrize("value", TRICKY)
def test_the_characters_survive_in_the_image_alt_and_title(value: str) -> None:
    email, _ = render_digest(_context(value), [_story(value)], budget_bytes=10**6)

    alts = [_decoded(a) for a in re.findall(r'<img[^>]* alt="([^"]*)"', email.html)]
    assert f"Alt {value}" in alts
    assert f"<title>{email.subject}</title>" in _decoded(email.html)


def test_a_notice_keeps_its_emoji_in_the_title() -> None:
    email = render_email(
        "confirm",
        {
            "site_name": "Site ⚠️",
            "site_url": "https://www.example.com",
            "postal_address": "1 Street",
            "list_names": "Daily ❤️",
            "list_name": "Daily ❤️",
            "confirm_url": "https://www.example.com/c",
            "expires_hours": 48,
            "language": "en",
            "date_long": "",
            "email": "ann@example.com",
        },
    )

    assert "\\u{" not in email.html


def test_text_between_tags_is_left_as_written() -> None:
    source = '<mj-text title="a\u200db">a\u200db</mj-text>'

    assert mjml_safe(source) == '<mj-text title="a&#x200d;b">a\u200db</mj-text>'


def test_plain_letters_and_emoji_are_not_rewritten() -> None:
    source = '<mj-image alt="مرحبا 日本語 Ünïcödé 🎉" />'

    assert mjml_safe(source) == source
