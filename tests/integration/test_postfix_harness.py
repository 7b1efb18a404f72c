"""The Postfix harness on its own: a real Postfix bounces mail for a dead domain and routes the
DSN it generates, over SMTP or LMTP, to the inbound server (here an aiosmtpd sink), to the
VERP address the message went out with."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from tests.postfix import Postfix, postfix_available
from tests.smtp_server import Received, RecordingHandler, SMTPServer

UNAVAILABLE = postfix_available()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no private Postfix: {UNAVAILABLE}"),
]

SAVED_DSN = Path(__file__).parents[1] / "data" / "dsn" / "postfix-user-unknown.eml"
VERP_SENDER = "bounces+abc123@bounces.test"
DEAD_RECIPIENT = "nobody@dead.test"
DSN_TIMEOUT_S = 20.0
MESSAGE = (
    b"From: Newsletter <news@example.test>\r\n"
    b"To: nobody@dead.test\r\n"
    b"Subject: This week\r\n"
    b"Message-ID: <edition-1.reader-1@example.test>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


class _LMTPController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


class LMTPServer(SMTPServer):
    """The project's recording sink, speaking LMTP (LHLO instead of EHLO, no queue of its own)."""

    def __init__(self, handler: RecordingHandler | None = None) -> None:
        super().__init__(handler)
        # SMTPServer cannot be given a server class, so swap its controller for one that builds
        # LMTP sessions, on the loop it made (which stop() closes).
        self.controller = _LMTPController(
            self.handler, hostname="127.0.0.1", port=self.port, loop=self.controller.loop
        )


@pytest.fixture(params=["smtp", "lmtp"])
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def inbound(route: str) -> Iterator[SMTPServer]:
    server = LMTPServer() if route == "lmtp" else SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postfix(inbound: SMTPServer, route: str) -> Iterator[Postfix]:
    with Postfix("127.0.0.1", inbound.port, lmtp=route == "lmtp") as mta:
        yield mta


def wait_for_one(server: SMTPServer, mta: Postfix) -> Received:
    deadline = time.monotonic() + DSN_TIMEOUT_S
    while not server.handler.received:
        if time.monotonic() > deadline:
            raise AssertionError(f"no DSN in {DSN_TIMEOUT_S}s; Postfix log:\n{mta.log()}")
        time.sleep(0.02)
    return server.handler.received[0]


def delivery_status(report: EmailMessage) -> list[Message]:
    """The field blocks of a DSN's message/delivery-status part: per message, then per
    recipient."""
    for part in report.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()
            assert isinstance(blocks, list)
            return [block for block in blocks if isinstance(block, Message)]
    raise AssertionError(f"no message/delivery-status part in {report.get_content_type()}")


def shape(report: EmailMessage) -> list[object]:
    """What a DSN parser relies on: the parts in order and the per-recipient fields."""
    per_recipient = delivery_status(report)[1]
    fields = ("Final-Recipient", "Action", "Status", "Diagnostic-Code")
    return [[part.get_content_type() for part in report.walk()]] + [
        per_recipient[name] for name in fields
    ]


def test_postfix_bounces_dead_recipient_to_the_verp_sender(
    postfix: Postfix, inbound: SMTPServer, route: str
) -> None:
    sent = time.monotonic()
    with smtplib.SMTP("127.0.0.1", postfix.smtp_port, timeout=5) as client:
        refused = client.sendmail(VERP_SENDER, [DEAD_RECIPIENT], MESSAGE)
    assert refused == {}  # accepted at RCPT: the bounce comes later, as a DSN

    dsn = wait_for_one(inbound, postfix)

    assert dsn.at - sent < DSN_TIMEOUT_S
    assert dsn.sender == "<>"  # the null reverse-path (aiosmtpd keeps the brackets): no loops
    assert dsn.recipients == [VERP_SENDER]
    report = dsn.message
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["To"] == VERP_SENDER
    per_message, per_recipient = delivery_status(report)
    assert per_message["Reporting-MTA"] == f"dns; {postfix.myhostname}"
    assert per_recipient["Final-Recipient"] == f"rfc822; {DEAD_RECIPIENT}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    returned = [p for p in report.walk() if p.get_content_type() == "message/rfc822"]
    assert len(returned) == 1
    assert b"<edition-1.reader-1@example.test>" in returned[0].as_bytes()
    # The sample other tests parse is still what this Postfix sends.
    saved = message_from_bytes(SAVED_DSN.read_bytes(), policy=policy.default)
    assert isinstance(saved, EmailMessage)
    assert shape(saved) == shape(report)
    postfix.wait_until_queue_empty(timeout=5)
    assert len(inbound.handler.received) == 1


def test_postfix_can_refuse_an_unknown_user_at_rcpt() -> None:
    inbound = SMTPServer()
    inbound.start()
    try:
        with Postfix("127.0.0.1", inbound.port, refuse_unknown=True) as mta:
            with (
                smtplib.SMTP("127.0.0.1", mta.smtp_port, timeout=5) as client,
                pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
            ):
                client.sendmail(VERP_SENDER, [DEAD_RECIPIENT], MESSAGE)
            code, reply = refused.value.recipients[DEAD_RECIPIENT]
            assert (code, reply[:5]) == (550, b"5.1.1")
            assert mta.queue() == []
    finally:
        inbound.stop()
    assert inbound.handler.received == []
