"""Steps the integration tests share: load the sample feed, add readers, wait for a send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.progress import Progress, progress
from newsletter.editions.build import build_edition
from newsletter.models import Edition, NewsletterList
from newsletter.posts.ingest import upsert_posts
from newsletter.posts.sources import parse_feed
from newsletter.resources import data_path
from newsletter.subscriptions.service import Signup, import_subscribers
from tests.moments import TEST_NOW


def sample_edition(
    session: Session, nl: NewsletterList, readers: list[str], *, now: datetime, settings: Settings
) -> Edition:
    """Import the sample feed, subscribe ``readers`` and build the edition due at ``now``."""
    parsed = parse_feed(data_path("sample_feed.xml").read_bytes(), now=now)
    upsert_posts(session, parsed.posts)
    import_subscribers(session, nl, [Signup(r) for r in readers], now=now, source="test")
    edition = build_edition(session, nl, now.date(), now=now, settings=settings).edition
    session.commit()
    return edition


def wait_until_sent(edition_id: int, *, timeout: float = 60) -> Progress:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            state = progress(session, edition_id, now=TEST_NOW)
        if state.status == "sent" and state.remaining == 0:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"edition {edition_id} not sent in {timeout}s: {state}")
        time.sleep(0.1)


def start_solo_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A one-process Celery worker in its own process group, with ``env`` added to ours, so a
    test can kill it (SIGKILL included) with nothing left behind."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "--pool=solo",
             "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop_worker(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
