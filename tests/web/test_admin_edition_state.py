"""The edition page through a send, server-rendered: what it says about the readers and
which buttons it offers in each status, and the parts its script fetches (``/controls``)
to follow a send without a reload (tests/browser/test_edition_after_send.py watches that)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.fanout import pending_batches
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.models import Edition, NewsletterList
from tests.factories import edition_with_readers
from tests.web.conftest import AdminClient, RefusingTransport, visible_text

READERS = ["ada@example.com", "grace@example.com", "edsger@example.com"]
# What only an edition that can still change or be sent offers.
BEFORE_SENDING = ["Send now", "Schedule", "Pin", "Remove", "Move down", "Re-render"]


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """A scheduled edition of three posts for three readers."""
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


def send_all(
    session: Session, edition: Edition, settings: Settings, now: datetime, refused: str = ""
) -> None:
    """Send the edition to every reader, as the workers would, in one batch."""
    start_sending(session, edition.id, now=now)
    session.commit()
    for batch in pending_batches(session, edition.id, batch_size=50):
        run_batch(session, batch, RefusingTransport(refused), settings, clock=lambda: now)


def buttons(page: str) -> list[str]:
    """The labels of the page's buttons, as a sighted editor reads them."""
    return [
        re.sub(r"<[^>]+>", "", label).strip()
        for label in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S)
    ]


def reach(page: str) -> str:
    """The facts table's Readers line."""
    match = re.search(r'<td id="reach">(.*?)</td>', page, re.S)
    assert match, "the page has no Readers line"
    return " ".join(match.group(1).split())


def test_an_edition_that_can_still_be_sent_says_who_would_receive_it(
    admin: AdminClient, edition: Edition
) -> None:
    page = admin.get(f"/admin/editions/{edition.id}").text

    assert reach(page) == "3 daily readers of Shortlysts Daily would receive it now"
    assert set(BEFORE_SENDING) <= set(buttons(page))


def test_a_sent_edition_says_how_many_it_reached_and_how_many_failed(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    send_all(session, edition, settings, now, refused="grace@example.com")

    page = admin.get(f"/admin/editions/{edition.id}").text

    assert reach(page) == "Sent to 2 of 3 readers; 1 failed"
    assert "would receive it now" not in visible_text(page)


def test_a_sent_edition_offers_only_a_test_copy(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    send_all(session, edition, settings, now)

    page = admin.get(f"/admin/editions/{edition.id}").text

    assert buttons(page) == ["Sign out", "Send a test to me"]
    assert "Intro, subject and preheader" not in visible_text(page)


def test_a_sending_edition_offers_pause_and_cancel_and_points_at_its_progress(
    admin: AdminClient, session: Session, edition: Edition, now: datetime
) -> None:
    start_sending(session, edition.id, now=now)
    session.commit()

    page = admin.get(f"/admin/editions/{edition.id}").text

    assert buttons(page) == ["Sign out", "Send a test to me", "Pause", "Cancel"]
    assert reach(page) == "Being sent: see Progress below"


def test_an_edition_cancelled_before_it_went_out_reached_nobody(
    admin: AdminClient, edition: Edition
) -> None:
    admin.post(f"/admin/editions/{edition.id}/cancel")

    page = admin.get(f"/admin/editions/{edition.id}").text

    assert reach(page) == "Nobody: it was cancelled before it went out"


def test_the_progress_box_does_not_ask_for_a_reload(
    admin: AdminClient, session: Session, edition: Edition, now: datetime
) -> None:
    start_sending(session, edition.id, now=now - timedelta(seconds=5))
    session.commit()

    page = admin.get(f"/admin/editions/{edition.id}").text

    assert "Progress" in visible_text(page)
    assert "reload" not in visible_text(page).lower()


def test_controls_are_the_pages_parts_for_the_status_now(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    before = admin.get(f"/admin/editions/{edition.id}/controls")
    send_all(session, edition, settings, now)

    after = admin.get(f"/admin/editions/{edition.id}/controls")

    assert after.status_code == 200
    assert 'data-status="sent"' in after.text
    parts = re.findall(r'id="([\w-]+)" data-part', after.text)
    assert parts == re.findall(r'id="([\w-]+)" data-part', before.text)
    assert parts == ["facts", "send-controls", "outcomes-part", "post-list", "words-part"]
    assert buttons(after.text) == ["Send a test to me"]
    assert reach(after.text) == "Sent to 3 of 3 readers; 0 failed"
    assert "What came back" in visible_text(after.text)


def test_controls_leave_the_flash_for_the_page(admin: AdminClient, edition: Edition) -> None:
    admin.post(f"/admin/editions/{edition.id}/render")

    admin.get(f"/admin/editions/{edition.id}/controls")
    page = admin.get(f"/admin/editions/{edition.id}").text

    assert "The email is rendered again from its posts." in visible_text(page)


def test_controls_of_an_unknown_edition_are_not_found(admin: AdminClient) -> None:
    response = admin.get("/admin/editions/999999/controls")

    assert response.status_code == 404
    assert "There is no edition 999999." in visible_text(response.text)
