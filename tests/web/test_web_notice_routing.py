"""Signups served the way production serves them (uvicorn in its own process, sync routes in
its thread pool) each queue their confirmation email on the configured Celery queue.

No browser and no Celery worker here: the queue has no consumer, so its length counts what
the web app queued. Messages that reach Celery's fallback app instead are kept in the same
private Redis (CELERY_BROKER_URL), counted, and deleted, so none goes to another broker.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.orm import Session

from newsletter.runtime import free_port
from tests.browser.helpers import make_list
from tests.services import web_process

ROOT = Path(__file__).resolve().parents[2]
SIGNUPS = 24


@pytest.fixture
def served_with_redis(
    redis_url: str, database_url: str, tmp_path: Path
) -> Iterator[tuple[str, str, redis.Redis]]:
    """The app in a uvicorn process of its own, its notices queued on a queue of its own."""
    queue = f"newsletter-routing-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_REDIS_URL": redis_url,
        "NEWSLETTER_CELERY_QUEUE": queue,
        "CELERY_BROKER_URL": redis_url,  # where the fallback app would send
        "NEWSLETTER_SMTP_URL": "",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_SIGNUP_RATE_LIMIT_PER_IP": "1000000/minute",
        "NEWSLETTER_SIGNUP_RATE_LIMIT_PER_ADDRESS": "1000000/minute",
    }
    port = free_port()
    log = tmp_path / "uvicorn.log"
    command = [
        sys.executable, "-m", "uvicorn", "newsletter.web.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    fallback_before = client.llen("celery")
    try:
        with web_process(command, port=port, env=env, log=log, cwd=ROOT, timeout=20) as url:
            yield url, queue, client
    finally:
        misrouted = client.llen("celery") - fallback_before
        if misrouted > 0:
            client.lpop("celery", misrouted)  # kombu pushes on the left
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


def test_concurrent_signups_each_queue_a_confirmation(
    served_with_redis: tuple[str, str, redis.Redis], session: Session
) -> None:
    url, queue, client = served_with_redis
    make_list(session)
    fallback_before = client.llen("celery")

    def sign_up(i: int) -> int:
        email = f"routing-{i}-{uuid.uuid4().hex[:6]}@example.com"
        answer = httpx.post(
            f"{url}/subscribe", data={"email": email, "lists": "morning"}, timeout=30
        )
        return answer.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(sign_up, range(SIGNUPS)))
    assert statuses == [200] * SIGNUPS

    queued = client.llen(queue)
    misrouted = client.llen("celery") - fallback_before
    assert (queued, misrouted) == (SIGNUPS, 0), (
        f"{queued} of {SIGNUPS} confirmations on {queue}; {misrouted} on Celery's default app"
    )
