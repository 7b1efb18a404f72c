"""`digest send` with Redis set and no worker on its queue (issue 14, item 4): it says so in
seconds rather than showing "0/? sent" forever, queues nothing a later worker could not
finish, and sends through a worker of its own when asked (a flag, or yes at a terminal)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.models import Edition, EditionStatus, NewsletterList
from tests.cli_runner import run
from tests.factories import edition_with_readers
from tests.integration.helpers import start_solo_worker, stop_worker
from tests.services import wait_for_worker
from tests.smtp_server import RecordingHandler, SMTPServer

READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]


@pytest.fixture
def queue(broker: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A queue of this test's own, which no worker consumes; var/ (where a worker of the
    command's own logs) in the test's directory."""
    name = f"newsletter-noworker-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("NEWSLETTER_CELERY_QUEUE", name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield name
    redis.Redis.from_url(broker).delete(name)
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def edition(
    session: Session, daily_list: NewsletterList, now: datetime, settings: Settings
) -> Edition:
    return edition_with_readers(session, daily_list, READERS, now=now, settings=settings)


def status_of(session: Session, edition: Edition) -> EditionStatus:
    session.expire_all()
    return session.get_one(Edition, edition.id).status


def recipients(smtp: RecordingHandler) -> list[str]:
    return sorted(r for item in smtp.received for r in item.recipients)


def test_a_send_with_no_worker_says_how_to_start_one_within_seconds(
    queue: str, edition: Edition
) -> None:
    started = time.monotonic()
    code, output = run("digest", "send", str(edition.id))

    assert code == 1
    assert time.monotonic() - started < 5
    assert f"no worker is consuming queue '{queue}'" in output
    assert "Start one with `newsletter worker`" in output
    assert f"`newsletter digest send {edition.id} --embedded-worker`" in output


def test_a_send_with_no_worker_queues_nothing_and_leaves_the_edition_as_it_was(
    broker: str, queue: str, session: Session, edition: Edition
) -> None:
    before = status_of(session, edition)

    run("digest", "send", str(edition.id))

    assert status_of(session, edition) == before == EditionStatus.SCHEDULED
    assert redis.Redis.from_url(broker).llen(queue) == 0


def test_the_embedded_worker_flag_sends_to_every_reader(
    queue: str, session: Session, edition: Edition, smtp: RecordingHandler
) -> None:
    code, output = run("digest", "send", str(edition.id), "--embedded-worker")

    assert code == 0, output
    assert f"Started a Celery worker for queue '{queue}'" in output
    assert recipients(smtp) == READERS
    assert status_of(session, edition) == EditionStatus.SENT


def test_at_a_terminal_a_send_with_no_worker_offers_one_and_sends_through_it(
    queue: str, session: Session, edition: Edition, smtp: RecordingHandler, tmp_path: Path
) -> None:
    terminal, side = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "digest", "send", str(edition.id)],
        stdin=side, stdout=side, stderr=side, cwd=tmp_path, env=dict(os.environ),
    )  # fmt: skip
    os.close(side)
    try:
        asked = read_terminal(terminal, until="[Y/n]")
        os.write(terminal, b"y\n")
        answered = read_terminal(terminal, until=None)
        assert process.wait(timeout=10) == 0, asked + answered
    finally:
        os.close(terminal)
        if process.poll() is None:
            process.kill()
            process.wait()

    assert f"No worker is consuming queue '{queue}'" in " ".join(asked.split())
    assert recipients(smtp) == READERS
    assert status_of(session, edition) == EditionStatus.SENT


def read_terminal(terminal: int, until: str | None, timeout: float = 60) -> str:
    """What the program wrote to its terminal up to ``until`` (None: until it exits)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while until is None or until.encode() not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the program has exited and closed its side
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def test_a_send_whose_worker_stops_midway_says_so_within_seconds(
    queue: str, session: Session, daily_list: NewsletterList, now: datetime,
    settings: Settings, slow_smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", slow_smtp.url)  # 20 ms a message
    get_settings.cache_clear()
    readers = [f"reader{i:03d}@example.com" for i in range(500)]
    edition = edition_with_readers(session, daily_list, readers, now=now, settings=settings)
    worker = start_solo_worker({}, tmp_path / "worker.log")
    answer: list[tuple[int, str]] = []
    try:
        wait_for_worker(tmp_path / "worker.log", worker)
        send = threading.Thread(
            target=lambda: answer.append(run("digest", "send", str(edition.id)))
        )
        send.start()
        deadline = time.monotonic() + 30
        while len(slow_smtp.handler.received) < 20:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.05)
    finally:
        stop_worker(worker, signal.SIGKILL)
    stopped = time.monotonic()
    send.join(timeout=30)

    assert answer, "digest send still waiting 30 s after its only worker was killed"
    code, output = answer[0]
    assert code == 1
    assert time.monotonic() - stopped < 12
    assert f"no worker is consuming queue '{queue}'" in output
    assert "any more" in output
    assert f"`newsletter digest status {edition.id}`" in output


def test_two_workers_of_one_name_count_as_workers(
    queue: str, session: Session, edition: Edition, smtp: RecordingHandler, tmp_path: Path
) -> None:
    # Two workers on one machine without --hostname answer under the same name.
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_solo_worker({}, log) for log in logs]
    try:
        for log, worker in zip(logs, workers, strict=True):
            wait_for_worker(log, worker)
        code, output = run("digest", "send", str(edition.id))
    finally:
        for worker in workers:
            stop_worker(worker)

    assert code == 0, output
    assert recipients(smtp) == READERS
