"""Issue 15's proof: an edition sent by the editor from the admin to readers at a real SMTP
server, through a real Celery worker; readers follow its links in Chromium, a mail gateway
fetches every link of one message at once; the report in the admin counts people per story
and shows the machine's clicks apart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import handoff
from newsletter.config import get_settings
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import Edition, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.browser.helpers import BASE_URL, sign_in, unique_address, wait_for_mail
from tests.factories import post
from tests.feed_server import Answer, FeedServer
from tests.services import LiveServer
from tests.smtp_server import RecordingHandler
from tests.tracked import tracked_links

LIST_NAME = "Night Desk"
TITLES = [
    "Harbour reopens after storm",
    "City council votes on trams",
    "Library turns 100",
    "Rail strike called off",
    "New bridge opens to cyclists",
    "School meals get a new menu",
]
DESKTOP_CHROME = GATEWAY_AGENT = (  # Safe Links sends a browser's agent: only its timing
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
# The gateway rule (a click within click_machine_seconds of delivery is a machine's) is 30 s;
# the flush here uses 2 s so that the readers need not wait half a minute to be people.
MACHINE_SECONDS = 2


def served(url: str, live_server: LiveServer) -> str:
    return live_server.url + url.removeprefix(BASE_URL)


def night_desk(session: Session, site: FeedServer, readers: list[str]) -> None:
    """A list whose edition today is a draft (its time is 23:59), its readers, and a story
    of each title from the last hour on ``site``, a local stand-in for the news site."""
    nl = create_list(
        session,
        ListSpec(
            slug="nightdesk", name=LIST_NAME, from_address="night@shortlysts.example.com",
            from_name="Shortlysts", schedule="59 23 * * *", timezone="UTC",
        ),
    )  # fmt: skip
    moment = datetime.now(UTC)
    upsert_posts(session, [
        post(i, moment - timedelta(minutes=10 + i), title=title, url=site.url(f"/posts/{i}"))
        for i, title in enumerate(TITLES)
    ])  # fmt: skip
    import_subscribers(session, nl, [Signup(r) for r in readers], now=moment, source="test")
    session.commit()


def serve_stories(site: FeedServer, edition: Edition) -> None:
    """Each story's page, at its URL as the email's links lead there (UTM tags and all)."""
    campaign = f"nightdesk-{edition.edition_date.isoformat()}"
    for item in edition.items:
        path = item.post.url.removeprefix(site.url(""))
        query = f"?utm_source=nightdesk&utm_medium=email&utm_campaign={campaign}"
        page = Answer(200, b"<h1>The story</h1>", {"Content-Type": "text/html"})
        site.serve(path + query, page)


def send_from_the_admin(page: Page, live_server: LiveServer, session: Session) -> Edition:
    sign_in(page, live_server.url, session)
    page.get_by_role("button", name=f"Prepare today's edition of {LIST_NAME}").click()
    expect(page.locator("#status-badge")).to_have_text("draft")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("#status-badge")).to_have_text("sent", timeout=30_000)
    session.rollback()
    nl = session.scalar(select(NewsletterList).where(NewsletterList.slug == "nightdesk"))
    edition = session.scalar(select(Edition).where(Edition.list_id == nl.id))  # type: ignore[union-attr]
    assert edition is not None
    return edition


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A reader's Chromium, saying what a desktop Chrome says: headless Chromium names itself
    HeadlessChrome, which the machine filter rightly takes for a robot."""
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def site() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def test_the_report_counts_readers_per_story_and_the_gateway_apart(
    page: Page, live_server: LiveServer, smtp: RecordingHandler, session: Session,
    site: FeedServer,
) -> None:  # fmt: skip
    ann, bob, cat = (unique_address(name) for name in ("ann", "bob", "cat"))
    night_desk(session, site, [ann, bob, cat])
    edition = send_from_the_admin(page, live_server, session)
    serve_stories(site, edition)
    links = {r: tracked_links(wait_for_mail(smtp, r, LIST_NAME).message) for r in (ann, bob, cat)}
    stories = [item.post for item in edition.items]
    time.sleep(MACHINE_SECONDS + 1)

    # The gateway: every link of cat's message within a second, and a HEAD for good measure.
    with httpx.Client(headers={"user-agent": GATEWAY_AGENT}) as gateway:
        for link in links[cat]:
            assert gateway.get(served(link, live_server)).status_code == 302
        gateway.head(served(links[cat][0], live_server))
    # The readers, in the browser: ann reads two stories, bob the one ann read first.
    reading = [(ann, 0), (ann, 2), (bob, 0)]
    for reader, index in reading:
        page.goto(served(links[reader][index], live_server))
        expect(page.get_by_role("heading", name="The story")).to_be_visible()
    visited = [site.url(path) for path, _ in site.requests if path.startswith("/posts/")]
    assert [v.split("?")[0] for v in visited] == [stories[i].url for _, i in reading]

    settings = get_settings().model_copy(update={"click_machine_seconds": MACHINE_SECONDS})
    settled = datetime.now(UTC) + timedelta(minutes=5)
    assert handoff.flush_clicks(settings, lambda: settled).clicks == len(TITLES) + 1 + len(reading)

    page.goto(f"{live_server.url}/admin/editions/{edition.id}/report")
    figures = page.locator("#clicks + dl.figures")
    expect(figures.get_by_text("Readers who clicked")).to_be_visible()
    assert figure(page, "Readers who clicked") == "2"
    assert figure(page, "Click-through rate").startswith("66.7 %")
    assert figure(page, "Clicks by people") == "3"
    assert figure(page, "Clicks by machines") == str(len(TITLES) + 1)
    assert figure(page, "Delivered") == "3"
    rows = page.locator("#stories ~ div table tbody tr")
    expect(rows).to_have_count(len(TITLES))
    first, second = rows.nth(0).locator("td"), rows.nth(1).locator("td")
    assert [first.nth(i).inner_text() for i in (1, 2, 3, 5)] == ["1", stories[0].title, "2", "2"]
    assert [second.nth(i).inner_text() for i in (1, 2, 3, 5)] == ["3", stories[2].title, "1", "1"]
    expect(page.locator("figure.chart svg")).to_be_visible()


def figure(page: Page, label: str) -> str:
    """The number under a figure's label (its small print left out)."""
    value = page.locator("dl.figures div", has=page.locator("dt", has_text=label)).locator("dd")
    small = value.locator("small")
    text = value.inner_text()
    if small.count():
        text = text.replace(small.inner_text(), "")
    return text.strip()
