"""Returned mail from the terminal: ``newsletter inbound list`` and ``show`` report what was
stored and what it did, and ``process --retry-failed`` gives a failed message a second go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app, common
from newsletter.clock import FrozenClock
from newsletter.config import Settings
from newsletter.models import InboundMessage, InboundStatus, NewsletterList, SubscriberStatus
from newsletter.subscriptions.service import Signup, find_subscriber, import_subscribers
from tests.cli_runner import run
from tests.returned_mail import (
    DSN,
    HOSTILE,
    TRACEBACK,
    failed_message,
    processed_bounce,
    waiting_message,
)

ANN = "ann@example.com"
# An out-of-office reply: processing it needs nothing but the message, and changes no reader.
AUTO_REPLY = (
    b"From: Ann <ann@example.com>\r\nTo: bounces@bounces.example.com\r\n"
    b"Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack on Monday.\r\n"
)


@pytest.fixture(autouse=True)
def cli_clock(clock: FrozenClock) -> Iterator[FrozenClock]:
    common.use_clock(clock)
    yield clock
    common.use_clock(None)


@pytest.fixture
def ann(session: Session, daily_list: NewsletterList, now: datetime) -> None:
    import_subscribers(session, daily_list, [Signup(ANN)], now=now, source="test")
    session.commit()


def status_of(session: Session, message_id: int) -> InboundStatus:
    session.expire_all()
    message = session.get(InboundMessage, message_id)
    assert message is not None
    return message.status


def test_list_shows_each_message_with_its_status_kind_error_and_what_it_did(
    session: Session, ann: None, settings: Settings, now: datetime
) -> None:
    bounce = processed_bounce(session, ANN, settings=settings, now=now)
    broken = failed_message(session, HOSTILE, now=now + timedelta(minutes=1))

    code, output = run("inbound", "list")

    assert code == 0
    assert output.startswith("2 returned messages; page 1 of 1.")
    later = now + timedelta(minutes=1)
    assert (
        f"#{bounce} {now:%Y-%m-%d %H:%M} UTC mailgun {len(DSN):,} B bounce processed "
        "bounce hard: blocked"
    ) in output
    assert (
        f"#{broken} {later:%Y-%m-%d %H:%M} UTC smtp {len(HOSTILE):,} B - failed no events "
        "error: ValueError: the MIME structure is broken"
    ) in output
    assert output.index(f"#{broken}") < output.index(f"#{bounce}")  # the latest first
    assert "Traceback" not in output  # the first line only; 'show' has the rest


def test_list_of_failed_messages_in_json_pages_by_fifty(session: Session, now: datetime) -> None:
    ids = [
        failed_message(session, DSN, now=now + timedelta(minutes=i), error=f"Error {i}")
        for i in range(51)
    ]
    waiting_message(session, AUTO_REPLY, now=now)

    code, output = run("inbound", "list", "--status", "failed", "--page", "2", "--format", "json")

    assert code == 0
    listed = json.loads(output)
    assert (listed["total"], listed["page"], listed["pages"]) == (51, 2, 2)
    assert listed["messages"] == [
        {"id": ids[0], "received_at": now.isoformat(), "source": "smtp", "size": len(DSN),
         "kind": "", "status": "failed", "error": "Error 0", "events": []}
    ]  # fmt: skip


def test_show_gives_the_headers_the_events_and_the_whole_error(
    session: Session, ann: None, settings: Settings, now: datetime
) -> None:
    bounce = processed_bounce(session, ANN, settings=settings, now=now)
    broken = failed_message(session, DSN, now=now)

    _, shown = run("inbound", "show", str(bounce))
    _, failed = run("inbound", "show", str(broken))

    assert shown.startswith(
        f"Returned message #{bounce}: bounce, processed; {len(DSN):,} bytes from mailgun"
    )
    assert "Subject: Undelivered Mail Returned to Sender" in shown
    assert "Event: bounce hard: blocked ann@example.com reader" in shown
    assert "(5.1.1 user unknown)" in shown
    assert " ".join(f"Error: {TRACEBACK}".split()) in failed
    assert "No events." in failed


def test_show_never_lets_a_message_drive_the_terminal(session: Session, now: datetime) -> None:
    message_id = failed_message(session, HOSTILE, now=now)

    code, output = run("inbound", "show", str(message_id))

    assert code == 0
    # Rich markup is printed as it came; the escape sequence loses its ESC.
    assert "Subject: [bold red]shout[/] <script>alert(1)</script> ?[2J cleared" in output
    assert "\x1b" not in output


def test_show_raw_prints_the_message_exactly_when_piped(session: Session, now: datetime) -> None:
    message_id = failed_message(session, HOSTILE, now=now)

    result = CliRunner().invoke(app, ["inbound", "show", str(message_id), "--raw"])

    assert result.exit_code == 0
    assert result.stdout_bytes.endswith(b"\n" + HOSTILE)


def test_show_of_an_unknown_message_is_a_one_line_error(session: Session) -> None:
    assert run("inbound", "show", "4242") == (1, "error: no returned message 4242")


def test_process_retry_failed_processes_failed_messages_again(
    session: Session, ann: None, now: datetime
) -> None:
    failed = failed_message(session, AUTO_REPLY, now=now)

    code, output = run("inbound", "process", "--retry-failed")

    assert (code, output) == (
        0, "1 failed message put back to be processed. Processed 1 stored message."
    )  # fmt: skip
    assert status_of(session, failed) == InboundStatus.PROCESSED
    _, shown = run("inbound", "show", str(failed))
    assert "auto_reply, processed" in shown
    assert "Error:" not in shown


def test_process_without_retry_leaves_failed_messages_alone(
    session: Session, ann: None, now: datetime
) -> None:
    failed = failed_message(session, AUTO_REPLY, now=now)

    assert run("inbound", "process") == (0, "Processed 0 stored messages.")
    assert status_of(session, failed) == InboundStatus.FAILED
    reader = find_subscriber(session, ANN)
    assert reader is not None
    assert reader.status == SubscriberStatus.ACTIVE
