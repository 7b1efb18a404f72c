"""A reader's whole journey in a real browser, against the served app, a real Celery worker
and a real SMTP server: sign up, confirm from the email, change preferences, unsubscribe."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.prepared import PreparedEdition, Recipient
from newsletter.models import Frequency, SubscriptionStatus
from newsletter.rendering.placeholders import Markers
from newsletter.subscriptions.service import Signup, find_subscriber, subscribe
from newsletter.subscriptions.tokens import PREFERENCES, make_token
from tests.browser.helpers import (
    BASE_URL,
    link,
    make_list,
    stored,
    text_part,
    unique_address,
    wait_for_mail,
)
from tests.factories import key_of
from tests.services import LiveServer
from tests.smtp_server import RecordingHandler


@pytest.mark.parametrize(
    "via_welcome_email",
    [
        pytest.param(True, id="links-from-welcome-email"),
        pytest.param(False, id="links-from-pages-and-digest"),
    ],
)
def test_sign_up_confirm_change_preferences_and_unsubscribe(
    via_welcome_email: bool,
    page: Page,
    live_server: LiveServer,
    smtp: RecordingHandler,
    session: Session,
    settings: Settings,
) -> None:
    """The whole journey. ``links-from-welcome-email`` follows the welcome email's links;
    the other variant takes the same pages from the confirmation page's link and from the
    unsubscribe link a digest carries, so the pages stay covered while the welcome email
    cannot be sent."""
    nl = make_list(session)
    address = unique_address()

    # Sign up.
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_label("Email address").fill(address)
    page.locator('input[name="lists"][value="morning"]').check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    assert stored(session, address, nl.id).status == SubscriptionStatus.PENDING

    # The confirmation email arrives through the worker; its link shows a page, not a change.
    confirmation = wait_for_mail(smtp, address, "Confirm your subscription")
    assert confirmation.sender == "brief@shortlysts.example.com"
    confirm_url = link(text_part(confirmation), "/confirm/", live_server.url)
    page.goto(confirm_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    button = page.get_by_role("button", name="Confirm my subscription")
    expect(button).to_be_visible()
    assert stored(session, address, nl.id).status == SubscriptionStatus.PENDING

    button.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're subscribed")
    expect(page.get_by_text("You will receive Morning Brief")).to_be_visible()
    assert stored(session, address, nl.id).status == SubscriptionStatus.CONFIRMED

    if via_welcome_email:
        welcome_text = text_part(wait_for_mail(smtp, address, "Welcome to Morning Brief"))
        page.goto(link(welcome_text, "/preferences/", live_server.url))
        unsubscribe_url = link(welcome_text, "/unsubscribe/", live_server.url)
    else:
        page.get_by_role("link", name="Change your preferences").click()
        subscriber_id = _subscriber_id(session, address)
        header = _list_unsubscribe(settings, subscriber_id, nl.id, address)
        unsubscribe_url = link(header, "/unsubscribe/", live_server.url)

    # Preferences: weekly and paused.
    expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
    expect(page.get_by_text(f"For {address}")).to_be_visible()
    expect(page.locator('input[name="lists"][value="morning"]')).to_be_checked()
    page.get_by_label("Once a week").check()
    page.get_by_label("Pause all emails for now").check()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    expect(page.get_by_label("Once a week")).to_be_checked()
    expect(page.get_by_label("Pause all emails for now")).to_be_checked()
    now_stored = stored(session, address, nl.id)
    assert now_stored.status == SubscriptionStatus.CONFIRMED
    assert now_stored.frequency == Frequency.WEEKLY
    assert now_stored.paused

    # Unsubscribe: the link shows a page with a button; the button makes the change.
    page.goto(unsubscribe_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from Morning Brief?")
    expect(page.get_by_text(address)).to_be_visible()
    assert stored(session, address, nl.id).status == SubscriptionStatus.CONFIRMED
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're unsubscribed")
    assert stored(session, address, nl.id).status == SubscriptionStatus.UNSUBSCRIBED

    # One confirmation email and no other so far (the welcome email is checked above).
    subjects = [str(r.message["Subject"]) for r in smtp.received if address in r.recipients]
    assert subjects.count("Confirm your subscription to Morning Brief") == 1


def _subscriber_id(session: Session, email: str) -> int:
    session.rollback()
    session.expire_all()
    try:
        found = find_subscriber(session, email)
        assert found is not None
        return found.id
    finally:
        session.rollback()


def _list_unsubscribe(settings: Settings, subscriber_id: int, list_id: int, email: str) -> str:
    """The List-Unsubscribe header of a digest as the delivery code writes it for a reader."""
    edition = PreparedEdition(
        edition_id=1, list_id=list_id, list_slug="morning", list_name="Morning Brief",
        subject="Morning Brief", html="<p>news</p>", text="news", from_name="Shortlysts",
        from_address="brief@shortlysts.example.com", reply_to=None,
        domain="news.example.com", base_url=settings.base_url, secret_key=settings.secret_key,
        date=datetime.now(UTC), markers=Markers(""),
    )  # fmt: skip
    data = edition.personalise(Recipient(1, subscriber_id, email, key_of(subscriber_id))).data
    parsed = message_from_bytes(data, policy=policy.default)
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    return str(parsed["List-Unsubscribe"])


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_one_click_unsubscribe_as_a_mailbox_provider_sends_it(
    content_type: str, live_server: LiveServer, session: Session, settings: Settings
) -> None:
    """RFC 8058: the provider POSTs ``List-Unsubscribe=One-Click`` to the header's https URL,
    with no cookies, and expects a 2xx without a redirect."""
    nl = make_list(session)
    address = unique_address("oneclick")
    subscription, _ = subscribe(
        session, nl, Signup(address), now=datetime.now(UTC), confirmed=True, source="test"
    )
    subscriber_id = subscription.subscriber_id
    session.commit()

    header = _list_unsubscribe(settings, subscriber_id, nl.id, address)
    https = re.search(r"<(https://[^>]+)>", header)
    assert https, header
    assert https.group(1).startswith(f"{BASE_URL}/unsubscribe/")
    url = live_server.url + https.group(1).removeprefix(BASE_URL)

    headers = {"User-Agent": "Mozilla/5.0 (compatible; GoogleOneClickUnsubscribe)"}
    with httpx.Client(timeout=10, follow_redirects=False) as client:
        if content_type == "multipart/form-data":
            response = client.post(
                url, files={"List-Unsubscribe": (None, "One-Click")}, headers=headers
            )
        else:
            response = client.post(
                url,
                content=b"List-Unsubscribe=One-Click",
                headers={**headers, "Content-Type": content_type},
            )
        assert response.request.headers["content-type"].startswith(content_type)
        assert response.status_code == 200, response.text
        assert response.text == "Unsubscribed from Morning Brief."
        assert stored(session, address, nl.id).status == SubscriptionStatus.UNSUBSCRIBED

        # Providers retry: a second POST is answered the same and changes nothing.
        again = client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert again.status_code == 200
        assert stored(session, address, nl.id).status == SubscriptionStatus.UNSUBSCRIBED


def test_unsubscribe_from_everything_ends_on_the_preferences_page(
    page: Page, live_server: LiveServer, session: Session, settings: Settings
) -> None:
    """The button's POST answers with a redirect: the address bar shows the preferences page
    again (a reload or a bookmark is a GET), which says what happened."""
    lists = [make_list(session), make_list(session, slug="weekend", name="Weekend Long Reads")]
    address = unique_address()
    for nl in lists:
        subscription, _ = subscribe(
            session, nl, Signup(address), now=datetime.now(UTC), confirmed=True, source="test"
        )
    session.commit()
    token = make_token(
        settings.secret_key, PREFERENCES, subscription.subscriber_id, lists[0].id,
        key_of(subscription.subscriber_id),
    )  # fmt: skip
    preferences_url = f"{live_server.url}/preferences/{token}"
    page.goto(preferences_url)
    expect(page.get_by_label("Weekend Long Reads")).to_be_checked()

    page.get_by_role("button", name="Unsubscribe from everything").click()

    expect(page.get_by_role("status")).to_have_text("You are unsubscribed from every list.")
    assert page.url == f"{preferences_url}?done=unsubscribed-all"
    expect(page.get_by_label("Morning Brief")).not_to_be_checked()
    expect(page.get_by_label("Weekend Long Reads")).not_to_be_checked()
    assert {stored(session, address, nl.id).status for nl in lists} == {
        SubscriptionStatus.UNSUBSCRIBED
    }
