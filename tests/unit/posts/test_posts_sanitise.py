"""Hostile markup in a post never reaches the database or an email."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Post
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sanitise import clean_html, clean_text, html_to_paragraphs
from newsletter.posts.schema import PostIn

HOSTILE_BODY = (
    '<p onclick="steal()">Opening paragraph with a '
    '<a href="javascript:alert(1)">bad link</a> and a '
    '<a href="https://www.shortlysts.com/ok" onmouseover="steal()">good link</a>.</p>'
    "<script>alert('body')</script>"
    '<iframe src="https://evil.example.com/frame"></iframe>'
    "<style>body { display: none }</style>"
    '<img src="x" onerror="alert(2)">'
    '<h2 style="color:red">What Happened?</h2><p>Closing paragraph.</p>'
)
HOSTILE_TITLE = "Breaking <script>alert('title')</script><b onclick=\"x()\">news</b>"
HOSTILE_DEK = (
    'A dek <img src=x onerror="alert(3)"><iframe src="https://evil.example.com"></iframe>'
    "<style>p{}</style>with markup"
)
# What must never survive, anywhere in a stored post.
FORBIDDEN = [
    "<script",
    "onerror",
    "onclick",
    "onmouseover",
    "javascript:",
    "<iframe",
    "<style",
    "<img",
    "alert(",
]


def hostile_post(**overrides: object) -> PostIn:
    values: dict[str, object] = {
        "guid": "hostile",
        "url": "https://www.shortlysts.com/posts/hostile",
        "title": HOSTILE_TITLE,
        "dek": HOSTILE_DEK,
        "body_html": HOSTILE_BODY,
        "published_at": datetime(2025, 5, 15, 12, 0, tzinfo=UTC),
        **overrides,
    }
    return PostIn.model_validate(values)


@pytest.fixture
def stored(session: Session) -> Post:
    upsert_posts(session, [hostile_post()])
    session.commit()
    row = session.scalar(select(Post).where(Post.guid == "hostile"))
    assert row is not None
    return row


@pytest.mark.parametrize("marker", FORBIDDEN)
def test_stored_body_has_no_active_content(stored: Post, marker: str) -> None:
    assert marker not in stored.body_html.lower()


@pytest.mark.parametrize("marker", FORBIDDEN)
def test_stored_title_and_dek_have_no_markup(stored: Post, marker: str) -> None:
    assert marker not in stored.title.lower()
    assert marker not in stored.dek.lower()


@pytest.mark.parametrize("marker", FORBIDDEN)
def test_stored_summary_has_no_markup(stored: Post, marker: str) -> None:
    assert marker not in stored.summary.lower()


def test_stored_body_keeps_the_text_structure(stored: Post) -> None:
    assert stored.body_html == (
        '<p>Opening paragraph with a <a rel="noopener noreferrer">bad link</a> and a '
        '<a href="https://www.shortlysts.com/ok" rel="noopener noreferrer">good link</a>.</p>'
        "<h2>What Happened?</h2><p>Closing paragraph.</p>"
    )


def test_stored_title_is_the_visible_text(stored: Post) -> None:
    assert stored.title == "Breaking news"


def test_stored_dek_is_the_visible_text(stored: Post) -> None:
    assert stored.dek == "A dek with markup"


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r", "\u2028"])
def test_title_with_line_breaks_becomes_one_line(newline: str) -> None:
    post = hostile_post(title=f"Breaking news{newline}Bcc: victim@example.com")
    assert post.title == "Breaking news Bcc: victim@example.com"


def test_dek_and_author_with_line_breaks_become_one_line() -> None:
    post = hostile_post(dek="First line\r\nsecond line", author="Ann\nSmith")
    assert (post.dek, post.author) == ("First line second line", "Ann Smith")


def test_title_that_is_only_markup_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a title"):
        hostile_post(title="<script>alert(1)</script>")


def test_javascript_image_url_drops_the_image_and_keeps_the_post() -> None:
    post = hostile_post(image_url="javascript:alert(1)")

    assert post.image_url is None
    assert post.url == "https://www.shortlysts.com/posts/hostile"


@pytest.mark.parametrize(
    "image_url",
    [
        "https://www.shortlysts.com/images/a\r\nX-Injected: 1.jpg",
        "https://www.shortlysts.com/images/a\x00.jpg",
        "https://www.shortlysts .com/images/a.jpg",
        "https://www.shortlysts.com/images/" + "a" * 2000 + ".jpg",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
    ids=["line-break", "nul", "space-in-host", "too-long", "data"],
)
def test_an_unusable_image_url_drops_only_the_image(
    image_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    post = hostile_post(image_url=image_url)

    assert post.image_url is None
    assert post.title == "Breaking news"
    assert "post 'hostile': image dropped, its URL must" in caplog.text


def test_spaces_in_an_image_url_are_percent_encoded_wherever_they_are() -> None:
    post = hostile_post(image_url=" https://www.shortlysts.com/a b/c d.jpg?size=a b#x y ")

    assert post.image_url == "https://www.shortlysts.com/a%20b/c%20d.jpg?size=a%20b#x%20y"


def test_url_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line breaks"):
        hostile_post(url="https://www.shortlysts.com/posts/a\r\nX-Injected: 1")


def test_clean_html_drops_script_contents_not_just_tags() -> None:
    assert clean_html("<p>Hi</p><script>var secret = 1;</script>") == "<p>Hi</p>"


def test_clean_html_drops_comments() -> None:
    assert clean_html("<p>Hi<!-- [if mso]>x<![endif] --></p>") == "<p>Hi</p>"


def test_clean_text_decodes_entities() -> None:
    assert clean_text("AT&amp;T &ndash; Q1 results") == "AT&T – Q1 results"


def test_clean_text_folds_runs_of_whitespace() -> None:
    assert clean_text("  lots \t of\n\n space  ") == "lots of space"


def test_clean_text_shortens_at_a_word_with_an_ellipsis() -> None:
    shortened = clean_text("The quick brown fox jumps over the lazy dog", max_length=22)
    assert shortened == "The quick brown fox…"


def test_clean_text_keeps_a_whole_word_that_ends_at_the_cut() -> None:
    assert clean_text("The quick brown fox jumps", max_length=20) == "The quick brown fox…"


def test_html_to_paragraphs_returns_the_text_of_each_block() -> None:
    assert html_to_paragraphs(
        "<h2>Heading</h2><p>One &amp; two</p><p></p><ul><li>Three</li></ul>"
    ) == [
        "Heading",
        "One & two",
        "Three",
    ]
