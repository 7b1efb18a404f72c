"""A post's sections, read from its stored body: the seed article, h2/h3 HTML, none, hostile."""

from __future__ import annotations

from datetime import UTC, datetime

from newsletter.posts.schema import PostIn
from newsletter.posts.sections import Section, sections_of
from newsletter.posts.sources import parse_article_text, parse_feed
from newsletter.resources import data_path

SEED_HEADINGS = ["What Happened?", "Why it Matters", "How it Affects You"]


def body_of(html: str) -> str:
    """The body as ingest stores it: sanitised."""
    return PostIn.model_validate(
        {"url": "https://www.shortlysts.com/p/1", "title": "T", "body_html": html,
         "published_at": datetime(2025, 5, 15, tzinfo=UTC)}
    ).body_html  # fmt: skip


def test_the_seed_article_has_its_three_sections_in_order(seed_post_text: str) -> None:
    [post] = parse_article_text(
        seed_post_text, site_url="https://www.shortlysts.com", now=datetime(2025, 5, 16, tzinfo=UTC)
    ).posts

    assert [s.heading for s in sections_of(post.body_html)] == SEED_HEADINGS


def test_each_seed_section_holds_its_own_paragraphs(seed_post_text: str) -> None:
    [post] = parse_article_text(
        seed_post_text, site_url="https://www.shortlysts.com", now=datetime(2025, 5, 16, tzinfo=UTC)
    ).posts

    happened, matters, affects = sections_of(post.body_html)

    assert [p[:40] for p in happened.paragraphs] == [
        "Delegations from Russia and Ukraine were",
        "Kremlin spokesman Dmitri Peskov said tha",
    ]
    assert len(matters.paragraphs) == 5
    assert affects.paragraphs[0].startswith("Mr. Putin’s refusal to participate")


def test_the_seed_post_from_the_feed_has_the_same_sections_as_from_text(
    seed_post_text: str,
) -> None:
    now = datetime(2025, 5, 16, tzinfo=UTC)
    [from_text] = parse_article_text(seed_post_text, site_url="https://x.example", now=now).posts
    from_feed = parse_feed(data_path("sample_feed.xml").read_bytes(), now=now).posts[0]

    assert sections_of(from_feed.body_html) == sections_of(from_text.body_html)


def test_h2_and_h3_headings_both_start_a_section_in_document_order() -> None:
    body = body_of(
        "<h2>Overview</h2><p>One.</p><h3>Detail</h3><p>Two.</p><h2>Next</h2><p>Three.</p>"
    )

    assert sections_of(body) == (
        Section("Overview", ("One.",)),
        Section("Detail", ("Two.",)),
        Section("Next", ("Three.",)),
    )


def test_a_body_without_headings_has_no_sections() -> None:
    assert sections_of(body_of("<p>Just a story.</p><p>In two paragraphs.</p>")) == ()


def test_an_h4_is_not_a_section_heading() -> None:
    assert sections_of(body_of("<h4>Small print</h4><p>Terms apply.</p>")) == ()


def test_text_before_the_first_heading_is_not_a_section() -> None:
    body = body_of("<p>The lead.</p><h2>What Happened?</h2><p>This.</p>")

    assert sections_of(body) == (Section("What Happened?", ("This.",)),)


def test_a_heading_with_nothing_under_it_is_left_out() -> None:
    body = body_of("<h2>Part one</h2><h3>What Happened?</h3><p>This.</p><h2>Coda</h2>")

    assert sections_of(body) == (Section("What Happened?", ("This.",)),)


def test_lists_and_links_in_a_section_become_plain_paragraphs() -> None:
    body = body_of(
        '<h2>Why it Matters</h2><p>See <a href="https://x.example/a">the <em>report</em></a>.</p>'
        "<ul><li>Rates</li><li>Jobs &amp; wages</li></ul>"
    )

    assert sections_of(body) == (
        Section("Why it Matters", ("See the report.", "Rates", "Jobs & wages")),
    )


def test_hostile_markup_leaves_only_text_in_headings_and_paragraphs() -> None:
    body = body_of(
        '<h2 onclick="steal()">What <script>alert(1)</script>Happened?</h2>'
        '<p><img src=x onerror="alert(2)">Calm<iframe src="https://evil.example"></iframe>'
        "<style>p{}</style> text.</p>"
    )

    assert sections_of(body) == (Section("What Happened?", ("Calm text.",)),)


def test_markup_written_as_text_stays_text_for_the_renderer_to_escape() -> None:
    body = body_of("<h2>&lt;script&gt;alert(1)&lt;/script&gt;</h2><p>&lt;b&gt;bold?</p>")

    assert sections_of(body) == (Section("<script>alert(1)</script>", ("<b>bold?",)),)


def test_a_stored_body_from_before_todays_rules_is_cleaned_again() -> None:
    raw = '<h2 class="x">Then</h2><p onclick="x()">Old <script>alert(1)</script>row.</p>'

    assert sections_of(raw) == (Section("Then", ("Old row.",)),)
