"""Two workers share one relay's rate limit through Redis: the relay never sees more than the
bucket allows, and everyone still gets their message once."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.models import NewsletterList
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.services import wait_for_worker
from tests.smtp_server import RecordingHandler, SMTPServer

READERS = [f"reader{i:03d}@example.com" for i in range(150)]
RATE = 40  # messages a second, with a one-second burst


def test_two_workers_together_keep_to_the_rate(
    broker: str, session: Session, daily_list: NewsletterList, settings: Settings, now: datetime,
    smtp_server: SMTPServer, smtp: RecordingHandler, tmp_path: Path,
) -> None:  # fmt: skip
    from workers.tasks import send_edition

    queue = f"newsletter-rate-{uuid.uuid4().hex[:8]}"
    env = {
        "NEWSLETTER_CELERY_QUEUE": queue,
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_BATCH_SIZE": "25",
        "NEWSLETTER_SMTP_RATE_PER_SECOND": str(RATE),
    }
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [start_solo_worker(env, log) for log in logs]
    try:
        for log, worker in zip(logs, workers, strict=True):
            wait_for_worker(log, worker)
        send_edition.apply_async((edition.id,), queue=queue)
        state = wait_until_sent(edition.id, timeout=90)
    finally:
        for worker in workers:
            stop_worker(worker)

    times = sorted(item.at for item in smtp.received)
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 2 * RATE, "a one-second window held more than the burst plus the rate"
    per_reader = Counter(r for item in smtp.received for r in item.recipients)
    assert set(per_reader) == set(READERS)
    assert max(per_reader.values()) == 1
    assert state.sent == len(READERS)
    assert all(" sent, " in log.read_text() for log in logs), "both workers sent batches"
