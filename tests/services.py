"""Real services as fixtures: Redis, an SMTP server, a Celery worker and the web app served
by uvicorn. Registered for every test directory through ``pytest_plugins`` in conftest."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI

from newsletter.config import get_settings
from newsletter.runtime import celery_worker, embedded_redis, free_port
from tests.smtp_server import RecordingHandler, SlowHandler, SMTPServer


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


@contextmanager
def web_process(
    command: Sequence[str], *, port: int, env: dict[str, str], log: Path, cwd: Path,
    timeout: float = 30,
) -> Iterator[str]:  # fmt: skip
    """The web app served by ``command`` in a process of its own, once ``/healthz`` answers
    200; yields its URL, and stops it afterwards. Its output goes to ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the web app did not start: {log.read_text()}"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def slow_smtp() -> Iterator[SMTPServer]:
    """An SMTP server taking 20 ms a message: a send is always mid-group when a test acts."""
    server = SMTPServer(SlowHandler())
    server.start()
    yield server
    server.stop()


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
        wait_for_worker(log, process)
        yield process


def wait_for_worker(log: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-3000:]}")
        if log.exists() and "ready." in log.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout}s; see {log}")


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@pytest.fixture(scope="session")
def live_server(worker: subprocess.Popen[bytes], database_url: str) -> Iterator[LiveServer]:
    """The web app on a real port (uvicorn in a thread), sending notices through the worker."""
    import uvicorn

    from newsletter.web import create_app

    get_settings.cache_clear()
    app = create_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    thread.join(timeout=10)
