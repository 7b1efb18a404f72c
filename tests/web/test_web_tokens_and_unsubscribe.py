"""Confirmation links and unsubscribing, as readers and mail providers use them.

A GET never changes anything (mail scanners follow links); the POST does. One-click
unsubscribe is answered exactly as RFC 8058 asks: 200, no redirect, effective at once.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.delivery import notices
from newsletter.delivery.fanout import pending_batches
from newsletter.delivery.transports import MemoryTransport
from newsletter.editions.lifecycle import start_sending
from newsletter.editions.sending import run_batch
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.subscriptions import readers
from newsletter.subscriptions.consent import Client
from newsletter.subscriptions.tokens import UNSUBSCRIBE, make_confirm_token, make_token
from tests.factories import edition_with_readers, key_of
from tests.moments import TEST_NOW
from tests.web.conftest import RecordingNotifier, error_paragraph, visible_text

EMAIL = "ada@example.com"
ONE_CLICK = b"List-Unsubscribe=One-Click"
BOUNDARY = "----GmailOneClick7d3f"
MULTIPART_ONE_CLICK = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
    "\r\n"
    "One-Click\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()


def at_test_time() -> datetime:
    return TEST_NOW


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def events(session: Session, action: ConsentAction) -> list[ConsentEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == action).order_by(ConsentEvent.id)
        )
    )


def subscription_of(session: Session, address: str = EMAIL) -> Subscription:
    session.expire_all()
    return session.scalars(
        select(Subscription).join(Subscriber).where(Subscriber.email == address)
    ).one()


def sign_up(client: TestClient, notifier: RecordingNotifier, address: str = EMAIL) -> None:
    response = client.post("/api/v1/subscriptions", json={"email": address, "lists": ["daily"]})
    assert response.status_code == 202
    assert notifier.calls[-1].kind == "confirm"


def confirm_path(session: Session, settings: Settings, notifier: RecordingNotifier) -> str:
    """The link in the confirmation email the app asked to send, built as the worker does."""
    notice = notifier.of_kind("confirm")[-1]
    built = notices.confirmation(
        session, notice.subscriber_id, notice.list_ids, settings=settings, now=at_test_time()
    )
    assert built is not None
    text = parse(built.data).get_body(("plain",))
    assert text is not None
    match = re.search(r"https://news\.example\.com(/confirm/[A-Za-z0-9_.\-]+)", text.get_content())
    assert match, text.get_content()
    return match.group(1)


def unsubscribe_path(settings: Settings, subscription: Subscription) -> str:
    token = make_token(
        settings.secret_key,
        UNSUBSCRIBE,
        subscription.subscriber_id,
        subscription.list_id,
        key_of(subscription.subscriber_id),
    )
    return f"/unsubscribe/{token}"


@pytest.fixture
def pending(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    notifier: RecordingNotifier,
) -> str:
    """A reader who signed up; returns the path of their confirmation link."""
    sign_up(client, notifier)
    return confirm_path(session, settings, notifier)


@pytest.fixture
def subscribed(
    client: TestClient, session: Session, settings: Settings, pending: str
) -> Subscription:
    assert client.post(pending).status_code == 200
    return subscription_of(session)


# --- confirming ----------------------------------------------------------------------------


def test_confirm_link_shows_a_button_and_does_not_confirm(
    client: TestClient, session: Session, pending: str, notifier: RecordingNotifier
) -> None:
    response = client.get(pending)

    assert response.status_code == 200
    assert f'<form method="post" action="{pending}">' in response.text
    assert "Confirm my subscription" in visible_text(response.text)
    assert "Shortlysts Daily" in visible_text(response.text)
    assert subscription_of(session).status == SubscriptionStatus.PENDING
    assert events(session, ConsentAction.CONFIRM) == []
    assert notifier.of_kind("welcome") == []


def test_confirming_subscribes_records_consent_and_welcomes(
    client: TestClient,
    session: Session,
    pending: str,
    daily_list: NewsletterList,
    notifier: RecordingNotifier,
) -> None:
    response = client.post(pending)

    assert response.status_code == 200
    text = visible_text(response.text)
    assert "You're subscribed" in text
    assert "Shortlysts Daily" in text
    assert re.search(r'href="/preferences/[^"]+"', response.text)
    subscription = subscription_of(session)
    assert subscription.status == SubscriptionStatus.CONFIRMED
    assert subscription.confirmed_at is not None
    [event] = events(session, ConsentAction.CONFIRM)
    assert event.email == EMAIL
    assert event.list_id == daily_list.id
    assert event.source == "link"
    assert event.ip
    assert event.user_agent
    welcome = notifier.of_kind("welcome")
    assert [(n.subscriber_id, n.list_ids) for n in welcome] == [
        (subscription.subscriber_id, [daily_list.id])
    ]


def test_preferences_link_after_confirming_works(
    client: TestClient, session: Session, pending: str
) -> None:
    response = client.post(pending)
    link = re.search(r'href="(/preferences/[^"]+)"', response.text)
    assert link

    page = client.get(link.group(1))

    assert page.status_code == 200
    assert EMAIL in visible_text(page.text)


@pytest.fixture
def expired_path(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    notifier: RecordingNotifier,
    now: datetime,
) -> str:
    """A genuine confirmation link signed just over its lifetime ago."""
    sign_up(client, notifier)
    notice = notifier.of_kind("confirm")[-1]
    signed_at = now - timedelta(hours=settings.confirm_token_max_age_hours, seconds=60)
    token = make_confirm_token(
        settings.secret_key,
        notice.subscriber_id,
        notice.list_ids,
        key_of(notice.subscriber_id),
        now=signed_at,
    )
    return f"/confirm/{token}"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_expired_confirm_link_is_refused(
    client: TestClient,
    session: Session,
    expired_path: str,
    notifier: RecordingNotifier,
    method: str,
) -> None:
    response = client.request(method, expired_path)

    assert response.status_code == 400
    message = error_paragraph(response.text)
    assert "expired" in message
    assert "sign up again" in message
    assert subscription_of(session).status == SubscriptionStatus.PENDING
    assert events(session, ConsentAction.CONFIRM) == []
    assert notifier.of_kind("welcome") == []


def test_confirm_link_just_inside_its_lifetime_still_works(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    notifier: RecordingNotifier,
    now: datetime,
) -> None:
    sign_up(client, notifier)
    notice = notifier.of_kind("confirm")[-1]
    signed_at = now - timedelta(hours=settings.confirm_token_max_age_hours, seconds=-60)
    token = make_confirm_token(
        settings.secret_key,
        notice.subscriber_id,
        notice.list_ids,
        key_of(notice.subscriber_id),
        now=signed_at,
    )

    assert client.post(f"/confirm/{token}").status_code == 200
    assert subscription_of(session).status == SubscriptionStatus.CONFIRMED


def test_confirming_twice_is_harmless(
    client: TestClient, session: Session, pending: str, notifier: RecordingNotifier
) -> None:
    first = client.post(pending)
    second = client.post(pending)

    assert first.status_code == second.status_code == 200
    assert "You're subscribed" in visible_text(second.text)
    assert len(events(session, ConsentAction.CONFIRM)) == 1
    assert len(notifier.of_kind("welcome")) == 1
    assert subscription_of(session).status == SubscriptionStatus.CONFIRMED


def test_confirm_link_replayed_after_unsubscribing_does_not_resubscribe(
    client: TestClient,
    session: Session,
    settings: Settings,
    pending: str,
    notifier: RecordingNotifier,
) -> None:
    client.post(pending)
    subscription = subscription_of(session)
    assert (
        client.post(
            unsubscribe_path(settings, subscription),
            content=ONE_CLICK,
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 200
    )
    welcomes = len(notifier.of_kind("welcome"))

    response = client.post(pending)

    assert response.status_code == 410
    assert "Nothing to confirm" in visible_text(response.text)
    assert 'href="/subscribe"' in response.text
    assert subscription_of(session).status == SubscriptionStatus.UNSUBSCRIBED
    assert len(events(session, ConsentAction.CONFIRM)) == 1
    assert len(notifier.of_kind("welcome")) == welcomes


def test_confirm_link_of_a_reader_blocked_since_confirms_nothing_and_sends_no_welcome(
    client: TestClient, session: Session, pending: str, notifier: RecordingNotifier
) -> None:
    reader = subscription_of(session).subscriber
    reader.status = SubscriberStatus.BLOCKED  # the confirmation request bounced hard
    session.commit()

    response = client.post(pending)

    assert response.status_code == 410
    assert "Nothing to confirm" in visible_text(response.text)
    assert subscription_of(session).status == SubscriptionStatus.PENDING
    assert notifier.of_kind("welcome") == []


def test_confirm_link_of_an_erased_reader_confirms_nothing(
    client: TestClient, session: Session, pending: str
) -> None:
    subscriber_id = subscription_of(session).subscriber_id
    assert readers.erase(session, subscriber_id, client=Client("test"), now=at_test_time())
    session.commit()

    response = client.post(pending)

    assert response.status_code == 410
    assert "Nothing to confirm" in visible_text(response.text)
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0


# --- one-click unsubscribe -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(ONE_CLICK, "application/x-www-form-urlencoded", id="urlencoded"),
        pytest.param(
            MULTIPART_ONE_CLICK, f"multipart/form-data; boundary={BOUNDARY}", id="multipart"
        ),
    ],
)
def test_one_click_unsubscribe_as_gmail_sends_it(
    client: TestClient,
    session: Session,
    settings: Settings,
    subscribed: Subscription,
    body: bytes,
    content_type: str,
) -> None:
    path = unsubscribe_path(settings, subscribed)

    response = client.post(
        path, content=body, headers={"content-type": content_type}, follow_redirects=False
    )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "Unsubscribed from Shortlysts Daily" in response.text
    subscription = subscription_of(session)
    assert subscription.status == SubscriptionStatus.UNSUBSCRIBED
    assert subscription.unsubscribed_at is not None
    [event] = events(session, ConsentAction.UNSUBSCRIBE)
    assert event.source == "one-click"

    again = client.post(
        path, content=body, headers={"content-type": content_type}, follow_redirects=False
    )

    assert again.status_code == 200
    assert "location" not in again.headers
    assert len(events(session, ConsentAction.UNSUBSCRIBE)) == 1
    assert subscription_of(session).status == SubscriptionStatus.UNSUBSCRIBED


def test_unsubscribe_page_shows_a_button_and_changes_nothing(
    client: TestClient, session: Session, settings: Settings, subscribed: Subscription
) -> None:
    path = unsubscribe_path(settings, subscribed)

    response = client.get(path)

    assert response.status_code == 200
    assert f'<form method="post" action="{path}">' in response.text
    assert '<input type="hidden" name="action" value="unsubscribe">' in response.text
    text = visible_text(response.text)
    assert "Unsubscribe from Shortlysts Daily?" in text
    assert EMAIL in text
    preferences = re.search(r'href="(/preferences/[^"]+)"', response.text)
    assert preferences
    assert client.get(preferences.group(1)).status_code == 200
    assert subscription_of(session).status == SubscriptionStatus.CONFIRMED
    assert events(session, ConsentAction.UNSUBSCRIBE) == []


def test_unsubscribe_button_on_the_page(
    client: TestClient, session: Session, settings: Settings, subscribed: Subscription
) -> None:
    response = client.post(unsubscribe_path(settings, subscribed), data={"action": "unsubscribe"})

    assert response.status_code == 200
    text = visible_text(response.text)
    assert "You're unsubscribed" in text
    assert "takes effect at once" in text
    assert subscription_of(session).status == SubscriptionStatus.UNSUBSCRIBED
    [event] = events(session, ConsentAction.UNSUBSCRIBE)
    assert event.source == "page"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({}, id="empty-form"),
        pytest.param({"List-Unsubscribe": "Yes"}, id="wrong-value"),
        pytest.param({"action": "subscribe"}, id="wrong-action"),
    ],
)
def test_unsubscribe_post_without_one_click_is_refused(
    client: TestClient,
    session: Session,
    settings: Settings,
    subscribed: Subscription,
    data: dict[str, Any],
) -> None:
    response = client.post(
        unsubscribe_path(settings, subscribed),
        data=data,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert "List-Unsubscribe=One-Click" in response.text
    assert subscription_of(session).status == SubscriptionStatus.CONFIRMED
    assert events(session, ConsentAction.UNSUBSCRIBE) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'{"List-Unsubscribe": "One-Click"}', "application/json", id="json"),
        pytest.param(ONE_CLICK, "text/plain", id="text-plain"),
        pytest.param(ONE_CLICK, None, id="no-content-type"),
    ],
)
def test_unsubscribe_post_that_is_not_a_form_is_refused(
    client: TestClient,
    session: Session,
    settings: Settings,
    subscribed: Subscription,
    body: bytes,
    content_type: str | None,
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = client.post(unsubscribe_path(settings, subscribed), content=body, headers=headers)

    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.text
    assert subscription_of(session).status == SubscriptionStatus.CONFIRMED
    assert events(session, ConsentAction.UNSUBSCRIBE) == []


READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]


def test_list_unsubscribe_header_of_a_digest_works_with_one_click(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    now: datetime,
) -> None:
    """Take the URL from the header a mail provider reads and POST to it as Gmail does."""
    edition = edition_with_readers(session, daily_list, READERS[:1], now=now, settings=settings)
    start_sending(session, edition.id, now=now)
    session.commit()
    transport = MemoryTransport()
    for batch in pending_batches(session, edition.id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=at_test_time)
    [(_, _, data)] = transport.sent
    message = parse(data)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"]))
    assert url
    path = url.group(1).removeprefix(settings.base_url.rstrip("/"))

    response = client.post(
        path,
        content=ONE_CLICK,
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )

    assert response.status_code == 200
    assert subscription_of(session, READERS[0]).status == SubscriptionStatus.UNSUBSCRIBED


def test_unsubscribe_takes_effect_for_a_send_in_progress(
    client: TestClient,
    session: Session,
    settings: Settings,
    daily_list: NewsletterList,
    now: datetime,
) -> None:
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    assert start_sending(session, edition.id, now=now) == len(READERS)
    session.commit()
    leaver = subscription_of(session, "bob@example.com")

    response = client.post(
        unsubscribe_path(settings, leaver),
        content=ONE_CLICK,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200

    transport = MemoryTransport()
    for batch in pending_batches(session, edition.id, settings.batch_size):
        run_batch(session, batch, transport, settings, clock=at_test_time)

    assert sorted(recipient for _, recipient, _ in transport.sent) == [
        "ann@example.com",
        "cat@example.com",
    ]
    session.expire_all()
    statuses = {
        email: status
        for email, status in session.execute(
            select(Subscriber.email, Delivery.status).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        )
    }
    assert statuses == {
        "ann@example.com": DeliveryStatus.SENT,
        "bob@example.com": DeliveryStatus.SKIPPED,
        "cat@example.com": DeliveryStatus.SENT,
    }


def test_unsubscribe_link_of_an_erased_reader_answers_kindly(
    client: TestClient, session: Session, settings: Settings, daily_list: NewsletterList
) -> None:
    token = make_token(settings.secret_key, UNSUBSCRIBE, 999_999, daily_list.id, key_of(999_999))

    page = client.get(f"/unsubscribe/{token}")
    post = client.post(
        f"/unsubscribe/{token}",
        content=ONE_CLICK,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert page.status_code == 200
    assert "We hold no subscription for this link" in visible_text(page.text)
    assert post.status_code == 200
    assert events(session, ConsentAction.UNSUBSCRIBE) == []


def test_old_unsubscribe_link_keeps_working(
    client: TestClient,
    session: Session,
    settings: Settings,
    subscribed: Subscription,
    clock: FrozenClock,
) -> None:
    """Unsubscribe links never expire: an email from years ago must still work."""
    path = unsubscribe_path(settings, subscribed)
    clock.advance(timedelta(days=3 * 365))

    response = client.post(
        path, content=ONE_CLICK, headers={"content-type": "application/x-www-form-urlencoded"}
    )

    assert response.status_code == 200
    assert subscription_of(session).status == SubscriptionStatus.UNSUBSCRIBED
