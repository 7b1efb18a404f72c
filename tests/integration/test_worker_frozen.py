"""SIGSTOP a worker mid-send for longer than its lease, run `digest reconcile` and
`digest retry-uncertain` while it is frozen, then SIGCONT it (issue 11).

At the SMTP server: at most the messages in flight at the freeze arrive twice (the frozen
worker's one, and one more had it not noticed its lease was gone), the ledger flags every
one of them as a possible duplicate, nobody is missing, and the ledger's sent count is the
number of readers who received it.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus, NewsletterList, Subscriber
from tests.cli_runner import run
from tests.integration.helpers import (
    sample_edition,
    start_solo_worker,
    stop_worker,
    wait_until_sent,
)
from tests.services import wait_for_worker
from tests.smtp_server import SMTPServer

pytestmark = pytest.mark.skipif(
    not os.environ.get("NEWSLETTER_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="PostgreSQL only: a process frozen inside a write would hold SQLite's one write "
    "lock, stopping every other writer; workers on several machines share PostgreSQL",
)

# NEWSLETTER_TEST_FROZEN_READERS=5000 gives the figures; 1,000 keeps CI quick.
READERS = [
    f"reader{i:05d}@example.com"
    for i in range(int(os.environ.get("NEWSLETTER_TEST_FROZEN_READERS", "1000")))
]
FLUSH = 20
LEASE_S = 5.0
SMTP_TIMEOUT_S = 2.0


@pytest.fixture
def env(
    broker: str, slow_smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Short leases for the workers and the CLI alike, on a queue of this test's own."""
    values = {
        "NEWSLETTER_CELERY_QUEUE": f"newsletter-freeze-{uuid.uuid4().hex[:8]}",
        "NEWSLETTER_SMTP_URL": slow_smtp.url,
        "NEWSLETTER_BATCH_SIZE": "100",
        "NEWSLETTER_DELIVERY_FLUSH_SIZE": str(FLUSH),
        "NEWSLETTER_DELIVERY_LEASE_SECONDS": str(LEASE_S),
        "NEWSLETTER_SMTP_TIMEOUT": str(SMTP_TIMEOUT_S),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield values
    redis.Redis.from_url(broker).delete(values["NEWSLETTER_CELERY_QUEUE"])
    get_settings.cache_clear()


def _sending(edition_id: int) -> dict[str | None, frozenset[int]]:
    """Each claim's rows in flight."""
    with session_scope() as session:
        rows = session.execute(
            select(Delivery.claim, Delivery.id)
            .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENDING)
        ).all()  # fmt: skip
    held: dict[str | None, set[int]] = {}
    for claim, delivery_id in rows:
        held.setdefault(claim, set()).add(delivery_id)
    return {claim: frozenset(ids) for claim, ids in held.items()}


def _unlocked(claims: set[str | None]) -> bool:
    """Whether the frozen worker holds no row lock on those rows (it was not caught inside
    the short transaction that records a group and claims the next)."""
    with session_scope() as session:
        try:
            session.execute(
                select(Delivery.id).where(Delivery.claim.in_(claims)).with_for_update(nowait=True)
            ).all()
        except OperationalError:
            return False
    return True


def freeze_mid_group(pid: int, edition_id: int) -> None:
    """SIGSTOP the worker while it sends a group: a claim whose rows in flight stay the same
    for a second (the live worker records one every 20 ms) is the frozen one's."""
    for _ in range(20):
        os.killpg(pid, signal.SIGSTOP)
        time.sleep(0.2)
        before = _sending(edition_id)
        time.sleep(1)
        after = _sending(edition_id)
        held = {claim for claim, ids in after.items() if before.get(claim) == ids}
        if held and _unlocked(held):
            return
        os.killpg(pid, signal.SIGCONT)  # caught between two groups: try again
        time.sleep(0.1)
    raise AssertionError("the worker never held a claim when frozen")


def test_a_frozen_worker_neither_sends_nor_records_once_its_lease_is_gone(
    env: dict[str, str], session: Session, daily_list: NewsletterList, settings: Settings,
    now: datetime, slow_smtp: SMTPServer, tmp_path: Path,
) -> None:  # fmt: skip
    smtp = slow_smtp.handler
    started = time.monotonic()
    edition = sample_edition(session, daily_list, READERS, now=now, settings=settings)
    logs = [tmp_path / "worker-frozen.log", tmp_path / "worker-live.log"]
    frozen, live = (start_solo_worker({}, log) for log in logs)
    try:
        wait_for_worker(logs[0], frozen)
        wait_for_worker(logs[1], live)
        code, output = run("digest", "send", str(edition.id), "--no-wait")
        assert code == 0, output
        deadline = time.monotonic() + 60
        while len(smtp.received) < 200:
            assert time.monotonic() < deadline, logs[0].read_text()[-2000:]
            time.sleep(0.01)

        freeze_mid_group(frozen.pid, edition.id)
        frozen_at = len(smtp.received)
        try:
            time.sleep(LEASE_S + 1)  # every lease it held has expired
            code, output = run("digest", "reconcile")
            assert code == 0, output
            print(output)
            time.sleep(SMTP_TIMEOUT_S + 0.5)  # and its message in flight can no longer land
            code, output = run("digest", "retry-uncertain", str(edition.id))
            assert code == 0, output
            print(output)
            wait_until_sent(edition.id, timeout=60 + len(READERS) / 20)  # slow_smtp: ~50 msgs/s
            before_wake = len(smtp.received)
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
        time.sleep(LEASE_S)  # time enough to send a whole group, had it kept going
        after_wake = len(smtp.received) - before_wake
    finally:
        stop_worker(frozen)
        stop_worker(live)

    state = wait_until_sent(edition.id)
    elapsed = time.monotonic() - started
    per_reader = Counter(r for item in smtp.received for r in item.recipients)
    twice = {reader for reader, count in per_reader.items() if count > 1}
    flagged = set(session.scalars(
        select(Subscriber.email)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.edition_id == edition.id, Delivery.maybe_duplicate.is_(True))
    ))  # fmt: skip
    print(
        f"\nfrozen at {frozen_at} received; sent {state.sent}, received {len(smtp.received)}, "
        f"duplicates {len(twice)}, maybe-duplicates {state.maybe_duplicate}, "
        f"missing {len(set(READERS) - set(per_reader))}, uncertain {state.uncertain}, "
        f"failed {state.failed}, after the wake {after_wake}, {elapsed:.1f} s"
    )
    assert after_wake <= 1, "the woken worker went on sending"
    assert max(per_reader.values()) <= 2
    assert twice <= flagged, "a reader got two copies the ledger calls a clean send"
    assert len(twice) <= 2, "more than the messages in flight at the freeze arrived twice"
    assert len(flagged) <= 2, "more than the frozen worker's message in flight was retried"
    assert set(per_reader) == set(READERS), "a reader is missing"
    assert (state.sent, state.failed, state.uncertain) == (len(READERS), 0, 0)
    assert len(smtp.received) - len(twice) == state.sent
    assert state.sent <= len(smtp.received) <= state.sent + state.maybe_duplicate
