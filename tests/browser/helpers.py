"""Steps the browser tests share: make a list, wait for an email, read links out of it,
sign an editor in."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.editors.service import create_editor
from newsletter.lists.service import ListSpec, create_list
from newsletter.models import (
    Frequency,
    NewsletterList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import post
from tests.smtp_server import Received, RecordingHandler

# NEWSLETTER_BASE_URL in tests (tests/conftest.py): links in emails start with it.
BASE_URL = "https://news.example.com"
MAIL_TIMEOUT_S = 20.0


def make_list(
    session: Session, slug: str = "morning", name: str = "Morning Brief"
) -> NewsletterList:
    nl = create_list(
        session,
        ListSpec(
            slug=slug,
            name=name,
            from_address="brief@shortlysts.example.com",
            from_name="Shortlysts",
            description="The day's news before breakfast.",
        ),
    )
    session.commit()
    return nl


def end_of_day_list(
    session: Session, *, slug: str, name: str, titles: list[str], readers: list[str]
) -> NewsletterList:
    """A list whose time is the end of the day (so today's edition is a draft, whenever the
    test runs), a post of each title from the last hour, and its readers."""
    nl = create_list(
        session,
        ListSpec(
            slug=slug, name=name, from_address=f"{slug}@shortlysts.example.com",
            from_name="Shortlysts", schedule="59 23 * * *", timezone="UTC",
        ),
    )  # fmt: skip
    moment = datetime.now(UTC)
    upsert_posts(
        session,
        [post(i, moment - timedelta(minutes=10 + i), title=t) for i, t in enumerate(titles)],
    )
    import_subscribers(session, nl, [Signup(r) for r in readers], now=moment, source="test")
    session.commit()
    return nl


def unique_address(prefix: str = "reader") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def wait_for_mail(
    smtp: RecordingHandler, recipient: str, subject_part: str, timeout: float = MAIL_TIMEOUT_S
) -> Received:
    """The first email to ``recipient`` whose subject contains ``subject_part``."""
    deadline = time.monotonic() + timeout
    while True:
        with smtp.lock:
            received = list(smtp.received)
        for item in received:
            if recipient in item.recipients and subject_part in str(item.message["Subject"]):
                return item
        if time.monotonic() > deadline:
            seen = [(r.recipients, str(r.message["Subject"])) for r in received]
            raise AssertionError(
                f"no email to {recipient} about {subject_part!r} within {timeout}s; got {seen}"
            )
        time.sleep(0.1)


def text_part(received: Received) -> str:
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None, "the email has no text/plain part"
    content = body.get_content()
    assert isinstance(content, str)
    return content


def link(text: str, path: str, served_at: str) -> str:
    """The ``BASE_URL + path + <token>`` link in ``text``, pointed at the server under test."""
    match = re.search(re.escape(BASE_URL + path) + r"[A-Za-z0-9._\-]+", text)
    assert match, f"no {BASE_URL}{path}... link in:\n{text}"
    return served_at + match.group(0).removeprefix(BASE_URL)


@dataclass(frozen=True)
class Stored:
    status: SubscriptionStatus
    frequency: Frequency
    paused: bool


def stored(session: Session, email: str, list_id: int) -> Stored:
    """The subscription as the server left it, read in a new transaction that is then ended
    (an open read would hold an old snapshot while the server writes)."""
    session.rollback()
    session.expire_all()  # rollback is a no-op outside a transaction: drop cached rows too
    try:
        row = session.scalar(
            select(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email, Subscription.list_id == list_id)
        )
        assert row is not None, f"no subscription of {email} to list {list_id}"
        return Stored(row.status, row.frequency, row.paused_at is not None)
    finally:
        session.rollback()


EDITOR_PASSWORD = "a long editor passphrase"


def sign_in(page: Page, served_at: str, session: Session) -> str:
    """A new editor, signed in through the login form and on the dashboard; their address."""
    email = unique_address("editor")
    create_editor(session, email, EDITOR_PASSWORD, name="Test Editor")
    session.commit()
    page.goto(f"{served_at}/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    return email
