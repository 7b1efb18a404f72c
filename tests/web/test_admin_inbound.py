"""Mail that came back, in the admin: every stored message with its status, kind, error and
what it did, a page per message with its raw bytes shown as text, for editors only. Anyone
can mail the bounce address, so what they send must never run in an editor's browser."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import NewsletterList
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.returned_mail import (
    DSN,
    HOSTILE,
    failed_message,
    processed_bounce,
    waiting_message,
)
from tests.web.conftest import AdminClient, visible_text

ANN = "ann@example.com"


@pytest.fixture
def ann(session: Session, daily_list: NewsletterList, now: datetime) -> None:
    import_subscribers(session, daily_list, [Signup(ANN)], now=now, source="test")
    session.commit()


def test_the_dashboard_links_to_the_mail_that_came_back(admin: AdminClient) -> None:
    page = admin.get("/admin").text

    assert '<a href="/admin/inbound">Mail that came back</a>' in page


def test_the_page_lists_each_message_with_its_status_kind_error_and_what_it_did(
    admin: AdminClient, session: Session, ann: None, settings: Settings, now: datetime
) -> None:
    bounce = processed_bounce(session, ANN, settings=settings, now=now)
    broken = failed_message(session, DSN, now=now + timedelta(minutes=1))

    text = visible_text(admin.get("/admin/inbound").text)

    assert "2 messages · page 1 of 1" in text
    assert (
        f"#{broken} Fri 16 May 2025 07:31 UTC smtp {len(DSN):,} — failed "
        "ValueError: the MIME structure is broken nothing"
    ) in text
    assert (
        f"#{bounce} Fri 16 May 2025 07:30 UTC mailgun {len(DSN):,} bounce processed "
        "bounce (hard): blocked, reader"
    ) in text
    assert "Traceback" not in text  # the first line only; the message's page has the rest


def test_the_page_filters_by_status_and_is_paginated(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    for minute in range(51):
        failed_message(session, DSN, now=now + timedelta(minutes=minute), error=f"Error {minute}")
    waiting_message(session, DSN, now=now)

    first = visible_text(admin.get("/admin/inbound?status=failed").text)
    second = admin.get("/admin/inbound?status=failed&page=2").text

    assert "51 messages · page 1 of 2" in first
    assert "Error 50" in first
    assert "Error 0" not in first
    assert '<a href="/admin/inbound?status=failed&amp;page=1" rel="prev">' in second
    assert "Error 0" in visible_text(second)
    assert "received" not in visible_text(second).split("Message Received")[1]


def test_an_unknown_status_is_a_400_that_says_which_there_are(admin: AdminClient) -> None:
    response = admin.get("/admin/inbound?status=lost")

    assert response.status_code == 400
    assert "'lost' is not one of received, processed, failed." in visible_text(response.text)


def test_a_message_page_shows_headers_events_and_the_raw_message(
    admin: AdminClient, session: Session, ann: None, settings: Settings, now: datetime
) -> None:
    bounce = processed_bounce(session, ANN, settings=settings, now=now)

    text = visible_text(admin.get(f"/admin/inbound/{bounce}").text)

    assert f"Returned message #{bounce} processed" in text
    assert "Subject Undelivered Mail Returned to Sender" in text
    assert "Auto-Submitted auto-replied" in text
    assert f"bounce (hard) {ANN}" in text
    assert "5.1.1 user unknown blocked 550 5.1.1 User unknown" in text
    assert "said: 550 5.1.1 User unknown" in text.split("The message as it came")[1]


def test_a_failed_message_page_shows_the_whole_error(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    broken = failed_message(session, DSN, now=now)

    text = visible_text(admin.get(f"/admin/inbound/{broken}").text)

    assert "It could not be processed." in text
    assert "ValueError: the MIME structure is broken Traceback (most recent call last)" in text
    assert "No events: its processing failed." in text


def test_hostile_mail_is_shown_as_text_never_as_markup(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    message_id = failed_message(session, HOSTILE, now=now, error="<script>alert(2)</script>")

    listing = admin.get("/admin/inbound").text
    page = admin.get(f"/admin/inbound/{message_id}").text

    assert "<script>" not in listing
    assert "<script>" not in page
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in page  # the raw body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the Subject header
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # the error
    assert "\ufffd\ufffd not UTF-8" in page


def test_a_large_message_is_shown_only_in_part(
    admin: AdminClient, session: Session, now: datetime
) -> None:
    large = DSN + b"x" * 300_000 + b"THE END"
    message_id = waiting_message(session, large, now=now)

    page = admin.get(f"/admin/inbound/{message_id}").text

    assert f"The first 100,000 of {len(large):,} bytes" in visible_text(page)
    assert "THE END" not in page


def test_an_unknown_message_is_a_404(admin: AdminClient) -> None:
    response = admin.get("/admin/inbound/4242")

    assert response.status_code == 404
    assert "There is no returned message 4242." in visible_text(response.text)


@pytest.mark.parametrize("path", ["/admin/inbound", "/admin/inbound/1"])
def test_a_stranger_is_sent_to_the_login_page(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")
