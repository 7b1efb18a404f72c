"""A server that defers 10% of messages, refuses a few and drops connections: every
deliverable message arrives exactly once, each refusal is recorded with its reply, and the
one message whose reply was lost is counted uncertain, not sent twice."""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.clock import system_clock
from newsletter.config import Settings
from newsletter.delivery.progress import Progress
from newsletter.handoff import InProcessHandoff
from newsletter.models import Delivery, DeliveryStatus, NewsletterList, Subscriber
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.smtp_server import RecordingHandler, SMTPServer

READERS = [f"reader{i:03d}@example.com" for i in range(120)]
REFUSED = {"reader007@example.com", "reader077@example.com"}
REPLY_LOST = "reader050@example.com"


class FlakyHandler(RecordingHandler):
    """Deterministic trouble: 4xx to ~10% of first attempts, 5xx to REFUSED, the connection
    dropped at every 25th MAIL FROM, and dropped after taking REPLY_LOST's message."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.mail_count = 0

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.mail_count += 1
        if self.mail_count % 25 == 0:
            server.transport.close()  # nothing of the message has been sent yet
            return "421 4.4.2 connection dropped"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.seen[address] += 1
        if address in REFUSED:
            return "550 5.1.1 mailbox unavailable"
        if self.seen[address] == 1 and zlib.crc32(address.encode()) % 10 == 0:
            return "451 4.3.0 try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if REPLY_LOST in envelope.rcpt_tos:
            server.transport.close()  # accepted, but the sender never hears so
        return reply


@pytest.fixture
def flaky_smtp() -> Iterator[SMTPServer]:
    server = SMTPServer(FlakyHandler())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def flaky_worker(
    broker: str, database_url: str, flaky_smtp: SMTPServer, tmp_path: Path
) -> Iterator[str]:
    queue = f"newsletter-flaky-{uuid.uuid4().hex[:8]}"
    env = {
        "NEWSLETTER_CELERY_QUEUE": queue,
        "NEWSLETTER_SMTP_URL": flaky_smtp.url,
        "NEWSLETTER_BATCH_SIZE": "40",
        "NEWSLETTER_RETRY_BACKOFF_SECONDS": "0.2",
    }
    process = start_solo_worker(env, tmp_path / "worker.log")
    yield queue
    stop_worker(process)


def test_every_deliverable_message_arrives_exactly_once(
    flaky_worker: str, flaky_smtp: SMTPServer, session: Session, daily_list: NewsletterList,
    settings: Settings, now: datetime,
) -> None:  # fmt: skip
    from workers.tasks import send_edition

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    send_edition.apply_async((edition.id,), queue=flaky_worker)
    state = wait_until_sent(edition.id, timeout=120)

    assert_exactly_once(flaky_smtp, state, session)


def test_the_in_process_hand_off_retries_like_the_workers(
    flaky_smtp: SMTPServer, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime,
) -> None:  # fmt: skip
    """No broker: the same jobs in threads, with the same retries and the same outcome."""
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    laptop = settings.model_copy(update={
        "redis_url": "", "smtp_url": flaky_smtp.url, "batch_size": 40,
        "retry_backoff_seconds": 0.2,
    })  # fmt: skip

    InProcessHandoff(laptop, system_clock).send_edition(edition.id)
    state = wait_until_sent(edition.id, timeout=120)

    assert_exactly_once(flaky_smtp, state, session)


def assert_exactly_once(flaky_smtp: SMTPServer, state: Progress, session: Session) -> None:
    handler = flaky_smtp.handler
    assert isinstance(handler, FlakyHandler)
    retried = [address for address, times in handler.seen.items() if times > 1]
    assert len(retried) >= 10, "the server deferred and dropped enough to exercise retries"
    assert handler.mail_count >= 25, "at least one connection was dropped"
    received = Counter(r for item in handler.received for r in item.recipients)
    assert set(received) == set(READERS) - REFUSED
    assert max(received.values()) == 1
    deliverable = len(READERS) - len(REFUSED)
    assert (state.sent, state.failed, state.uncertain) == (deliverable - 1, 2, 1)
    failures = session.execute(
        select(Subscriber.email, Delivery.last_error)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.status == DeliveryStatus.FAILED)
    ).all()
    assert {email for email, _ in failures} == REFUSED
    assert all(error == "550 5.1.1 mailbox unavailable" for _, error in failures)
