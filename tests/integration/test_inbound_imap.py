"""`newsletter inbound poll` and its beat task, reading a real IMAP mailbox (Dovecot).

Each test puts what a mailbox provider would have delivered (a DSN for one of our VERP
addresses, with the provider's Return-Path and Delivered-To) into a private Dovecot, polls,
and checks the reader and the mailbox: a message leaves the INBOX only once it is stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import handoff
from newsletter.cli import common
from newsletter.clock import FrozenClock
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.delivery.verp import DIGEST, ReturnPath, Tag
from newsletter.inbound import intake, mailbox
from newsletter.models import (
    Edition,
    InboundMessage,
    MailEvent,
    NewsletterList,
    SubscriberStatus,
)
from newsletter.runtime import celery_worker, free_port
from tests.cli_runner import run
from tests.imap_server import Dovecot, dovecot_available
from tests.inbound_server import edition_being_sent, reader_now
from tests.services import wait_for_worker

UNAVAILABLE = dovecot_available()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no private Dovecot: {UNAVAILABLE}"),
]

BOUNCE_ADDRESS = "bounces@bounces.example.com"
READERS = ["alice@example.org", "bob@example.org"]
PROCESSED = "Processed"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are read again after the test's environment is undone (autouse: set up
    before, so torn down after, monkeypatch)."""
    yield
    get_settings.cache_clear()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        yield server


def _configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    for name, value in values.items():
        monkeypatch.setenv(f"NEWSLETTER_{name.upper()}", value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def imap_settings(monkeypatch: pytest.MonkeyPatch, database_url: str, dovecot: Dovecot) -> Settings:
    return _configure(
        monkeypatch, bounce_address=BOUNCE_ADDRESS, imap_url=dovecot.url(),
        imap_processed_folder=PROCESSED,
    )  # fmt: skip


@pytest.fixture
def cli_clock(clock: FrozenClock) -> Iterator[FrozenClock]:
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.fixture
def sending(
    session: Session, daily_list: NewsletterList, imap_settings: Settings, now: datetime
) -> Edition:
    """An edition being sent to READERS: their deliveries exist."""
    return edition_being_sent(session, daily_list, READERS, settings=imap_settings, now=now)


def _hard_bounce(settings: Settings, edition: Edition, email: str) -> bytes:
    """A Postfix DSN for an unknown user, as a hosted mailbox stores it: the provider wrote
    the null Return-Path and the tagged Delivered-To; the To header lost the tag."""
    return_path = ReturnPath.parse(settings.bounce_address, settings.secret_key)
    assert return_path is not None
    verp = return_path.address(Tag(DIGEST, reader_now(email).id, edition.id))
    text = f"""\
Return-Path: <>
Delivered-To: {verp}
Received: by mta.postfix.test (Postfix) id 88D8920C363; Fri,  4 Dec 2026 17:45:45 +0000
Date: Fri,  4 Dec 2026 17:45:45 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mta.postfix.test>
Subject: Undelivered Mail Returned to Sender
To: {BOUNCE_ADDRESS}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"
Message-Id: <20261204174545.88D8920C363@mta.postfix.test>

--b0
Content-Type: text/plain; charset=utf-8

<{email}>: unknown user: "{email}"

--b0
Content-Type: message/delivery-status

Reporting-MTA: dns; mta.postfix.test

Final-Recipient: rfc822; {email}
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; unknown user: "{email}"

--b0
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: Shortlysts <digest@shortlysts.example.com>
To: {email}
Subject: Today's digest

--b0--
"""
    return text.replace("\n", "\r\n").encode()


def _stored() -> list[InboundMessage]:
    return _all(InboundMessage)


def _events() -> list[MailEvent]:
    return _all(MailEvent)


Row = TypeVar("Row", InboundMessage, MailEvent)


def _all(model: type[Row]) -> list[Row]:
    with session_scope() as session:
        rows = list(session.scalars(select(model).order_by(model.id)))
        for row in rows:
            session.expunge(row)
        return rows


class Crash(BaseException):
    """The process dies: after the store committed, before the message was moved."""


# --- What a poll does with a bounce ------------------------------------------------------------


def test_a_hard_bounce_blocks_the_reader_and_moves_to_the_processed_folder(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, cli_clock: FrozenClock
) -> None:
    bounce = _hard_bounce(imap_settings, sending, READERS[0])
    dovecot.append(bounce)

    code, output = run("inbound", "poll")

    assert code == 0, output
    assert "1 fetched, 1 stored, 0 stored before, 1 moved to Processed, 0 failed" in output
    reader = reader_now(READERS[0])
    assert reader.status == SubscriberStatus.BLOCKED
    assert "5.1.1" in reader.blocked_reason
    assert reader_now(READERS[1]).status == SubscriberStatus.ACTIVE
    assert dovecot.messages() == []
    assert dovecot.messages(PROCESSED) == [bounce]
    [stored] = _stored()
    assert (stored.source, stored.envelope_from) == ("imap", "")


def test_with_no_processed_folder_a_stored_message_is_deleted(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, cli_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    settings = _configure(monkeypatch, imap_processed_folder="")
    dovecot.append(_hard_bounce(settings, sending, READERS[0]))

    code, output = run("inbound", "poll")

    assert code == 0, output
    assert "1 stored, 0 stored before, 1 deleted, 0 failed" in output
    assert dovecot.messages() == []
    assert dovecot.messages(PROCESSED) == []
    assert reader_now(READERS[0]).status == SubscriberStatus.BLOCKED


def test_polling_twice_stores_and_processes_each_message_once(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, clock: FrozenClock
) -> None:
    dovecot.append(_hard_bounce(imap_settings, sending, READERS[0]))

    first = handoff.poll_mailbox(imap_settings, clock)
    second = handoff.poll_mailbox(imap_settings, clock)

    assert (first.fetched, first.stored, first.moved) == (1, 1, 1)
    assert (second.fetched, second.stored, second.moved) == (0, 0, 0)
    assert len(_stored()) == 1
    assert len(_events()) == 1


def test_a_message_stored_before_a_crash_is_moved_not_stored_again_on_the_next_poll(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, clock: FrozenClock
) -> None:
    bounce = _hard_bounce(imap_settings, sending, READERS[0])
    dovecot.append(bounce)

    def store_then_die(raw: bytes, external_id: str) -> int | None:
        handoff.store_inbound(
            raw, "", [], "imap", imap_settings, clock, external_id=external_id
        )  # the commit happened; the process dies before the move (and before processing)
        raise Crash

    with pytest.raises(Crash):
        mailbox.poll(
            imap_settings.imap_url, store_then_die, max_bytes=imap_settings.inbound_max_bytes,
            processed_folder=PROCESSED,
        )  # fmt: skip
    assert dovecot.messages() == [bounce]

    result = handoff.poll_mailbox(imap_settings, clock)

    assert (result.fetched, result.stored, result.duplicates, result.moved) == (1, 0, 1, 1)
    assert dovecot.messages() == []
    assert len(_stored()) == 1
    # The poll ends by processing what the crash left stored and unprocessed.
    assert len(_events()) == 1
    assert reader_now(READERS[0]).status == SubscriberStatus.BLOCKED


def test_a_store_that_fails_leaves_the_message_in_the_inbox(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, cli_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bounce = _hard_bounce(imap_settings, sending, READERS[0])
    dovecot.append(bounce)
    # A PostgreSQL that is not there: nothing listens on this port.
    _configure(monkeypatch, database_url=f"postgresql+psycopg://nl@127.0.0.1:{free_port()}/nl")

    code, output = run("inbound", "poll")

    assert code == 1
    assert "1 message(s) could not be stored and stay in the mailbox" in output
    assert dovecot.messages() == [bounce]
    assert dovecot.messages(PROCESSED) == []


def test_a_message_over_the_size_limit_stays_in_the_inbox_unread(
    dovecot: Dovecot, sending: Edition, imap_settings: Settings, cli_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _configure(monkeypatch, inbound_max_bytes="2000")
    small = _hard_bounce(imap_settings, sending, READERS[0])
    large = _hard_bounce(imap_settings, sending, READERS[1]) + b"x" * 3000 + b"\r\n"
    dovecot.append(large)
    dovecot.append(small)

    code, output = run("inbound", "poll")

    assert code == 0, output
    assert "1 fetched, 1 stored" in output
    assert "1 over 2,000 bytes left in place" in output
    assert dovecot.messages() == [large]
    assert reader_now(READERS[1]).status == SubscriberStatus.ACTIVE


@pytest.mark.parametrize(
    "capability",
    [
        pytest.param("IMAP4rev1 LITERAL+ UIDPLUS", id="uidplus-without-move"),
        pytest.param("IMAP4rev1 LITERAL+", id="neither-move-nor-uidplus"),
    ],
)
def test_a_server_without_move_gets_copy_then_expunge(
    capability: str, sending: Edition, imap_settings: Settings, clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with Dovecot(capability=capability) as older:
        settings = _configure(monkeypatch, imap_url=older.url())
        bounce = _hard_bounce(settings, sending, READERS[0])
        older.append(bounce)

        result = handoff.poll_mailbox(settings, clock)

        assert (result.stored, result.moved) == (1, 1)
        assert older.messages() == []
        assert older.messages(PROCESSED) == [bounce]


@pytest.mark.parametrize("implicit", [True, False], ids=["imaps", "imap-starttls"])
def test_tls_to_a_server_whose_certificate_is_trusted(
    implicit: bool, sending: Edition, imap_settings: Settings, cli_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with Dovecot(tls=True) as secure:
        # OpenSSL's default trust store, which ssl.create_default_context() loads, is this
        # file: the test's self-signed certificate is the one trusted authority.
        monkeypatch.setenv("SSL_CERT_FILE", str(secure.ca_file))
        url = secure.url().removesuffix("?tls=none")
        if implicit:
            url = url.replace("imap://", "imaps://").replace(
                f":{secure.port}/", f":{secure.tls_port}/"
            )
        settings = _configure(monkeypatch, imap_url=url)
        secure.append(_hard_bounce(settings, sending, READERS[0]))

        code, output = run("inbound", "poll")

        assert code == 0, output
        assert "1 stored" in output
        assert secure.messages() == []


# --- One-line errors for a person at the terminal --------------------------------------------


def test_a_wrong_password_is_a_one_line_error_without_the_password(
    dovecot: Dovecot, imap_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, imap_url=dovecot.url(password="hunter2-wrong"))
    dovecot.append(b"Subject: stays\r\n\r\nhere\r\n")

    code, output = run("inbound", "poll")

    assert code == 1
    error = output.split("error: ", 1)[1]
    assert "\n" not in error
    assert "refused the login of 'bounces'" in error
    assert "check the user and password in NEWSLETTER_IMAP_URL" in error
    assert "hunter2" not in output
    assert len(dovecot.messages()) == 1


def test_polling_every_minute_stops_at_once_on_a_refused_password(
    dovecot: Dovecot, imap_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trying again every minute would only get the mailbox account locked.
    _configure(monkeypatch, imap_url=dovecot.url(password="hunter2-wrong"))

    code, output = run("inbound", "poll", "--every", "60")

    assert code == 1
    assert "refused the login of 'bounces'" in output


def test_an_unreachable_server_is_a_one_line_error(
    imap_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, imap_url=f"imap://u:p@127.0.0.1:{free_port()}/INBOX?tls=none")

    code, output = run("inbound", "poll")

    assert code == 1
    assert "cannot reach the IMAP server 127.0.0.1:" in output
    assert "Connection refused" in output


def test_an_untrusted_certificate_is_a_one_line_error(
    imap_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Dovecot(tls=True) as secure:
        url = f"imaps://u:p@127.0.0.1:{secure.tls_port}/INBOX"
        _configure(monkeypatch, imap_url=url)

        code, output = run("inbound", "poll")

    assert code == 1
    assert f"TLS with 127.0.0.1:{secure.tls_port} failed" in output
    assert "CERTIFICATE_VERIFY_FAILED" in output


def test_a_url_that_is_not_imap_is_a_one_line_error(
    imap_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, imap_url="https://user:pw@imap.example.com/INBOX")

    code, output = run("inbound", "poll")

    assert code == 1
    assert "NEWSLETTER_IMAP_URL must start imaps:// (TLS) or imap:// (STARTTLS)" in output


# --- The beat tasks --------------------------------------------------------------------------


def test_the_beat_task_polls_the_mailbox_on_a_real_worker(
    broker: str, dovecot: Dovecot, sending: Edition, imap_settings: Settings, tmp_path: Path
) -> None:
    from workers import app

    dovecot.append(_hard_bounce(imap_settings, sending, READERS[0]))
    queue = f"imap-test-{uuid.uuid4().hex[:8]}"
    # A worker of its own: the session's worker started before this test's mailbox existed.
    with celery_worker({}, tmp_path / "worker.log", concurrency=1, queue=queue) as process:
        wait_for_worker(tmp_path / "worker.log", process)
        app.send_task("workers.tasks.poll_bounce_mailbox", queue=queue)
        deadline = time.monotonic() + 30
        while reader_now(READERS[0]).status != SubscriberStatus.BLOCKED:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)

    assert dovecot.messages() == []
    assert len(dovecot.messages(PROCESSED)) == 1


def test_beat_polls_the_mailbox_every_minute_only_when_one_is_set(
    broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.app import create_app

    _configure(monkeypatch, imap_url="")
    assert "poll-bounce-mailbox" not in create_app().conf.beat_schedule

    _configure(monkeypatch, imap_url="imaps://u:p@imap.example.com/INBOX")
    entry = create_app().conf.beat_schedule["poll-bounce-mailbox"]

    assert entry["task"] == "workers.tasks.poll_bounce_mailbox"
    assert entry["schedule"].minute == set(range(60))


def test_the_daily_purge_drops_raw_messages_past_the_retention(
    broker: str, session: Session, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> None:
    from workers.tasks import purge_inbound

    _configure(monkeypatch, clock_start=now.isoformat(), inbound_retention_days="30")
    old = intake.store(session, b"old", source="imap", now=now - timedelta(days=31))
    recent = intake.store(session, b"recent", source="imap", now=now - timedelta(days=29))
    session.commit()

    assert purge_inbound() == 1
    session.expire_all()
    assert [(m.id, m.raw) for m in _stored()] == [(old, None), (recent, b"recent")]
