"""What each mail client needs of the HTML: Outlook's pixel widths, dark mode, a hidden
preheader that is not hidden text, right-to-left stories, and a footer that reads well."""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any

import pytest

from newsletter.rendering.digest import DigestContext, Story, render_digest
from newsletter.rendering.render import RenderedEmail, render_email

CONTEXT = DigestContext(
    list_name="Shortlysts Daily",
    language="en",
    edition_date=date(2025, 5, 16),
    site_name="Shortlysts",
    site_url="https://www.shortlysts.com",
    postal_address="Shortlysts, 1 Example Street, Springfield",
)
NOTICE: dict[str, Any] = {
    "site_name": "Shortlysts",
    "site_url": "https://www.shortlysts.com",
    "postal_address": "Shortlysts, 1 Example Street, Springfield",
    "list_names": "Shortlysts Daily",
    "list_name": "Shortlysts Daily",
    "confirm_url": "https://www.shortlysts.com/confirm/x",
    "preferences_url": "https://www.shortlysts.com/preferences/x",
    "unsubscribe_url": "https://www.shortlysts.com/unsubscribe/x",
    "expires_hours": 48,
    "language": "en",
    "date_long": "",
    "email": "ann@example.com",
}
_TAG = re.compile(r"<[^>]+>")


def story(title: str = "Storm hits the coast", dek: str = "Thousands without power.", **kw: Any):
    values = {
        "url": "https://www.shortlysts.com/a",
        "summary": "Crews worked overnight.",
        "category": "Weather",
        "image_url": "https://www.shortlysts.com/a.jpg",
        "image_alt": "Waves over the sea wall",
    } | kw
    return Story(title=title, dek=dek, **values)


def digest(*stories: Story, context: DigestContext = CONTEXT) -> RenderedEmail:
    return render_digest(context, list(stories) or [story()], budget_bytes=100_000)[0]


def every_message() -> list[RenderedEmail]:
    return [digest(), render_email("confirm", NOTICE), render_email("welcome", NOTICE)]


def visible(page: str) -> str:
    body = page[page.index("<body") :]
    body = re.sub(r'<div class="preheader".*?</div>', "", body, flags=re.S)
    body = re.sub(r"</?a\b[^>]*>", "", body)  # links are inline: no space around them
    return " ".join(html.unescape(_TAG.sub(" ", body)).split())


# --- Outlook ---------------------------------------------------------------------------------


def test_a_story_image_has_its_columns_pixel_width_for_outlook() -> None:
    images = re.findall(r"<img[^>]*>", digest().html)

    assert len(images) == 1
    assert ' width="552"' in images[0]  # 600 px less 24 px padding on each side


def test_a_story_image_shrinks_on_phones() -> None:
    style = re.search(r"<img[^>]* style=\'([^\']*)\'", digest().html)

    assert style is not None
    assert "max-width:100%" in style[1]
    assert "height:auto" in style[1]


def test_alt_text_of_a_blocked_image_is_grey_sans_serif_not_red_serif() -> None:
    style = re.search(r"<img[^>]* style='([^']*)'", digest().html)

    assert style is not None
    assert "color:#4b5563" in style[1]
    assert "font-family:-apple-system" in style[1]


# --- dark mode, preheader ------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2], ids=["digest", "confirm", "welcome"])
def test_every_message_declares_light_and_dark_schemes(index: int) -> None:
    page = every_message()[index].html

    assert '<meta name="color-scheme" content="light dark">' in page
    assert "@media (prefers-color-scheme: dark)" in page


@pytest.mark.parametrize("index", [0, 1, 2], ids=["digest", "confirm", "welcome"])
def test_the_preheader_is_hidden_without_a_text_colour(index: int) -> None:
    email = every_message()[index]
    hidden = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', email.html)

    assert hidden is not None
    assert html.unescape(hidden[2]) == email.preheader
    assert "display:none" in hidden[1]
    assert "color" not in hidden[1]
    assert "#ffffff" not in hidden[1]


# --- direction -------------------------------------------------------------------------------


def test_an_arabic_story_in_an_english_list_runs_right_to_left() -> None:
    page = digest(story(), story(title="انقطاع الكهرباء عن آلاف المنازل.", dek="العاصفة تضرب."))

    block = re.search(
        r'<td align="right"[^>]*><div[^>]*text-align:right[^>]*><div dir="rtl">', page.html
    )
    assert block is not None
    assert '<div dir="ltr">' in page.html  # the English story keeps its own direction
    assert visible(page.html).count("Read the full story →") == 2


def test_an_arabic_list_is_right_to_left_throughout() -> None:
    arabic = DigestContext(**{**CONTEXT.__dict__, "language": "ar", "list_name": "اليومية"})

    page = digest(story(title="عنوان", dek="نص"), context=arabic).html

    assert re.search(r'<html lang="ar" dir="rtl"', page)
    assert "text-align:left" not in page.split("<body", 1)[1].replace(
        "text-align:left;direction:ltr", ""
    )


# --- footer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2], ids=["digest", "confirm", "welcome"])
def test_the_site_name_is_written_once_in_the_footer(index: int) -> None:
    text = visible(every_message()[index].html)

    assert "Shortlysts, 1 Example Street, Springfield" in text
    assert "Shortlysts · Shortlysts" not in text
    assert text.count("Shortlysts, 1 Example") == 1
