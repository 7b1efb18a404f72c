"""What a story shows at each story detail: the dek only, with its first section, or with
all of them; headings in HTML as <h3>, in the text part underlined with dashes."""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import replace

import pytest

from newsletter.models import StoryDetail
from newsletter.rendering.digest import Story, render_digest
from newsletter.rendering.render import RenderedEmail
from tests.unit.rendering.test_rendering_digest import BUDGET, CONTEXT

SECTIONED = Story(
    title="Peace Talks in Doubt",
    url="https://www.shortlysts.com/posts/peace-talks",
    dek="Putin declines to attend the talks in Turkey.",
    summary="Delegations from Russia and Ukraine were in Turkey this week.",
    category="World",
    image_url=None,
    image_alt="",
    sections=(
        ("What Happened?", ("Delegations from Russia and Ukraine were in Turkey this week.",
                            "Kremlin spokesman Dmitri Peskov said Putin would not attend.")),
        ("Why it Matters", ("The first meeting in person since 2022.",)),
        ("How it Affects You", ("Putin believes time is on his side.",)),
    ),
)  # fmt: skip
PLAIN = Story(
    title="Rates Hold",
    url="https://www.shortlysts.com/posts/rates-hold",
    dek="The bank keeps its rate.",
    summary="The bank kept its rate where it was for a third month running.",
    category="Economy",
    image_url=None,
    image_alt="",
)
_H3 = re.compile(r"<h3\b[^>]*>(.*?)</h3>", re.DOTALL)


def render(detail: StoryDetail, *stories: Story) -> RenderedEmail:
    email, _ = render_digest(
        replace(CONTEXT, story_detail=detail), stories or (SECTIONED,), budget_bytes=BUDGET
    )
    return email


def headings(email: RenderedEmail) -> list[str]:
    return _H3.findall(email.html)


def underlined(email: RenderedEmail) -> list[str]:
    """Each line of the text part that the next line underlines with as many dashes."""
    lines = email.text.splitlines()
    return [line for line, under in itertools.pairwise(lines) if line and under == "-" * len(line)]


# --- dek ------------------------------------------------------------------------------------


def test_dek_shows_the_dek_and_summary_but_no_section_in_html() -> None:
    email = render(StoryDetail.DEK)

    assert headings(email) == []
    assert "Putin declines to attend the talks in Turkey." in email.html
    assert "Delegations from Russia and Ukraine were in Turkey this week." in email.html
    assert "Kremlin spokesman" not in email.html


def test_dek_shows_no_underlined_heading_in_text() -> None:
    email = render(StoryDetail.DEK)

    assert underlined(email) == []
    assert "Delegations from Russia and Ukraine were in Turkey this week." in email.text


# --- first section --------------------------------------------------------------------------


def test_first_section_shows_its_heading_as_an_h3_in_html() -> None:
    email = render(StoryDetail.FIRST_SECTION)

    assert headings(email) == ["What Happened?"]
    assert "Kremlin spokesman Dmitri Peskov said Putin would not attend." in email.html
    assert "Why it Matters" not in email.html


def test_first_section_heading_is_underlined_with_dashes_in_text() -> None:
    email = render(StoryDetail.FIRST_SECTION)

    assert "What Happened?\n--------------\nDelegations from Russia" in email.text
    assert underlined(email) == ["What Happened?"]
    assert "The first meeting in person" not in email.text


def test_the_first_section_takes_the_place_of_the_summary() -> None:
    email = render(StoryDetail.FIRST_SECTION)

    assert email.text.count("Delegations from Russia and Ukraine were in Turkey") == 1
    assert email.html.count("Delegations from Russia and Ukraine were in Turkey") == 1


# --- all sections ---------------------------------------------------------------------------


def test_all_sections_shows_every_heading_in_order_in_html() -> None:
    email = render(StoryDetail.ALL_SECTIONS)

    assert headings(email) == ["What Happened?", "Why it Matters", "How it Affects You"]
    assert "Putin believes time is on his side." in email.html


def test_all_sections_underlines_every_heading_in_text() -> None:
    email = render(StoryDetail.ALL_SECTIONS)

    assert underlined(email) == ["What Happened?", "Why it Matters", "How it Affects You"]
    assert "How it Affects You\n------------------\nPutin believes" in email.text


def test_a_section_comes_after_the_dek_and_before_the_read_more_link() -> None:
    text = render(StoryDetail.ALL_SECTIONS).text

    dek = text.index("Putin declines to attend")
    section = text.index("How it Affects You")
    assert dek < section < text.index("Read the full story: https://www.shortlysts.com/posts/peace")


# --- posts without sections -----------------------------------------------------------------


@pytest.mark.parametrize("detail", [StoryDetail.FIRST_SECTION, StoryDetail.ALL_SECTIONS])
def test_a_post_without_sections_looks_as_it_does_with_the_dek_only(detail: StoryDetail) -> None:
    with_sections_asked = render(detail, PLAIN)
    as_today = render(StoryDetail.DEK, PLAIN)

    assert (with_sections_asked.html, with_sections_asked.text) == (as_today.html, as_today.text)


def test_stories_with_and_without_sections_mix_in_one_edition() -> None:
    email = render(StoryDetail.ALL_SECTIONS, SECTIONED, PLAIN)

    assert underlined(email) == ["What Happened?", "Why it Matters", "How it Affects You"]
    assert "The bank kept its rate where it was for a third month running." in email.text


# --- hostile text ---------------------------------------------------------------------------


def test_markup_in_a_section_is_escaped_in_html() -> None:
    hostile = replace(
        SECTIONED,
        sections=(('<script>alert("h")</script>', ('<img src=x onerror="alert(1)">',)),),
    )

    email = render(StoryDetail.ALL_SECTIONS, hostile)

    # A reader sees the markup as text: it is in the heading only as escaped characters.
    assert [html.unescape(h) for h in headings(email)] == ['<script>alert("h")</script>']
    assert "<script" not in email.html
    assert "<img src=x" not in email.html


# --- size -----------------------------------------------------------------------------------


def long_story(n: int) -> Story:
    paragraph = f"Story {n} goes on at length, as a post with many sections does. " * 12
    return replace(
        SECTIONED,
        title=f"Story {n}",
        url=f"https://www.shortlysts.com/posts/story-{n}",
        sections=tuple((f"Part {k}", (paragraph,) * 3) for k in range(1, 6)),
    )


def test_all_sections_of_many_posts_keep_the_email_under_the_budget() -> None:
    stories = [long_story(n) for n in range(1, 26)]

    email, full = render_digest(
        replace(CONTEXT, story_detail=StoryDetail.ALL_SECTIONS), stories, budget_bytes=BUDGET
    )

    assert email.sent_bytes <= BUDGET
    assert 1 <= full < 25
    assert "More headlines" in email.html


def test_one_post_too_long_in_full_shows_less_of_itself_rather_than_overflow() -> None:
    huge = replace(long_story(1), sections=(("Part 1", ("Long. " * 30_000,)),))

    email, full = render_digest(
        replace(CONTEXT, story_detail=StoryDetail.ALL_SECTIONS), [huge], budget_bytes=BUDGET
    )

    assert email.sent_bytes <= BUDGET
    assert full == 1
    assert headings(email) == []
    assert "Putin declines to attend the talks in Turkey." in email.html
