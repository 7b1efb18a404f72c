"""The digest email as a reader's mail client gets it: size, structure, text part."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from email import message_from_bytes, policy

import pytest

from newsletter.delivery.mime import build_message
from newsletter.editions.build import story_of
from newsletter.models import Post
from newsletter.posts.schema import PostIn
from newsletter.posts.sources import parse_feed
from newsletter.rendering.digest import GMAIL_CLIP_BYTES, DigestContext, Story, render_digest
from newsletter.rendering.render import RenderedEmail, render_email
from newsletter.resources import data_path

BUDGET = 100_000
CONTEXT = DigestContext(
    list_name="Shortlysts Daily",
    language="en",
    edition_date=date(2025, 5, 16),
    site_name="Shortlysts",
    site_url="https://www.shortlysts.com",
    postal_address="Shortlysts, 1 Example Street, Springfield",
)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def as_story(post: PostIn, *, title: str | None = None, url: str | None = None) -> Story:
    """The story the builder makes of a stored post."""
    row = Post(
        guid=post.guid,
        url=url or post.url,
        title=title or post.title,
        dek=post.dek,
        body_html=post.body_html,
        summary=post.summary,
        category=post.category,
        author=post.author,
        image_url=post.image_url,
        image_alt=post.image_alt,
        published_at=post.published_at,
    )
    return story_of(row)


@pytest.fixture(scope="module")
def sample_stories() -> list[Story]:
    content = data_path("sample_feed.xml").read_bytes()
    posts = parse_feed(content, now=datetime(2025, 5, 16, 7, 30, tzinfo=UTC)).posts
    return [as_story(p) for p in posts]


def realistic(stories: list[Story], count: int) -> list[Story]:
    """``count`` stories: the sample feed, then retitled copies of it with their own URLs."""
    result = []
    for index in range(count):
        story = stories[index % len(stories)]
        round_ = index // len(stories)
        if round_:
            story = Story(
                title=f"{story.title}: Day {round_ + 1} Update",
                url=f"{story.url}-update-{round_ + 1}",
                dek=story.dek,
                summary=story.summary,
                category=story.category,
                image_url=story.image_url,
                image_alt=story.image_alt,
            )
        result.append(story)
    return result


@pytest.fixture(scope="module")
def ten(sample_stories: list[Story]) -> tuple[RenderedEmail, int]:
    return render_digest(CONTEXT, realistic(sample_stories, 10), budget_bytes=BUDGET)


@pytest.fixture(scope="module")
def twenty_five_stories(sample_stories: list[Story]) -> list[Story]:
    return realistic(sample_stories, 25)


@pytest.fixture(scope="module")
def twenty_five(twenty_five_stories: list[Story]) -> tuple[RenderedEmail, int]:
    return render_digest(CONTEXT, twenty_five_stories, budget_bytes=BUDGET)


@pytest.fixture(scope="module")
def huge_stories() -> list[Story]:
    return [
        Story(
            title=f"Story {n}: Lawmakers Weigh a Long List of Amendments to the Budget Bill",
            url=f"https://www.shortlysts.com/posts/story-{n}",
            dek="A long dek that runs on for a while to make the story take up room. " * 4,
            summary=f"Summary of story {n}. "
            + "A long summary paragraph with many words in it, as editors write. " * 5,
            category="Politics",
            image_url=f"https://www.shortlysts.com/images/story-{n}.jpg",
            image_alt=f"Photo for story {n}",
        )
        for n in range(1, 61)
    ]


@pytest.fixture(scope="module")
def huge(huge_stories: list[Story]) -> tuple[RenderedEmail, int]:
    return render_digest(CONTEXT, huge_stories, budget_bytes=BUDGET)


@pytest.fixture(scope="module")
def email(twenty_five: tuple[RenderedEmail, int]) -> RenderedEmail:
    return twenty_five[0]


# --- size -----------------------------------------------------------------------------------


def test_ten_realistic_stories_fit_in_full_under_the_clip_size(
    ten: tuple[RenderedEmail, int],
) -> None:
    rendered, full = ten
    assert rendered.sent_bytes < GMAIL_CLIP_BYTES
    assert full == 10


def test_twenty_five_realistic_stories_stay_under_the_clip_size(
    twenty_five: tuple[RenderedEmail, int],
) -> None:
    rendered, _ = twenty_five
    assert rendered.sent_bytes < GMAIL_CLIP_BYTES
    assert rendered.sent_bytes <= BUDGET


def test_every_one_of_twenty_five_stories_is_linked(
    twenty_five: tuple[RenderedEmail, int], twenty_five_stories: list[Story]
) -> None:
    rendered, _ = twenty_five
    assert [s.url for s in twenty_five_stories if f'href="{s.url}"' not in rendered.html] == []


def test_html_bytes_counts_utf8_bytes_not_characters(email: RenderedEmail) -> None:
    assert email.html_bytes == len(email.html.encode("utf-8"))


def test_the_budget_counts_the_html_as_sent_not_decoded() -> None:
    arabic = "أعلنت الحكومة اليوم عن خطة جديدة لتحسين النقل العام في المدن الكبرى 🚆❤️. "
    stories = [
        Story(
            title=f"خبر رقم {n}: {arabic[:40]}",
            url=f"https://www.example.com/ar/{n}",
            dek=arabic * 2,
            summary=arabic * 12,
            category="أخبار",
            image_url=None,
            image_alt="",
        )
        for n in range(25)
    ]

    rendered, full = render_digest(CONTEXT, stories, budget_bytes=BUDGET)

    assert full < 25
    assert rendered.sent_bytes <= BUDGET
    assert rendered.html_bytes < rendered.sent_bytes
    part = message_from_bytes(
        build_message(
            from_name="Shortlysts",
            from_address="news@example.com",
            to="reader@example.com",
            subject=rendered.subject,
            date=datetime(2025, 5, 16, 8, tzinfo=UTC),
            message_id="<1@example.com>",
            text=rendered.text,
            html=rendered.html,
        ),
        policy=policy.default,
    ).get_body(("html",))
    assert part is not None
    sent = part.as_bytes().split(b"\n\n", 1)[1]
    assert len(sent) < GMAIL_CLIP_BYTES


def test_very_large_edition_stays_under_the_budget(huge: tuple[RenderedEmail, int]) -> None:
    rendered, _ = huge
    assert rendered.sent_bytes <= BUDGET


def test_very_large_edition_collapses_later_stories_into_more_headlines(
    huge: tuple[RenderedEmail, int], huge_stories: list[Story]
) -> None:
    rendered, full = huge
    assert 1 <= full < len(huge_stories)
    headlines = rendered.html[rendered.html.index("More headlines") :]
    collapsed = huge_stories[full:]
    assert all(f'href="{s.url}"' in headlines for s in collapsed)
    assert f"Summary of story {full + 1}." not in rendered.html


def test_very_large_edition_shows_the_first_stories_in_full(
    huge: tuple[RenderedEmail, int], huge_stories: list[Story]
) -> None:
    rendered, full = huge
    assert rendered.html.count("Read the full story") == full
    assert f"Summary of story {full}." in rendered.html
    assert "More headlines" in rendered.html


def test_very_large_edition_keeps_the_footer(huge: tuple[RenderedEmail, int]) -> None:
    rendered, _ = huge
    assert CONTEXT.markers.unsubscribe_url in rendered.html
    assert CONTEXT.postal_address in _TAG.sub("", rendered.html)


def test_very_large_edition_lists_every_story_in_the_text_part(
    huge: tuple[RenderedEmail, int], huge_stories: list[Story]
) -> None:
    rendered, _ = huge
    assert all(s.url in rendered.text for s in huge_stories)
    assert "MORE HEADLINES" in rendered.text


def test_digest_without_stories_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one story"):
        render_digest(CONTEXT, [], budget_bytes=BUDGET)


# --- HTML -----------------------------------------------------------------------------------


def test_html_declares_the_language(email: RenderedEmail) -> None:
    assert re.search(r'<html[^>]*\blang="en"', email.html)


def test_html_carries_the_preheader_text(email: RenderedEmail) -> None:
    assert email.preheader.startswith("Russian President Putin declines")
    assert email.preheader in email.html


def test_preheader_counts_the_other_stories(email: RenderedEmail) -> None:
    assert email.preheader.endswith("Plus 24 more stories.")


def test_subject_names_the_list_date_and_lead_story(email: RenderedEmail) -> None:
    assert email.subject == (
        "Shortlysts Daily, May 16: Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
    )


def test_html_keeps_a_style_block_with_media_queries(email: RenderedEmail) -> None:
    styles = re.findall(r"<style[^>]*>(.*?)</style>", email.html, re.DOTALL)
    assert any("@media" in style for style in styles)


def test_html_keeps_important_in_the_style_block(email: RenderedEmail) -> None:
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", email.html, re.DOTALL))
    assert "!important" in styles


def test_html_has_css_inlined_on_elements(email: RenderedEmail) -> None:
    titles = re.findall(r'<h2 class="story-title" style="([^"]*)"', email.html)
    assert len(titles) >= 1
    assert all("font-size:22px" in style for style in titles)
    deks = re.findall(r'<p class="dek" style="([^"]*)"', email.html)
    assert deks
    assert all("font-weight:600" in style for style in deks)


def test_every_image_has_alt_text(email: RenderedEmail) -> None:
    images = re.findall(r"<img\b[^>]*>", email.html)
    assert images
    assert [img for img in images if not re.search(r'\balt="[^"]+"', img)] == []


def test_image_alt_falls_back_to_the_title() -> None:
    story = Story(
        title="Harbor Bridge Reopens",
        url="https://www.shortlysts.com/posts/bridge",
        dek="",
        summary="",
        category="",
        image_url="https://www.shortlysts.com/images/bridge.jpg",
        image_alt="",
    )
    rendered, _ = render_digest(CONTEXT, [story], budget_bytes=BUDGET)
    assert re.search(r'<img\b[^>]*\balt="Harbor Bridge Reopens"', rendered.html)


def test_html_imports_no_web_fonts(email: RenderedEmail) -> None:
    assert "fonts.googleapis" not in email.html
    assert "@import" not in email.html


def test_html_has_every_personalisation_placeholder(email: RenderedEmail) -> None:
    assert [m for m in CONTEXT.markers.context().values() if m not in email.html] == []


def test_html_escapes_markup_in_a_story_title() -> None:
    story = Story(
        title="Why <script>alert(1)</script> & Other Tags Show Up in Headlines",
        url="https://www.shortlysts.com/posts/tags",
        dek="A dek with <b>angle brackets</b>.",
        summary="",
        category="Technology",
        image_url=None,
        image_alt="",
    )
    rendered, _ = render_digest(CONTEXT, [story], budget_bytes=BUDGET)
    assert "<script>" not in rendered.html
    assert "<b>angle" not in rendered.html
    assert "&lt;script&gt;" in rendered.html


# --- text part ------------------------------------------------------------------------------


def test_text_part_has_every_title(email: RenderedEmail, twenty_five_stories: list[Story]) -> None:
    text = " ".join(email.text.upper().split())  # titles may wrap over lines
    missing = [s.title for s in twenty_five_stories if s.title.upper() not in text]
    assert missing == []


def test_text_part_has_every_url(email: RenderedEmail, twenty_five_stories: list[Story]) -> None:
    assert [s.url for s in twenty_five_stories if s.url not in email.text] == []


def test_text_part_has_no_html_tags(email: RenderedEmail) -> None:
    assert _TAG.findall(email.text) == []


def test_text_part_has_no_html_entities(email: RenderedEmail) -> None:
    assert re.findall(r"&[a-z]+;|&#\d+;", email.text) == []


def test_text_part_has_every_personalisation_placeholder(email: RenderedEmail) -> None:
    assert [m for m in CONTEXT.markers.context().values() if m not in email.text] == []


def test_text_part_shows_special_characters_as_typed() -> None:
    story = Story(
        title="AT&T and T-Mobile Raise Prices <Again>",
        url="https://www.shortlysts.com/posts/prices?a=1&b=2",
        dek="",
        summary="",
        category="Business",
        image_url=None,
        image_alt="",
    )
    rendered, _ = render_digest(CONTEXT, [story], budget_bytes=BUDGET)
    assert "AT&T AND T-MOBILE RAISE PRICES <AGAIN>" in rendered.text
    assert "https://www.shortlysts.com/posts/prices?a=1&b=2" in rendered.text


def test_text_part_lines_are_wrapped_for_mail_clients(email: RenderedEmail) -> None:
    body = email.text.split("\n--\n")[0]
    long_lines = [
        line
        for line in body.splitlines()
        if len(line) > 78 and "http" not in line and not re.match(r"\d+\. ", line)
    ]
    assert long_lines == []


def test_the_html_keeps_its_doctype(ten: tuple[RenderedEmail, int]) -> None:
    """premailer drops it; without it clients lay the message out in quirks mode."""
    email, _ = ten
    assert email.html.startswith("<!doctype html>")


@pytest.mark.parametrize("budget", [30_000, 45_000, 60_000])
def test_the_most_full_stories_that_fit_are_shown(sample_stories: list[Story], budget: int) -> None:
    stories = realistic(sample_stories, 12)
    fitting = [
        full
        for full in range(1, len(stories) + 1)
        if render_email(
            "digest", CONTEXT.template_context(stories[:full], stories[full:])
        ).sent_bytes
        <= budget
    ]

    _, full = render_digest(CONTEXT, stories, budget_bytes=budget)

    assert full == max(fitting)
