"""The public archive as readers and feed readers use it: a list's past editions, each
edition's web page (the email's "View in your browser" link) and the RSS feed.

Only editions readers have received are public; whatever an editor is still working on, or
called off, answers 404 exactly like an address with nothing at it.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from xml.etree import ElementTree as ET

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.prepared import Recipient, prepare_edition
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.build import archive_url, build_edition
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.models import Edition, EditionStatus, Frequency, NewsletterList
from newsletter.web.archive import EDITION_CSP
from tests.factories import edition_with_readers
from tests.web.conftest import make_list, visible_text

READERS = ["ann@example.com", "bob@example.com"]
# Every state but sending and sent: what an editor still works on, or never went out.
NOT_RECEIVED = [
    EditionStatus.DRAFT,
    EditionStatus.SCHEDULED,
    EditionStatus.PAUSED,
    EditionStatus.CANCELLED,
    EditionStatus.SKIPPED,
    EditionStatus.MISSED,
]
TOKEN_LINK = re.compile(r"/(unsubscribe|preferences)/[\w.-]{20,}")


def clock() -> datetime:
    return datetime.now(UTC)


def path_of(url: str, settings: Settings) -> str:
    """The path a link in an email or feed points to on this app."""
    base = settings.base_url.rstrip("/")
    assert url.startswith(base + "/"), url
    return url.removeprefix(base)


def published(
    session: Session,
    nl: NewsletterList,
    day: date,
    subject: str,
    *,
    status: EditionStatus = EditionStatus.SENT,
    frequency: Frequency = Frequency.DAILY,
    preheader: str = "",
) -> Edition:
    """An edition row in a given state, without the cost of rendering a real one."""
    start = datetime(day.year, day.month, day.day, 7, tzinfo=UTC)
    edition = Edition(
        newsletter_list=nl, edition_date=day, frequency=frequency, status=status,
        window_start=start - timedelta(days=1), cutoff=start, scheduled_at=start,
        subject=subject, preheader=preheader or f"Preheader of {subject}",
        html=f"<!doctype html><html><head><title>{html.escape(subject)}</title></head>"
        f"<body><p>{html.escape(subject)}</p></body></html>",
        send_started_at=start if status in (EditionStatus.SENDING, EditionStatus.SENT) else None,
        sent_at=start + timedelta(minutes=5) if status == EditionStatus.SENT else None,
    )  # fmt: skip
    session.add(edition)
    session.commit()
    return edition


def send(session: Session, edition: Edition, settings: Settings, now: datetime) -> MemoryTransport:
    """Send ``edition`` to its readers for real, into memory."""
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = MemoryTransport()
    for batch in pending_batches(session, edition.id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=clock)
    session.refresh(edition)
    return transport


def html_part(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def view_in_browser(message_html: str) -> str:
    match = re.search(r'<a href="([^"]+)"[^>]*>\s*View in your browser', message_html)
    assert match, "the message has no View in your browser link"
    return html.unescape(match.group(1))


def edition_links(page: str) -> list[str]:
    """The edition links of a list page, in the order shown."""
    listing = re.search(r'<ol class="editions">(.*?)</ol>', page, re.S)
    return re.findall(r'<a href="([^"]+)">', listing.group(1)) if listing else []


def feed_items(body: bytes) -> list[dict[str, str]]:
    root = ET.fromstring(body)  # noqa: S314  (our own output, under test)
    return [{child.tag: child.text or "" for child in item} for item in root.iter("item")]


@pytest.fixture
def sent_edition(
    session: Session, settings: Settings, daily_list: NewsletterList, now: datetime
) -> tuple[Edition, MemoryTransport]:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    return edition, send(session, edition, settings, now)


def test_every_edition_state_is_decided_public_or_not() -> None:
    """A state added later must be placed on one side or the other here, deliberately."""
    assert {*NOT_RECEIVED, EditionStatus.SENDING, EditionStatus.SENT} == set(EditionStatus)


# The list page


def test_list_page_shows_sent_editions_newest_first(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 14), "Tuesday's news")
    published(session, daily_list, date(2025, 5, 16), "Thursday's news")
    published(session, daily_list, date(2025, 5, 15), "Wednesday's news")

    page = visible_text(client.get("/archive/daily").text)

    assert page.index("Thursday's news") < page.index("Wednesday's news")
    assert page.index("Wednesday's news") < page.index("Tuesday's news")
    assert "Friday, May 16, 2025" in page


def test_list_page_shows_an_edition_still_going_out(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Going out now", status=EditionStatus.SENDING)

    assert "Going out now" in visible_text(client.get("/archive/daily").text)


@pytest.mark.parametrize("status", NOT_RECEIVED)
def test_list_page_leaves_out_editions_readers_have_not_received(
    client: TestClient, session: Session, daily_list: NewsletterList, status: EditionStatus
) -> None:
    published(session, daily_list, date(2025, 5, 15), "Yesterday's news")
    published(session, daily_list, date(2025, 5, 16), "Secret draft", status=status)

    page = visible_text(client.get("/archive/daily").text)

    assert "Yesterday's news" in page
    assert "Secret draft" not in page


def test_list_page_links_each_edition_to_its_view_in_browser_address(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList
) -> None:
    daily = published(session, daily_list, date(2025, 5, 16), "Daily")
    weekly = published(session, daily_list, date(2025, 5, 11), "Weekly", frequency=Frequency.WEEKLY)

    links = edition_links(client.get("/archive/daily").text)

    assert links == [archive_url(daily, settings), archive_url(weekly, settings)]


def test_list_page_announces_its_rss_feed(client: TestClient, daily_list: NewsletterList) -> None:
    page = client.get("/archive/daily").text

    head = page.split("</head>")[0]
    assert (
        '<link rel="alternate" type="application/rss+xml" title="Shortlysts Daily" '
        'href="/archive/daily/feed.xml">' in head
    )


def test_list_page_of_a_list_with_nothing_sent_says_so(
    client: TestClient, daily_list: NewsletterList
) -> None:
    response = client.get("/archive/daily")

    assert response.status_code == 200
    assert "Nothing has been sent yet" in visible_text(response.text)


def test_list_page_escapes_subjects(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "<script>alert(1)</script> & more")

    response = client.get("/archive/daily")

    assert "<script>alert(1)</script>" not in response.text
    assert "<script>alert(1)</script> & more" in visible_text(response.text)


@pytest.fixture
def thirty_one_days(session: Session, daily_list: NewsletterList) -> list[date]:
    days = [date(2025, 4, 1) + timedelta(days=n) for n in range(31)]
    for day in days:
        published(session, daily_list, day, f"News of {day.isoformat()}")
    return days


def test_first_page_holds_the_thirty_newest_and_links_to_the_next(
    client: TestClient, thirty_one_days: list[date]
) -> None:
    page = client.get("/archive/daily").text

    assert len(edition_links(page)) == 30
    assert "News of 2025-05-01" in page
    assert "News of 2025-04-01" not in page
    assert '<a href="?page=2" rel="next">' in page
    assert 'rel="prev"' not in page
    assert "Page 1 of 2" in visible_text(page)


def test_second_page_holds_the_oldest_and_links_back(
    client: TestClient, thirty_one_days: list[date]
) -> None:
    page = client.get("/archive/daily", params={"page": 2}).text

    assert [link.rsplit("/", 1)[1] for link in edition_links(page)] == ["2025-04-01"]
    assert '<a href="?page=1" rel="prev">' in page
    assert 'rel="next"' not in page


def test_a_page_past_the_last_is_not_found(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Only one")

    response = client.get("/archive/daily", params={"page": 2})

    assert response.status_code == 404
    assert "The archive of Shortlysts Daily has 1 page." in visible_text(response.text)


@pytest.mark.parametrize("page", ["0", "two", "-1"])
def test_a_page_that_is_not_a_positive_number_is_refused_with_a_message(
    client: TestClient, daily_list: NewsletterList, page: str
) -> None:
    response = client.get("/archive/daily", params={"page": page})

    assert response.status_code == 400
    assert "page:" in visible_text(response.text)


@pytest.mark.parametrize(
    "path",
    [
        "/archive/nope",
        "/archive/nope/2025-05-16",
        "/archive/nope/feed.xml",
        "/archive/daily%00",
        "/archive/daily%0A/2025-05-16",
        "/archive/" + "x" * 2000,
    ],
)
def test_an_unknown_list_is_not_found(
    client: TestClient, daily_list: NewsletterList, path: str
) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert "There is no newsletter archive at this address." in visible_text(response.text)


# An edition's page


def test_edition_page_is_the_email_as_sent(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    edition, _ = sent_edition

    response = client.get(path_of(archive_url(edition, settings), settings))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>{html.escape(edition.subject, quote=False)}</title>" in response.text
    for item in edition.items:
        assert html.escape(item.post.title, quote=False) in response.text


def test_edition_page_has_no_reader_placeholders_tokens_or_addresses(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    edition, transport = sent_edition
    assert len(transport.sent) == len(READERS)  # they did get personal links and addresses

    page = client.get(path_of(archive_url(edition, settings), settings)).text

    assert "__NL_" not in page
    assert not TOKEN_LINK.search(page)
    assert not [reader for reader in READERS if reader in page]
    assert "because you subscribed to Shortlysts Daily" in " ".join(page.split())


def test_edition_page_sends_unsubscribing_readers_to_the_explanation(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    edition, _ = sent_edition
    page = client.get(path_of(archive_url(edition, settings), settings)).text

    unsubscribe = re.search(r'<a href="([^"]+)"[^>]*>Unsubscribe</a>', page)
    assert unsubscribe
    target, anchor = unsubscribe.group(1).split("#")
    explained = client.get(target).text

    assert f'id="{anchor}"' in explained
    assert "Every email we send you ends with an Unsubscribe link" in visible_text(explained)


def test_view_in_browser_link_of_a_sent_message_opens_the_edition(
    client: TestClient,
    session: Session,
    settings: Settings,
    now: datetime,
    sent_edition: tuple[Edition, MemoryTransport],
) -> None:
    edition, _ = sent_edition
    message = prepare_edition(edition, settings, now=now).personalise(
        Recipient(delivery_id=1, subscriber_id=1, email="ann@example.com")
    )

    response = client.get(path_of(view_in_browser(html_part(message.data)), settings))

    assert response.status_code == 200
    assert f"<title>{html.escape(edition.subject, quote=False)}</title>" in response.text


def test_view_in_browser_link_of_a_delivered_message_opens_the_edition(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    _, transport = sent_edition
    [*_, (_, _, data)] = transport.sent

    response = client.get(path_of(view_in_browser(html_part(data)), settings))

    assert response.status_code == 200


def test_edition_page_allows_the_emails_styles_and_images_and_nothing_active(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    edition, _ = sent_edition

    response = client.get(path_of(archive_url(edition, settings), settings))

    assert response.headers["content-security-policy"] == EDITION_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_a_sent_edition_may_be_cached_for_a_day(
    client: TestClient, settings: Settings, sent_edition: tuple[Edition, MemoryTransport]
) -> None:
    edition, _ = sent_edition
    assert edition.status == EditionStatus.SENT

    response = client.get(path_of(archive_url(edition, settings), settings))

    assert response.headers["cache-control"] == "public, max-age=86400"


def test_an_edition_still_going_out_is_public_but_cached_briefly(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Going out", status=EditionStatus.SENDING)

    response = client.get("/archive/daily/2025-05-16")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"


def test_an_unchanged_edition_answers_304_to_a_conditional_request(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Friday")
    etag = client.get("/archive/daily/2025-05-16").headers["etag"]

    response = client.get("/archive/daily/2025-05-16", headers={"if-none-match": etag})

    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize("status", NOT_RECEIVED)
def test_an_edition_readers_have_not_received_is_not_found(
    client: TestClient, session: Session, daily_list: NewsletterList, status: EditionStatus
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Not for your eyes", status=status)

    response = client.get("/archive/daily/2025-05-16")

    assert response.status_code == 404
    assert "Not for your eyes" not in response.text
    assert "Shortlysts Daily has no edition at this address." in visible_text(response.text)


def test_a_draft_built_from_real_posts_is_not_found(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    now: datetime,
) -> None:
    daily_list.requires_approval = True
    session.commit()
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    assert edition.status == EditionStatus.DRAFT

    response = client.get(path_of(archive_url(edition, settings), settings))

    assert response.status_code == 404
    assert edition.subject not in response.text


def test_a_date_with_no_edition_is_not_found(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Friday")

    assert client.get("/archive/daily/2025-05-15").status_code == 404


@pytest.mark.parametrize(
    "day",
    [
        "2025-13-01",
        "2025-02-30",
        "20250516",
        "2025-5-16",
        "2025-W20-5",
        "yesterday",
        "%00",
        "٢٠٢٥-05-16",
    ],
)
def test_a_date_that_is_not_a_date_is_not_found(
    client: TestClient, session: Session, daily_list: NewsletterList, day: str
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Friday")

    response = client.get(f"/archive/daily/{day}")

    assert response.status_code == 404
    assert "Shortlysts Daily has no edition at this address." in visible_text(response.text)


def test_another_lists_edition_is_not_found_under_this_list(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    tech = make_list(session, "tech", "Shortlysts Tech")
    published(session, tech, date(2025, 5, 16), "Tech Friday")

    assert client.get("/archive/daily/2025-05-16").status_code == 404
    assert client.get("/archive/tech/2025-05-16").status_code == 200


def test_weekly_edition_opens_at_its_view_in_browser_address(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    now: datetime,
) -> None:
    edition_with_readers(session, daily_list, [], now=now, settings=settings)
    weekly = build_edition(
        session, daily_list, now.date(), now=now, settings=settings, frequency=Frequency.WEEKLY
    ).edition
    session.commit()
    send(session, weekly, settings, now)
    url = archive_url(weekly, settings)
    assert url.endswith("/archive/daily/2025-05-16/weekly")

    response = client.get(path_of(url, settings))

    assert response.status_code == 200
    assert f"<title>{html.escape(weekly.subject, quote=False)}</title>" in response.text


def test_a_daily_address_does_not_open_the_weekly_edition(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 18), "The week", frequency=Frequency.WEEKLY)

    assert client.get("/archive/daily/2025-05-18").status_code == 404
    assert client.get("/archive/daily/2025-05-18/weekly").status_code == 200


# The RSS feed


def test_feed_is_rss_listing_editions_newest_first_with_their_addresses(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList
) -> None:
    older = published(session, daily_list, date(2025, 5, 15), "Thursday", preheader="Thu")
    newer = published(session, daily_list, date(2025, 5, 16), "Friday", preheader="Fri")
    published(session, daily_list, date(2025, 5, 17), "Draft", status=EditionStatus.DRAFT)

    response = client.get("/archive/daily/feed.xml")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert [(i["title"], i["link"], i["guid"], i["description"]) for i in feed_items(
        response.content
    )] == [
        ("Friday", archive_url(newer, settings), archive_url(newer, settings), "Fri"),
        ("Thursday", archive_url(older, settings), archive_url(older, settings), "Thu"),
    ]  # fmt: skip


def test_feed_reads_in_a_feed_reader(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList
) -> None:
    edition = published(session, daily_list, date(2025, 5, 16), "Friday")

    body = client.get("/archive/daily/feed.xml").content
    parsed = feedparser.parse(body)

    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Shortlysts Daily"
    assert parsed.feed.link == f"{settings.base_url}/archive/daily"
    [entry] = parsed.entries
    assert entry.title == "Friday"
    assert entry.link == archive_url(edition, settings)
    assert entry.id == archive_url(edition, settings)
    guid = ET.fromstring(body).find("channel/item/guid")  # noqa: S314
    assert guid is not None
    assert guid.get("isPermaLink") == "true"
    assert entry.published_parsed[:5] == (2025, 5, 16, 7, 5)


def test_feed_dates_are_rfc_822_when_sent_or_started(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    sent = published(session, daily_list, date(2025, 5, 15), "Sent")
    sending = published(
        session, daily_list, date(2025, 5, 16), "Sending", status=EditionStatus.SENDING
    )

    items = feed_items(client.get("/archive/daily/feed.xml").content)

    assert [parsedate_to_datetime(item["pubDate"]) for item in items] == [
        sending.send_started_at,
        sent.sent_at,
    ]
    assert items[0]["pubDate"] == "Fri, 16 May 2025 07:00:00 GMT"


def test_feed_escapes_titles_and_descriptions(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    subject = 'Cats & dogs: <b>"x < y"</b> > z'
    published(session, daily_list, date(2025, 5, 16), subject, preheader="Fish & <chips>")

    response = client.get("/archive/daily/feed.xml")

    assert b"Cats &amp; dogs: &lt;b&gt;" in response.content
    [item] = feed_items(response.content)
    assert (item["title"], item["description"]) == (subject, "Fish & <chips>")


def test_feed_drops_characters_xml_cannot_carry(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 16), "Bell\x07 and\x0b tab\tsafe")

    [item] = feed_items(client.get("/archive/daily/feed.xml").content)

    assert item["title"] == "Bell and tab\tsafe"


def test_feed_holds_the_thirty_newest_editions(
    client: TestClient, thirty_one_days: list[date]
) -> None:
    items = feed_items(client.get("/archive/daily/feed.xml").content)

    assert len(items) == 30
    assert items[0]["title"] == "News of 2025-05-01"
    assert items[-1]["title"] == "News of 2025-04-02"


def test_feed_of_a_list_with_nothing_sent_is_an_empty_channel(
    client: TestClient, daily_list: NewsletterList
) -> None:
    response = client.get("/archive/daily/feed.xml")

    assert response.status_code == 200
    assert feed_items(response.content) == []
    assert not feedparser.parse(response.content).bozo


def test_an_unchanged_feed_answers_304_to_a_feed_reader_polling_again(
    client: TestClient, session: Session, daily_list: NewsletterList
) -> None:
    published(session, daily_list, date(2025, 5, 15), "Thursday")
    etag = client.get("/archive/daily/feed.xml").headers["etag"]

    assert client.get("/archive/daily/feed.xml", headers={"if-none-match": etag}).status_code == 304
    published(session, daily_list, date(2025, 5, 16), "Friday")
    assert client.get("/archive/daily/feed.xml", headers={"if-none-match": etag}).status_code == 200
