"""Redis restarts (losing every queued task) in the middle of a send: the send completes,
and nobody gets a message twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.progress import progress
from newsletter.models import NewsletterList
from newsletter.runtime import free_port, redis_server_binary
from tests.integration.helpers import sample_edition, start_solo_worker, stop_worker
from tests.moments import TEST_NOW
from tests.smtp_server import SMTPServer

READERS = [f"reader{i:03d}@example.com" for i in range(150)]


class PrivateRedis:
    """A Redis of this test's own, which it can stop and start on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # no save, no goodbye: every queued task is gone
            self.process.wait()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def celery_call(env: dict[str, str], task: str, *args: int) -> None:
    """Queue a task on this test's Redis (this process's Celery app points elsewhere)."""
    command = [sys.executable, "-m", "celery", "-A", "workers", "call", task]
    if args:
        command += ["--args", str(list(args))]
    subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True, timeout=60)


def test_send_completes_after_redis_restarts(
    database_url: str, session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, slow_smtp: SMTPServer, private_redis: PrivateRedis, tmp_path: Path,
) -> None:  # fmt: skip
    env = {
        "NEWSLETTER_REDIS_URL": private_redis.url,
        "NEWSLETTER_SMTP_URL": slow_smtp.url,
        "NEWSLETTER_BATCH_SIZE": "30",
        "NEWSLETTER_STALE_CLAIM_MINUTES": "0.02",
    }
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    worker = start_solo_worker(env, tmp_path / "worker.log")
    try:
        celery_call(env, "workers.tasks.send_edition", edition.id)
        deadline = time.monotonic() + 60
        while len(slow_smtp.handler.received) < 20:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.01)
        private_redis.stop()
        time.sleep(1)
        private_redis.start()

        deadline = time.monotonic() + 120
        while True:
            with session_scope(database_url) as check:
                state = progress(check, edition.id, now=TEST_NOW)
            if state.status == "sent":
                break
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            # What beat does every few minutes, here every two seconds.
            celery_call(env, "workers.tasks.reconcile_deliveries")
            time.sleep(2)
    finally:
        stop_worker(worker)

    received = Counter(r for item in slow_smtp.handler.received for r in item.recipients)
    assert max(received.values()) == 1, "a reader received two messages"
    assert state.sent + state.uncertain == len(READERS)
    assert state.uncertain <= 1
