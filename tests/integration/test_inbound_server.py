"""`newsletter inbound serve`, the real command, taking mail from a real SMTP client.

Each test sends what a mail server would send back (a Postfix DSN, an ARF complaint, an
auto-reply, a reader's unsubscribe email, garbage) and checks what happened to the reader.
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import handoff
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery.verp import DIGEST, ReturnPath, Tag
from newsletter.editions.build import build_edition
from newsletter.editions.lifecycle import start_sending
from newsletter.models import (
    ConsentAction,
    ConsentEvent,
    Delivery,
    Edition,
    InboundMessage,
    InboundStatus,
    MailEvent,
    NewsletterList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.tokens import UNSUBSCRIBE, make_token
from tests.factories import post
from tests.inbound_server import Inbound, edition_being_sent, reader_now, start_inbound_server

pytestmark = pytest.mark.integration

BOUNCE_ADDRESS = "bounces@bounces.example.com"
UNSUBSCRIBE_ADDRESS = "unsubscribe@news.example.com"
READERS = ["alice@example.org", "bob@example.org", "carol@example.org"]
POSTFIX_DSN = Path(__file__).parents[1] / "data" / "dsn" / "postfix-user-unknown.eml"


@pytest.fixture
def inbound_settings(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Settings]:
    monkeypatch.setenv("NEWSLETTER_BOUNCE_ADDRESS", BOUNCE_ADDRESS)
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_ADDRESS", UNSUBSCRIBE_ADDRESS)
    monkeypatch.setenv("NEWSLETTER_INBOUND_MAX_BYTES", "1000000")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def start_inbound(inbound_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Inbound]]:
    started: list[Inbound] = []

    def start(*extra: str) -> Inbound:
        server = start_inbound_server(tmp_path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.terminate()
            server.process.wait(timeout=30)


@pytest.fixture
def inbound(start_inbound: Callable[..., Inbound]) -> Inbound:
    return start_inbound()


@pytest.fixture
def sending(
    session: Session, daily_list: NewsletterList, inbound_settings: Settings, now: datetime
) -> Edition:
    """An edition being sent to READERS: their deliveries exist."""
    return edition_being_sent(session, daily_list, READERS, settings=inbound_settings, now=now)


def _verp(settings: Settings, edition: Edition, email: str) -> str:
    return_path = ReturnPath.parse(settings.bounce_address, settings.secret_key)
    assert return_path is not None
    return return_path.address(Tag(DIGEST, reader_now(email).id, edition.id))


def _postfix_dsn(verp: str, failed: str) -> bytes:
    """The DSN a real Postfix wrote for an unknown user, for this envelope and recipient."""
    text = POSTFIX_DSN.read_bytes()
    return text.replace(b"bounces+abc123@bounces.test", verp.encode()).replace(
        b"nobody@dead.test", failed.encode()
    )


def _events(timeout: float = 20, count: int = 1) -> list[MailEvent]:
    """The mail events once ``count`` of them are recorded."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            events = list(session.scalars(select(MailEvent).order_by(MailEvent.id)))
            for event in events:
                session.expunge(event)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def _stored() -> list[InboundMessage]:
    with session_scope() as session:
        rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        for row in rows:
            session.expunge(row)
        return rows


def test_a_postfix_dsn_for_an_unknown_user_blocks_thereader(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    reply = inbound.send(_postfix_dsn(verp, READERS[0]), verp)
    assert reply.startswith("250")
    [event] = _events()
    assert (event.kind, event.category, event.status, event.outcome) == (
        "bounce", "hard", "5.1.1", "blocked",
    )  # fmt: skip
    reader = reader_now(READERS[0])
    assert reader.status == SubscriberStatus.BLOCKED
    assert "5.1.1" in reader.blocked_reason
    assert reader_now(READERS[1]).status == SubscriberStatus.ACTIVE


def test_the_next_edition_skips_a_reader_who_bounced_hard(
    inbound: Inbound, sending: Edition, inbound_settings: Settings, daily_list: NewsletterList,
    now: datetime,
) -> None:  # fmt: skip
    verp = _verp(inbound_settings, sending, READERS[0])
    inbound.send(_postfix_dsn(verp, READERS[0]), verp)
    _events()
    with session_scope() as session:
        nl = session.get(NewsletterList, daily_list.id)
        assert nl is not None
        tomorrow = now + timedelta(days=1)
        upsert_posts(session, [post(99, tomorrow - timedelta(hours=3))])
        edition = build_edition(session, nl, tomorrow.date(), now=tomorrow,
                                settings=inbound_settings).edition  # fmt: skip
        start_sending(session, edition.id, now=tomorrow)
        mailed = set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.edition_id == edition.id)
            )
        )
    assert mailed == set(READERS[1:])


def test_recipients_other_than_ours_are_refused_at_rcpt(inbound: Inbound) -> None:
    reply = inbound.send(b"Subject: hi\r\n\r\nhello\r\n", "someone@example.com")
    assert reply.startswith("550 5.1.1")
    assert _stored() == []


def test_a_forged_tag_blocks_nobody(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    local, domain = verp.split("@")
    forged = f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}"
    assert inbound.send(_postfix_dsn(forged, READERS[0]), forged).startswith("250")
    [event] = _events()
    assert event.outcome == "ignored"
    assert event.subscriber_id is None
    assert reader_now(READERS[0]).status == SubscriberStatus.ACTIVE


def test_a_bounce_for_an_address_on_no_list_changes_nothing(
    inbound: Inbound, sending: Edition
) -> None:
    dsn = _postfix_dsn(BOUNCE_ADDRESS, "stranger@example.net")
    assert inbound.send(dsn, BOUNCE_ADDRESS).startswith("250")
    [event] = _events()
    assert (event.address, event.outcome) == ("stranger@example.net", "ignored")
    assert {reader_now(r).status for r in READERS} == {SubscriberStatus.ACTIVE}


def test_a_refusal_of_our_mail_as_spam_never_counts_against_thereader(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    dsn = _postfix_dsn(verp, READERS[0]).replace(
        b"Status: 5.1.1", b"Status: 5.7.1"
    ).replace(
        b'Diagnostic-Code: X-Postfix; unknown user: "' + READERS[0].encode() + b'"',
        b"Diagnostic-Code: smtp; 550 5.7.1 Message rejected as spam by Content Filtering",
    )  # fmt: skip
    assert inbound.send(dsn, verp).startswith("250")
    [event] = _events()
    assert (event.category, event.outcome, event.domain) == ("sender", "counted", "example.org")
    assert reader_now(READERS[0]).status == SubscriberStatus.ACTIVE


def _complaint(verp: str, reader: str) -> bytes:
    """An RFC 5965 feedback report, as a mailbox provider's feedback loop sends it."""
    report = EmailMessage()
    report["From"] = "feedback@fbl.example.net"
    report["To"] = verp
    report["Subject"] = "FW: Your digest"
    report["MIME-Version"] = "1.0"
    report.set_content("This is an email abuse report for an email message received.")
    report.make_mixed()
    feedback = (
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{verp}>\r\nOriginal-Rcpt-To: <{reader}>\r\n"
        "Arrival-Date: Thu, 3 Dec 2026 07:00:00 +0000\r\n"
    )
    report.add_attachment(feedback.encode(), maintype="message", subtype="feedback-report")
    original = EmailMessage()
    original["From"] = "Shortlysts <digest@shortlysts.example.com>"
    original["To"] = reader
    original["Subject"] = "Your digest"
    original.set_content("The day's news.")
    report.add_attachment(original)
    raw = report.as_bytes()
    # multipart/report is what marks it as ARF; the email package writes multipart/mixed.
    return raw.replace(
        b"Content-Type: multipart/mixed;",
        b"Content-Type: multipart/report; report-type=feedback-report;",
        1,
    )


def test_a_complaint_unsubscribes_from_every_list_and_suppresses_the_address(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[1])
    assert inbound.send(_complaint(verp, READERS[1]), verp).startswith("250")
    [event] = _events()
    assert (event.kind, event.outcome) == ("complaint", "suppressed")
    reader = reader_now(READERS[1])
    assert reader.status == SubscriberStatus.BLOCKED
    with session_scope() as session:
        statuses = set(
            session.scalars(
                select(Subscription.status).where(Subscription.subscriber_id == reader.id)
            )
        )
        actions = set(
            session.scalars(
                select(ConsentEvent.action).where(ConsentEvent.subscriber_id == reader.id)
            )
        )
    assert statuses == {SubscriptionStatus.UNSUBSCRIBED}
    assert {ConsentAction.COMPLAINT, ConsentAction.UNSUBSCRIBE} <= actions


def test_an_email_unsubscribe_with_the_readers_token_leaves_that_list(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    reader = reader_now(READERS[2])
    token = make_token(
        inbound_settings.secret_key, UNSUBSCRIBE, reader.id, sending.list_id, reader.token_key
    )
    request = EmailMessage()
    request["From"] = "Someone Else <someone@elsewhere.example>"  # a token needs no From
    request["To"] = UNSUBSCRIBE_ADDRESS
    request["Subject"] = f"unsubscribe {token}"
    request.set_content("This message was sent by a mail client's unsubscribe button.")
    assert (
        inbound.send(request.as_bytes(), UNSUBSCRIBE_ADDRESS, "someone@elsewhere.example")[:3]
        == "250"
    )
    [event] = _events()
    assert (event.kind, event.outcome, event.subscriber_id) == (
        "unsubscribe", "unsubscribed", reader.id,
    )  # fmt: skip
    with session_scope() as session:
        subscription = session.scalar(
            select(Subscription).where(Subscription.subscriber_id == reader.id)
        )
        assert subscription is not None
        assert subscription.status == SubscriptionStatus.UNSUBSCRIBED
        source = session.scalar(
            select(ConsentEvent.source).where(
                ConsentEvent.subscriber_id == reader.id,
                ConsentEvent.action == ConsentAction.UNSUBSCRIBE,
            )
        )
    assert source == "email"
    assert reader_now(READERS[2]).status == SubscriberStatus.ACTIVE


def test_an_auto_reply_is_recorded_and_never_a_bounce(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    reply = EmailMessage()
    reply["From"] = READERS[0]
    reply["To"] = verp
    reply["Subject"] = "Out of Office: Your digest"
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content("I am away until Monday with no access to email.")
    assert inbound.send(reply.as_bytes(), verp, READERS[0]).startswith("250")
    [event] = _events()
    assert (event.kind, event.outcome) == ("auto_reply", "recorded")
    assert reader_now(READERS[0]).status == SubscriberStatus.ACTIVE


def test_malformed_mime_is_kept_and_reported_without_a_crash(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    garbage = (
        b'Content-Type: multipart/report; boundary="x"\r\nMIME-Version: 1.0\r\n\r\n--x\r\n'
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: \xff\xfe;\r\n"
        b"Action: \x00\x01\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n--y--\r\n\x80\x81"
    )
    assert inbound.send(garbage, verp).startswith("250")
    _events()
    [stored] = _stored()
    assert stored.status == InboundStatus.PROCESSED
    assert stored.raw is not None
    assert stored.raw.endswith(b"--y--\r\n\x80\x81\r\n")
    # The server is still up and takes the next message.
    assert inbound.send(_postfix_dsn(verp, READERS[0]), verp).startswith("250")
    assert len(_events(count=2)) == 2


def test_a_message_over_the_size_limit_is_refused_and_the_server_stays_up(
    inbound: Inbound, sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    huge = _postfix_dsn(verp, READERS[0]) + b"x" * 76 + (b"\r\n" + b"y" * 76) * 130_000
    assert len(huge) > 10_000_000
    reply = inbound.send(huge, verp)
    assert reply.startswith("552")
    assert _stored() == []
    assert inbound.send(_postfix_dsn(verp, READERS[0]), verp).startswith("250")
    assert [e.outcome for e in _events()] == ["blocked"]


def test_a_message_stored_before_a_crash_is_processed_once_at_the_next_start(
    start_inbound: Callable[..., Inbound], sending: Edition, inbound_settings: Settings
) -> None:
    verp = _verp(inbound_settings, sending, READERS[0])
    # What the server commits before its 250; then it died before processing it.
    handoff.store_inbound(
        _postfix_dsn(verp, READERS[0]), "", [verp], "smtp", inbound_settings, time_now
    )
    start_inbound()
    events = _events()
    assert [e.outcome for e in events] == ["blocked"]
    handoff.process_pending_inbound(inbound_settings, time_now)
    assert len(_events(timeout=0)) == 1
    assert [m.status for m in _stored()] == [InboundStatus.PROCESSED]


def test_lmtp_answers_and_stores_like_smtp(
    start_inbound: Callable[..., Inbound], sending: Edition, inbound_settings: Settings
) -> None:
    server = start_inbound("--lmtp")
    verp = _verp(inbound_settings, sending, READERS[0])
    with smtplib.LMTP("127.0.0.1", server.port, timeout=30) as client:
        dsn = re.sub(rb"\r?\n", b"\r\n", _postfix_dsn(verp, READERS[0]))
        refused = client.sendmail("", [verp], dsn)
    assert refused == {}
    [event] = _events()
    assert event.outcome == "blocked"


def time_now() -> datetime:
    from tests.moments import TEST_NOW

    return TEST_NOW
