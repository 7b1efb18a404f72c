"""What came back, in the admin: an edition's outcomes and why it paused itself, each list's
30-day rates against Gmail's line, refusals of our own mail per domain, and the blocked
readers an editor can look at and unblock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.editions import lifecycle
from newsletter.inbound.policy import Signal, apply
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Edition,
    Editor,
    MailEventKind,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
)
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.readers import unsubscribe
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import edition_with_readers
from tests.returns import (
    complaint,
    hard_bounce,
    reader_id,
    sender_refusal,
    sent_edition,
    soft_bounce,
)
from tests.web.conftest import AdminClient, visible_text

READERS = ["ada@example.com", "grace@example.com", "edsger@example.com", "barbara@gmail.example"]
PAUSED_WHY = (
    "Paused itself at 07:20 UTC: 12 of the first 200 messages bounced as dead addresses "
    "(6.0%, above 5.0%): is the list an old or imported one?"
)


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    return sent_edition(session, daily_list, READERS, now=now, settings=settings)


def stored_reader(session: Session, email: str) -> Subscriber:
    session.expire_all()
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def followed(admin: AdminClient, path: str, data: dict[str, str] | None = None) -> str:
    """Post a form with the session's CSRF token; the visible text of the page it leads to."""
    response = admin.post(path, data)
    assert response.status_code == 303, response.text
    return visible_text(admin.get(response.headers["location"]).text)


# --- The edition page -------------------------------------------------------------------------


def test_the_edition_page_shows_what_came_back(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    soft_bounce(session, edition, "grace@example.com", settings=settings, now=now)
    complaint(session, edition, "edsger@example.com", settings=settings, now=now)
    sender_refusal(session, edition, "barbara@gmail.example", settings=settings, now=now)
    unsubscribe(
        session, reader_id(session, "grace@example.com"), edition.list_id,
        client=Client(source="one-click"), now=now + timedelta(hours=1),
    )  # fmt: skip
    session.commit()

    page = visible_text(admin.get(f"/admin/editions/{edition.id}").text)

    assert (
        "What came back Delivered 4 accepted by the readers' mail servers "
        "Bounced, dead address 1 hard bounces: those readers are blocked "
        "Bounced, temporary 1 soft bounces (mailbox full, expired): they add to a score "
        "Refused for sender-side reasons 1" in page
    )
    assert "Complaints 1 reported as spam" in page
    assert "Unsubscribed by link 0" in page
    assert "Unsubscribed by one-click 1" in page
    assert "Unsubscribed by email 0" in page


def test_an_edition_not_yet_sent_shows_no_outcomes(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    draft = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)

    page = visible_text(admin.get(f"/admin/editions/{draft.id}").text)

    assert "What came back" not in page


@pytest.fixture
def paused(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    """An edition the circuit breaker paused mid-send."""
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    lifecycle.start_sending(session, edition.id, now=now)
    lifecycle.pause(session, edition, reason=PAUSED_WHY)
    session.commit()
    return edition


def test_an_edition_that_paused_itself_says_why_beside_the_resume_button(
    admin: AdminClient, paused: Edition
) -> None:
    page = admin.get(f"/admin/editions/{paused.id}").text

    notice = re.search(r'<div class="error" id="pause-reason" role="alert">(.*?)</div>', page, re.S)
    assert notice is not None
    assert visible_text(notice.group(1)).startswith(f"This edition paused itself. {PAUSED_WHY}")
    resume = page.index(f'action="/admin/editions/{paused.id}/resume"')
    assert 0 < resume - notice.end() < 500  # the button follows the notice


def test_a_resumed_edition_remembers_why_it_had_paused(admin: AdminClient, paused: Edition) -> None:
    page = followed(admin, f"/admin/editions/{paused.id}/resume")

    assert f"An editor resumed this edition after it paused itself: {PAUSED_WHY}" in page
    assert "This edition paused itself." not in page


# --- The dashboard ----------------------------------------------------------------------------


def test_the_dashboard_shows_each_lists_30_day_rates(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)

    page = visible_text(admin.get("/admin").text)

    assert (
        "List Delivered Hard bounces Soft bounces Complaints "
        "Shortlysts Daily 4 25.00% (1) 0.00% (0) 0.00% (0)" in page
    )


def test_a_list_at_gmails_complaint_line_is_flagged(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    complaint(session, edition, "ada@example.com", settings=settings, now=now)

    page = admin.get("/admin").text

    flagged = re.search(r'<td class="num warning">(.*?)</td>', page, re.S)
    assert flagged is not None
    assert visible_text(flagged.group(1)) == "25.00% (1) at or over Gmail's 0.3%"


def test_a_list_under_the_line_is_not_flagged(admin: AdminClient, edition: Edition) -> None:
    assert "at or over Gmail's" not in visible_text(admin.get("/admin").text)


def test_the_dashboard_lists_sender_side_refusals_per_domain(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    sender_refusal(session, edition, "barbara@gmail.example", settings=settings, now=now,
                   diagnostic="550 5.7.26 This mail is unauthenticated")  # fmt: skip

    page = visible_text(admin.get("/admin").text)

    assert (
        "Domain Refused Last Last reason gmail.example 1 Fri 16 May 2025 07:30 UTC "
        "5.7.1 spam blocked: 550 5.7.26 This mail is unauthenticated" in page
    )


def test_the_dashboard_has_no_refusals_table_when_none_came_back(
    admin: AdminClient, edition: Edition
) -> None:
    assert "Refused for sender-side reasons" not in visible_text(admin.get("/admin").text)


def test_the_dashboard_links_to_the_blocked_readers(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)

    page = admin.get("/admin").text

    assert '<a href="/admin/blocked">1 blocked reader</a>' in page


# --- Blocked readers --------------------------------------------------------------------------


def test_a_blocked_reader_page_shows_why_and_what_came_back(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)

    page = visible_text(
        admin.get(f"/admin/subscribers/{reader_id(session, 'ada@example.com')}").text
    )

    assert page.startswith(
        "ada@example.com blocked No mail goes to this address. Blocked Fri 16 May 2025 07:30 "
        "UTC: hard bounce 5.1.1 user unknown: 550 5.1.1 <x>: Recipient address rejected."
    )
    assert (
        f"Mail that came back When What Edition Status Done Said Fri 16 May 2025 07:30 UTC "
        f"bounce (hard) {edition.id} 5.1.1 user unknown blocked 550 5.1.1 <x>: Recipient "
        "address rejected" in page
    )


def test_unblocking_a_reader_lets_mail_go_to_them_again(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    ada = reader_id(session, "ada@example.com")

    page = followed(admin, f"/admin/subscribers/{ada}/unblock")

    assert page.startswith(
        "Unblocked ada@example.com: mail resumes to the lists they are still on."
    )
    assert "No mail goes to this address" not in page
    assert stored_reader(session, "ada@example.com").status == SubscriberStatus.ACTIVE


def test_unblocking_records_which_editor_did_it(
    admin: AdminClient, editor: Editor, session: Session, edition: Edition, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    ada = reader_id(session, "ada@example.com")

    followed(admin, f"/admin/subscribers/{ada}/unblock")

    session.expire_all()
    record = session.scalars(
        select(ConsentEvent).where(ConsentEvent.action == ConsentAction.UNBLOCK)
    ).one()
    # The editor's address is longer than the log's 32-character source: named by its ID.
    assert (record.source, record.detail) == (
        f"admin:editor-{editor.id}",
        "was blocked: hard bounce 5.1.1 user unknown: 550 5.1.1 <x>: Recipient address rejected",
    )


def test_unblocking_needs_the_forms_csrf_token(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    ada = reader_id(session, "ada@example.com")

    response = admin.client.post(f"/admin/subscribers/{ada}/unblock", follow_redirects=False)

    assert response.status_code == 403
    assert stored_reader(session, "ada@example.com").status == SubscriberStatus.BLOCKED


def test_unblocking_a_reader_who_is_not_blocked_says_so(
    admin: AdminClient, session: Session, edition: Edition
) -> None:
    page = followed(admin, f"/admin/subscribers/{reader_id(session, 'ada@example.com')}/unblock")

    assert page.startswith("ada@example.com is not blocked.")


def test_unblocking_an_unknown_reader_is_a_404(admin: AdminClient) -> None:
    response = admin.post("/admin/subscribers/999999/unblock")

    assert response.status_code == 404
    assert "There is no reader 999999." in visible_text(response.text)


def test_the_blocked_readers_page_shows_each_with_why_and_an_unblock_button(
    admin: AdminClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    ada = reader_id(session, "ada@example.com")

    page = admin.get("/admin/blocked").text

    assert (
        "1 blocked reader · page 1 of 1 Address Blocked Why Bounce score Change ada@example.com "
        "Fri 16 May 2025 07:30 UTC hard bounce 5.1.1 user unknown: 550 5.1.1 <x>: Recipient "
        "address rejected 0.0 Unblock" in visible_text(page)
    )
    assert f'action="/admin/subscribers/{ada}/unblock"' in page


def test_the_blocked_readers_page_is_paginated(
    admin: AdminClient, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    addresses = [f"reader{n:02}@example.com" for n in range(51)]
    import_subscribers(session, daily_list, [Signup(a) for a in addresses], now=now,
                       source="test")  # fmt: skip
    for n, address in enumerate(addresses):
        signal = Signal(MailEventKind.BOUNCE, category="hard", status="5.1.1",
                        subscriber_id=reader_id(session, address))  # fmt: skip
        apply(session, signal, source="smtp", settings=settings, now=now + timedelta(minutes=n))
    session.commit()

    first = visible_text(admin.get("/admin/blocked").text)
    second = visible_text(admin.get("/admin/blocked?page=2").text)

    assert "51 blocked readers · page 1 of 2" in first
    assert "reader50@example.com" in first
    assert "reader00@example.com" not in first
    assert "page 2 of 2" in second
    assert "reader00@example.com" in second


# --- The editor API ---------------------------------------------------------------------------


def test_the_editor_api_gives_an_editions_outcomes(
    api: TestClient, session: Session, edition: Edition, settings: Settings, now: datetime
) -> None:
    hard_bounce(session, edition, "ada@example.com", settings=settings, now=now)
    complaint(session, edition, "edsger@example.com", settings=settings, now=now)

    detail = api.get(f"/api/v1/editions/{edition.id}").json()

    assert (detail["pause_reason"], detail["outcomes"]) == ("", {
        "edition_id": edition.id, "delivered": 4, "bounced_hard": 1, "bounced_soft": 0,
        "refused_sender": 0, "complaints": 1, "unsubscribed_link": 0,
        "unsubscribed_one_click": 0, "unsubscribed_email": 0,
    })  # fmt: skip


def test_the_editor_api_says_why_an_edition_paused_itself(api: TestClient, paused: Edition) -> None:
    detail = api.get(f"/api/v1/editions/{paused.id}").json()

    assert (detail["status"], detail["pause_reason"]) == ("paused", PAUSED_WHY)
