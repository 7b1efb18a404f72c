"""An editor pauses, resumes and cancels a send of a few hundred readers in full flight,
through a real Celery worker and a slow real SMTP server: the messages stop within one
group, a resumed send reaches everyone else once, and a cancelled one reaches nobody else."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.progress import progress
from newsletter.editions import lifecycle, service
from newsletter.models import Delivery, DeliveryStatus, NewsletterList
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.moments import TEST_NOW
from tests.services import wait_for_worker
from tests.smtp_server import SMTPServer

pytestmark = pytest.mark.integration

READERS = [f"reader{i:03d}@example.com" for i in range(300)]
FLUSH = 10  # messages per group: a pause or cancel takes effect before the next group


@pytest.fixture
def queue(broker: str, slow_smtp: SMTPServer, tmp_path: Path) -> Iterator[str]:
    """A solo worker of this test's own, consuming a queue of its own."""
    name = f"newsletter-pause-{uuid.uuid4().hex[:8]}"
    env = {
        "NEWSLETTER_CELERY_QUEUE": name,
        "NEWSLETTER_SMTP_URL": slow_smtp.url,
        "NEWSLETTER_BATCH_SIZE": "100",
        "NEWSLETTER_DELIVERY_FLUSH_SIZE": str(FLUSH),
    }
    log = tmp_path / "worker.log"
    worker = start_solo_worker(env, log)
    try:
        wait_for_worker(log, worker)
        yield name
    finally:
        stop_worker(worker)


def arrived(smtp: SMTPServer) -> int:
    return len(smtp.handler.received)


def wait_for_messages(smtp: SMTPServer, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while arrived(smtp) < count:
        assert time.monotonic() < deadline, f"only {arrived(smtp)} messages in {timeout}s"
        time.sleep(0.005)


def once_quiet(smtp: SMTPServer, quiet: float = 1.5) -> int:
    """How many messages have arrived once none has for ``quiet`` seconds (ten groups'
    worth of the slow server's time)."""
    count, since = arrived(smtp), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if arrived(smtp) != count:
            count, since = arrived(smtp), time.monotonic()
    return count


def per_reader(smtp: SMTPServer) -> Counter[str]:
    return Counter(r for item in smtp.handler.received for r in item.recipients)


@pytest.fixture
def in_flight(
    session: Session, daily_list: NewsletterList, settings: Settings, now: datetime,
    slow_smtp: SMTPServer, queue: str,
) -> int:  # fmt: skip
    """An edition's send to every reader, started and some 50 messages in."""
    from workers.tasks import send_edition

    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    send_edition.apply_async((edition.id,), queue=queue)
    wait_for_messages(slow_smtp, 50)
    return edition.id


def test_pause_stops_within_one_group_and_resume_reaches_everyone_else_once(
    in_flight: int, slow_smtp: SMTPServer, queue: str
) -> None:
    from workers.tasks import send_edition

    edition_id = in_flight
    with session_scope() as editor:
        service.pause(editor, service.get_edition(editor, edition_id))
    at_pause = arrived(slow_smtp)

    stopped_at = once_quiet(slow_smtp)
    assert stopped_at - at_pause <= FLUSH, "more than one group left after the pause"
    with session_scope() as check:
        paused = progress(check, edition_id, now=TEST_NOW)
    assert paused.status == "paused"
    assert paused.sent == stopped_at
    assert paused.queued == len(READERS) - stopped_at

    with session_scope() as editor:
        service.resume(editor, service.get_edition(editor, edition_id))
    send_edition.apply_async((edition_id,), queue=queue)
    state = wait_until_sent(edition_id, timeout=120)

    assert state.sent == len(READERS)
    received = per_reader(slow_smtp)
    assert sorted(received) == READERS, "a reader got nothing"
    assert set(received.values()) == {1}, "a reader got two messages"


def test_cancel_mid_send_reaches_nobody_else(in_flight: int, slow_smtp: SMTPServer) -> None:
    edition_id = in_flight
    with session_scope() as editor:
        service.cancel(editor, service.get_edition(editor, edition_id), now=datetime.now(UTC))
    at_cancel = arrived(slow_smtp)

    stopped_at = once_quiet(slow_smtp)
    assert stopped_at - at_cancel <= FLUSH, "more than one group left after the cancel"
    with session_scope() as check:
        state = progress(check, edition_id, now=TEST_NOW)
        errors = set(
            check.scalars(
                select(Delivery.last_error).where(
                    Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SKIPPED
                )
            )
        )
    assert state.status == "cancelled"
    assert state.sent == stopped_at
    assert state.skipped == len(READERS) - stopped_at
    assert state.remaining == 0
    assert errors == {lifecycle.CANCELLED_BY_EDITOR}
    assert set(per_reader(slow_smtp).values()) == {1}
