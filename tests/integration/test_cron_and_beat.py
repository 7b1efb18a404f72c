"""The two schedulers for real: two crons firing `newsletter dispatch` at the same moment, and
Celery beat running the dispatcher over and over. Each sends the day's edition exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Edition, Frequency, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.factories import post
from tests.integration.helpers import start_solo_worker, stop_worker, wait_until_sent
from tests.services import wait_for_worker
from tests.smtp_server import RecordingHandler

READERS = [f"reader{i:02d}@example.com" for i in range(20)]


def due_list(session: Session, nl: NewsletterList, now: datetime) -> dict[str, str]:
    """The list's time today was two minutes before ``now`` (UTC), with news published
    before it. Returns the environment that starts every process's clock at ``now``."""
    moment = now - timedelta(minutes=2)
    if moment.date() != now.date():  # just after midnight: the time must be today
        moment = now.replace(hour=0, minute=0)
    nl.schedule = f"{moment.minute} {moment.hour} * * *"
    upsert_posts(session, [post(i, moment - timedelta(hours=1 + i)) for i in range(3)])
    import_subscribers(session, nl, [Signup(r) for r in READERS], now=now, source="test")
    session.commit()
    return {"NEWSLETTER_CLOCK_START": now.isoformat()}


def daily_editions(session: Session) -> int:
    # On the list's weekly day a weekly edition is built too (for its weekly readers).
    count = select(func.count()).select_from(Edition).where(Edition.frequency == Frequency.DAILY)
    return session.scalar(count) or 0


def one_message_each(smtp: RecordingHandler) -> None:
    per_reader = Counter(r for item in smtp.received for r in item.recipients)
    assert set(per_reader) == set(READERS)
    assert max(per_reader.values()) == 1, "a reader received the edition twice"


@pytest.mark.parametrize(
    "now",
    [
        datetime(2025, 5, 16, 0, 1, 30, tzinfo=UTC),  # the list's time was just before midnight
        datetime(2027, 3, 28, 0, 59, 30, tzinfo=UTC),  # a Sunday: the weekly edition's day too
        datetime(2025, 5, 16, 23, 59, 0, tzinfo=UTC),
    ],
    ids=["00:01Z", "dst-sunday", "23:59Z"],
)
def test_two_crons_at_the_same_moment_send_one_edition(
    broker: str, session: Session, daily_list: NewsletterList, smtp: RecordingHandler,
    tmp_path: Path, now: datetime,
) -> None:  # fmt: skip
    clock = due_list(session, daily_list, now)
    queue = f"newsletter-cron-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **clock, "NEWSLETTER_CELERY_QUEUE": queue}
    worker = start_solo_worker({**clock, "NEWSLETTER_CELERY_QUEUE": queue}, tmp_path / "worker.log")
    try:
        wait_for_worker(tmp_path / "worker.log", worker)
        crons = [
            subprocess.Popen([sys.executable, "-m", "newsletter", "dispatch"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(2)
        ]  # fmt: skip
        outputs = [cron.communicate(timeout=60)[0].decode() for cron in crons]
        assert all(cron.returncode == 0 for cron in crons), outputs
        edition_id = session.scalar(select(Edition.id).where(Edition.frequency == Frequency.DAILY))
        assert edition_id is not None, outputs
        wait_until_sent(edition_id, timeout=60)
    finally:
        stop_worker(worker)
    assert daily_editions(session) == 1
    one_message_each(smtp)


def test_beat_sends_the_due_edition_once_however_often_it_runs(
    broker: str, session: Session, daily_list: NewsletterList, smtp: RecordingHandler,
    tmp_path: Path, now: datetime,
) -> None:  # fmt: skip
    clock = due_list(session, daily_list, now)
    queue = f"newsletter-beat-{uuid.uuid4().hex[:8]}"
    env = {**clock, "NEWSLETTER_CELERY_QUEUE": queue, "NEWSLETTER_BEAT_DISPATCH_SECONDS": "1"}
    worker = start_solo_worker(env, tmp_path / "worker.log")
    with (tmp_path / "beat.log").open("ab") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel=INFO",
             f"--schedule={tmp_path / 'beat-schedule'}"],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        daily = select(Edition.id).where(Edition.frequency == Frequency.DAILY)
        while (edition_id := session.scalar(daily)) is None:
            assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text()[-2000:]
            time.sleep(0.2)
            session.rollback()  # see the beat's commits
        wait_until_sent(edition_id, timeout=60)
        time.sleep(3)  # beat goes on dispatching: nothing more may go out
    finally:
        stop_worker(beat)
        stop_worker(worker)
    assert (tmp_path / "beat.log").read_text().count("dispatch_due_editions") >= 3
    assert daily_editions(session) == 1
    one_message_each(smtp)
