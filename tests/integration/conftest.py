"""Real services: Redis, an SMTP server and a Celery worker process."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from newsletter.config import get_settings
from newsletter.runtime import celery_worker, embedded_redis
from tests.smtp_server import RecordingHandler, SMTPServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NEWSLETTER_TEST_REDIS_URL (CI: the system Redis), else an embedded one."""
    url = os.environ.get("NEWSLETTER_TEST_REDIS_URL")
    if url:
        redis.Redis.from_url(url).ping()
        yield url
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as embedded:
        yield embedded


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SMTPServer) -> Iterator[RecordingHandler]:
    smtp_server.handler.clear()
    yield smtp_server.handler
    smtp_server.handler.clear()


@pytest.fixture(scope="session")
def broker(
    redis_url: str, test_environment: dict[str, str], smtp_server: SMTPServer
) -> Iterator[str]:
    """Point this process's Celery app (and later workers) at Redis and the SMTP server."""
    os.environ["NEWSLETTER_REDIS_URL"] = redis_url
    os.environ["NEWSLETTER_SMTP_URL"] = smtp_server.url
    get_settings.cache_clear()
    yield redis_url
    os.environ.pop("NEWSLETTER_REDIS_URL", None)
    os.environ.pop("NEWSLETTER_SMTP_URL", None)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def worker(
    broker: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery -A workers worker`` process consuming this run's queue."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    queue = os.environ["NEWSLETTER_CELERY_QUEUE"]
    redis.Redis.from_url(broker).delete(queue)
    with celery_worker({}, log, concurrency=2, queue=queue) as process:
        _wait_for_worker(log, process)
        yield process


def _wait_for_worker(log: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-3000:]}")
        if log.exists() and "ready." in log.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout}s; see {log}")
