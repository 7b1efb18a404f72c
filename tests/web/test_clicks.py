"""Tracked links as readers and scanners follow them: the redirect leads only to the
edition's own stories, and the flush counts people and machines apart."""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.analytics.links import link_token
from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.editions import service as editions
from newsletter.editions.archive import reader_view
from newsletter.models import (
    ClickTracking,
    Edition,
    EditionEngagement,
    NewsletterList,
    Post,
    ReaderClick,
    Subscriber,
    TrackedLink,
)
from newsletter.subscriptions import readers
from newsletter.subscriptions.consent import Client
from newsletter.web.clicks import flush_clicks
from tests.tracked import open_pixel, part, path_of, send_to_readers, tracked_links
from tests.web.conftest import AppFactory

READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture
def sent(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    clock: FrozenClock,
) -> tuple[Edition, dict[str, EmailMessage]]:  # fmt: skip
    return send_to_readers(session, daily_list, READERS, now=now, settings=settings, clock=clock)


@pytest.fixture
def web(make_client: AppFactory) -> TestClient:
    return make_client(headers={"user-agent": BROWSER})


def follow(client: TestClient, url: str, method: str = "GET", agent: str = BROWSER) -> str:
    response = client.request(
        method, path_of(url), follow_redirects=False, headers={"user-agent": agent}
    )
    assert response.status_code == 302, response.text
    return response.headers["location"]


def flushed(client: TestClient, clock: FrozenClock) -> None:
    """Let every message settle, then write what the redirect buffered."""
    clock.advance(timedelta(minutes=5))
    flush_clicks(client.app.state.web)  # type: ignore[attr-defined]


def counts(session: Session, edition: Edition) -> dict[str, tuple[int, int]]:
    """Each story's (human, machine) clicks, by the post's title."""
    session.expire_all()
    rows = session.execute(
        select(Post.title, TrackedLink.human_clicks, TrackedLink.machine_clicks)
        .join(Post, Post.id == TrackedLink.post_id)
        .where(TrackedLink.edition_id == edition.id)
    )
    return {title: (human, machine) for title, human, machine in rows}


def test_every_story_link_leads_to_its_story_with_utm_tags(
    sent: tuple[Edition, dict[str, EmailMessage]], web: TestClient, session: Session
) -> None:
    edition, received = sent
    links = tracked_links(received["ann@example.com"])
    stories = [item.post.url for item in edition.items]

    destinations = [follow(web, link) for link in links]

    assert len(links) == len(stories)
    assert [d.split("?")[0] for d in destinations] == stories
    assert all(
        d.endswith(f"?utm_source=daily&utm_medium=email&utm_campaign=daily-{edition.edition_date}")
        for d in destinations
    )


def test_the_text_part_carries_the_same_tracked_links(
    sent: tuple[Edition, dict[str, EmailMessage]],
) -> None:
    _, received = sent
    message = received["bob@example.com"]

    assert tracked_links(message, "plain") == tracked_links(message, "html")


def test_each_message_has_its_own_reader_part_and_no_address(
    sent: tuple[Edition, dict[str, EmailMessage]],
) -> None:
    _, received = sent
    first = {received[r]["to"]: tracked_links(received[r])[0] for r in READERS}

    assert len({link.rsplit("/", 1)[1] for link in first.values()}) == len(READERS)
    assert all("example.com" not in link.rsplit("/", 2)[1:] for link in first.values())


def test_a_readers_clicks_are_counted_per_story_after_the_flush(
    sent: tuple[Edition, dict[str, EmailMessage]], web: TestClient, session: Session,
    clock: FrozenClock,
) -> None:  # fmt: skip
    edition, received = sent
    clock.advance(timedelta(minutes=20))
    ann = tracked_links(received["ann@example.com"])
    follow(web, ann[0])
    clock.advance(timedelta(minutes=1))
    follow(web, ann[2])
    follow(web, tracked_links(received["bob@example.com"])[0])

    flushed(web, clock)

    titles = [item.post.title for item in edition.items]
    assert counts(session, edition)[titles[0]] == (2, 0)
    assert counts(session, edition)[titles[2]] == (1, 0)
    assert session.get(EditionEngagement, edition.id).unique_clickers == 2  # type: ignore[union-attr]


def test_a_gateway_fetching_every_link_on_delivery_counts_as_machine_only(
    sent: tuple[Edition, dict[str, EmailMessage]], make_client: AppFactory, session: Session,
    clock: FrozenClock,
) -> None:  # fmt: skip
    edition, received = sent
    # Like Safe Links: a real browser's user agent, every link, seconds after delivery.
    gateway = make_client(headers={"user-agent": BROWSER})
    clock.advance(timedelta(seconds=40))
    for link in tracked_links(received["cat@example.com"]):
        follow(gateway, link)
        clock.advance(timedelta(milliseconds=300))

    flushed(gateway, clock)

    assert set(counts(session, edition).values()) == {(0, 1)}
    assert session.get(EditionEngagement, edition.id).unique_clickers == 0  # type: ignore[union-attr]


def test_head_requests_and_scanners_count_as_machines(
    sent: tuple[Edition, dict[str, EmailMessage]], web: TestClient, session: Session,
    clock: FrozenClock,
) -> None:  # fmt: skip
    edition, received = sent
    clock.advance(timedelta(hours=1))
    link = tracked_links(received["ann@example.com"])[1]
    follow(web, link, method="HEAD")
    follow(web, link, agent="Mimecast-Link-Scanner/2.0")
    follow(web, link, agent="python-requests/2.31")

    flushed(web, clock)

    assert counts(session, edition)[edition.items[1].post.title] == (0, 3)


def test_links_in_the_archive_lead_on_without_being_counted(
    sent: tuple[Edition, dict[str, EmailMessage]], web: TestClient, session: Session,
    clock: FrozenClock,
) -> None:  # fmt: skip
    edition, _ = sent
    page = reader_view(edition, manage_url="https://news.example.com/manage")
    links = [p for p in page.split('"') if "/r/" in p]

    assert links
    assert all(link.endswith("/web") for link in links)
    follow(web, links[0])
    flushed(web, clock)
    assert set(counts(session, edition).values()) == {(0, 0)}


def test_a_reader_part_that_was_tampered_with_still_leads_to_the_story(
    sent: tuple[Edition, dict[str, EmailMessage]],
    web: TestClient,
) -> None:
    edition, received = sent
    link = tracked_links(received["ann@example.com"])[0]

    assert follow(web, link.rsplit("/", 1)[0] + "/d1.abc.forged").startswith(
        edition.items[0].post.url
    )
    assert follow(web, link.rsplit("/", 1)[0]).startswith(edition.items[0].post.url)


def hostile_paths(edition: Edition, settings: Settings) -> list[str]:
    good = link_token(settings.secret_key, edition.id, 1)
    edition_id, number, signature = good.split(".")
    other = link_token("not-our-key", edition.id, 1)
    return [
        f"/r/{edition_id}.{int(number) + 50}.{signature}",
        f"/r/{link_token(settings.secret_key, edition.id, 999)}",  # signed, but no such link
        f"/r/{link_token(settings.secret_key, edition.id + 1000, 1)}",  # no such edition
        f"/r/{other}",
        f"/r/{edition_id}.{number}.{signature[:-2]}",
        f"/r/{edition_id}.{number}.{signature.upper()}",
        "/r/https:%2F%2Fevil.example",
        "/r/%2F%2Fevil.example",
        "/r/1.1.x/https:%2F%2Fevil.example",
        f"/r/{edition_id}.{number}",
        "/r/..%2F..%2Fadmin",
        "/r/" + "9" * 500,
    ]


def test_the_redirect_refuses_every_link_it_did_not_make(
    sent: tuple[Edition, dict[str, EmailMessage]],
    web: TestClient,
    settings: Settings,
) -> None:
    edition, _ = sent
    refused = {
        path: web.get(path, follow_redirects=False) for path in hostile_paths(edition, settings)
    }

    assert {path: r.status_code for path, r in refused.items()} == dict.fromkeys(refused, 404)
    assert all("location" not in r.headers for r in refused.values())
    assert [p for p, r in refused.items() if "does not lead anywhere" not in r.text] == []


def test_the_redirect_leads_only_to_urls_of_the_edition(
    sent: tuple[Edition, dict[str, EmailMessage]],
    web: TestClient,
) -> None:
    edition, received = sent
    stories = {item.post.url for item in edition.items}
    link = path_of(tracked_links(received["ann@example.com"])[0])
    tries = [
        link + "?url=https://evil.example",
        link + "?next=//evil.example&redirect=https://evil.example",
        link + "/../../evil.example",
        link + "%0d%0aLocation:%20https://evil.example",
    ]

    locations = [web.get(t, follow_redirects=False).headers.get("location") for t in tries]

    assert all(loc is None or loc.split("?")[0] in stories for loc in locations)
    assert any(loc is not None for loc in locations)


def test_an_unknown_link_of_a_known_edition_leads_to_its_list_archive(
    sent: tuple[Edition, dict[str, EmailMessage]],
    web: TestClient,
    settings: Settings,
) -> None:
    edition, _ = sent

    page = web.get(f"/r/{link_token(settings.secret_key, edition.id, 999)}")

    assert page.status_code == 404
    assert 'href="/archive/daily"' in page.text


def test_a_list_that_tracks_individuals_records_whose_click_it_was(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    clock: FrozenClock, web: TestClient,
) -> None:  # fmt: skip
    daily_list.click_tracking = ClickTracking.INDIVIDUAL
    session.commit()
    _edition, received = send_to_readers(
        session, daily_list, READERS, now=now, settings=settings, clock=clock
    )
    clock.advance(timedelta(hours=2))
    follow(web, tracked_links(received["bob@example.com"])[3])

    flushed(web, clock)

    clicks = session.scalars(select(ReaderClick)).all()
    bob = session.scalar(select(Subscriber).where(Subscriber.email == "bob@example.com"))
    assert [(c.subscriber_id, c.machine) for c in clicks] == [(bob.id, False)]  # type: ignore[union-attr]


def test_a_list_without_tracking_links_straight_to_the_site(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    clock: FrozenClock,
) -> None:  # fmt: skip
    daily_list.click_tracking, daily_list.utm_tags = ClickTracking.OFF, False
    session.commit()
    edition, received = send_to_readers(
        session, daily_list, READERS, now=now, settings=settings, clock=clock
    )
    html = part(received["ann@example.com"], "html")

    assert tracked_links(received["ann@example.com"]) == []
    assert all(f'href="{item.post.url}"' in html for item in edition.items)
    assert open_pixel(received["ann@example.com"]) is None


def test_opens_through_apples_proxy_are_machine_opens(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    clock: FrozenClock, web: TestClient,
) -> None:  # fmt: skip
    daily_list.track_opens = True
    session.commit()
    edition, received = send_to_readers(
        session, daily_list, READERS, now=now, settings=settings, clock=clock
    )
    clock.advance(timedelta(minutes=30))
    for address in READERS:
        path = path_of(open_pixel(received[address]) or "")
        pixel = web.get(path, headers={"user-agent": "Mozilla/5.0"})
        assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")
    web.get(path_of(open_pixel(received["ann@example.com"]) or ""))

    flushed(web, clock)

    engagement = session.get(EditionEngagement, edition.id)
    assert engagement is not None
    assert (engagement.human_opens, engagement.machine_opens, engagement.unique_openers) == (
        1,
        3,
        1,
    )


def test_an_editors_test_copy_is_not_counted(
    sent: tuple[Edition, dict[str, EmailMessage]], web: TestClient, session: Session,
    settings: Settings, clock: FrozenClock,
) -> None:  # fmt: skip
    edition, _ = sent
    copy = editions.test_message(edition, "editor@example.com", settings, now=clock())
    message = message_from_bytes(copy.data, policy=policy.default)
    links = tracked_links(message) + tracked_links(message, "plain")  # type: ignore[arg-type]
    clock.advance(timedelta(hours=1))

    assert links
    assert all(link.endswith("/web") for link in links)
    follow(web, links[0])
    flushed(web, clock)
    assert set(counts(session, edition).values()) == {(0, 0)}


def test_an_erased_readers_old_email_does_not_count_them_twice(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings,
    clock: FrozenClock, web: TestClient,
) -> None:  # fmt: skip
    daily_list.click_tracking = ClickTracking.INDIVIDUAL
    session.commit()
    edition, received = send_to_readers(
        session, daily_list, READERS, now=now, settings=settings, clock=clock
    )
    link = tracked_links(received["bob@example.com"])[0]
    clock.advance(timedelta(hours=1))
    follow(web, link)
    flushed(web, clock)
    bob = session.scalar(select(Subscriber).where(Subscriber.email == "bob@example.com"))
    assert bob is not None
    readers.erase(session, bob.id, client=Client(source="link"), now=clock())
    session.commit()

    follow(web, link)
    flushed(web, clock)

    session.expire_all()
    assert session.get(EditionEngagement, edition.id).unique_clickers == 1  # type: ignore[union-attr]
    assert session.scalars(select(ReaderClick)).all() == []
