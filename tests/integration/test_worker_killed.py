"""kill -9 a worker in the middle of a send, start another: every reader gets one message."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import NewsletterList
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.smtp_server import RecordingHandler, SMTPServer

READERS = [f"reader{i:03d}@example.com" for i in range(150)]


class SlowHandler(RecordingHandler):
    """Takes 20 ms per message, so a send lasts long enough to be killed halfway."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SMTPServer]:
    server = SMTPServer(SlowHandler())
    server.start()
    yield server
    server.stop()


def test_killed_worker_loses_and_duplicates_nobody(
    broker: str, session: Session, daily_list: NewsletterList, settings: Settings, now: datetime,
    slow_smtp: SMTPServer, tmp_path: Path,
) -> None:  # fmt: skip
    from workers.tasks import reconcile_deliveries, send_edition

    queue = f"newsletter-kill-{uuid.uuid4().hex[:8]}"
    env = {
        "NEWSLETTER_CELERY_QUEUE": queue,
        "NEWSLETTER_SMTP_URL": slow_smtp.url,
        "NEWSLETTER_BATCH_SIZE": "50",
        "NEWSLETTER_STALE_CLAIM_MINUTES": "0.01",  # the killed batch is stale at once
    }
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    first = start_solo_worker(env, tmp_path / "worker-1.log")
    try:
        send_edition.apply_async((edition.id,), queue=queue)
        deadline = time.monotonic() + 60
        while len(slow_smtp.handler.received) < 40:
            assert time.monotonic() < deadline, (tmp_path / "worker-1.log").read_text()[-2000:]
            time.sleep(0.01)
    finally:
        stop_worker(first, signal.SIGKILL)
    killed_at = len(slow_smtp.handler.received)
    assert killed_at < len(READERS)

    second = start_solo_worker(env, tmp_path / "worker-2.log")
    try:
        time.sleep(1)
        reconcile_deliveries.apply_async(queue=queue)
        state = wait_until_sent(edition.id, timeout=90)
    finally:
        stop_worker(second)

    per_reader = Counter(r for item in slow_smtp.handler.received for r in item.recipients)
    message_ids = Counter(item.message["Message-ID"] for item in slow_smtp.handler.received)
    assert max(per_reader.values()) == 1, "a reader received two messages"
    assert max(message_ids.values()) == 1
    assert state.uncertain <= 1
    assert state.sent + state.uncertain == len(READERS)
    assert len(per_reader) in (state.sent, state.sent + state.uncertain)
