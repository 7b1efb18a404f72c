"""Reading posts from the plain-text seed article, RSS and JSON."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime

import pytest

from newsletter.models import Post
from newsletter.posts.schema import PostIn
from newsletter.posts.sources import SourceError, parse_article_text, parse_feed, parse_json
from newsletter.resources import data_path

SITE_URL = "https://www.shortlysts.com"
SEED_TITLE = "Russia and Ukraine Peace Talks in Doubt as Putin is a No Show"
SEED_DEK = (
    "Russian President Putin declines to attend peace talks with Ukraine in Turkey, putting "
    "the prospects of a new agreement in doubt"
)
SEED_SECTIONS = ["What Happened?", "Why it Matters", "How it Affects You"]
SEED_GUID = "shortlysts-russia-ukraine-peace-talks-in-doubt-as-putin-is-a-no-show"
_BLOCK = re.compile(r"<(h2|p)>(.*?)</\1>", re.DOTALL)


def blocks(body_html: str) -> list[tuple[str, str]]:
    """The (tag, text) of each top-level heading and paragraph, in order."""
    return _BLOCK.findall(body_html)


def sections(body_html: str) -> list[tuple[str, list[str]]]:
    """Each <h2> with the paragraphs that follow it."""
    result: list[tuple[str, list[str]]] = []
    for tag, text in blocks(body_html):
        if tag == "h2":
            result.append((text, []))
        else:
            assert result, f"a paragraph before the first heading: {text[:60]!r}"
            result[-1][1].append(text)
    return result


def feed(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Test</title>'
        "<link>https://www.shortlysts.com/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(guid: str, title: str = "A good story", link: str = "", **extra: str) -> str:
    link = link or f"https://www.shortlysts.com/posts/{guid}"
    parts = [f"<title>{title}</title>" if title else "", f"<link>{link}</link>"]
    parts.append(f"<guid>{guid}</guid>")
    parts.append(f"<pubDate>{extra.get('date', 'Thu, 15 May 2025 20:00:00 +0000')}</pubDate>")
    parts.append(f"<description>{extra.get('description', 'A short dek.')}</description>")
    return "<item>" + "".join(parts) + "</item>"


@pytest.fixture
def seed(seed_post_text: str, now: datetime) -> PostIn:
    parsed = parse_article_text(seed_post_text, site_url=SITE_URL, now=now)
    assert parsed.errors == []
    [post] = parsed.posts
    return post


@pytest.fixture(scope="module")
def sample() -> list[PostIn]:
    content = data_path("sample_feed.xml").read_bytes()
    parsed = parse_feed(content, now=datetime(2025, 5, 16, 7, 30, tzinfo=UTC))
    assert parsed.errors == []
    return parsed.posts


# --- the seed article as plain text ---------------------------------------------------------


def test_seed_post_title_is_exact(seed: PostIn) -> None:
    assert seed.title == SEED_TITLE


def test_seed_post_dek_is_the_line_after_the_title(seed: PostIn) -> None:
    assert seed.dek == SEED_DEK


def test_seed_post_has_exactly_three_sections_in_order(seed: PostIn) -> None:
    assert re.findall(r"<h2>(.*?)</h2>", seed.body_html) == SEED_SECTIONS


def test_seed_post_paragraphs_are_p_elements_under_their_section(seed: PostIn) -> None:
    found = sections(seed.body_html)
    assert [(heading, len(paragraphs)) for heading, paragraphs in found] == [
        ("What Happened?", 2),
        ("Why it Matters", 5),
        ("How it Affects You", 1),
    ]
    assert found[0][1][0].startswith("Delegations from Russia and Ukraine were in Turkey")
    assert found[2][1][0].endswith("he appears prepared to continue fighting indefinitely.")


def test_seed_post_body_is_only_headings_and_paragraphs(seed: PostIn) -> None:
    rebuilt = "".join(f"<{tag}>{text}</{tag}>" for tag, text in blocks(seed.body_html))
    assert rebuilt == seed.body_html


def test_seed_post_keeps_typographic_apostrophes(seed: PostIn) -> None:
    assert "Thursday’s talks" in seed.body_html


def test_seed_post_breadcrumbs_and_title_are_not_in_the_body(seed: PostIn) -> None:
    assert "Shortlysts" not in seed.body_html
    assert SEED_TITLE not in seed.body_html
    assert SEED_DEK not in seed.body_html


def test_seed_post_links_to_the_site_and_is_dated_at_import(seed: PostIn, now: datetime) -> None:
    assert (
        seed.url
        == f"{SITE_URL}/posts/russia-and-ukraine-peace-talks-in-doubt-as-putin-is-a-no-show"
    )
    assert seed.published_at == now


def test_seed_post_summary_is_the_first_paragraph_not_a_heading(seed: PostIn) -> None:
    assert seed.summary.startswith("Delegations from Russia and Ukraine")


def test_article_without_a_body_is_refused(now: datetime) -> None:
    with pytest.raises(SourceError, match="title line, a dek line and a body"):
        parse_article_text("- Posts\nJust a title\n", site_url=SITE_URL, now=now)


# --- the sample RSS feed --------------------------------------------------------------------


def test_sample_feed_has_fifteen_posts(sample: list[PostIn]) -> None:
    assert len(sample) == 15
    assert len({p.guid for p in sample}) == 15


def test_sample_feed_first_item_is_the_seed_post(sample: list[PostIn]) -> None:
    assert sample[0].guid == SEED_GUID
    assert sample[0].title == SEED_TITLE
    assert sample[0].dek == SEED_DEK


def test_sample_feed_newest_post_date(sample: list[PostIn]) -> None:
    assert max(p.published_at for p in sample) <= datetime(2025, 5, 15, 22, 0, tzinfo=UTC)
    assert all(p.published_at.tzinfo is UTC for p in sample)


def test_sample_feed_posts_all_have_a_category(sample: list[PostIn]) -> None:
    assert all(p.category for p in sample)
    assert sample[0].category == "World"
    assert len({p.category for p in sample}) > 3


def test_sample_feed_posts_all_have_a_dek(sample: list[PostIn]) -> None:
    assert all(p.dek for p in sample)


def test_sample_feed_posts_have_authors(sample: list[PostIn]) -> None:
    assert sample[0].author == "Daniel Brooks"
    assert all(p.author for p in sample)


def test_sample_feed_seed_post_has_its_three_sections(sample: list[PostIn]) -> None:
    assert re.findall(r"<h2>(.*?)</h2>", sample[0].body_html) == SEED_SECTIONS


def test_sample_feed_every_post_body_has_sections(sample: list[PostIn]) -> None:
    assert [p.guid for p in sample if "<h2>What Happened?</h2>" not in p.body_html] == []


def test_sample_feed_image_alt_comes_from_media_description(sample: list[PostIn]) -> None:
    assert sample[0].image_url is not None
    assert sample[0].image_alt.startswith("Negotiators seated on opposite sides")


def test_sample_feed_image_comes_from_media_content(sample: list[PostIn]) -> None:
    assert sample[0].image_url == (
        "https://www.shortlysts.com/images/"
        "russia-ukraine-peace-talks-in-doubt-as-putin-is-a-no-show.jpg"
    )


# --- broken feeds ---------------------------------------------------------------------------


def test_random_bytes_are_not_a_feed(now: datetime) -> None:
    noise = random.Random(1).randbytes(2048)
    with pytest.raises(SourceError, match="not a readable RSS or Atom feed"):
        parse_feed(noise, now=now)


def test_html_page_is_not_a_feed(now: datetime) -> None:
    with pytest.raises(SourceError, match="not a readable RSS or Atom feed"):
        parse_feed(b"<html><body><p>Hello</p></body></html>", now=now)


def test_feed_without_items_is_refused_with_the_reason(now: datetime) -> None:
    with pytest.raises(SourceError, match="holds no items"):
        parse_feed(feed(), now=now)


def test_item_with_javascript_link_is_reported_and_others_kept(now: datetime) -> None:
    parsed = parse_feed(
        feed(item("good"), item("evil", title="Evil", link="javascript:alert(1)")), now=now
    )
    assert [p.guid for p in parsed.posts] == ["good"]
    [error] = parsed.errors
    assert error.startswith("item 2 (Evil)")
    assert "http(s) URL" in error


def test_item_without_title_is_reported_and_others_kept(now: datetime) -> None:
    parsed = parse_feed(feed(item("untitled", title=""), item("good")), now=now)
    assert [p.guid for p in parsed.posts] == ["good"]
    [error] = parsed.errors
    assert error.startswith("item 1 (untitled)")
    assert "needs a title" in error


def test_item_without_date_uses_the_import_time_with_a_warning(now: datetime) -> None:
    content = feed(
        "<item><title>Undated</title><link>https://www.shortlysts.com/posts/u</link></item>"
    )
    parsed = parse_feed(content, now=now)
    assert parsed.posts[0].published_at == now
    assert any("no date" in w for w in parsed.warnings)


def test_item_without_guid_is_keyed_by_its_url(now: datetime) -> None:
    content = feed(
        "<item><title>No guid</title><link>https://www.shortlysts.com/posts/n</link>"
        "<pubDate>Thu, 15 May 2025 20:00:00 +0000</pubDate></item>"
    )
    assert parse_feed(content, now=now).posts[0].guid == "https://www.shortlysts.com/posts/n"


def test_guid_of_a_long_url_without_guid_fits_the_guid_column(now: datetime) -> None:
    url = "https://www.shortlysts.com/posts/story?" + "utm_campaign=x&" * 60
    post = PostIn(url=url, title="Long link", published_at=now)
    assert len(post.guid) <= Post.__table__.c.guid.type.length


def image_item(guid: str, image_url: str) -> str:
    return item(guid).replace(
        "</item>", f'<enclosure url="{image_url}" type="image/jpeg" length="1"/></item>'
    )


def test_item_with_spaces_in_its_image_url_keeps_the_image_percent_encoded(now: datetime) -> None:
    content = feed(image_item("spaced", "https://www.shortlysts.com/images/Putin at the table.jpg"))

    [post] = parse_feed(content, now=now).posts

    assert post.image_url == "https://www.shortlysts.com/images/Putin%20at%20the%20table.jpg"


def test_item_with_an_unusable_image_url_is_kept_without_the_image(now: datetime) -> None:
    parsed = parse_feed(feed(image_item("bad-image", "javascript:alert(1)"), item("good")), now=now)

    assert [(p.guid, p.image_url) for p in parsed.posts] == [("bad-image", None), ("good", None)]
    assert parsed.errors == []
    assert [w for w in parsed.warnings if "image" in w] == [
        "item 1 (A good story): image dropped, its URL must be an http(s) URL, "
        "got 'javascript:alert(1)'"
    ]


# --- JSON -----------------------------------------------------------------------------------


def json_post(number: int, **overrides: object) -> dict[str, object]:
    return {
        "guid": f"json-{number}",
        "url": f"https://www.shortlysts.com/posts/json-{number}",
        "title": f"JSON story {number}",
        "body": "<p>Some body text that is long enough to count as a paragraph.</p>",
        "published_at": "2025-05-15T10:00:00Z",
        **overrides,
    }


def test_json_that_is_not_json_is_refused() -> None:
    with pytest.raises(SourceError, match="not valid JSON"):
        parse_json(b'{"posts": [')


def test_json_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(SourceError, match="not valid JSON"):
        parse_json(b"\xff\xfe\x00")


def test_json_without_a_list_of_posts_is_refused() -> None:
    with pytest.raises(SourceError, match='"posts" list'):
        parse_json(b'{"posts": 3}')


def test_json_item_that_is_not_an_object_is_reported() -> None:
    parsed = parse_json(json.dumps([json_post(1), 5, "text"]).encode())
    assert [p.guid for p in parsed.posts] == ["json-1"]
    assert parsed.errors == [
        "post 2: expected an object, got int",
        "post 3: expected an object, got str",
    ]


def test_json_object_with_posts_key_is_read_and_body_is_an_alias() -> None:
    parsed = parse_json(json.dumps({"posts": [json_post(1)]}).encode())
    [post] = parsed.posts
    assert post.body_html.startswith("<p>Some body text")
    assert post.published_at == datetime(2025, 5, 15, 10, 0, tzinfo=UTC)


def test_json_post_without_dek_takes_its_first_paragraph() -> None:
    [post] = parse_json(json.dumps([json_post(1)]).encode()).posts
    assert post.dek == "Some body text that is long enough to count as a paragraph."


def test_json_naive_date_is_read_as_utc() -> None:
    [post] = parse_json(
        json.dumps([json_post(1, published_at="2025-05-15T10:00:00")]).encode()
    ).posts
    assert post.published_at == datetime(2025, 5, 15, 10, 0, tzinfo=UTC)


def test_json_invalid_post_is_reported_by_number_and_title() -> None:
    parsed = parse_json(json.dumps([json_post(1, url="ftp://example.com/x")]).encode())
    assert parsed.posts == []
    [error] = parsed.errors
    assert error.startswith("post 1 (JSON story 1)")
    assert "url" in error


def test_json_post_with_spaces_in_its_image_url_keeps_the_image_percent_encoded() -> None:
    image = "https://www.shortlysts.com/images/rates hold.jpg"

    [post] = parse_json(json.dumps([json_post(1, image_url=image)]).encode()).posts

    assert post.image_url == "https://www.shortlysts.com/images/rates%20hold.jpg"


def test_json_post_with_an_unusable_image_url_is_kept_without_the_image() -> None:
    image = "https://www.shortlysts .com/images/rates.jpg"

    parsed = parse_json(json.dumps([json_post(1, image_url=image)]).encode())

    assert [(p.guid, p.image_url) for p in parsed.posts] == [("json-1", None)]
    assert parsed.warnings == [
        f"post 1 (JSON story 1): image dropped, its URL must be an http(s) URL, got {image!r}"
    ]


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Shortlysts</title>
  <id>https://www.shortlysts.com/</id>
  <updated>2025-05-15T22:00:00Z</updated>
  <entry>
    <title>Atom Story About Rates</title>
    <id>tag:shortlysts.com,2025:rates</id>
    <link href="https://www.shortlysts.com/posts/rates"/>
    <published>2025-05-15T21:00:00Z</published>
    <updated>2025-05-15T21:30:00Z</updated>
    <author><name>Dana Reyes</name></author>
    <category term="Business"/>
    <summary>The central bank held rates steady.</summary>
    <content type="html">&lt;h2&gt;What Happened?&lt;/h2&gt;&lt;p&gt;The central bank
      held interest rates steady on Thursday, citing cooling inflation and a firm
      job market.&lt;/p&gt;</content>
  </entry>
</feed>"""


def test_atom_feed_entry_becomes_a_post() -> None:
    parsed = parse_feed(ATOM, now=datetime(2025, 5, 16, tzinfo=UTC))
    assert parsed.errors == []
    (post,) = parsed.posts
    assert post.guid == "tag:shortlysts.com,2025:rates"
    assert post.url == "https://www.shortlysts.com/posts/rates"
    assert post.title == "Atom Story About Rates"
    assert post.dek == "The central bank held rates steady."
    assert post.category == "Business"
    assert post.author == "Dana Reyes"
    assert post.published_at == datetime(2025, 5, 15, 21, 0, tzinfo=UTC)
    assert "<h2>What Happened?</h2>" in post.body_html
