"""`newsletter worker` and `newsletter beat` (issue 14, item 5): the project's Celery worker and
scheduler without Celery's own command line, which keeps working beside them (item 8: beat's
schedule file stays under var/ either way)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.models import NewsletterList
from tests.cli_runner import run
from tests.factories import edition_with_readers
from tests.integration.helpers import stop_worker
from tests.services import wait_for_worker
from tests.smtp_server import RecordingHandler

READERS = ["ann@example.com", "bob@example.com", "cat@example.com"]


@dataclass
class Started:
    queue: str
    output: Path
    process: subprocess.Popen[bytes]


def start(command: list[str], output: Path, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    """``command`` in a process group of its own, its output in ``output``."""
    with output.open("wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def newsletter_worker(
    broker: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Started]:
    """`newsletter worker` on a queue of this module's own, with an option for Celery."""
    queue = f"newsletter-command-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("newsletter-worker")
    command = [sys.executable, "-m", "newsletter", "worker", "--concurrency", "1",
               "--", "--hostname=from-the-command@%h"]  # fmt: skip
    process = start(command, folder / "output", folder, NEWSLETTER_CELERY_QUEUE=queue)
    try:
        wait_for_worker(folder / "output", process)
        yield Started(queue, folder / "output", process)
    finally:
        stop_worker(process)
        redis.Redis.from_url(broker).delete(queue)


def test_the_worker_says_which_queue_broker_and_database_it_serves(
    newsletter_worker: Started, broker: str, database_url: str
) -> None:
    first_line = newsletter_worker.output.read_text().splitlines()[0]

    assert first_line == (
        f"Worker on queue {newsletter_worker.queue}, 1 process: broker {broker}, "
        f"database {database_url}."
    )


def test_the_worker_sends_what_digest_send_queues(
    newsletter_worker: Started, session: Session, daily_list: NewsletterList, now: datetime,
    settings: Settings, smtp: RecordingHandler, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    edition = edition_with_readers(session, daily_list, READERS, now=now, settings=settings)
    monkeypatch.setenv("NEWSLETTER_CELERY_QUEUE", newsletter_worker.queue)
    get_settings.cache_clear()
    try:
        code, output = run("digest", "send", str(edition.id))
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    assert code == 0, output
    assert sorted(r for item in smtp.received for r in item.recipients) == READERS


def test_options_after_a_double_dash_go_to_celery(newsletter_worker: Started) -> None:
    assert "from-the-command@" in newsletter_worker.output.read_text()


BEATS = {
    "newsletter beat": [sys.executable, "-m", "newsletter", "beat"],
    "celery -A workers beat": [sys.executable, "-m", "celery", "-A", "workers", "beat"],
}


@pytest.mark.parametrize("command", BEATS.values(), ids=BEATS.keys())
def test_beat_keeps_its_schedule_under_var_and_queues_the_dispatcher(
    broker: str, command: list[str], tmp_path: Path
) -> None:
    queue = f"newsletter-beat-{uuid.uuid4().hex[:8]}"
    process = start(
        command, tmp_path / "output", tmp_path,
        NEWSLETTER_CELERY_QUEUE=queue, NEWSLETTER_BEAT_DISPATCH_SECONDS="1",
    )  # fmt: skip
    queued = redis.Redis.from_url(broker)
    try:
        deadline = time.monotonic() + 30
        while not queued.llen(queue):
            assert process.poll() is None, (tmp_path / "output").read_text()
            assert time.monotonic() < deadline, (tmp_path / "output").read_text()
            time.sleep(0.1)
    finally:
        stop_worker(process)
        queued.delete(queue)

    assert list((tmp_path / "var").glob("celerybeat-schedule*"))
    assert not list(tmp_path.glob("celerybeat-schedule*"))


def test_newsletter_beat_says_where_it_queues_and_keeps_its_schedule(
    broker: str, tmp_path: Path
) -> None:
    queue = f"newsletter-beat-{uuid.uuid4().hex[:8]}"
    process = start(BEATS["newsletter beat"], tmp_path / "output", tmp_path,
                    NEWSLETTER_CELERY_QUEUE=queue)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "beat: Starting" not in (tmp_path / "output").read_text():
            assert process.poll() is None, (tmp_path / "output").read_text()
            assert time.monotonic() < deadline, (tmp_path / "output").read_text()
            time.sleep(0.1)
    finally:
        stop_worker(process)
        redis.Redis.from_url(broker).delete(queue)

    first_line = (tmp_path / "output").read_text().splitlines()[0]
    assert first_line == (
        f"Beat: tasks to queue {queue} on broker {broker}; schedule kept in "
        "var/celerybeat-schedule."
    )
