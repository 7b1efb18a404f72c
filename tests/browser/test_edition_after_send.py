"""The admin after "Send now", in a real browser against the served app, a real Celery worker
and a real SMTP server: the edition page follows the send to its end without a reload, and
the dashboard stops offering to prepare an edition the list already has today."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Edition, EditionStatus, NewsletterList
from tests.browser.helpers import end_of_day_list, sign_in, unique_address
from tests.services import LiveServer
from tests.smtp_server import RecordingHandler

LIST_NAME = "Evening Wire"
TITLES = ["Harbour reopens after storm", "City council votes on trams", "Library turns 100"]
# The buttons of an edition that can still change or be sent, by their accessible names.
BEFORE_SENDING = ["Send now", "Cancel", "Schedule", f"Pin: {TITLES[0]}", f"Remove: {TITLES[0]}"]


def evening_list(session: Session, readers: int = 3) -> NewsletterList:
    """A list whose edition today is a draft, three posts from the last hour, its readers."""
    return end_of_day_list(
        session, slug="evening", name=LIST_NAME, titles=TITLES,
        readers=[unique_address() for _ in range(readers)],
    )  # fmt: skip


@contextmanager
def mail_held(smtp: RecordingHandler) -> Iterator[None]:
    """The SMTP server takes no message until the block ends (its handler waits for the
    lock), so a send cannot finish before the page that started it has loaded."""
    with smtp.lock:
        yield


def prepare_todays_edition(page: Page) -> None:
    page.get_by_role("button", name=f"Prepare today's edition of {LIST_NAME}").click()
    expect(page.locator("#status-badge")).to_have_text("draft")


def test_the_edition_page_follows_a_send_to_its_end_without_a_reload(
    page: Page, live_server: LiveServer, smtp: RecordingHandler, session: Session
) -> None:
    evening_list(session)
    sign_in(page, live_server.url, session)
    prepare_todays_edition(page)
    for name in BEFORE_SENDING:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()

    with mail_held(smtp):
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Send now").click()
        expect(page.get_by_role("status").first).to_contain_text("Sending has started")
        # Marks this document: a reload or a navigation would lose it.
        page.evaluate("window.sameDocument = true")
        expect(page.locator("#status-badge")).to_have_text("sending", timeout=20_000)
        # The controls follow the badge with a fetch of their own: as long a wait as the badge.
        expect(page.get_by_role("button", name="Pause")).to_be_visible(timeout=20_000)
        expect(page.get_by_role("button", name="Send now")).to_have_count(0)

    expect(page.locator("#status-badge")).to_have_text("sent", timeout=30_000)
    for name in [*BEFORE_SENDING, "Pause"]:
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Send a test to me")).to_be_visible()
    expect(page.locator("#reach")).to_have_text("Sent to 3 of 3 readers; 0 failed")
    expect(page.get_by_role("heading", name="What came back")).to_be_visible()
    expect(page.get_by_text("reload")).to_have_count(0)
    assert page.evaluate("window.sameDocument") is True


def test_the_dashboard_offers_todays_edition_only_until_the_list_has_one(
    page: Page, live_server: LiveServer, session: Session
) -> None:
    nl = evening_list(session)
    sign_in(page, live_server.url, session)
    prepare_todays_edition(page)
    edition_url = page.url

    page.goto(f"{live_server.url}/admin")
    today = page.get_by_role("link", name=f"Today's edition of {LIST_NAME}")
    expect(today).to_be_visible()
    expect(
        page.get_by_role("button", name=f"Prepare today's edition of {LIST_NAME}")
    ).to_have_count(0)

    sent_at = _mark_sent(session, nl)
    page.reload()
    expect(page.get_by_role("region", name="Lists")).to_contain_text(
        f"Today's edition was sent at {sent_at:%H:%M} UTC."
    )
    today.click()
    assert page.url == edition_url
    expect(page.locator("#status-badge")).to_have_text("sent")


def _mark_sent(session: Session, nl: NewsletterList) -> datetime:
    """Today's edition of ``nl`` as if its send had just finished."""
    session.rollback()
    session.expire_all()
    edition = session.scalars(select(Edition).where(Edition.list_id == nl.id)).one()
    sent_at = datetime.now(UTC)
    edition.status, edition.send_started_at, edition.sent_at = EditionStatus.SENT, sent_at, sent_at
    session.commit()
    return sent_at
